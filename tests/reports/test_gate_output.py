"""What ``rtbench compare`` shows: compare.md with hostile cell names, the terminal table
at any width."""

from __future__ import annotations

from pathlib import Path

import pytest
from gate_runs import WS, cli, latencies, rows_of, squash, two_runs
from typer.testing import CliRunner

from loadgen.cli import app
from reports.gate.errors import EXIT_REGRESSION
from reports.gate.metrics import METRICS


def test_compare_md_keeps_hostile_cell_names_inert(tmp_path: Path) -> None:
    from markdown_it import MarkdownIt

    hostile = "http/`</code><img src=x onerror=alert(1)>` | x"
    base, cur = two_runs(
        tmp_path,
        {hostile: {"latency": latencies(1)}, WS: {"latency": latencies(3)}},
        {hostile: {"latency": latencies(2, scale=1.3)}, WS: {"latency": latencies(4)}},
    )
    cli(str(base), str(cur), "--max-regression", "p99:+15%")
    md = (cur / "compare.md").read_text()
    html = MarkdownIt("commonmark").enable("table").render(md)
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_compare_output_fits_the_terminal_and_keeps_every_figure(
    tmp_path: Path, columns: int
) -> None:
    from reports.gate.output import fmt_bare, fmt_change, fmt_value

    hostile = "[bold]http\x1b[2J/aiohttp/keep-alive-with-a-rather-long-name[/bold]"
    base, cur = two_runs(
        tmp_path,
        {hostile: {"latency": latencies(1)}, WS: {"latency": latencies(3)}},
        {hostile: {"latency": latencies(2, scale=1.3)}, WS: {"latency": latencies(4)}},
    )
    result = CliRunner().invoke(
        app, ["compare", str(base), str(cur), "-r", "p99:+15%"], env={"COLUMNS": str(columns)}
    )
    out = result.output
    assert result.exit_code == EXIT_REGRESSION, out
    assert max(len(line) for line in out.splitlines()) <= columns
    assert "\x1b" not in out and "[bold]http\\x1b[2J" in squash(out)
    for row in rows_of(cur):
        unit = METRICS[row["metric"]].unit
        # a wide table has the unit in every cell, the narrow ones by the metric
        fmt = fmt_value if columns >= 200 else fmt_bare
        for figure in (fmt(row["baseline"], unit), fmt(row["current"], unit)):
            assert figure in out, (row["cell"], figure)
        assert fmt_change(row["change"]) in out
    assert "regression" in out
    assert ("method" in out) and (columns < 200 or "cell" in out)
    assert columns >= 200 or "p99 ms" in out
