"""The cost per connected user: loaded as float columns, tabled for real-time cells only,
and written into summary.md and the HTML report with names escaped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reports_fixtures import RT_USERS, CellSpec, edit_cell, make_realtime_run_dir, make_run_dir

import reports
from loadgen.schema import SUMMARY_FILE
from reports.columns import PER_1000_USERS_COLUMNS
from reports.html import render_report
from reports.markdown import summary_markdown
from reports.user_costs import USER_COST_HEADERS, user_cost_rows, user_cost_table

WS = "ws-aiohttp/aiohttp/persistent"
EVIL = "ws|<b>*x*</b>"


def test_one_line_of_pandas_gets_the_columns(tmp_path: Path) -> None:
    run = reports.load(make_realtime_run_dir(tmp_path))
    for frame in (run.cells, run.repeats):
        for name in PER_1000_USERS_COLUMNS:
            expected = "Int64" if name == "per_1000_users_users" else "float64"
            assert str(frame[name].dtype) == expected, name
    ws = run.cells.set_index("cell").loc[WS]
    assert ws["per_1000_users_users"] == RT_USERS
    # 40.1 MB with users against 39.7 MB before, over 40 users.
    assert ws["per_1000_users_server_rss_mb"] == pytest.approx(10.0)
    assert ws["per_1000_users_server_rss_with_users_mb"] == pytest.approx(40.1)


def test_echo_cells_are_left_out(tmp_path: Path) -> None:
    echo = reports.load(make_run_dir(tmp_path, (CellSpec("http", "aiohttp", "keep-alive"),)))
    assert echo.cells["per_1000_users_server_rss_mb"].isna().all()
    assert user_cost_table(echo.cells).empty
    assert user_cost_rows(echo.cells) == []
    assert "Cost per connected user" not in summary_markdown(echo)
    assert "Cost per connected user" not in render_report(echo)


def test_a_figure_missing_from_the_results_shows_as_missing(tmp_path: Path) -> None:
    folder = make_realtime_run_dir(tmp_path)
    block = {"users": 40, "server_rss_mb": None, "server_cpu_ms_per_s": 2.5}
    edit_cell(folder, WS, per_1000_users=block)
    rows = {r[0]: r for r in user_cost_rows(reports.load(folder).cells)}
    assert rows[WS] == [WS, "ws-aiohttp", "push", "40", "–", "2.500", "–"]


def test_results_written_before_the_block_still_report(tmp_path: Path) -> None:
    folder = make_realtime_run_dir(tmp_path)
    path = folder / SUMMARY_FILE
    doc = json.loads(path.read_text())
    for entry in doc["cells"]:
        del entry["per_1000_users"]
        for rep in entry["per_repeat"]:
            del rep["per_1000_users"]
    path.write_text(json.dumps(doc))
    rows = user_cost_rows(reports.load(folder).cells)
    assert len(rows) == 4 and all(r[3:] == ["–"] * 4 for r in rows)


def test_summary_markdown_table_escapes_names(tmp_path: Path) -> None:
    folder = make_realtime_run_dir(tmp_path)
    block = {
        "users": 10_000,
        "server_rss_mb": 12.5,
        "server_cpu_ms_per_s": 0.75,
        "wire_kb_per_min": 1234.5,
    }
    edit_cell(folder, WS, cell=EVIL, per_1000_users=block)
    text = summary_markdown(reports.load(folder))
    section = text[text.index("### Cost per connected user") :].splitlines()
    assert section[4:6] == [
        "| Scenario | " + " | ".join(USER_COST_HEADERS) + " |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    assert (
        "| messaging-quick | `ws\\|<b>*x*</b>` | ws-aiohttp | push | 10,000 | 12.50 | 0.750 "
        "| 1,234 |"
    ) in section
    assert sum(1 for line in section if line.startswith("| messaging-quick |")) == 4


def test_html_report_escapes_names(tmp_path: Path) -> None:
    folder = make_realtime_run_dir(tmp_path)
    edit_cell(folder, WS, cell='<script>alert("x")</script>')
    html = render_report(reports.load(folder))
    start = html.index("<h3>Cost per connected user</h3>")
    table = html[start : html.index("</table>", start)]
    assert "<script>" not in html
    assert '<td class="cell">&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</td>' in table
    for header in USER_COST_HEADERS:
        assert f">{header}</th>" in table
    assert table.count("<tr>") == 1 + 4
