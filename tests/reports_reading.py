"""Read back what the reports tests load and print.

::

    console, buf = console_buffer()      # a rich Console writing plain text into ``buf``
    print_summary(run, console=console); buf.getvalue()
    row = cell_row(reports.load(folder), "http/aiohttp/keep-alive")
"""

from __future__ import annotations

import io

import pandas as pd
from rich.console import Console

import reports


def console_buffer(width: int = 200) -> tuple[Console, io.StringIO]:
    """A colourless Console ``width`` characters wide and the buffer it writes to."""
    buf = io.StringIO()
    return Console(file=buf, width=width, color_system=None), buf


def cell_row(run: reports.Run, name: str) -> pd.Series:
    """The row of ``run.cells`` for the cell called ``name``."""
    return run.cells.set_index("cell").loc[name]
