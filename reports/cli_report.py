"""What ``rtbench report DIR [DIR...]`` does: print tables and warnings, write report.html.

``path = report([Path("results/X")])`` loads the folder(s), prints the per-cell summaries,
warnings and the HTTP/WebSocket ratio tables (request latency for echo cells; delivery
latency and bytes per useful message for real-time cells), writes
``results/X/report.html`` (or ``out``) and returns its path.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from reports.html import write_report
from reports.load import load_many
from reports.stats import delivery_ratio_table, ratio_table, realtime_cells, request_cells
from reports.table import delivery_ratio_rich_table, print_summary, ratio_rich_table

REPORT_FILE = "report.html"


def report(dirs: list[Path], out: Path | None = None, console: Console | None = None) -> Path:
    """Report on one or more results folders; return the written HTML path.

    Args:
        dirs: results folders; several are combined (rows tagged by run id) and the report
            goes into the first one.
        out: where to write the HTML instead; an existing folder gets ``report.html`` inside.
        console: where to print (default: a new rich Console on stdout).

    Raises:
        reports.ResultsError: a folder is missing, malformed or from a newer rtbench.
        ValueError: ``dirs`` is empty.
    """
    if not dirs:
        raise ValueError("report() needs at least one results folder")
    console = console or Console()
    run = load_many([Path(d) for d in dirs])
    print_summary(run, console)
    echo = request_cells(run.cells)
    if not echo.empty or run.cells.empty:
        console.print(ratio_rich_table(ratio_table(echo)))
    if not realtime_cells(run.cells).empty:
        console.print(delivery_ratio_rich_table(delivery_ratio_table(run.cells)))
    target = _target(Path(dirs[0]), out)
    written = write_report(run, target)
    console.print(f"Report written to {written}", markup=False, highlight=False)
    return written


def _target(first: Path, out: Path | None) -> Path:
    if out is None:
        return first / REPORT_FILE
    out = Path(out)
    return out / REPORT_FILE if out.is_dir() else out
