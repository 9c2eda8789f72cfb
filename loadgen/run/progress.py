"""The progress line of ``rtbench run``, one line wide on any console from 60 columns.

``progress = run_progress(console, disable=not show); task = progress.add_task(
progress_label(scenario.name), total=n, status="")``
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Column

from loadgen.escape import term_name

#: Widest the scenario name gets in the progress line (the full name is printed above it).
LABEL_WIDTH = 24

#: Room for everything but the bar: label, counts, both times, status and the gaps.
_OTHER_COLUMNS = 70


def run_progress(console: Console, *, disable: bool = False) -> Progress:
    """Label, bar, done/total, elapsed, remaining and a status word; the bar shrinks
    (40 down to 10 characters) and label and status are cut with an ellipsis so the line
    never wraps."""
    bar = max(10, min(40, console.width - _OTHER_COLUMNS))
    return Progress(
        TextColumn(
            "[bold]{task.description}",
            table_column=Column(no_wrap=True, overflow="ellipsis", max_width=LABEL_WIDTH),
        ),
        BarColumn(bar_width=bar),
        TextColumn("{task.completed}/{task.total}", table_column=Column(no_wrap=True)),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}", table_column=Column(no_wrap=True, overflow="ellipsis")),
        console=console,
        disable=disable,
    )


def progress_label(name: str) -> str:
    """A scenario name as the progress label: rich markup and control characters inert."""
    return term_name(name)
