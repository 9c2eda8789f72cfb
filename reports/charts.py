"""Charts (matplotlib, Agg canvas, no pyplot state) for the report and the notebook.

::

    from reports import charts
    fig = charts.percentile_spectrum(run.samples)   # HdrHistogram-style, one line per cell
    fig.savefig("spectrum.png")
    uri = charts.fig_to_data_uri(charts.cdf(run.samples))   # "data:image/png;base64,..."
    png = charts.fig_to_png(fig)                    # bytes, e.g. for IPython.display.Image

    charts.verdict_chart(reports.verdict_table(run))   # ratio and 95 % CI per pair, vs 3x
    charts.latency_over_time(run.samples)           # p50/p99 per time bin, a panel per cell
    charts.sweep_chart(run.cells)                   # rate sweep: the hockey stick and its knee
    costs = reports.stats.cost_table(run.cells, {run.run_id: run.meta})
    charts.echo_bytes_chart(costs)                  # bytes per request: overhead vs payload
    charts.cpu_chart(costs)                         # CPU per message: server and client
    charts.memory_chart(costs)                      # server memory per connection (or user)

    charts.delivery_spectrum(run.deliveries)        # real-time: delivery latency by percentile
    charts.delivery_cdf(run.deliveries)
    charts.delivery_over_time(run.deliveries)
    charts.staleness_chart(run.deliveries, 500)     # short polling against its interval
    split = reports.stats.bytes_per_useful_split(run.samples, run.deliveries)
    charts.bytes_per_useful_chart(split)            # stacked bars: request/reply/push bytes

Colour follows the transport (HTTP blues, ws-aiohttp oranges, ws-websockets greens; the
shade tells the client apart), line style follows client and connection mode (solid:
reused connection with httpx/websockets, dash-dot: reused with aiohttp, dashed: new
connection per request with httpx, dotted: new connection with aiohttp). Only measured
samples count: warmup and failed requests are dropped (``reports.stats.measured_samples``).

Delivery charts keep the transport colours and give the line style to the delivery mode
(solid: WebSocket push, dash-dot: Server-Sent Events, dashed: long polling, dotted: short
polling); only measured deliveries count: warmup, deferred and duplicate rows are dropped
(``reports.stats.measured_deliveries``). The verdict chart is coloured by verdict instead.
"""

from __future__ import annotations

import base64
import io
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, NullLocator

from loadgen.escape import chart_text
from reports.stats import (
    CELL_KEYS,
    measured_deliveries,
    measured_samples,
    sweep_cells,
    sweep_table,
)
from reports.thresholds import RATE_REACHED

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
DELIVERY_LINESTYLES: dict[str, str] = {
    "push": "-",
    "sse": "-.",
    "long-poll": "--",
    "short-poll": ":",
}

