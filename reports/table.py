"""Terminal tables (rich) for a run: per-cell summaries, HTTP/WS ratios and warnings.

::

    from reports.table import print_summary
    print_summary(run)                 # summary tables, floor, warnings, fitted to the console
    print_floor(run)                   # the harness floor and each echo cell's p50 multiple
    console.print(summary_table(run))  # just the echo (request) table
    console.print(delivery_summary_table(run))   # just the real-time (delivery) table
    console.print(ratio_rich_table(reports.stats.ratio_table(run.cells)))
    console.print(delivery_ratio_rich_table(reports.stats.delivery_ratio_table(run.cells)))

The verdict and rate-sweep tables are in :mod:`reports.verdict_tables`.

Echo cells appear in the request table, real-time cells in the delivery table; a run
may have either or both. Printed tables fit the console's width (rich reads the terminal
or ``COLUMNS``): the full table, else narrower parts with short headers and compact
numbers, else one block per cell (:mod:`reports.termfit`); names are shown as text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from loadgen.escape import term_plain
from reports.checks import cell_label, run_warnings
from reports.floor import floor_notes, floor_table, fmt_multiple
from reports.fmt import (
    fmt_bytes,
    fmt_compact,
    fmt_int,
    fmt_ms,
    fmt_pct,
    fmt_rate,
    fmt_ratio,
    fmt_real,
    fmt_text,
    fmt_us,
    fmt_us_compact,
)
from reports.header_bytes import (
    HEADER_BYTES_HEADERS,
    HEADER_BYTES_NOTE,
    header_bytes_display,
    header_bytes_table,
)
from reports.load import Run
from reports.stats import delivery_table, realtime_cells, request_cells
from reports.termfit import print_fitting
from reports.termname import Name


class SummaryColumn(NamedTuple):
    """One summary column: header lines, formatter, ``Run.cells`` column, group, and the
    header and formatter of the narrow (split) tables (default: the same)."""

    header: str
    fmt: Callable[[object], str]
    source: str
    group: str  # how a narrow terminal splits the table: latency/resources(/counts/cost)
    short: str = ""
    compact: Callable[[object], str] | None = None

    @property
    def narrow_header(self) -> str:
        return self.short or self.header

    @property
    def narrow_fmt(self) -> Callable[[object], str]:
        return self.compact or self.fmt


#: The summary table's columns after "Cell", in display order.
SUMMARY_COLUMNS: tuple[SummaryColumn, ...] = (
    SummaryColumn("Requests", fmt_int, "count", "latency", "Reqs", fmt_compact),
    SummaryColumn("Errors", fmt_int, "errors", "latency", "Errs", fmt_compact),
    SummaryColumn(
        "Throughput\nreq/s", fmt_rate, "throughput_rps", "latency", "Rate\nreq/s", fmt_compact
    ),
    SummaryColumn("p50\nms", fmt_ms, "p50_ms", "latency"),
    SummaryColumn("p99\nms", fmt_ms, "p99_ms", "latency"),
    SummaryColumn("p99.9\nms", fmt_ms, "p99_9_ms", "latency"),
    SummaryColumn("max\nms", fmt_ms, "max_ms", "latency"),
    SummaryColumn("Client\nCPU %", fmt_pct, "cpu_util_client", "resources"),
    SummaryColumn(
        "Server CPU\nµs/req",
        fmt_us,
        "cpu_s_per_request_server",
        "resources",
        "Srv CPU\nµs/req",
        fmt_us_compact,
    ),
    SummaryColumn(
        "Client CPU\nµs/req",
        fmt_us,
        "cpu_s_per_request_client",
        "resources",
        "Cli CPU\nµs/req",
        fmt_us_compact,
    ),
    SummaryColumn(
        "Bytes/req\nsent",
        fmt_bytes,
        "bytes_per_request_sent",
        "resources",
        "Sent\nB/req",
        fmt_compact,
    ),
    SummaryColumn(
        "Bytes/req\nreceived",
        fmt_bytes,
        "bytes_per_request_received",
        "resources",
        "Recv\nB/req",
        fmt_compact,
    ),
)


#: The delivery table's columns after "Cell" (real-time cells), in display order; sources
#: are columns of :func:`reports.stats.delivery_table`.
DELIVERY_SUMMARY_COLUMNS: tuple[SummaryColumn, ...] = (
    SummaryColumn("Delivery", fmt_text, "delivery", "latency", "Mode"),
    SummaryColumn("Delivery\np50 ms", fmt_ms, "delivery_p50_ms", "latency"),
    SummaryColumn("Delivery\np99 ms", fmt_ms, "delivery_p99_ms", "latency"),
    SummaryColumn("Delivery\nmax ms", fmt_ms, "delivery_max_ms", "latency"),
    SummaryColumn("Expected", fmt_int, "deliveries_expected", "counts", "", fmt_compact),
    SummaryColumn("Delivered", fmt_int, "deliveries_delivered", "counts", "", fmt_compact),
    SummaryColumn("Lost", fmt_int, "deliveries_lost", "counts", "", fmt_compact),
    SummaryColumn("Dup", fmt_int, "deliveries_duplicated", "counts", "", fmt_compact),
    SummaryColumn("Out of\norder", fmt_int, "deliveries_out_of_order", "counts", "", fmt_compact),
    SummaryColumn(
        "Bytes\nper msg", fmt_bytes, "bytes_per_useful_message", "cost", "B/msg", fmt_compact
    ),
    SummaryColumn("Requests\nper msg", fmt_real, "requests_per_useful_message", "cost", "Req/msg"),
    SummaryColumn(
        "Server CPU\nµs/msg",
        fmt_us,
        "cpu_s_per_useful_message_server",
        "cost",
        "Srv CPU\nµs/msg",
        fmt_us_compact,
    ),
    SummaryColumn(
        "Client CPU\nµs/msg",
        fmt_us,
        "cpu_s_per_useful_message_client",
        "cost",
        "Cli CPU\nµs/msg",
        fmt_us_compact,
    ),
    SummaryColumn("Empty\npolls", fmt_pct, "empty_poll_ratio", "cost"),
)


#: Narrowest the "Cell" column may get (rich folds longer names over several lines).
CELL_MIN_WIDTH = 16

#: The time-on-site table's columns after "Cell" (activity workload): the server's total
#: against the clients' own, and how far apart they were per user.
ACTIVITY_SUMMARY_COLUMNS: tuple[SummaryColumn, ...] = (
    SummaryColumn("Users", fmt_int, "activity_users", "activity"),
    SummaryColumn("Server\nms", fmt_ms, "activity_server_ms", "activity"),
    SummaryColumn("Clients\nms", fmt_ms, "activity_client_ms", "activity"),
    SummaryColumn("Mean |diff|\nms/user", fmt_ms, "activity_mean_abs_diff_ms", "activity"),
    SummaryColumn("Max |diff|\nms", fmt_ms, "activity_max_abs_diff_ms", "activity"),
)


def activity_cells(run: Run) -> pd.DataFrame:
    """The cells with a time-on-site check (``activity_users`` present)."""
    cells = run.cells
    if "activity_users" not in cells.columns:
        return cells.iloc[0:0]
    return cells.loc[cells["activity_users"].notna()]


def summary_rows(run: Run) -> list[list[str]]:
    """The echo summary as strings: ``[cell label, *(c.fmt(value) for c in SUMMARY_COLUMNS)]``.

    One row per echo (request/response) cell; real-time cells are in :func:`delivery_rows`.
    """
    return _rows(run, request_cells(run.cells), SUMMARY_COLUMNS)


def delivery_rows(run: Run) -> list[list[str]]:
    """The delivery summary as strings, one row per real-time cell:
    ``[cell label, *(c.fmt(value) for c in DELIVERY_SUMMARY_COLUMNS)]``."""
    return _rows(run, delivery_table(run.cells), DELIVERY_SUMMARY_COLUMNS)


def activity_rows(run: Run) -> list[list[str]]:
    """Time on site as strings, one row per cell of :func:`activity_cells`."""
    return _rows(run, activity_cells(run), ACTIVITY_SUMMARY_COLUMNS)


def activity_summary_table(run: Run) -> Table:
    """Per activity cell: time on site by the server against the clients' own."""
    title = (
        f"rtbench {run.scenario_name} — run {run.run_id} — time on site "
        "(server's figure against the clients' own)"
    )
    return _filled(run, title, activity_cells(run), ACTIVITY_SUMMARY_COLUMNS)


