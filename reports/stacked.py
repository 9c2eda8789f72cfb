"""Any rich Table as one block per row, for a console too narrow for its columns.

``console.print(stacked(table, console.width))``: each row's first cell as a heading, then
``header value`` pairs under it, as many to a line as the width allows.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from reports.termname import Name, as_text

#: Width used to measure a grid's natural size.
_UNLIMITED = 100_000


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
        parts.append(as_text(table.title))
    for r in range(table.row_count):
        parts.append(_heading(rows[0][r]) if rows else Text())
        if labels:
            # Values too wide for even one pair a line fold under their own width.
            grid = _pairs_grid(labels, rows[1:], r, per_line, value_w if aligned else 0)
            parts.append(Padding(grid, (0, 0, 0, _INDENT), expand=False))
    if table.caption:
        parts.append(as_text(table.caption))
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


def _flat(header: RenderableType) -> str:
    return as_text(header).plain.replace("/\n", "/").replace("\n", " ")


def _one_line(value: RenderableType) -> RenderableType:
    """A text value's lines joined by spaces (``6.00× holds 5.43–6.63``), styles kept."""
    if not isinstance(value, (str, Text)):
        return value
    text = as_text(value)
    return Text(text.plain.replace("\n", " "), style=text.style, spans=text.spans)


def _heading(value: RenderableType) -> RenderableType:
    text = as_text(value).copy()
    text.stylize("bold", 0, len(text.plain.split("\n", 1)[0]))
    return text


def _width(value: RenderableType) -> int:
    """The widest line of a text value (0 for other renderables)."""
    if not isinstance(value, (str, Text, Group, Name)):
        return 0
    return max((cell_len(line) for line in as_text(value).plain.split("\n")), default=0)
