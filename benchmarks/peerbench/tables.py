"""The ratio rows as tables: Markdown for ``peers.md``, rich tables for the terminal.

::

    text = markdown_table(rows)          # every cell escaped
    print_terminal_table(rows)           # fitted to the terminal's width
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loadgen.escape import md_text


def fmt_span(span: Sequence[float] | None, digits: int = 0, unit: str = "") -> str:
    """``[148.0, 161.0]`` as ``148-161`` (one figure when both ends agree); ``-`` for None."""
    if not span:
        return "-"
    lo, hi = (f"{v:,.{digits}f}" for v in span)
    text = lo if lo == hi else f"{lo}-{hi}"
    return f"{text}{unit}"


def fmt_rate(span: Sequence[float] | None) -> str:
    """A requests-per-second span in thousands: ``17.0-20.9k``."""
    return fmt_span([v / 1000 for v in span], 1, "k") if span else "-"


def md_cell(text: object) -> str:
    """Text safe in a Markdown table cell: literal (:func:`loadgen.escape.md_text`), no pipe."""
    return md_text(text).replace("|", "\\|")


TABLE_HEADER = (
    "point (server)",
    "peer",
    "rtbench client",
    "p50 peer (us)",
    "p50 client (us)",
    "p50 client / peer",
    "p99 peer / client (us)",
    "rate peer (/s)",
    "rate client (/s)",
    "client rate % of peer",
    "server CPU % (peer / client)",
    "load-gen CPU % (peer / client)",
    "others' CPU % on the cores (max)",
)


def table_cells(row: dict[str, Any]) -> list[str]:
    """The cells of one ratio row, in :data:`TABLE_HEADER`'s order."""
    return [
        f"{row['title']} ({row['server']})",
        row["peer"],
        row["client"] + (" (see notes)" if row["note"] else ""),
        fmt_span(row["peer_p50_us"]),
        fmt_span(row["client_p50_us"]),
        fmt_span(row["p50_ratio"], 2, "x"),
        f"{fmt_span(row['peer_p99_us'])} / {fmt_span(row['client_p99_us'])}",
        fmt_rate(row["peer_rate"]),
        fmt_rate(row["client_rate"]),
        fmt_span(row["rate_pct"], 0, " %"),
        f"{fmt_span(row['peer_server_cpu_pct'])} / {fmt_span(row['client_server_cpu_pct'])}",
        f"{fmt_span(row['peer_client_cpu_pct'])} / {fmt_span(row['client_client_cpu_pct'])}",
        fmt_span(
            [row["others_cpu_pct_max"]] * 2 if row["others_cpu_pct_max"] is not None else None
        ),
    ]


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The ratio rows as a Markdown table (every cell escaped)."""
    lines = [
        "| " + " | ".join(TABLE_HEADER) + " |",
        "|" + "---|" * len(TABLE_HEADER),
    ]
    lines += ["| " + " | ".join(md_cell(c) for c in table_cells(row)) + " |" for row in rows]
    notes = [f"- {row['group']} {row['client']}: {row['note']}" for row in rows if row["note"]]
    if notes:
        lines += ["", "Notes:", "", *(md_cell(n) for n in notes)]
    return "\n".join(lines) + "\n"


#: :data:`TABLE_HEADER` for the terminal: units in the header, figures in the cells.
TERMINAL_HEADER = (
    "point (server)",
    "peer",
    "rtbench client",
    "p50 µs\npeer",
    "p50 µs\nclient",
    "p50\nratio",
    "p99 µs\npeer / cli",
    "req/s\npeer",
    "req/s\nclient",
    "rate\n% peer",
    "server CPU %\npeer / cli",
    "load-gen CPU %\npeer / cli",
    "others'\nCPU % max",
)

#: How a narrow terminal splits the table: latency, then rate and CPU (by column index).
TERMINAL_PARTS = ((0, 1, 2, 3, 4, 5, 6), (0, 2, 7, 8, 9, 10, 11, 12))


def terminal_tables(rows: Sequence[dict[str, Any]], parts: Sequence[Sequence[int]]) -> list[Any]:
    """The ratio rows as rich tables, one per entry of ``parts`` (column indices);
    names fold, figures stay whole; notes are the last table's caption."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from loadgen.escape import term_plain

    cells = [table_cells(row) for row in rows]
    notes = [f"{row['group']} {row['client']}: {row['note']}" for row in rows if row["note"]]
    tables = []
    for part in parts:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for i in part:
            name = i < 3
            table.add_column(
                TERMINAL_HEADER[i],
                justify="left" if name else "right",
                no_wrap=not name,
                overflow="fold",
            )
        for row in cells:
            table.add_row(*(Text(term_plain(row[i])) for i in part))
        tables.append(table)
    if notes and tables:
        tables[-1].caption = Text(term_plain("Notes: " + "; ".join(notes)))
        tables[-1].caption_justify = "left"
    return tables


def print_terminal_table(rows: Sequence[dict[str, Any]], console: Any = None) -> None:
    """Print the ratio rows: one table when the console is wide enough, else in two
    parts (:data:`TERMINAL_PARTS`), else one block per row."""
    from rich.console import Console

    from reports.termfit import print_fitting

    console = console or Console()
    full = (tuple(range(len(TERMINAL_HEADER))),)
    print_fitting(
        console,
        [lambda: terminal_tables(rows, full), lambda: terminal_tables(rows, TERMINAL_PARTS)],
    )
