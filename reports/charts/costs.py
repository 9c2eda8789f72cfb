"""What a message costs: bytes, CPU and memory per cell, and short polling's staleness.

::

    costs = reports.costs.cost_table(run.cells, {run.run_id: run.meta})
    echo_bytes_chart(costs); cpu_chart(costs); memory_chart(costs)
    bytes_per_useful_chart(reports.costs.bytes_per_useful_split(run.samples, run.deliveries))
    staleness_chart(run.deliveries, 500)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from reports.charts.style import cell_style, delivery_style, legend_or_empty, new_figure, row_name
from reports.groups import cell_groups
from reports.stats import (
    CELL_KEYS,
    measured_deliveries,
)

#: Parts of the bytes-per-useful-message bars: (column, legend label, hatch, alpha).
BYTES_PARTS: tuple[tuple[str, str, str, float], ...] = (
    ("request_bytes", "client → server (polls, sends)", "", 1.0),
    ("reply_bytes", "server → client replies", "//", 0.55),
    ("push_bytes", "server → client pushes (WebSocket, SSE)", "..", 0.3),
)


def bytes_per_useful_chart(split: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Horizontal stacked bars of wire bytes per useful message, one bar per cell.

    ``split`` is :func:`reports.costs.bytes_per_useful_split` output: each bar stacks
    request, reply and push bytes per useful message in the cell's transport colour
    (hatching tells the parts apart) and is labelled with its total.
    """
    rows = split.dropna(subset=["total_bytes"]).reset_index(drop=True)
    height = max(3.0, 1.2 + 0.55 * len(rows))
    fig = Figure(figsize=(12, height), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    multi = "run_id" in rows.columns and rows["run_id"].nunique() > 1
    labels = [row_name(r, multi) for _, r in rows.iterrows()]
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


#: Parts of the echo bytes bars: (column, legend label, alpha, hatch).
ECHO_BYTES_PARTS: tuple[tuple[str, str, float, str], ...] = (
    ("sent_overhead", "request: headers, framing, envelope", 1.0, ""),
    ("sent_payload", "request: payload", 0.35, ""),
    ("received_overhead", "reply: headers, framing, envelope", 0.75, "//"),
    ("received_payload", "reply: payload", 0.25, "//"),
)


def echo_bytes_chart(costs: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Wire bytes per echo request split into protocol overhead and payload, per cell.

    ``costs`` is :func:`reports.costs.cost_table` output; echo cells only. Each bar stacks
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

    ``costs`` is :func:`reports.costs.cost_table` output (µs per request for echo cells,
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

    ``costs`` is :func:`reports.costs.cost_table` output; each bar is labelled with the
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
    data = measured_deliveries(deliveries, columns=["run_id", *CELL_KEYS, "delivery", "latency_ns"])
    data = data[data["delivery"] == "short-poll"] if "delivery" in data.columns else data.iloc[0:0]
    fig, ax = new_figure()
    multi = "run_id" in data.columns and data["run_id"].nunique() > 1
    keys = [k for k in ("run_id", *CELL_KEYS) if k in data.columns]
    values_by_cell = []
    for key, group in cell_groups(data, keys):
        row = dict(zip(keys, key, strict=True))
        values = group["latency_ns"].to_numpy(dtype="float64") / 1e6
        label = row_name(row, multi)
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


def _bar_figure(n: int, per_row: float = 0.55) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(12, max(3.0, 1.3 + per_row * n)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.grid(True, axis="x", alpha=0.4)
    return fig, ax


def _row_labels(rows: pd.DataFrame) -> list[str]:
    multi = "run_id" in rows.columns and rows["run_id"].nunique() > 1
    return [row_name(r, multi) for _, r in rows.iterrows()]


def _bar_labels(ax: Axes, y: np.ndarray, ends: np.ndarray, texts: Sequence[str]) -> None:
    top = float(np.nanmax(ends)) if len(ends) else 0.0
    for yi, end, text in zip(y, ends, texts, strict=True):
        ax.text(end + top * 0.01, yi, text, va="center", fontsize="small")
    ax.set_xlim(0, top * 1.3 if top > 0 else 1)


def _bar_legend(ax: Axes, handles: list, n: int, title: str, empty: str) -> None:
    legend_or_empty(ax, bool(n), title, empty, handles)
