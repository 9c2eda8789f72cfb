"""Read back what the reports tests load and print.

::

    console, buf = console_buffer()      # a rich Console writing plain text into ``buf``
    warnings, out = printed_summary(run, width=80)  # print_summary's lines, and its text
    row = cell_row(reports.load(folder), "http/aiohttp/keep-alive")
"""

from __future__ import annotations

import io

import pandas as pd
from rich.console import Console

import reports
from reports.table import print_summary


def console_buffer(width: int = 200) -> tuple[Console, io.StringIO]:
    """A colourless Console ``width`` characters wide and the buffer it writes to."""
    buf = io.StringIO()
    return Console(file=buf, width=width, color_system=None), buf


def printed_summary(run: reports.Run, width: int = 200) -> tuple[list[str], str]:
    """The warning lines :func:`print_summary` returns for ``run`` and the plain text it
    prints on a console ``width`` characters wide."""
    console, buf = console_buffer(width)
    warnings = print_summary(run, console)
    return warnings, buf.getvalue()


def cell_row(run: reports.Run, name: str) -> pd.Series:
    """The row of ``run.cells`` for the cell called ``name``."""
    return run.cells.set_index("cell").loc[name]