def summary_table(run: Run) -> Table:
    """Per echo cell: count, errors, throughput, latency percentiles, CPU, bytes."""
    return _summary_table(run, request_cells(run.cells), SUMMARY_COLUMNS, "")


def summary_tables_narrow(run: Run) -> list[Table]:
    """The echo summary split in two tables (latency, resources) for narrow terminals,
    with short headers (a legend under each table) and compact numbers."""
    cells = request_cells(run.cells)
    return [
        _summary_table(run, cells, _group(SUMMARY_COLUMNS, group), f" — {group}", narrow=True)
        for group in ("latency", "resources")
    ]


def delivery_summary_table(run: Run) -> Table:
    """Per real-time cell: delivery mode, counts, delivery latency, cost per useful message."""
    return _delivery_table(run, DELIVERY_SUMMARY_COLUMNS, "")


def delivery_tables_narrow(run: Run) -> list[Table]:
    """The delivery summary split in three tables (latency, counts, cost) for narrow
    terminals."""
    return [
        _delivery_table(run, _group(DELIVERY_SUMMARY_COLUMNS, group), f" — {group}", narrow=True)
        for group in ("latency", "counts", "cost")
    ]


def ratio_rich_table(ratios: pd.DataFrame) -> Table:
    """The output of :func:`reports.stats.ratio_table` as a rich Table (one column per ratio)."""
    return _ratio_table(
        ratios,
        "HTTP / WebSocket latency ratio (>1: WebSocket faster; the claim says ≥ 3)",
        (),
    )


