"""The "Cost per connected user" table: what each real-time cell's users cost the server
and the wire, per 1,000 connected users (``summary.json``'s ``per_1000_users``)::

    from reports.user_costs import USER_COST_HEADERS, user_cost_rows, user_cost_table
    user_cost_table(run.cells)   # one row per real-time cell, the raw figures
    user_cost_rows(run.cells)    # the same rows as display strings, USER_COST_HEADERS order

Echo cells are left out. The strings are not escaped: the HTML template autoescapes, and
:mod:`reports.markdown` escapes them for Markdown.
"""

from __future__ import annotations

import pandas as pd

from reports.fmt import fmt_int, fmt_ms, fmt_text
from reports.stats import realtime_cells

#: Columns of :func:`user_cost_table`: the cell's name, then the figures, from these
#: ``Run.cells`` columns.
USER_COST_SOURCES: dict[str, str] = {
    "cell": "cell",
    "transport": "transport",
    "delivery": "delivery",
    "users": "per_1000_users_users",
    "server_rss_mb": "per_1000_users_server_rss_mb",
    "server_cpu_ms_per_s": "per_1000_users_server_cpu_ms_per_s",
    "wire_kb_per_min": "per_1000_users_wire_kb_per_min",
}

#: Column headers of :func:`user_cost_rows`.
USER_COST_HEADERS: tuple[str, ...] = (
    "Cell",
    "Transport",
    "Delivery",
    "Users",
    "RSS MB per 1k users",
    "Server CPU ms/s per 1k users",
    "Wire KB/min per 1k users",
)

#: What the table's figures are, for the note under its title.
USER_COST_NOTE = (
    "Per 1,000 connected users: the server's peak resident memory above what it held before "
    "any user signed in, the server's CPU milliseconds per second of the measured window, "
    "and the TCP payload kilobytes (1,000 bytes) both ways per minute of that window. Each "
    "repeat runs its own server; memory is the repeats' mean, CPU and bytes their total "
    "over their windows. – marks a figure the run did not record."
)


def user_cost_table(cells: pd.DataFrame) -> pd.DataFrame:
    """The real-time cells of ``cells`` (a ``Run.cells`` frame) with the columns of
    :data:`USER_COST_SOURCES`; a column the frame lacks is all missing."""
    live = realtime_cells(cells)
    return pd.DataFrame(
        {
            name: live[source] if source in live.columns else pd.Series(None, index=live.index)
            for name, source in USER_COST_SOURCES.items()
        },
        index=live.index,
    ).reset_index(drop=True)


def user_cost_rows(cells: pd.DataFrame) -> list[list[str]]:
    """:func:`user_cost_table` as display strings, one list per cell in
    :data:`USER_COST_HEADERS` order; ``[]`` without real-time cells."""
    return [
        [
            fmt_text(r["cell"]),
            fmt_text(r["transport"]),
            fmt_text(r["delivery"]),
            fmt_int(r["users"]),
            fmt_ms(r["server_rss_mb"]),
            fmt_ms(r["server_cpu_ms_per_s"]),
            fmt_ms(r["wire_kb_per_min"]),
        ]
        for _, r in user_cost_table(cells).iterrows()
    ]