#: Parts of the bytes-per-useful-message bars: (column, legend label, hatch, alpha).
BYTES_PARTS: tuple[tuple[str, str, str, float], ...] = (
    ("request_bytes", "client → server (polls, sends)", "", 1.0),
    ("reply_bytes", "server → client replies", "//", 0.55),
    ("push_bytes", "server → client pushes (WebSocket, SSE)", "..", 0.3),
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
    labels = [_name(r, multi) for _, r in rows.iterrows()]
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


_DELIVERY_LEGEND = "cell (line: solid push, dash-dot SSE,\ndashed long poll, dotted short poll)"


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
        label = _name(row, multi)
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
        label = _name(row, multi)
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


def fig_to_png(fig: Figure, *, dpi: int = 100) -> bytes:
    """Render ``fig`` as PNG bytes (for ``IPython.display.Image``); the figure stays usable."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


# --- the verdict ---------------------------------------------------------------------------

#: Colour per verdict in the verdict chart.
VERDICT_COLOURS: dict[str, str] = {
    "holds": "#1a7f37",
    "refuted": "#cf222e",
    "inconclusive": "#9a6700",
    "n/a": "#8c959f",
}

#: Marker per latency metric in the verdict chart.
VERDICT_MARKERS: dict[str, str] = {"p50": "o", "p99": "s", "bytes": "D", "cpu": "^"}


def verdict_chart(
    verdicts: pd.DataFrame,
    *,
    metrics: Sequence[str] = ("p50", "p99"),
    claim: float = 3.0,
    title: str | None = None,
) -> Figure:
    """The verdict at a glance: one panel per metric, one row per HTTP/WebSocket pair.

    ``verdicts`` is :func:`reports.verdict.verdict_table` output. Each row shows the ratio
    (marker) and its confidence interval (bar) on a log axis, coloured by verdict; a red
    dashed line marks the claim (3x), a grey line parity (1x: equally fast).
    """
    pairs = verdicts.drop_duplicates(["run_id", "http_cell", "ws_cell"]) if len(verdicts) else []
    n = len(pairs)
    multi = len(verdicts) and verdicts["run_id"].nunique() > 1
    fig = Figure(figsize=(12, max(3.2, 1.6 + 0.5 * n)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    labels = []
    if n:
        for _, p in pairs.iterrows():
            prefix = f"{p['scenario']}: " if multi else ""
            labels.append(chart_text(f"{prefix}{p['http_cell']}\n÷ {p['ws_cell']}"))
    y = np.arange(n)[::-1]
    for ax, metric in zip(axes, metrics, strict=True):
        rows = verdicts[verdicts["metric"] == metric] if n else verdicts
        lo_all, hi_all = [claim, 1.0], [claim, 1.0]
        for yi, (_, r) in zip(y, rows.iterrows(), strict=False):
            colour = VERDICT_COLOURS.get(str(r["verdict"]), "#8c959f")
            ratio, low, high = (float(r[c]) for c in ("ratio", "ci_low", "ci_high"))
            if np.isfinite(low) and np.isfinite(high) and low > 0:
                ax.plot([low, high], [yi, yi], color=colour, linewidth=2.5, alpha=0.8)
                lo_all.append(low)
                hi_all.append(high)
            if np.isfinite(ratio) and ratio > 0:
                ax.plot(ratio, yi, marker=VERDICT_MARKERS.get(metric, "o"), color=colour, ms=7)
                lo_all.append(ratio)
                hi_all.append(ratio)
        ax.axvline(claim, color="#cf222e", linestyle="--", linewidth=1.2)
        ax.axvline(1.0, color="#57606a", linestyle="-", linewidth=1.0, alpha=0.7)
        ax.set_xscale("log")
        lo, hi = min(lo_all) / 1.5, max(hi_all) * 1.5
        ax.set_xlim(lo, hi)
        ax.xaxis.set_major_locator(FixedLocator(_ratio_ticks(lo, hi, claim)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}×"))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.grid(True, axis="x", which="major", alpha=0.4)
        name = {"p50": "p50 latency", "p99": "p99 latency", "bytes": "bytes", "cpu": "server CPU"}
        ax.set_title(f"{name.get(metric, metric)}: HTTP ÷ WebSocket")
        ax.set_xlabel("ratio (log scale; above 1×: WebSocket better)", fontsize="small")
    axes[0].set_yticks(y, labels, fontsize="small")
    axes[0].set_ylim(-0.7, max(n, 1) - 0.3)
    if not n:
        axes[0].text(0.5, 0.5, "no HTTP/WebSocket pair", transform=axes[0].transAxes, ha="center")
    handles = [
        Line2D([], [], color=c, marker="o", linewidth=2.5, label=v)
        for v, c in VERDICT_COLOURS.items()
    ]
    handles += [
        Line2D([], [], color="#cf222e", linestyle="--", label=f"the claim: {claim:g}×"),
        Line2D([], [], color="#57606a", label="equally good: 1×"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize="small")
    fig.suptitle(
        title or "HTTP ÷ WebSocket per pair of cells: ratio (marker) and 95% confidence interval"
    )
    return fig


def _ratio_ticks(lo: float, hi: float, claim: float) -> list[float]:
    """1-3-10 ticks within [lo, hi], plus the claim, thinned to at most 8."""
    ticks = {claim, 1.0}
    for exp in range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1):
        ticks.update((10.0**exp, 3 * 10.0**exp))
    inside = sorted(t for t in ticks if lo <= t <= hi)
    while len(inside) > 8:
        inside = [t for i, t in enumerate(inside) if i % 2 == 0 or t in (claim, 1.0)]
    return inside


# --- latency over time ---------------------------------------------------------------------


def latency_over_time(
    samples: pd.DataFrame, *, bin_ms: float | None = None, title: str | None = None
) -> Figure:
    """p50 and p99 request latency per time bin of intended send time, one panel per cell.

    ``bin_ms`` defaults to 100 ms, widened (up to 2 s) until the sparsest cell has about 20
    requests per bin. The repeats of a cell are drawn one after the other (a dotted line
    marks where each starts); bins with fewer than 5 requests are left out. Only measured
    samples count. Shows warm-up effects, stalls and drift that a whole-run percentile hides.
    """
    data = measured_samples(samples)
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
    data = measured_deliveries(deliveries)
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
    keys = [k for k in ("run_id", "cell", "repeat") if k in data.columns]
    spans = data.groupby(keys, observed=True)[time_col].agg(["min", "max", "size"])
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
    groups = list(data.groupby(keys, sort=False, observed=True, dropna=False))
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
        label = _name(row, multi)
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
        _format_ms_axis(axes[0].yaxis)
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


# --- rate sweeps ---------------------------------------------------------------------------


def sweep_chart(
    cells: pd.DataFrame, sweeps: pd.DataFrame | None = None, *, title: str | None = None
) -> Figure:
    """Throughput against latency over a rate sweep: the "hockey stick", one line per group.

    ``cells`` are a run's cells (only sweep cells are drawn: see
    :func:`reports.stats.sweep_cells`), ``sweeps`` :func:`reports.stats.sweep_table` output
    (computed when omitted). x: achieved throughput; y: p99 (solid, markers) and p50
    (dotted) latency, log scale. The dashed line is each group's p99 objective; the ringed
    point the highest rate that met it (the knee), annotated; hollow markers are rates
    whose target was not reached.
    """
    sweep = sweep_cells(cells)
    sweeps = sweep_table(cells) if sweeps is None else sweeps
    fig, ax = _new_figure()
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
            if slo not in slos_drawn:
                source = "scenario" if s["slo_source"] == "scenario" else "default"
                ax.axhline(slo, color="#cf222e", linestyle="--", linewidth=1.2)
                ax.annotate(
                    f"p99 objective {slo:g} ms ({source})",
                    (0.01, slo),
                    xycoords=("axes fraction", "data"),
                    textcoords="offset points",
                    xytext=(0, 4),
                    color="#cf222e",
                    fontsize="small",
                )
                slos_drawn.add(slo)
            if np.isfinite(s["max_rate"]):
                at = group[group["target_rate"] == s["max_rate"]].iloc[0]
                ax.scatter(
                    [at["throughput_rps"]],
                    [at["p99_ms"]],
                    s=220,
                    facecolors="none",
                    edgecolors=colour,
                    linewidths=2.0,
                    zorder=4,
                )
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
    _finish(
        ax,
        drawn,
        title=title or "Throughput against latency over the rate sweep (the knee is ringed)",
        ylabel="Latency (ms, log scale)",
        log_y=True,
        legend_title="sweep group",
        empty="no rate sweep in this run",
    )
    return fig


# --- cost per useful message ---------------------------------------------------------------

#: Parts of the echo bytes bars: (column, legend label, alpha, hatch).
ECHO_BYTES_PARTS: tuple[tuple[str, str, float, str], ...] = (
    ("sent_overhead", "request: headers, framing, envelope", 1.0, ""),
    ("sent_payload", "request: payload", 0.35, ""),
    ("received_overhead", "reply: headers, framing, envelope", 0.75, "//"),
    ("received_payload", "reply: payload", 0.25, "//"),
)


def echo_bytes_chart(costs: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Wire bytes per echo request split into protocol overhead and payload, per cell.

    ``costs`` is :func:`reports.stats.cost_table` output; echo cells only. Each bar stacks
    the request's overhead (HTTP request line and headers, or WebSocket frame header, plus
    the JSON envelope) and payload, then the reply's; labelled with the total. Without a
    known payload size the bars are split by direction only.
    """
    rows = costs[(costs["per"] == "request") & costs["bytes_total"].notna()].reset_index(drop=True)
    parts = pd.DataFrame(index=rows.index)
    payload = rows["payload_bytes"].fillna(0.0)
    parts["sent_payload"] = np.minimum(payload, rows["bytes_sent"])
    parts["sent_overhead"] = rows["bytes_sent"] - parts["sent_payload"]
    parts["received_payload"] = np.minimum(payload, rows["bytes_received"])
    parts["received_overhead"] = rows["bytes_received"] - parts["received_payload"]
    fig, ax = _bar_figure(len(rows))
    y = np.arange(len(rows))[::-1]
    colours = [
        cell_style(str(r["transport"]), str(r["client"]), "")["color"] for _, r in rows.iterrows()
    ]
    left = np.zeros(len(rows))
    for column, _label, alpha, hatch in ECHO_BYTES_PARTS:
        values = parts[column].to_numpy(dtype="float64") if len(rows) else np.zeros(0)
        ax.barh(y, values, left=left, color=colours, alpha=alpha, hatch=hatch, edgecolor=colours)
        left += values
    _bar_labels(ax, y, left, [f"{v:,.0f} B" for v in left])
    ax.set_yticks(y, _row_labels(rows))
    ax.set_xlabel("TCP payload bytes per request (both directions)")
    known = rows["payload_bytes"].dropna()
    payload_text = f"{known.iloc[0]:,.0f}-byte payload each way" if len(known) else "payload"
    ax.set_title(title or f"Bytes on the wire per echo request: overhead against {payload_text}")
    handles = [
        Patch(facecolor="#6e7781", alpha=alpha, hatch=hatch, edgecolor="#57606a", label=label)
        for _c, label, alpha, hatch in ECHO_BYTES_PARTS
    ]
    _bar_legend(ax, handles, len(rows), "part (colour: transport)", "no echo cells")
    return fig