def delivery_ratio_rich_table(ratios: pd.DataFrame) -> Table:
    """The output of :func:`reports.stats.delivery_ratio_table` as a rich Table."""
    return _ratio_table(
        ratios,
        "HTTP polling / WebSocket push: delivery latency and bytes per useful message "
        "(>1: push faster or leaner; the claim says ≥ 3)",
        ("http_delivery",),
    )


def print_warnings(lines: Sequence[str], console: Console | None = None) -> None:
    """Print each warning line prefixed with a bold ``WARNING:``."""
    console = console or Console()
    for line in lines:
        console.print(Text.assemble(("WARNING: ", "bold yellow"), term_plain(line)))


def print_summary(run: Run, console: Console | None = None, *, warnings: bool = True) -> list[str]:
    """Print the summary tables then the warnings (see :func:`reports.checks.run_warnings`).

    The request table lists echo cells (it is printed also when the run has no cells), the
    delivery table real-time cells, the time-on-site table activity cells. A table wider
    than the console is printed in parts (two for requests, three for deliveries) with
    short headers and compact numbers, and one block per cell if the parts are still too
    wide (:mod:`reports.termfit`), so no number is cut. Returns the warning lines
    (printed unless ``warnings=False``).
    """
    console = console or Console()
    live = realtime_cells(run.cells)
    if len(live) < len(run.cells) or run.cells.empty:
        print_fitting(console, [lambda: [summary_table(run)], lambda: summary_tables_narrow(run)])
    if not live.empty:
        print_fitting(
            console,
            [lambda: [delivery_summary_table(run)], lambda: delivery_tables_narrow(run)],
        )
    header_bytes = header_bytes_rich_table(run)
    if header_bytes is not None:
        print_fitting(console, [lambda: [header_bytes]])
    if not activity_cells(run).empty:
        print_fitting(console, [lambda: [activity_summary_table(run)]])
    print_floor(run, console)
    lines = run_warnings(run)
    if warnings:
        print_warnings(lines, console)
    return lines


def header_bytes_rich_table(run: Run) -> Table | None:
    """:func:`reports.header_bytes.header_bytes_table` as a rich Table, names as plain
    text (prefixed by their run id when ``run`` combines several); None without polling
    or push cells."""
    frame = header_bytes_table(run)
    if frame.empty:
        return None
    table = titled_table("Header bytes per poll and per delivered item", HEADER_BYTES_NOTE)
    table.add_column(HEADER_BYTES_HEADERS[0], overflow="fold", min_width=CELL_MIN_WIDTH)
    for header in HEADER_BYTES_HEADERS[1:3]:
        table.add_column(header)
    for header in HEADER_BYTES_HEADERS[3:]:
        table.add_column(header, justify="right")
    for (_, r), (_cell, *values) in zip(frame.iterrows(), header_bytes_display(frame), strict=True):
        name = cell_label(run, r)
        table.add_row(Name(term_plain(name)), *(Text(term_plain(v)) for v in values))
    return table


def print_floor(run: Run, console: Console | None = None) -> None:
    """Print the harness floor (:mod:`reports.floor`) and each loopback echo cell's p50
    as a multiple of it; nothing when the run recorded no floor."""
    notes = floor_notes(run)
    if not notes:
        return
    console = console or Console()
    for note in notes:
        console.print(Text(term_plain(note)))
    rows = floor_table(run)
    if rows.empty:
        return
    table = titled_table("p50 as a multiple of the harness floor")
    table.add_column("Cell", min_width=CELL_MIN_WIDTH, overflow="fold")
    for header in ("p50\nms", "floor p50\nms", "p50 ÷\nfloor"):
        table.add_column(header, justify="right")
    multi = len(run.runs) > 1
    for _, r in rows.iterrows():
        name = f"{r['run_id']}: {r['cell']}" if multi else str(r["cell"])
        table.add_row(
            Name(term_plain(name)),
            fmt_ms(r["p50_ms"]),
            fmt_ms(r["floor_p50_ms"]),
            fmt_multiple(r["multiple"]),
        )
    print_fitting(console, [lambda: [table]])


