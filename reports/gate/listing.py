"""What ``rtbench baseline list`` prints: one row per saved baseline, fitted to the console.

``print_baselines(list_baselines(root), Console())``
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from loadgen.escape import term_plain
from reports.termfit import print_fitting


def baselines_table(found: Sequence[dict[str, Any]]) -> Table:
    """Name, run id, scenario and when it was saved (from :func:`list_baselines`)."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    # Names fold; run ids and times are kept on one line so they can be copied.
    table.add_column("name", overflow="fold")
    table.add_column("run", no_wrap=True)
    table.add_column("scenario", overflow="fold")
    table.add_column("saved", no_wrap=True)
    for b in found:
        table.add_row(
            *(
                Text(term_plain("–" if value is None else value))
                for value in (b["name"], b.get("run_id"), b.get("scenario"), b.get("saved_at"))
            )
        )
    return table


def print_baselines(found: Sequence[dict[str, Any]], console: Console) -> None:
    """The baselines table, or one block per baseline on a narrow console."""
    print_fitting(console, [lambda: [baselines_table(found)]])
