"""What every chart shares: colours and line styles per cell, axes, figures, PNG output.

::

    style = cell_style("http", "aiohttp", "keep-alive")   # {"color": ..., "linestyle": ...}
    fig, ax = new_figure()
    uri = fig_to_data_uri(fig)                             # "data:image/png;base64,..."
"""

from __future__ import annotations

import base64
import io
import sys
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from loadgen.escape import chart_text
from reports.stats import (
    measured_samples,
)

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


def fig_to_data_uri(fig: Figure, *, dpi: int = 100) -> str:
    """Render ``fig`` as PNG and return ``"data:image/png;base64,..."``; closes the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    if "matplotlib.pyplot" in sys.modules:  # a pyplot-managed figure must leave its registry
        sys.modules["matplotlib.pyplot"].close(fig)
    fig.clear()
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def new_figure() -> tuple[Figure, Axes]:
    fig = Figure(figsize=(12, 6), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


DELIVERY_LEGEND = "cell (line: solid push, dash-dot SSE,\ndashed long poll, dotted short poll)"


def latency_kind(corrected: bool) -> str:
    return "corrected for coordinated omission" if corrected else "uncorrected"


def n_label(samples: pd.DataFrame) -> str:
    return f"{len(measured_samples(samples)):,} requests"


def format_ms_axis(axis: Axis) -> None:
    """Ticks at 1, 2, 5 x 10^n labelled as plain decimals (0.2, 1, 50) on a log ms axis."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def finish(
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
        format_ms_axis(ax.yaxis)
    ax.grid(True, which="major", alpha=0.4)
    legend_or_empty(ax, drawn, legend_title, empty)


def legend_or_empty(
    ax: Axes, drawn: bool, title: str, empty: str, handles: list[Any] | None = None
) -> None:
    """The legend outside the axes, to the right (it never hides a line), or, when
    nothing was drawn, ``empty`` in the middle."""
    if drawn:
        extra = {} if handles is None else {"handles": handles}
        ax.legend(
            loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", title=title, **extra
        )
    else:
        ax.text(0.5, 0.5, empty, transform=ax.transAxes, ha="center")


def fig_to_png(fig: Figure, *, dpi: int = 100) -> bytes:
    """Render ``fig`` as PNG bytes (for ``IPython.display.Image``); the figure stays usable."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def row_name(row: Any, multi: bool) -> str:
    """A cell's label in a chart: ``RUN: CELL`` when several runs are shown; escaped."""
    return chart_text(f"{row['run_id']}: {row['cell']}" if multi else row["cell"])


OBJECTIVE_COLOUR = "#cf222e"


def objective_line(ax: Axes, slo_ms: float, label: str, drawn: set[float]) -> None:
    """A dashed horizontal line at a p99 objective, labelled at the left; drawn once per
    value (``drawn`` holds the values already on ``ax``)."""
    if slo_ms in drawn:
        return
    ax.axhline(slo_ms, color=OBJECTIVE_COLOUR, linestyle="--", linewidth=1.2)
    ax.annotate(
        label,
        (0.01, slo_ms),
        xycoords=("axes fraction", "data"),
        textcoords="offset points",
        xytext=(0, 4),
        color=OBJECTIVE_COLOUR,
        fontsize="small",
    )
    drawn.add(slo_ms)


def ring(ax: Axes, x: float, y: float, colour: object) -> None:
    """An open circle around one point of a line: a sweep's knee or last passing step."""
    ax.scatter([x], [y], s=220, facecolors="none", edgecolors=colour, linewidths=2.0, zorder=4)
