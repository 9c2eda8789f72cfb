"""Terminal tables that fit the console: a wide layout, narrower ones, then one block per row.

::

    print_fitting(console, [lambda: [wide_table], lambda: narrow_tables])
    console.print(stacked(table, console.width))   # any Table, one block per row (stacked.py)
    fits(console, table)                            # no figure would be cut at this width

The console's width comes from rich (the terminal, else ``COLUMNS``, else 80), so CI
logs get the layout made for 80 columns. A layout fits when every ``no_wrap`` column
keeps its natural width and every folding column keeps at least :data:`FOLD_FLOOR`
characters; when none fits, the last layout's tables are printed :func:`stacked`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.console import Console
from rich.measure import Measurement
from rich.table import Column, Table

from reports.stacked import stacked
from reports.termname import as_text

#: Fewest characters a folding (name) column may be squeezed to before a layout is
#: judged too wide.
FOLD_FLOOR = 16

#: Width used to measure a table's natural size.
_UNLIMITED = 100_000

Layout = Callable[[], Sequence[Table]]


def needed_width(console: Console, table: Table) -> int:
    """The narrowest width at which ``table`` shows every figure whole."""
    folding = [c for c in table.columns if _folds(c)]
    saved = [c.max_width for c in folding]
    for column in folding:
        column.max_width = max(column.min_width or 0, FOLD_FLOOR)
    try:
        options = console.options.update(max_width=_UNLIMITED)
        return Measurement.get(console, options, table).maximum
    finally:
        for column, width in zip(folding, saved, strict=True):
            column.max_width = width


def fits(console: Console, table: Table) -> bool:
    """Whether ``table`` prints at ``console.width`` without cutting a figure."""
    return needed_width(console, table) <= console.width


def print_fitting(console: Console, layouts: Sequence[Layout]) -> None:
    """Print the first layout whose tables all fit; if none does, the last one stacked."""
    for layout in layouts:
        tables = list(layout())
        if all(fits(console, t) for t in tables):
            for table in tables:
                _print_table(console, table)
            return
    for table in tables:
        console.print(stacked(table, console.width))


def _print_table(console: Console, table: Table) -> None:
    """``table``, its title above it at the console's width when the table is narrower
    than the title (rich would wrap the title to the table's width)."""
    if table.title is not None:
        title = as_text(table.title)
        width = Measurement.get(console, console.options, table).maximum
        if title.cell_len > width:
            table.title = None
            console.print(title)
    console.print(table)


def _folds(column: Column) -> bool:
    return not column.no_wrap and column.overflow == "fold"
