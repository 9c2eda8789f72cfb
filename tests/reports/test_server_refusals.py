"""What a cell's server refused (its own counters) reaches summary.json, the loaded
frames and the warnings, and a server that said nothing is named as unknown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from reports_fixtures import CellSpec, edit_cell, make_run_dir

import reports
from loadgen.summary import cell_summary, refusal_notes
from reports.checks import run_warnings

HTTP = "http/aiohttp/keep-alive"
CELLS = (
    CellSpec("http", "aiohttp", "keep-alive", scale=4),
    CellSpec("ws-aiohttp", "aiohttp", "persistent", scale=1),
)


def _failed(repeat: int, counters: dict[str, int] | None) -> dict[str, Any]:
    return {"cell": "c", "repeat": repeat, "failed": "sign-in refused", "server_counters": counters}


def test_summary_sums_every_repeat_its_server_reported() -> None:
    parts = [
        _failed(0, {"limit_refusals": 3, "unknown_recipients": 1, "messages": 9}),
        _failed(1, {"limit_refusals": 2, "unknown_recipients": 0}),
        _failed(2, None),  # started, then killed before it could report
        {"cell": "c", "repeat": 3, "failed": "server did not start"},  # no server at all
    ]
    summary = cell_summary({"cell": "c", "transport": "http"}, parts)
    assert summary["limit_refusals"] == 5
    assert summary["unknown_recipients"] == 1
    assert summary["server_counters_missing"] == [2]
    assert summary["refusals_by_repeat"] == [
        {"repeat": 0, "limit_refusals": 3, "unknown_recipients": 1},
        {"repeat": 1, "limit_refusals": 2, "unknown_recipients": 0},
    ]


def test_summary_says_unknown_when_no_server_reported() -> None:
    summary = cell_summary({"cell": "c", "transport": "http"}, [_failed(0, None)])
    assert summary["limit_refusals"] is None and summary["unknown_recipients"] is None
    assert summary["server_counters_missing"] == [0]
    assert summary["refusals_by_repeat"] == []


def test_refusal_notes_name_only_cells_that_refused() -> None:
    cells = [
        {"cell": "a", "limit_refusals": 4, "unknown_recipients": 0},
        {"cell": "b", "limit_refusals": 0, "unknown_recipients": 0},
        {"cell": "c", "limit_refusals": None, "unknown_recipients": 2},
        {"cell": "d"},  # written before servers reported refusals
    ]
    assert refusal_notes(cells) == ["a: 4 limit_refusals", "c: 2 unknown_recipients"]


def test_warnings_name_the_cell_and_its_counts(tmp_path: Path) -> None:
    folder = make_run_dir(tmp_path, CELLS, repeats=2, n=200)
    edit_cell(folder, HTTP, limit_refusals=1234, unknown_recipients=7)
    run = reports.load(folder)
    row = run.cells.set_index("cell").loc[HTTP]
    assert (row["limit_refusals"], row["unknown_recipients"]) == (1234, 7)
    text = "\n".join(run_warnings(run))
    assert f"the server refused 1,234 requests at its limits in cell {HTTP}" in text
    assert f"7 messages in cell {HTTP} were addressed to users the server did not know" in text
    assert "ws-aiohttp" not in text


def test_no_refusals_no_warning_and_older_runs_load(tmp_path: Path) -> None:
    folder = make_run_dir(tmp_path, CELLS, repeats=2, n=200)
    edit_cell(folder, HTTP, limit_refusals=0, unknown_recipients=0)
    run = reports.load(folder)  # the other cell has no such keys, as older runs
    assert run.cells["limit_refusals"].isna().sum() == 1
    text = "\n".join(run_warnings(run))
    assert "refused" not in text and "did not report" not in text


def test_a_server_that_did_not_report_is_named(tmp_path: Path) -> None:
    folder = make_run_dir(tmp_path, CELLS, repeats=2, n=200)
    edit_cell(folder, HTTP, server_counters_missing=[1])
    text = "\n".join(run_warnings(reports.load(folder)))
    assert f"the server of cell {HTTP} did not report its counters in repeat(s) 1" in text


@pytest.mark.parametrize("name", ["<script>x</script>", "a|b *c* [x](y)"])
def test_refusal_warning_names_are_escaped_in_the_report(tmp_path: Path, name: str) -> None:
    from reports.html import render_report
    from reports.markdown import summary_markdown

    cells = (CellSpec("http", "aiohttp", "keep-alive", label=name), CELLS[1])
    folder = make_run_dir(tmp_path, cells, repeats=2, n=200)
    edit_cell(folder, name, limit_refusals=3)
    run = reports.load(folder)
    assert any(f"refused 3 requests at its limits in cell {name}" in w for w in run_warnings(run))
    html = render_report(run)
    assert "refused 3 requests" in html and "<script>x</script>" not in html
    (line,) = [x for x in summary_markdown(run).splitlines() if "refused 3 requests" in x]
    assert name not in line  # escaped, not raw Markdown or HTML
