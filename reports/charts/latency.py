"""Latency by percentile and as a CDF: requests (echo) and deliveries (real time).

::

    percentile_spectrum(run.samples); cdf(run.samples)
    delivery_spectrum(run.deliveries); delivery_cdf(run.deliveries)
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from reports.charts.style import (
    DELIVERY_LEGEND,
    SPECTRUM_TICKS,
    cell_style,
    delivery_style,
    finish,
    format_ms_axis,
    latency_kind,
    n_label,
    new_figure,
    row_name,
)
from reports.groups import cell_groups
from reports.stats import (
    CELL_KEYS,
    measured_deliveries,
    measured_delivery_mask,
    measured_samples,
)


def percentile_spectrum(
    samples: pd.DataFrame, *, corrected: bool = True, log_y: bool = True, title: str | None = None
) -> Figure:
    """Latency by percentile, one line per cell, x = 1/(1-p) on a log axis.

    Ticks read 50%, 90%, 99%, 99.9%, 99.99%...; each line stops at the highest percentile
    its sample count supports (1 - 1/n). ``corrected=False`` plots uncorrected latency.
    """
    fig, ax = new_figure()
    drawn = _draw_spectrum(ax, _cells(samples, corrected))
    finish(
        ax,
        drawn,
        title=title or f"Latency by percentile ({latency_kind(corrected)}, {n_label(samples)})",
        ylabel="Latency (ms" + (", log scale)" if log_y else ")"),
        log_y=log_y,
    )
    return fig


def cdf(samples: pd.DataFrame, *, corrected: bool = True, title: str | None = None) -> Figure:
    """Cumulative distribution of latency per cell: x = latency ms (log), y = % of requests."""
    fig, ax = new_figure()
    drawn = _draw_cdf(ax, _cells(samples, corrected))
    finish(
        ax,
        drawn,
        title=title
        or f"Cumulative distribution of latency ({latency_kind(corrected)}, {n_label(samples)})",
        ylabel="Requests at or below latency (%)",
        log_y=False,
    )
    return fig


def delivery_spectrum(
    deliveries: pd.DataFrame, *, log_y: bool = True, title: str | None = None
) -> Figure:
    """Delivery latency (cause to receipt) by percentile, one line per real-time cell.

    Same axes as :func:`percentile_spectrum`; from ``run.deliveries`` without warmup,
    deferred and duplicate rows.
    """
    fig, ax = new_figure()
    drawn = _draw_spectrum(ax, _delivery_cells(deliveries))
    n = int(measured_delivery_mask(deliveries).sum())
    finish(
        ax,
        drawn,
        title=title or f"Delivery latency by percentile ({n:,} deliveries)",
        ylabel="Delivery latency (ms" + (", log scale)" if log_y else ")"),
        log_y=log_y,
        legend_title=DELIVERY_LEGEND,
        empty="no measured deliveries",
    )
    return fig


def delivery_cdf(deliveries: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Cumulative distribution of delivery latency per real-time cell (x log ms, y %)."""
    fig, ax = new_figure()
    drawn = _draw_cdf(ax, _delivery_cells(deliveries))
    ax.set_xlabel("Delivery latency (ms, log scale)")
    n = int(measured_delivery_mask(deliveries).sum())
    finish(
        ax,
        drawn,
        title=title or f"Cumulative distribution of delivery latency ({n:,} deliveries)",
        ylabel="Deliveries at or below latency (%)",
        log_y=False,
        legend_title=DELIVERY_LEGEND,
        empty="no measured deliveries",
    )
    return fig


def _draw_spectrum(ax: Axes, series: Iterator[tuple[str, dict, np.ndarray]]) -> bool:
    """One percentile-spectrum line per (label, style, values); True if any was drawn."""
    xmax = 10.0
    drawn = False
    for label, style, values in series:
        n = len(values)
        top = min(float(n), 1e6)
        x = np.logspace(0, np.log10(top), 400) if top > 1 else np.array([1.0])
        # Sorted first: quantile's partition of a sorted array is a fraction of the cost
        # for hundreds of quantiles over millions of values, with the same result.
        y = np.quantile(np.sort(values), 1 - 1 / x)
        ax.plot(x, y, label=label, **style)
        xmax = max(xmax, top)
        drawn = True
    ax.set_xscale("log")
    ticks = [(x, t) for x, t in SPECTRUM_TICKS if x <= xmax * 1.0001]
    ax.xaxis.set_major_locator(FixedLocator([x for x, _ in ticks]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: dict(ticks).get(v, "")))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(1, xmax)
    ax.set_xlabel("Percentile (log scale: each step right is ten times rarer)")
    return drawn


def _draw_cdf(ax: Axes, series: Iterator[tuple[str, dict, np.ndarray]]) -> bool:
    """One CDF line per (label, style, values); True if any was drawn."""
    drawn = False
    p = np.linspace(0.0, 1.0, 1001)
    for label, style, values in series:
        ax.plot(np.quantile(np.sort(values), p), p * 100, label=label, **style)
        drawn = True
    ax.set_xscale("log")
    ax.set_xlabel("Latency (ms, log scale)")
    ax.set_ylim(0, 100)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.0f}%"))
    format_ms_axis(ax.xaxis)
    return drawn


def _delivery_cells(deliveries: pd.DataFrame) -> Iterator[tuple[str, dict, np.ndarray]]:
    """(legend label, line style, delivery latencies in ms) per cell with measured rows."""
    keys = [k for k in ("run_id", *CELL_KEYS, "delivery") if k in deliveries.columns]
    data = measured_deliveries(deliveries, columns=[*keys, "latency_ns"])
    multi = "run_id" in data.columns and data["run_id"].nunique() > 1
    for key, group in cell_groups(data, keys):
        row = dict(zip(keys, key, strict=True))
        values = group["latency_ns"].to_numpy(dtype="float64") / 1e6
        values = values[~np.isnan(values)]
        if len(values) == 0:
            continue
        label = row_name(row, multi)
        style = delivery_style(
            str(row["transport"]), str(row["client"]), str(row.get("delivery", ""))
        )
        yield label, style, values


def _cells(samples: pd.DataFrame, corrected: bool) -> Iterator[tuple[str, dict, np.ndarray]]:
    """(legend label, line style, latencies in ms) per cell with measured samples."""
    source = "latency_ns" if corrected else "latency_uncorrected_ns"
    keys = [k for k in ("run_id", *CELL_KEYS) if k in samples.columns]
    data = measured_samples(samples, columns=[*keys, source])
    multi = "run_id" in data.columns and data["run_id"].nunique() > 1
    for key, group in cell_groups(data, keys):
        row = dict(zip(keys, key, strict=True))
        values = group[source].to_numpy(dtype="float64") / 1e6
        values = values[~np.isnan(values)]
        if len(values) == 0:
            continue
        label = row_name(row, multi)
        style = cell_style(str(row["transport"]), str(row["client"]), str(row["conn_mode"]))
        yield label, style, values
