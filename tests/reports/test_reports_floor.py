"""The harness floor and the client-CPU warning in summary.md, report.html and the terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reports_fixtures import DEFAULT_CELLS, CellSpec, make_run_dir
from rich.console import Console

import reports
from reports.checks import cell_caveats, run_warnings
from reports.floor import client_cpu_heavy, floor_notes, floor_table, fmt_multiple
from reports.html import render_report
from reports.markdown import summary_markdown
from reports.table import print_summary

FLOOR = {
    "payload_bytes": 64,
    "loop": "uvloop",
    "count": 12345,
    "p50_ns": 100_000,
    "p99_ns": 250_000,
    "min_ns": 50_000,
    "max_ns": 900_000,
    "duration_s": 2.0,
    "server_cpus": [0],
    "client_cpus": [1],
}


@pytest.fixture
def floored(tmp_path: Path) -> reports.Run:
    return reports.load(make_run_dir(tmp_path, meta_overrides={"harness_floor": [FLOOR]}))


def test_each_echo_cell_p50_is_a_multiple_of_the_floor(floored: reports.Run) -> None:
    table = floor_table(floored).set_index("cell")
    cells = floored.cells.set_index("cell")
    assert sorted(table.index) == sorted(spec.name for spec in DEFAULT_CELLS)
    for cell, row in table.iterrows():
        assert row["floor_p50_ms"] == pytest.approx(0.1)
        assert row["multiple"] == pytest.approx(cells.loc[cell, "p50_ms"] / 0.1)
    # The fixture's latencies scale with the cell: a 6x cell is 6x as far from the floor.
    slow, fast = (
        table.loc["http/aiohttp/new-connection"],
        table.loc["ws-aiohttp/aiohttp/persistent"],
    )
    assert slow["multiple"] / fast["multiple"] == pytest.approx(6.0, rel=1e-3)
    assert floor_notes(floored) == [
        "raw-TCP floor (64 B, loopback, uvloop): p50 0.100 ms, p99 0.250 ms over 12,345 round "
        "trips (server on CPU 0, client on CPU 1)"
    ]


def test_summary_md_html_and_terminal_show_the_multiples(floored: reports.Run) -> None:
    table = floor_table(floored)
    md = summary_markdown(floored)
    assert "### Harness floor: the load generator's own round trip" in md
    assert "- raw-TCP floor (64 B, loopback, uvloop): p50 0.100 ms" in md
    html = render_report(floored)
    assert 'id="harness-floor"' in html
    console = Console(record=True, width=200)
    print_summary(floored, console)
    terminal = console.export_text()
    assert "raw-TCP floor (64 B, loopback, uvloop)" in terminal
    for _, row in table.iterrows():
        shown = fmt_multiple(row["multiple"])
        assert f"| `{row['cell']}` |" in md and f"| {shown} |" in md
        assert f'<td class="num">{shown}</td>' in html
        below = terminal.split("p50 as a multiple of the harness floor", 1)[1]
        line = next(ln for ln in below.splitlines() if ln.strip().startswith(row["cell"]))
        assert line.rstrip().endswith(shown), line


def test_no_floor_no_section(tmp_path: Path) -> None:
    run = reports.load(make_run_dir(tmp_path))
    assert floor_table(run).empty and floor_notes(run) == []
    assert "Harness floor" not in summary_markdown(run)
    assert 'id="harness-floor"' not in render_report(run)


def test_a_failed_floor_is_said_and_gives_no_multiple(tmp_path: Path) -> None:
    failed = {"payload_bytes": 64, "loop": "uvloop", "error": "floor server exited with code 1"}
    run = reports.load(make_run_dir(tmp_path, meta_overrides={"harness_floor": [failed]}))
    assert floor_table(run).empty
    assert floor_notes(run) == [
        "raw-TCP floor (64 B) not measured: floor server exited with code 1"
    ]


def test_cells_over_an_emulated_link_get_no_multiple(tmp_path: Path) -> None:
    folder = make_run_dir(tmp_path, meta_overrides={"harness_floor": [FLOOR]})
    summary = json.loads((folder / "summary.json").read_text())
    summary["cells"][0]["profile"] = "wan"
    summary["cells"][1]["profile"] = "loopback"
    (folder / "summary.json").write_text(json.dumps(summary))
    meta = json.loads((folder / "meta.json").read_text())
    meta["network"] = {
        "profiles": {"wan": {"link": "kernel"}, "loopback": {"link": "none"}},
    }
    (folder / "meta.json").write_text(json.dumps(meta))
    table = floor_table(reports.load(folder))
    assert summary["cells"][0]["cell"] not in set(table["cell"])
    assert summary["cells"][1]["cell"] in set(table["cell"])
    assert len(table) == len(DEFAULT_CELLS) - 1


def test_a_floor_of_another_payload_size_is_not_used(tmp_path: Path) -> None:
    other = FLOOR | {"payload_bytes": 1024}
    run = reports.load(make_run_dir(tmp_path, meta_overrides={"harness_floor": [other]}))
    assert floor_table(run).empty


HEAVY = "http/httpx/keep-alive"


def test_client_cpu_twice_the_servers_is_warned_about(tmp_path: Path) -> None:
    cells = (
        CellSpec("http", "httpx", "keep-alive", scale=2, client_cpu_factor=2.5),
        CellSpec("ws-aiohttp", "aiohttp", "persistent", scale=1),
    )
    run = reports.load(make_run_dir(tmp_path, cells))
    heavy = client_cpu_heavy(run)
    assert list(heavy["cell"]) == [HEAVY]
    assert heavy["ratio"].iloc[0] == pytest.approx(2.5)
    lines = [w for w in run_warnings(run) if "works harder than the server" in w]
    assert len(lines) == 1
    assert f"{HEAVY} (2.5×: 500.0 against 200.0 µs per request)" in lines[0]
    assert "ws-aiohttp" not in lines[0]
    caveats = cell_caveats(run)
    assert "client CPU 2.5× the server's" in caveats[(run.run_id, HEAVY)]
    assert not any("the server's" in t for t in caveats.get((run.run_id, cells[1].name), []))
    assert "works harder than the server" in summary_markdown(run)
    assert "works harder than the server" in render_report(run)


def test_client_cpu_below_twice_is_not_warned_about(tmp_path: Path) -> None:
    cells = (CellSpec("http", "httpx", "keep-alive", client_cpu_factor=1.99),)
    run = reports.load(make_run_dir(tmp_path, cells))
    assert client_cpu_heavy(run).empty
    assert not any("works harder" in w for w in run_warnings(run))
