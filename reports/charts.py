"""Latency charts (matplotlib, Agg canvas, no pyplot state): percentile spectrum and CDF.

::

    from reports import charts
    fig = charts.percentile_spectrum(run.samples)   # HdrHistogram-style, one line per cell
    fig.savefig("spectrum.png")
    uri = charts.fig_to_data_uri(charts.cdf(run.samples))   # "data:image/png;base64,..."

Colour follows the transport (HTTP blues, ws-aiohttp oranges, ws-websockets greens; the
shade tells the client apart), line style follows client and connection mode (solid:
reused connection with httpx/websockets, dash-dot: reused with aiohttp, dashed: new
connection per request with httpx, dotted: new connection with aiohttp). Only measured
samples count: warmup and failed requests are dropped (``reports.stats.measured_samples``).
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
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, NullLocator

from reports.stats import CELL_KEYS, measured_samples

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


def percentile_spectrum(
    samples: pd.DataFrame, *, corrected: bool = True, log_y: bool = True, title: str | None = None
) -> Figure:
    """Latency by percentile, one line per cell, x = 1/(1-p) on a log axis.

    Ticks read 50%, 90%, 99%, 99.9%, 99.99%...; each line stops at the highest percentile
    its sample count supports (1 - 1/n). ``corrected=False`` plots uncorrected latency.
    """
    fig, ax = _new_figure()
    xmax = 10.0
    drawn = False
    for label, style, values in _cells(samples, corrected):
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
    drawn = False
    p = np.linspace(0.0, 1.0, 1001)
    for label, style, values in _cells(samples, corrected):
        ax.plot(np.quantile(values, p), p * 100, label=label, **style)
        drawn = True
    ax.set_xscale("log")
    ax.set_xlabel("Latency (ms, log scale)")
    ax.set_ylim(0, 100)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.0f}%"))
    _format_ms_axis(ax.xaxis)
    _finish(
        ax,
        drawn,
        title=title
        or f"Cumulative distribution of latency ({_latency_kind(corrected)}, {_n_label(samples)})",
        ylabel="Requests at or below latency (%)",
        log_y=False,
    )
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


def _finish(ax: Axes, drawn: bool, *, title: str, ylabel: str, log_y: bool) -> None:
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
            title="cell\n(transport/client/connection)",
        )
    else:
        ax.text(0.5, 0.5, "no measured samples", transform=ax.transAxes, ha="center")
