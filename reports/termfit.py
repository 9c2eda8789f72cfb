"""Terminal tables that fit the console: a wide layout, narrower ones, then one block per row.

::

    print_fitting(console, [lambda: [wide_table], lambda: narrow_tables])
    console.print(stacked(table, console.width))   # any Table, one block per row
    fits(console, table)                            # no figure would be cut at this width

The console's width comes from rich (the terminal, else ``COLUMNS``, else 80), so CI
logs get the layout made for 80 columns. A layout fits when every ``no_wrap`` column
keeps its natural width and every folding column keeps at least :data:`FOLD_FLOOR`
characters; when none fits, the last layout's tables are printed :func:`stacked`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Column, Table
from rich.text import Text

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
        title = _as_text(table.title)
        width = Measurement.get(console, console.options, table).maximum
        if title.cell_len > width:
            table.title = None
            console.print(title)
    console.print(table)


def stacked(table: Table, width: int) -> RenderableType:
    """``table`` as one block per row: the first column's cell as a heading, then
    ``header value`` pairs, as many to a line as ``width`` allows (the same on every
    line, so the values line up from one block to the next)."""
    labels = [_flat(c.header) for c in table.columns[1:]]
    rows = [list(c.cells) for c in table.columns]
    value_w = max((_width(_one_line(v)) for col in rows[1:] for v in col), default=0)
    sample = [["0" * value_w]] * len(labels)
    per_line, aligned = 1, False
    for k in range(len(labels), 0, -1):
        if _grid_width(_pairs_grid(labels, sample, 0, k, value_w)) <= width - _INDENT:
            per_line, aligned = k, True
            break
    parts: list[RenderableType] = []
    if table.title:
        parts.append(_as_text(table.title))
    for r in range(table.row_count):
        parts.append(_heading(rows[0][r]) if rows else Text())
        if labels:
            # Values too wide for even one pair a line fold under their own width.
            grid = _pairs_grid(labels, rows[1:], r, per_line, value_w if aligned else 0)
            parts.append(Padding(grid, (0, 0, 0, _INDENT), expand=False))
    if table.caption:
        parts.append(_as_text(table.caption))
    return Group(*parts)


#: How far a block's figures sit under its heading.
_INDENT = 2


def _pairs_grid(
    labels: Sequence[str],
    columns: Sequence[Sequence[RenderableType]],
    row: int,
    per_line: int,
    value_w: int,
) -> Table:
    """Row ``row`` of ``columns`` as ``label value`` pairs, ``per_line`` pairs a line."""
    grid = Table.grid(padding=(0, 1), pad_edge=False)
    for i in range(per_line):
        grid.add_column(style="dim", no_wrap=per_line > 1)
        grid.add_column(
            justify="right" if value_w else "left", overflow="fold", min_width=value_w or None
        )
        if i < per_line - 1:
            grid.add_column(width=1)  # the gap between two pairs
    cells: list[RenderableType] = []
    for label, col in zip(labels, columns, strict=True):
        cells += [Text(label), _one_line(col[row]), ""]
    step = 3 * per_line
    for start in range(0, len(cells), step):
        line = cells[start : start + step]
        line += [""] * (step - len(line))
        grid.add_row(*line[: step - 1])
    return grid


def _grid_width(grid: Table) -> int:
    console = Console(width=_UNLIMITED)
    return Measurement.get(console, console.options, grid).maximum


class Name:
    """A cell, run or group name for a table cell: on a narrow column it breaks after a
    ``/``, ``:`` or space (``http/aiohttp/`` over ``keep-alive``), and cuts mid-part only
    a part longer than the column. Plain text: no markup is read.

    ``table.add_row(Name(term_plain(cell)), ...)``
    """

    def __init__(self, text: str, style: str = "") -> None:
        self.text = text
        self.style = style

    def as_text(self) -> Text:
        return Text(self.text, style=self.style)

    def _parts(self) -> list[str]:
        return [p for p in _BREAK_AFTER.split(self.text) if p] or [""]

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        longest = max(len(p.rstrip()) for p in self._parts())
        return Measurement(min(longest, options.max_width), len(self.text))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(1, options.max_width)
        lines: list[str] = []
        line = ""
        for part in self._parts():
            if line and len((line + part).rstrip()) > width:
                lines.append(line.rstrip())
                line = ""
            line += part.lstrip() if not line else part
            while len(line.rstrip()) > width:  # a part wider than the column: cut it
                lines.append(line[:width])
                line = line[width:]
        lines.append(line.rstrip())
        yield Text("\n".join(lines), style=self.style, no_wrap=True, overflow="fold")


#: Where a :class:`Name` may break: after these characters.
_BREAK_AFTER = re.compile(r"(?<=[/: ])")


def _folds(column: Column) -> bool:
    return not column.no_wrap and column.overflow == "fold"


def _flat(header: RenderableType) -> str:
    return _as_text(header).plain.replace("/\n", "/").replace("\n", " ")


def _one_line(value: RenderableType) -> RenderableType:
    """A text value's lines joined by spaces (``6.00× holds 5.43–6.63``), styles kept."""
    if not isinstance(value, (str, Text)):
        return value
    text = _as_text(value)
    return Text(text.plain.replace("\n", " "), style=text.style, spans=text.spans)


def _as_text(value: RenderableType) -> Text:
    if isinstance(value, Group):  # a cell of several lines (a verdict's pair)
        return Text("\n").join(_as_text(r) for r in value.renderables)
    if isinstance(value, Name):
        return value.as_text()
    if isinstance(value, Text):
        return value
    return Text.from_markup(value) if isinstance(value, str) else Text(str(value))


def _heading(value: RenderableType) -> RenderableType:
    text = _as_text(value).copy()
    text.stylize("bold", 0, len(text.plain.split("\n", 1)[0]))
    return text


def _width(value: RenderableType) -> int:
    text = _as_text(value) if isinstance(value, (str, Text, Name, Group)) else None
    if text is None:
        return 0
    return max((len(line) for line in text.plain.split("\n")), default=0)
