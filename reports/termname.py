"""Names (cells, runs, sweep groups) in terminal tables, and any cell's plain text.

::

    table.add_row(Name(term_plain(cell)), ...)   # breaks after "/" on a narrow column
    as_text(renderable)                           # a str, Text, Name or Group as one Text
"""

from __future__ import annotations

import re

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.text import Text


class Name:
    """A cell, run or group name for a table cell: on a narrow column it breaks after a
    ``/``, ``:`` or space (``http/aiohttp/`` over ``keep-alive``); a part longer than the
    column breaks after a hyphen, else anywhere. Plain text: no markup is read.

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
            while len(line.rstrip()) > width:  # a part wider than the column
                cut = line.rfind("-", 1, width) + 1 or width  # after a hyphen, else anywhere
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line.rstrip())
        yield Text("\n".join(lines), style=self.style, no_wrap=True, overflow="fold")


#: Where a :class:`Name` may break: after these characters.
_BREAK_AFTER = re.compile(r"(?<=[/: ])")


def as_text(value: RenderableType) -> Text:
    """``value`` as one Text: a Group's parts on separate lines; a str read as markup."""
    if isinstance(value, Group):  # a cell of several lines (a verdict's pair)
        return Text("\n").join(as_text(r) for r in value.renderables)
    if isinstance(value, Name):
        return value.as_text()
    if isinstance(value, Text):
        return value
    return Text.from_markup(value) if isinstance(value, str) else Text(str(value))