def cpu_chart(costs: pd.DataFrame, *, title: str | None = None) -> Figure:
    """CPU time per useful message, server and load generator, one pair of bars per cell.

    ``costs`` is :func:`reports.stats.cost_table` output (µs per request for echo cells,
    per useful message for real-time cells). Solid bars: the server; hatched: the client.
    """
    rows = costs[costs["cpu_us_server"].notna() | costs["cpu_us_client"].notna()]
    rows = rows.reset_index(drop=True)
    fig, ax = _bar_figure(len(rows), per_row=0.7)
    y = np.arange(len(rows))[::-1]
    colours = [
        cell_style(str(r["transport"]), str(r["client"]), "")["color"] for _, r in rows.iterrows()
    ]
    h = 0.38
    server = np.nan_to_num(rows["cpu_us_server"].to_numpy(dtype="float64"))
    client = np.nan_to_num(rows["cpu_us_client"].to_numpy(dtype="float64"))
    ax.barh(y + h / 2, server, height=h, color=colours, edgecolor=colours)
    ax.barh(y - h / 2, client, height=h, color=colours, alpha=0.35, hatch="//", edgecolor=colours)
    top = max([*server, *client, 0.0])
    for yi, s, c in zip(y, server, client, strict=True):
        ax.text(s + top * 0.01, yi + h / 2, f"{s:,.0f} µs", va="center", fontsize="small")
        ax.text(c + top * 0.01, yi - h / 2, f"{c:,.0f} µs", va="center", fontsize="small")
    ax.set_xlim(0, top * 1.15 if top > 0 else 1)
    ax.set_yticks(y, _row_labels(rows))
    per = "message" if len(rows) and (rows["per"] == "message").all() else "request or message"
    ax.set_xlabel(f"CPU time per useful {per} (µs)")
    ax.set_title(title or "CPU per useful message: server and load generator")
    handles = [
        Patch(facecolor="#6e7781", edgecolor="#57606a", label="server"),
        Patch(facecolor="#6e7781", alpha=0.35, hatch="//", edgecolor="#57606a", label="client"),
    ]
    _bar_legend(ax, handles, len(rows), "process (colour: transport)", "no CPU figures")
    return fig


