"""The verdict chart: each pair's ratio and 95 % interval against the 3x claim.

::

    verdict_chart(reports.verdict_table(run))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from loadgen.escape import chart_text

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
