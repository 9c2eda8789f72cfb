"""What ``rtbench report DIR [DIR...]`` does: print tables, the verdict and warnings, write files.

``path = report([Path("results/X")])`` loads the folder(s), prints the per-cell summaries,
the verdict on the "3x faster" claim (:func:`reports.verdict.verdict_table`), the rate
sweeps' highest rates under their p99 objective and the warnings, then writes
``results/X/report.html`` (or ``out``) with ``summary.md`` and ``verdict.csv`` beside it
(and ``verdict-matrix.csv`` for a run over several link profiles), and returns the HTML
path.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from reports.load import load_many
from reports.markdown import REPORT_FILE, SUMMARY_FILE, VERDICT_CSV, write_outputs
from reports.matrix import MATRIX_CSV
from reports.sweeps import sweep_table
from reports.table import print_summary, print_warnings
from reports.termfit import print_fitting
from reports.verdict import headline_lines, verdict_table
from reports.verdict_tables import sweep_rich_table, verdict_rich_table

__all__ = ["MATRIX_CSV", "REPORT_FILE", "SUMMARY_FILE", "VERDICT_CSV", "report"]


def report(dirs: list[Path], out: Path | None = None, console: Console | None = None) -> Path:
    """Report on one or more results folders; return the written HTML path.

    Args:
        dirs: results folders; several are combined (rows tagged by run id) and the report
            goes into the first one.
        out: where to write the HTML instead: a path ending in ``.html`` is the file, any
            other path a folder (created if needed) that gets ``report.html``.
            ``summary.md``, ``verdict.csv`` and ``verdict-matrix.csv`` go into the HTML
            file's folder.
        console: where to print (default: a new rich Console on stdout).

    Raises:
        reports.ResultsError: a folder is missing, malformed or from a newer rtbench.
        ValueError: ``dirs`` is empty.
    """
    if not dirs:
        raise ValueError("report() needs at least one results folder")
    console = console or Console()
    run = load_many([Path(d) for d in dirs], report_columns=True)
    verdicts = verdict_table(run)
    for line in headline_lines(verdicts):
        console.print(f"Verdict: {line}", markup=False, highlight=False)
    warnings = print_summary(run, console, warnings=False)
    if not verdicts.empty:
        print_fitting(
            console,
            [
                lambda: [verdict_rich_table(verdicts)],
                lambda: [verdict_rich_table(verdicts, narrow=True)],
            ],
        )
    else:
        console.print("No HTTP/WebSocket pair to judge the claim on.", highlight=False)
    sweeps = sweep_table(run.cells)
    if not sweeps.empty:
        print_fitting(console, [lambda: [sweep_rich_table(sweeps)]])
    print_warnings(warnings, console)
    target = _target(Path(dirs[0]), out)
    written = write_outputs(run, target.parent, html_name=target.name, verdicts=verdicts)
    beside = [SUMMARY_FILE, VERDICT_CSV] + ([MATRIX_CSV] if "matrix_csv" in written else [])
    console.print(
        f"Report written to {written['html']} (with {', '.join(beside[:-1])} and {beside[-1]})",
        markup=False,
        highlight=False,
    )
    return written["html"]


def _target(first: Path, out: Path | None) -> Path:
    """Where report.html goes: ``out`` itself if it names an .html file, else inside it."""
    if out is None:
        return first / REPORT_FILE
    out = Path(out)
    if out.is_dir() or out.suffix.lower() not in (".html", ".htm"):
        return out / REPORT_FILE
    return out
