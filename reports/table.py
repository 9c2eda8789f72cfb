"""Terminal tables (rich) for a run: per-cell summary, HTTP/WS ratios and warnings.

::

    from reports.table import print_summary
    print_summary(run)                 # summary table (split in two if too wide), warnings
    console.print(summary_table(run))  # just the full table
    console.print(ratio_rich_table(reports.stats.ratio_table(run.cells)))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import pandas as pd
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from reports.checks import cell_label, run_warnings
from reports.fmt import fmt_bytes, fmt_int, fmt_ms, fmt_pct, fmt_rate, fmt_ratio, fmt_us
from reports.load import Run


class SummaryColumn(NamedTuple):
    """One summary column: header lines, formatter, ``Run.cells`` column, group."""

    header: str
    fmt: Callable[[object], str]
    source: str
    group: str  # "latency" or "resources": how a narrow terminal splits the table


#: The summary table's columns after "Cell", in display order.
SUMMARY_COLUMNS: tuple[SummaryColumn, ...] = (
    SummaryColumn("Requests", fmt_int, "count", "latency"),
    SummaryColumn("Errors", fmt_int, "errors", "latency"),
    SummaryColumn("Throughput\nreq/s", fmt_rate, "throughput_rps", "latency"),
    SummaryColumn("p50\nms", fmt_ms, "p50_ms", "latency"),
    SummaryColumn("p99\nms", fmt_ms, "p99_ms", "latency"),
    SummaryColumn("p99.9\nms", fmt_ms, "p99_9_ms", "latency"),
    SummaryColumn("max\nms", fmt_ms, "max_ms", "latency"),
    SummaryColumn("Client\nCPU %", fmt_pct, "cpu_util_client", "resources"),
    SummaryColumn("Server CPU\nµs/req", fmt_us, "cpu_s_per_request_server", "resources"),
    SummaryColumn("Client CPU\nµs/req", fmt_us, "cpu_s_per_request_client", "resources"),
    SummaryColumn("Bytes/req\nsent", fmt_bytes, "bytes_per_request_sent", "resources"),
    SummaryColumn("Bytes/req\nreceived", fmt_bytes, "bytes_per_request_received", "resources"),
)


def summary_rows(run: Run) -> list[list[str]]:
    """The summary as strings: ``[cell label, *(c.fmt(value) for c in SUMMARY_COLUMNS)]``."""
    return [
        [cell_label(run, row), *(c.fmt(row.get(c.source)) for c in SUMMARY_COLUMNS)]
        for _, row in run.cells.iterrows()
    ]


def summary_table(run: Run) -> Table:
    """Per-cell summary: count, errors, throughput, latency percentiles, CPU, bytes."""
    return _summary_table(run, SUMMARY_COLUMNS, "")


def summary_tables_narrow(run: Run) -> list[Table]:
    """The summary split in two tables (latency, resources) for narrow terminals."""
    return [
        _summary_table(run, tuple(c for c in SUMMARY_COLUMNS if c.group == group), f" — {group}")
        for group in ("latency", "resources")
    ]


def ratio_rich_table(ratios: pd.DataFrame) -> Table:
    """The output of :func:`reports.stats.ratio_table` as a rich Table (one column per ratio)."""
    table = _table("HTTP / WebSocket latency ratio (>1: WebSocket faster; the claim says ≥ 3)")
    multi = "run_id" in ratios.columns and ratios["run_id"].nunique() > 1
    if multi:
        table.add_column("Run", overflow="fold")
    for header in ("HTTP cell", "WS cell"):
        table.add_column(header, overflow="fold")
    ratio_cols = [c for c in ratios.columns if c.endswith("_ratio")]
    for col in ratio_cols:
        label = col.removesuffix("_ratio").replace("_", ".")
        table.add_column(f"{label}\nratio", justify="right", no_wrap=True)
    for _, row in ratios.iterrows():
        values = [str(row["run_id"])] if multi else []
        values += [str(row["http_cell"]), str(row["ws_cell"])]
        values += [fmt_ratio(row[c]) for c in ratio_cols]
        table.add_row(*(Text(v) for v in values))
    return table


def print_warnings(lines: Sequence[str], console: Console | None = None) -> None:
    """Print each warning line prefixed with a bold ``WARNING:``."""
    console = console or Console()
    for line in lines:
        console.print(Text.assemble(("WARNING: ", "bold yellow"), line))


def print_summary(run: Run, console: Console | None = None) -> list[str]:
    """Print the summary table then the warnings (see :func:`reports.checks.run_warnings`).

    When the full table is wider than the console it is printed as two tables (latency,
    resources) so no number is cut. Returns the warning lines printed.
    """
    console = console or Console()
    table = summary_table(run)
    natural = Measurement.get(console, console.options.update(max_width=100_000), table)
    if natural.maximum <= console.width:
        console.print(table)
    else:
        for part in summary_tables_narrow(run):
            console.print(part)
    lines = run_warnings(run)
    print_warnings(lines, console)
    return lines


def _table(title: str) -> Table:
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)


def _summary_table(run: Run, columns: Sequence[SummaryColumn], suffix: str) -> Table:
    table = _table(
        f"rtbench {run.scenario_name} — run {run.run_id}{suffix} "
        "(latencies corrected for coordinated omission)"
    )
    table.add_column("Cell", overflow="fold")
    for c in columns:
        table.add_column(c.header, justify="right", no_wrap=True)
    for _, row in run.cells.iterrows():
        values = [cell_label(run, row), *(c.fmt(row.get(c.source)) for c in columns)]
        table.add_row(*(Text(v) for v in values))
    return table