def memory_chart(costs: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Server peak memory per connection (echo) or per user (real-time), one bar per cell.

    ``costs`` is :func:`reports.stats.cost_table` output; each bar is labelled with the
    peak RSS and what it was divided by. The figure includes the server's fixed baseline
    (the interpreter and libraries), so it falls as connections grow.
    """
    rows = costs[costs["rss_mb_per_connection"].notna()].reset_index(drop=True)
    fig, ax = _bar_figure(len(rows))
    y = np.arange(len(rows))[::-1]
    colours = [
        cell_style(str(r["transport"]), str(r["client"]), "")["color"] for _, r in rows.iterrows()
    ]
    values = rows["rss_mb_per_connection"].to_numpy(dtype="float64")
    ax.barh(y, values, color=colours)
    unit = ["users" if r["per"] == "message" else "connections" for _, r in rows.iterrows()]
    texts = [
        f"{v:,.2f} MB ({r['rss_mb_server']:,.1f} MB / {r['connections']:,.0f} {u})"
        for v, (_, r), u in zip(values, rows.iterrows(), unit, strict=True)
    ]
    _bar_labels(ax, y, values, texts)
    ax.set_yticks(y, _row_labels(rows))
    ax.set_xlabel("Server peak RSS per connection or user (MB, includes the process baseline)")
    ax.set_title(title or "Server memory per connection")
    if not len(rows):
        ax.text(0.5, 0.5, "no memory figures", transform=ax.transAxes, ha="center")
    return fig


def staleness_chart(
    deliveries: pd.DataFrame, poll_interval_ms: float | None, *, title: str | None = None
) -> Figure:
    """Short polling: how stale items were on arrival, against the poll interval.

    Histogram of delivery latency per short-poll cell (measured deliveries only), with the
    poll interval (solid) and half of it (dashed: the mean wait if items appear at random
    moments between polls); each cell's measured mean is dotted.
    """
    data = measured_deliveries(deliveries)
    data = data[data["delivery"] == "short-poll"] if "delivery" in data.columns else data.iloc[0:0]
    fig, ax = _new_figure()
    multi = "run_id" in data.columns and data["run_id"].nunique() > 1
    keys = [k for k in ("run_id", *CELL_KEYS) if k in data.columns]
    values_by_cell = []
    for key, group in data.groupby(keys, sort=False, observed=True, dropna=False):
        row = dict(zip(keys, key, strict=True))
        values = group["latency_ns"].to_numpy(dtype="float64") / 1e6
        label = _name(row, multi)
        values_by_cell.append(
            (label, delivery_style(str(row["transport"]), str(row["client"]), "short-poll"), values)
        )
    interval = float(poll_interval_ms) if poll_interval_ms else None
    if values_by_cell:
        top = max(float(np.percentile(v, 99.5)) for _l, _s, v in values_by_cell)
        top = max(top, (interval or 0) * 1.15)
        bins = np.linspace(0, top, 60)
        for label, style, values in values_by_cell:
            colour = style["color"]
            ax.hist(
                np.clip(values, 0, top),
                bins=bins,
                histtype="stepfilled",
                alpha=0.35,
                color=colour,
                label=f"{label} ({len(values):,} deliveries)",
            )
            mean = float(values.mean())
            ax.axvline(
                mean,
                color=colour,
                linestyle=":",
                linewidth=1.8,
                label=f"{label} mean {mean:,.0f} ms",
            )
        if interval:
            ax.axvline(
                interval, color="#24292f", linewidth=1.8, label=f"poll interval {interval:,.0f} ms"
            )
            ax.axvline(
                interval / 2,
                color="#24292f",
                linestyle="--",
                linewidth=1.2,
                label=f"interval / 2 = {interval / 2:,.0f} ms (expected mean)",
            )
        ax.set_xlim(0, top)
    ax.set_xlabel("Delivery latency: time from the item's cause to the poll that fetched it (ms)")
    ax.set_ylabel("Deliveries")
    ax.set_title(title or "Short polling: staleness of items against the poll interval")
    ax.grid(True, alpha=0.4)
    if values_by_cell:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    else:
        ax.text(0.5, 0.5, "no short-poll deliveries", transform=ax.transAxes, ha="center")
    return fig


def _name(row: Any, multi: bool) -> str:
    """A cell's label in a chart: ``RUN: CELL`` when several runs are shown; escaped."""
    return chart_text(f"{row['run_id']}: {row['cell']}" if multi else row["cell"])


def _bar_figure(n: int, per_row: float = 0.55) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(12, max(3.0, 1.3 + per_row * n)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.grid(True, axis="x", alpha=0.4)
    return fig, ax


def _row_labels(rows: pd.DataFrame) -> list[str]:
    multi = "run_id" in rows.columns and rows["run_id"].nunique() > 1
    return [_name(r, multi) for _, r in rows.iterrows()]


def _bar_labels(ax: Axes, y: np.ndarray, ends: np.ndarray, texts: Sequence[str]) -> None:
    top = float(np.nanmax(ends)) if len(ends) else 0.0
    for yi, end, text in zip(y, ends, texts, strict=True):
        ax.text(end + top * 0.01, yi, text, va="center", fontsize="small")
    ax.set_xlim(0, top * 1.3 if top > 0 else 1)


def _bar_legend(ax: Axes, handles: list, n: int, title: str, empty: str) -> None:
    if n:
        ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            fontsize="small",
            title=title,
        )
    else:
        ax.text(0.5, 0.5, empty, transform=ax.transAxes, ha="center")