def _group(columns: Sequence[SummaryColumn], group: str) -> tuple[SummaryColumn, ...]:
    return tuple(c for c in columns if c.group == group)


def _rows(
    run: Run, cells: pd.DataFrame, columns: Sequence[SummaryColumn], narrow: bool = False
) -> list[list[str]]:
    return [
        [
            cell_label(run, row),
            *((c.narrow_fmt if narrow else c.fmt)(row.get(c.source)) for c in columns),
        ]
        for _, row in cells.iterrows()
    ]


def _ratio_table(ratios: pd.DataFrame, title: str, extra: Sequence[str]) -> Table:
    """Run (if several), HTTP cell, WS cell, ``extra`` columns, then one column per ratio."""
    table = titled_table(title)
    multi = "run_id" in ratios.columns and ratios["run_id"].nunique() > 1
    if multi:
        table.add_column("Run", overflow="fold")
    for header in ("HTTP cell", "WS cell"):
        table.add_column(header, overflow="fold")
    for col in extra:
        table.add_column(col.removeprefix("http_").replace("_", " ").capitalize())
    ratio_cols = [c for c in ratios.columns if c.endswith("_ratio")]
    for col in ratio_cols:
        label = _ratio_label(col)
        table.add_column(f"{label}\nratio", justify="right", no_wrap=True)
    for _, row in ratios.iterrows():
        values = [str(row["run_id"])] if multi else []
        values += [str(row["http_cell"]), str(row["ws_cell"])]
        values += [fmt_text(row[c]) for c in extra]
        values += [fmt_ratio(row[c]) for c in ratio_cols]
        table.add_row(*(Text(term_plain(v)) for v in values))
    return table


def _ratio_label(col: str) -> str:
    """``p99_9_ratio`` -> ``p99.9``; ``delivery_p50_ratio`` -> ``delivery p50``."""
    stem = col.removesuffix("_ratio")
    prefix = ""
    if stem.startswith("delivery_"):
        prefix, stem = "delivery ", stem.removeprefix("delivery_")
    return prefix + stem.replace("_", ".")


def titled_table(title: str, caption: str | None = None) -> Table:
    """An empty rich Table in the report's style: ``title`` and ``caption`` shown as text."""
    # Text, not markup: titles carry scenario and run names.
    return Table(
        title=Text(term_plain(title)),
        title_justify="left",
        caption=Text(term_plain(caption), style="dim") if caption else None,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )


def _summary_table(
    run: Run,
    cells: pd.DataFrame,
    columns: Sequence[SummaryColumn],
    suffix: str,
    narrow: bool = False,
) -> Table:
    title = (
        f"rtbench {run.scenario_name} — run {run.run_id}{suffix} "
        "(latencies corrected for coordinated omission)"
    )
    return _filled(run, title, cells, columns, narrow)


def _delivery_table(
    run: Run, columns: Sequence[SummaryColumn], suffix: str, narrow: bool = False
) -> Table:
    title = (
        f"rtbench {run.scenario_name} — run {run.run_id} — deliveries{suffix} "
        "(delivery latency from cause to receipt; costs per useful message)"
    )
    return _filled(run, title, delivery_table(run.cells), columns, narrow)


def _filled(
    run: Run,
    title: str,
    cells: pd.DataFrame,
    columns: Sequence[SummaryColumn],
    narrow: bool = False,
) -> Table:
    table = titled_table(title, _legend(columns) if narrow else None)
    table.add_column("Cell", overflow="fold", min_width=CELL_MIN_WIDTH)
    for c in columns:
        table.add_column(c.narrow_header if narrow else c.header, justify="right", no_wrap=True)
    for name, *values in _rows(run, cells, columns, narrow):
        table.add_row(Name(term_plain(name)), *(Text(term_plain(v)) for v in values))
    return table


def _legend(columns: Sequence[SummaryColumn]) -> str | None:
    """What the narrow tables' short headers stand for: ``Reqs: Requests; ...``."""
    pairs = [f"{flat_header(c.short)}: {flat_header(c.header)}" for c in columns if c.short]
    return "; ".join(pairs) or None


def flat_header(header: str) -> str:
    """A column header on one line: ``"p99\\nms"`` -> ``"p99 ms"``."""
    return header.replace("/\n", "/").replace("\n", " ")
