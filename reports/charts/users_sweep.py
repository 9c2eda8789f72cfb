"""The users sweep: server memory, server CPU and delivery p99 against connected users.

::

    users_sweep_chart(run.cells, "rss_mb_server")     # one of USERS_SWEEP_METRICS
    users_sweep_chart(run.cells, "delivery_p99_ms", users_sweep_table(run.cells))
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from loadgen.escape import chart_text
from reports.charts.style import (
    DELIVERY_LEGEND,
    delivery_style,
    finish,
    new_figure,
    objective_line,
    ring,
)
from reports.users_sweeps import users_sweep_cells

#: What can be drawn against users: column -> (axis label, log scale).
USERS_SWEEP_METRICS: dict[str, tuple[str, bool]] = {
    "rss_mb_server": ("Server peak memory (RSS, MB)", False),
    "cpu_util_server": ("Server CPU utilisation (1.0 = one CPU busy)", False),
    "delivery_p99_ms": ("Delivery p99 (ms, log scale)", True),
}


def users_sweep_chart(
    cells: pd.DataFrame,
    metric: str,
    sweeps: pd.DataFrame | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """``metric`` (a key of :data:`USERS_SWEEP_METRICS`) against connected users, one line
    per users-sweep group (a cell: transport, client, delivery).

    ``cells`` are a run's cells; only users-sweep cells are drawn
    (:func:`reports.users_sweeps.users_sweep_cells`). With ``sweeps``
    (:func:`reports.users_sweeps.users_sweep_table` output) the delivery p99 chart also
    draws each objective (dashed) and rings each group's largest count that met it.
    """
    label, log_y = USERS_SWEEP_METRICS[metric]
    sweep = users_sweep_cells(cells)
    fig, ax = new_figure()
    multi = "run_id" in sweep.columns and sweep["run_id"].nunique() > 1
    drawn = False
    objectives: set[float] = set()  # one dashed line per objective, however many cells share it
    for (rid, name), group in sweep.groupby(["run_id", "sweep_group"], sort=False):
        users = pd.to_numeric(group["users"], errors="coerce").astype("float64")
        group = group.assign(users=users).sort_values("users")
        first = group.iloc[0]
        style = delivery_style(
            str(first["transport"]), str(first["client"]), str(first["delivery"])
        )
        x = group["users"].to_numpy(dtype="float64")
        y = pd.to_numeric(group[metric], errors="coerce").to_numpy(dtype="float64")
        if not np.isfinite(y).any():
            continue
        ax.plot(x, y, marker="o", label=chart_text(f"{rid}: {name}" if multi else name), **style)
        drawn = True
        if sweeps is not None and metric == "delivery_p99_ms":
            _mark_knee(ax, group, sweeps, (rid, name), str(style["color"]), objectives)
    ax.set_xlabel("Connected users")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    finish(
        ax,
        drawn,
        title=title or f"{label.split(' (')[0]} against connected users",
        ylabel=label,
        log_y=log_y,
        legend_title=DELIVERY_LEGEND,
        empty="no users sweep in this run",
    )
    return fig


def _mark_knee(
    ax: Axes,
    group: pd.DataFrame,
    sweeps: pd.DataFrame,
    key: tuple[str, str],
    colour: str,
    objectives: set[float],
) -> None:
    """The group's objective as a dashed line (unless ``objectives`` has it) and its
    largest passing count ringed."""
    rid, name = key
    mine = sweeps[(sweeps["run_id"] == rid) & (sweeps["sweep_group"] == name)]
    if mine.empty:
        return
    s = mine.iloc[0]
    slo = float(s["slo_p99_ms"])
    objective_line(ax, slo, f"objective {slo:g} ms", objectives)
    if np.isfinite(s["max_users"]):
        at = group[group["users"] == s["max_users"]].iloc[0]
        ring(ax, at["users"], at["delivery_p99_ms"], colour)
