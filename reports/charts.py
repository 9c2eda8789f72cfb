"""Latency charts (matplotlib, Agg canvas, no pyplot state): percentile spectrum and CDF.

::

    from reports import charts
    fig = charts.percentile_spectrum(run.samples)   # HdrHistogram-style, one line per cell
    fig.savefig("spectrum.png")
    uri = charts.fig_to_data_uri(charts.cdf(run.samples))   # "data:image/png;base64,..."

    charts.delivery_spectrum(run.deliveries)        # real-time: delivery latency by percentile
    charts.delivery_cdf(run.deliveries)
    split = reports.stats.bytes_per_useful_split(run.samples, run.deliveries)
    charts.bytes_per_useful_chart(split)            # stacked bars: request/reply/push bytes

Colour follows the transport (HTTP blues, ws-aiohttp oranges, ws-websockets greens; the
shade tells the client apart), line style follows client and connection mode (solid:
reused connection with httpx/websockets, dash-dot: reused with aiohttp, dashed: new
connection per request with httpx, dotted: new connection with aiohttp). Only measured
samples count: warmup and failed requests are dropped (``reports.stats.measured_samples``).

Delivery charts keep the transport colours and give the line style to the delivery mode
(solid: WebSocket push, dashed: long polling, dotted: short polling); only measured
deliveries count: warmup, deferred and duplicate rows are dropped
(``reports.stats.measured_deliveries``).
"""

from __future__ import annotations

import base64
import io
import sys
from collections.abc import Iterator

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, NullLocator

from reports.stats import CELL_KEYS, measured_deliveries, measured_samples

#: Shades per transport, darkest first; the client picks the shade.
TRANSPORT_SHADES: dict[str, tuple[str, ...]] = {
    "http": ("#08519c", "#4292c6"),
    "ws-aiohttp": ("#d94801", "#fd8d3c"),
    "ws-websockets": ("#006d2c", "#41ab5d"),
}
_OTHER_SHADES = ("#54278f", "#9e9ac8")

#: Which shade (index into TRANSPORT_SHADES) a client gets.
CLIENT_SHADE: dict[str, int] = {"httpx": 0, "websockets": 0, "aiohttp": 1}

#: Line style per (client, conn_mode).
LINESTYLES: dict[tuple[str, str], str] = {
    ("httpx", "keep-alive"): "-",
    ("aiohttp", "keep-alive"): "-.",
    ("httpx", "new-connection"): "--",
    ("aiohttp", "new-connection"): ":",
    ("websockets", "persistent"): "-",
    ("aiohttp", "persistent"): "-.",
}

#: Line style per delivery mode in the delivery charts.
DELIVERY_LINESTYLES: dict[str, str] = {"push": "-", "long-poll": "--", "short-poll": ":"}

#: Parts of the bytes-per-useful-message bars: (column, legend label, hatch, alpha).
BYTES_PARTS: tuple[tuple[str, str, str, float], ...] = (
    ("request_bytes", "client → server (polls, sends)", "", 1.0),
    ("reply_bytes", "server → client replies", "//", 0.55),
    ("push_bytes", "server → client pushes", "..", 0.3),
)

#: Percentile spectrum ticks: 1/(1-p) and label.
SPECTRUM_TICKS: tuple[tuple[float, str], ...] = (
    (2.0, "50%"),
    (10.0, "90%"),
    (100.0, "99%"),
    (1e3, "99.9%"),
    (1e4, "99.99%"),
    (1e5, "99.999%"),
    (1e6, "99.9999%"),
)


def cell_style(transport: str, client: str, conn_mode: str) -> dict[str, object]:
    """Matplotlib line kwargs (``color``, ``linestyle``, ``linewidth``) for a cell."""
    shades = TRANSPORT_SHADES.get(transport, _OTHER_SHADES)
    colour = shades[CLIENT_SHADE.get(client, 0) % len(shades)]
    return {
        "color": colour,
        "linestyle": LINESTYLES.get((client, conn_mode), "-"),
        "linewidth": 2.0,
    }


def delivery_style(transport: str, client: str, delivery: str) -> dict[str, object]:
    """Line kwargs for a real-time cell: transport colour, line style by delivery mode."""
    style = cell_style(transport, client, "")
    style["linestyle"] = DELIVERY_LINESTYLES.get(delivery, "-")
    return style


