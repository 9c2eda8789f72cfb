"""The rate sweep: p99 against the offered rate, the hockey stick and its knee.

::

    sweep_chart(run.cells)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from loadgen.escape import chart_text
from reports.charts.style import cell_style, finish, new_figure, objective_line, ring
from reports.sweeps import sweep_cells, sweep_table
from reports.thresholds import RATE_REACHED


def sweep_chart(
    cells: pd.DataFrame, sweeps: pd.DataFrame | None = None, *, title: str | None = None
) -> Figure:
    """Throughput against latency over a rate sweep: the "hockey stick", one line per group.

    ``cells`` are a run's cells (only sweep cells are drawn: see
    :func:`reports.sweeps.sweep_cells`), ``sweeps`` :func:`reports.sweeps.sweep_table` output
    (computed when omitted). x: achieved throughput; y: p99 (solid, markers) and p50
    (dotted) latency, log scale. The dashed line is each group's p99 objective; the ringed
    point the highest rate that met it (the knee), annotated; hollow markers are rates
    whose target was not reached.
    """
    sweep = sweep_cells(cells)
    sweeps = sweep_table(cells) if sweeps is None else sweeps
    fig, ax = new_figure()
    drawn = False
    multi = "run_id" in sweep.columns and sweep["run_id"].nunique() > 1
    slos_drawn: set[float] = set()
    for key, group in sweep.groupby(["run_id", "sweep_group"], sort=False):
        rid, name = key
        group = group.sort_values("target_rate")
        first = group.iloc[0]
        style = cell_style(str(first["transport"]), str(first["client"]), str(first["conn_mode"]))
        x = group["throughput_rps"].to_numpy(dtype="float64")
        p99 = group["p99_ms"].to_numpy(dtype="float64")
        p50 = group["p50_ms"].to_numpy(dtype="float64")
        reached = x >= RATE_REACHED * group["target_rate"].to_numpy(dtype="float64")
        label = chart_text(f"{rid}: {name}" if multi else name)
        colour = style["color"]
        ax.plot(x, p99, color=colour, linewidth=2.0, label=f"{label} p99")
        ax.plot(x, p50, color=colour, linewidth=1.2, linestyle=":", label=f"{label} p50")
        ax.scatter(x[reached], p99[reached], color=colour, s=30, zorder=3)
        ax.scatter(
            x[~reached], p99[~reached], facecolors="white", edgecolors=colour, s=30, zorder=3
        )
        mine = sweeps[(sweeps["run_id"] == rid) & (sweeps["sweep_group"] == name)]
        if len(mine):
            s = mine.iloc[0]
            slo = float(s["slo_p99_ms"])
            source = "scenario" if s["slo_source"] == "scenario" else "default"
            objective_line(ax, slo, f"p99 objective {slo:g} ms ({source})", slos_drawn)
            if np.isfinite(s["max_rate"]):
                at = group[group["target_rate"] == s["max_rate"]].iloc[0]
                ring(ax, at["throughput_rps"], at["p99_ms"], colour)
                ax.annotate(
                    f"knee: {s['max_rate']:,.0f} req/s",
                    (at["throughput_rps"], at["p99_ms"]),
                    textcoords="offset points",
                    xytext=(8, -14),
                    color=colour,
                    fontsize="small",
                    fontweight="bold",
                )
        drawn = True
    ax.set_xlabel("Achieved throughput (requests/s)")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    finish(
        ax,
        drawn,
        title=title or "Throughput against latency over the rate sweep (the knee is ringed)",
        ylabel="Latency (ms, log scale)",
        log_y=True,
        legend_title="sweep group",
        empty="no rate sweep in this run",
    )
    return fig
