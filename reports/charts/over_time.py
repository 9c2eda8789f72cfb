"""Latency over the run: p50 and p99 per time bin, one panel per cell.

::

    latency_over_time(run.samples); delivery_over_time(run.deliveries)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from reports.charts.style import cell_style, format_ms_axis, row_name
from reports.groups import cell_codes, cell_groups
from reports.stats import (
    CELL_KEYS,
    measured_deliveries,
    measured_samples,
)

#: The columns that name a cell and repeat in the series (the rest: time and latency).
_TIME_KEYS: tuple[str, ...] = ("run_id", *CELL_KEYS, "repeat")


def latency_over_time(
    samples: pd.DataFrame, *, bin_ms: float | None = None, title: str | None = None
) -> Figure:
    """p50 and p99 request latency per time bin of intended send time, one panel per cell.

    ``bin_ms`` defaults to 100 ms, widened (up to 2 s) until the sparsest cell has about 20
    requests per bin. The repeats of a cell are drawn one after the other (a dotted line
    marks where each starts); bins with fewer than 5 requests are left out. Only measured
    samples count. Shows warm-up effects, stalls and drift that a whole-run percentile hides.
    """
    data = measured_samples(samples, columns=[*_TIME_KEYS, "intended_ns", "latency_ns"])
    bin_ms = bin_ms or _auto_bin_ms(data, "intended_ns")
    order = list(pd.unique(samples["cell"]))  # scenario order, even if a repeat failed
    series = _over_time_series(data, "intended_ns", bin_ms, conn_mode=True, order=order)
    return _over_time_figure(
        series,
        title=title or f"Request latency over time (p50 and p99 per {bin_ms:g} ms)",
        ylabel="Latency (ms, log)",
        xlabel="Seconds of measurement (repeats back to back)",
        empty="no measured samples",
    )


def delivery_over_time(
    deliveries: pd.DataFrame, *, bin_ms: float | None = None, title: str | None = None
) -> Figure:
    """p50 and p99 delivery latency per time bin of cause time, one panel per cell
    (measured deliveries only; bins as :func:`latency_over_time`)."""
    data = measured_deliveries(deliveries, columns=[*_TIME_KEYS, "origin_ns", "latency_ns"])
    bin_ms = bin_ms or _auto_bin_ms(data, "origin_ns")
    order = list(pd.unique(deliveries["cell"]))
    series = _over_time_series(data, "origin_ns", bin_ms, conn_mode=False, order=order)
    return _over_time_figure(
        series,
        title=title or f"Delivery latency over time (p50 and p99 per {bin_ms:g} ms)",
        ylabel="Delivery latency (ms, log)",
        xlabel="Seconds of measurement (repeats back to back)",
        empty="no measured deliveries",
    )


def _auto_bin_ms(data: pd.DataFrame, time_col: str, per_bin: int = 20) -> float:
    """100 ms, doubled (to at most 1600 ms) until the sparsest cell and repeat averages
    ``per_bin`` rows per bin."""
    if data.empty:
        return 100.0
    # one integer per (run_id, cell, repeat): cheaper to group millions of rows on
    key = cell_codes(data)
    if "repeat" in data.columns:
        repeat = data["repeat"].to_numpy(dtype="int64")
        key = key * (int(repeat.max()) + 1) + repeat
    spans = data[time_col].groupby(key).agg(["min", "max", "size"])
    seconds = ((spans["max"] - spans["min"]) / 1e9).clip(lower=1e-3)
    rate = float((spans["size"] / seconds).min())
    bin_ms = 100.0
    while rate * bin_ms / 1000 < per_bin and bin_ms < 1600:
        bin_ms *= 2
    return bin_ms


def _over_time_series(
    data: pd.DataFrame, time_col: str, bin_ms: float, *, conn_mode: bool, order: list[str]
) -> list[tuple[str, dict, pd.DataFrame, list[float]]]:
    """(label, style, frame of t/p50/p99, repeat start times) per cell, cells in ``order``."""
    order_of = {name: i for i, name in enumerate(order)}
    out = []
    if data.empty:
        return out
    multi = "run_id" in data.columns and data["run_id"].nunique() > 1
    keys = [k for k in ("run_id", *CELL_KEYS) if k in data.columns]
    bin_ns = bin_ms * 1e6
    groups = list(cell_groups(data, keys))
    groups.sort(key=lambda kg: order_of.get(kg[0][keys.index("cell")], len(order_of)))
    for key, group in groups:
        row = dict(zip(keys, key, strict=True))
        frames, starts, offset = [], [], 0.0
        for _rep, rep in group.groupby("repeat", sort=True, observed=True):
            t0 = rep[time_col].min()
            bins = ((rep[time_col] - t0) // bin_ns).astype("int64")
            lat = rep["latency_ns"].astype("float64") / 1e6
            grouped = lat.groupby(bins)
            stats = grouped.quantile([0.5, 0.99]).unstack()
            stats = stats[grouped.size() >= 5]
            span = (float(bins.max()) + 1) * bin_ms / 1000
            starts.append(offset)
            frames.append(
                pd.DataFrame(
                    {
                        "t": offset + (stats.index.to_numpy() + 0.5) * bin_ms / 1000,
                        "p50": stats[0.5].to_numpy(),
                        "p99": stats[0.99].to_numpy(),
                    }
                )
            )
            # a gap of one NaN row so the lines break between repeats
            frames.append(pd.DataFrame({"t": [offset + span], "p50": [np.nan], "p99": [np.nan]}))
            offset += span
        label = row_name(row, multi)
        mode = str(row.get("conn_mode", "")) if conn_mode else ""
        style = cell_style(str(row["transport"]), str(row["client"]), mode)
        out.append((label, style, pd.concat(frames, ignore_index=True), starts))
    return out


def _over_time_figure(
    series: list[tuple[str, dict, pd.DataFrame, list[float]]],
    *,
    title: str,
    ylabel: str,
    xlabel: str,
    empty: str,
) -> Figure:
    n = max(len(series), 1)
    ncols = 2 if n > 1 else 1
    nrows = (n + ncols - 1) // ncols
    fig = Figure(figsize=(12, 1.2 + 2.3 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    for ax, (label, style, frame, starts) in zip(axes, series, strict=False):
        colour = style["color"]
        ax.plot(frame["t"], frame["p50"], color=colour, linewidth=1.6, label="p50")
        ax.plot(frame["t"], frame["p99"], color=colour, linewidth=1.0, alpha=0.55, label="p99")
        for start in starts[1:]:
            ax.axvline(start, color="#8c959f", linewidth=0.8, linestyle=":")
        ax.set_title(label, fontsize="medium")
        ax.grid(True, which="major", alpha=0.4)
    for ax in axes[len(series) :]:
        ax.set_visible(False)
    if series:
        axes[0].set_yscale("log")
        format_ms_axis(axes[0].yaxis)
        handles = [
            Line2D([], [], color="#24292f", linewidth=1.6, label="p50 per bin"),
            Line2D([], [], color="#24292f", linewidth=1.0, alpha=0.55, label="p99 per bin"),
            Line2D([], [], color="#8c959f", linewidth=0.8, linestyle=":", label="next repeat"),
        ]
        fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize="small")
    else:
        axes[0].text(0.5, 0.5, empty, transform=axes[0].transAxes, ha="center")
    for ax in axes[max(0, len(series) - ncols) : max(len(series), 1)]:
        ax.set_xlabel(xlabel, fontsize="small")
        ax.xaxis.set_tick_params(labelbottom=True)
    fig.supylabel(ylabel, fontsize="medium")
    fig.suptitle(title)
    return fig