def percentile_spectrum(
    samples: pd.DataFrame, *, corrected: bool = True, log_y: bool = True, title: str | None = None
) -> Figure:
    """Latency by percentile, one line per cell, x = 1/(1-p) on a log axis.

    Ticks read 50%, 90%, 99%, 99.9%, 99.99%...; each line stops at the highest percentile
    its sample count supports (1 - 1/n). ``corrected=False`` plots uncorrected latency.
    """
    fig, ax = _new_figure()
    drawn = _draw_spectrum(ax, _cells(samples, corrected))
    _finish(
        ax,
        drawn,
        title=title or f"Latency by percentile ({_latency_kind(corrected)}, {_n_label(samples)})",
        ylabel="Latency (ms" + (", log scale)" if log_y else ")"),
        log_y=log_y,
    )
    return fig


def cdf(samples: pd.DataFrame, *, corrected: bool = True, title: str | None = None) -> Figure:
    """Cumulative distribution of latency per cell: x = latency ms (log), y = % of requests."""
    fig, ax = _new_figure()
    drawn = _draw_cdf(ax, _cells(samples, corrected))
    _finish(
        ax,
        drawn,
        title=title
        or f"Cumulative distribution of latency ({_latency_kind(corrected)}, {_n_label(samples)})",
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
    fig, ax = _new_figure()
    drawn = _draw_spectrum(ax, _delivery_cells(deliveries))
    n = len(measured_deliveries(deliveries))
    _finish(
        ax,
        drawn,
        title=title or f"Delivery latency by percentile ({n:,} deliveries)",
        ylabel="Delivery latency (ms" + (", log scale)" if log_y else ")"),
        log_y=log_y,
        legend_title=_DELIVERY_LEGEND,
        empty="no measured deliveries",
    )
    return fig


def delivery_cdf(deliveries: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Cumulative distribution of delivery latency per real-time cell (x log ms, y %)."""
    fig, ax = _new_figure()
    drawn = _draw_cdf(ax, _delivery_cells(deliveries))
    ax.set_xlabel("Delivery latency (ms, log scale)")
    n = len(measured_deliveries(deliveries))
    _finish(
        ax,
        drawn,
        title=title or f"Cumulative distribution of delivery latency ({n:,} deliveries)",
        ylabel="Deliveries at or below latency (%)",
        log_y=False,
        legend_title=_DELIVERY_LEGEND,
        empty="no measured deliveries",
    )
    return fig


def bytes_per_useful_chart(split: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Horizontal stacked bars of wire bytes per useful message, one bar per cell.

    ``split`` is :func:`reports.stats.bytes_per_useful_split` output: each bar stacks
    request, reply and push bytes per useful message in the cell's transport colour
    (hatching tells the parts apart) and is labelled with its total.
    """
    rows = split.dropna(subset=["total_bytes"]).reset_index(drop=True)
    height = max(3.0, 1.2 + 0.55 * len(rows))
    fig = Figure(figsize=(12, height), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    multi = "run_id" in rows.columns and rows["run_id"].nunique() > 1
    labels = [
        f"{r['run_id']}: {r['cell']}" if multi else str(r["cell"]) for _, r in rows.iterrows()
    ]
    y = np.arange(len(rows))[::-1]
    left = np.zeros(len(rows))
    colours = [
        cell_style(str(r["transport"]), str(r["client"]), "")["color"] for _, r in rows.iterrows()
    ]
    for column, _label, hatch, alpha in BYTES_PARTS:
        values = rows[column].to_numpy(dtype="float64") if len(rows) else np.zeros(0)
        values = np.nan_to_num(values)
        ax.barh(
            y,
            values,
            left=left,
            color=colours,
            alpha=alpha,
            hatch=hatch,
            edgecolor=colours,
            linewidth=0.8,
        )
        left += values
    top = float(left.max()) if len(left) else 0.0
    for yi, total in zip(y, left, strict=True):
        ax.text(total + top * 0.01, yi, f"{total:,.0f}", va="center", fontsize="small")
    ax.set_yticks(y, labels)
    ax.set_xlim(0, top * 1.12 if top > 0 else 1)
    ax.set_xlabel("Wire bytes per useful message (TCP payload)")
    ax.set_title(title or "Bytes on the wire per useful message")
    ax.grid(True, axis="x", alpha=0.4)
    if len(rows):
        handles = [
            Patch(facecolor="#6e7781", alpha=alpha, hatch=hatch, edgecolor="#57606a", label=lb)
            for _col, lb, hatch, alpha in BYTES_PARTS
        ]
        ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            fontsize="small",
            title="part (colour: transport)",
        )
    else:
        ax.text(0.5, 0.5, "no real-time cells", transform=ax.transAxes, ha="center")
    return fig


def fig_to_data_uri(fig: Figure, *, dpi: int = 100) -> str:
    """Render ``fig`` as PNG and return ``"data:image/png;base64,..."``; closes the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    if "matplotlib.pyplot" in sys.modules:  # a pyplot-managed figure must leave its registry
        sys.modules["matplotlib.pyplot"].close(fig)
    fig.clear()
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _new_figure() -> tuple[Figure, Axes]:
    fig = Figure(figsize=(12, 6), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


_DELIVERY_LEGEND = "cell (line: solid push,\ndashed long poll, dotted short poll)"


def _draw_spectrum(ax: Axes, series: Iterator[tuple[str, dict, np.ndarray]]) -> bool:
    """One percentile-spectrum line per (label, style, values); True if any was drawn."""
    xmax = 10.0
    drawn = False
    for label, style, values in series:
        n = len(values)
        top = min(float(n), 1e6)
        x = np.logspace(0, np.log10(top), 400) if top > 1 else np.array([1.0])
        y = np.quantile(values, 1 - 1 / x)
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
        ax.plot(np.quantile(values, p), p * 100, label=label, **style)
        drawn = True
    ax.set_xscale("log")
    ax.set_xlabel("Latency (ms, log scale)")
    ax.set_ylim(0, 100)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.0f}%"))
    _format_ms_axis(ax.xaxis)
    return drawn


def _delivery_cells(deliveries: pd.DataFrame) -> Iterator[tuple[str, dict, np.ndarray]]:
    """(legend label, line style, delivery latencies in ms) per cell with measured rows."""
    data = measured_deliveries(deliveries)
    multi = "run_id" in data.columns and data["run_id"].nunique() > 1
    keys = [k for k in ("run_id", *CELL_KEYS, "delivery") if k in data.columns]
    for key, group in data.groupby(keys, sort=False, observed=True, dropna=False):
        row = dict(zip(keys, key, strict=True))
        values = group["latency_ns"].to_numpy(dtype="float64") / 1e6
        values = values[~np.isnan(values)]
        if len(values) == 0:
            continue
        label = f"{row['run_id']}: {row['cell']}" if multi else str(row["cell"])
        style = delivery_style(
            str(row["transport"]), str(row["client"]), str(row.get("delivery", ""))
        )
        yield label, style, values


def _cells(samples: pd.DataFrame, corrected: bool) -> Iterator[tuple[str, dict, np.ndarray]]:
    """(legend label, line style, latencies in ms) per cell with measured samples."""
    source = "latency_ns" if corrected else "latency_uncorrected_ns"
    data = measured_samples(samples)
    multi = "run_id" in data.columns and data["run_id"].nunique() > 1
    keys = [k for k in ("run_id", *CELL_KEYS) if k in data.columns]
    for key, group in data.groupby(keys, sort=False, observed=True, dropna=False):
        row = dict(zip(keys, key, strict=True))
        values = group[source].to_numpy(dtype="float64") / 1e6
        values = values[~np.isnan(values)]
        if len(values) == 0:
            continue
        label = f"{row['run_id']}: {row['cell']}" if multi else str(row["cell"])
        style = cell_style(str(row["transport"]), str(row["client"]), str(row["conn_mode"]))
        yield label, style, values


def _latency_kind(corrected: bool) -> str:
    return "corrected for coordinated omission" if corrected else "uncorrected"


def _n_label(samples: pd.DataFrame) -> str:
    return f"{len(measured_samples(samples)):,} requests"


def _format_ms_axis(axis: Axis) -> None:
    """Ticks at 1, 2, 5 x 10^n labelled as plain decimals (0.2, 1, 50) on a log ms axis."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _finish(
    ax: Axes,
    drawn: bool,
    *,
    title: str,
    ylabel: str,
    log_y: bool,
    legend_title: str = "cell\n(transport/client/connection)",
    empty: str = "no measured samples",
) -> None:
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("log")
        _format_ms_axis(ax.yaxis)
    ax.grid(True, which="major", alpha=0.4)
    if drawn:
        # Outside the axes, to the right: never hides a line.
        ax.legend(
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            fontsize="small",
            title=legend_title,
        )
    else:
        ax.text(0.5, 0.5, empty, transform=ax.transAxes, ha="center")
