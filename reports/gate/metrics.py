"""What ``rtbench compare`` can check: each metric, its unit, which way is worse, and
how to read it from a cell or repeat row (``run.cells``, ``run.repeats``).

::

    metric = METRICS["p99"]
    metric.value(row, realtime)          # float or None
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports.columns import delivery_col, latency_col

#: A metric's value in a cell or repeat row (``run.cells``, ``run.repeats``): (row, real-time).
Getter = Callable[[pd.Series, bool], float | None]


def number(value: object) -> float | None:
    """A finite-or-infinite float of a numeric cell value; None for a missing one."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return None
    result = float(value)
    return None if math.isnan(result) else result


def _column(name: str) -> Getter:
    return lambda entry, realtime: number(entry.get(name))


def _cost(side: str) -> Getter:
    """Per request on echo cells, per useful message on real-time cells."""
    echo, rt = _column(f"cpu_s_per_request_{side}"), _column(f"cpu_s_per_useful_message_{side}")
    return lambda entry, realtime: rt(entry, realtime) if realtime else echo(entry, realtime)


def _bytes(entry: pd.Series, realtime: bool) -> float | None:
    if realtime:
        return number(entry.get("bytes_per_useful_message"))
    sent = number(entry.get("bytes_per_request_sent"))
    received = number(entry.get("bytes_per_request_received"))
    return None if sent is None or received is None else sent + received


@dataclass(frozen=True)
class Metric:
    """Something ``compare`` can check. ``worse`` is +1 when higher is worse, -1 when lower."""

    name: str
    help: str
    unit: str
    worse: int
    get: Getter
    count: bool = False
    realtime_only: bool = False
    quantile: float | None = None
    raw: str | None = None  # "samples" or "deliveries": bootstrap the percentile from raw rows

    def value(self, entry: pd.Series, realtime: bool) -> float | None:
        return self.get(entry, realtime)


def _latency(label: str, q: float, delivery: bool = False) -> Metric:
    """Request latency at quantile ``q``; with ``delivery``, real-time delivery latency."""
    if delivery:
        name, what, col = f"delivery_{label}", "delivery", delivery_col(label)
    else:
        name, what, col = label, "request", latency_col(label)
    return Metric(
        name,
        f"{what} latency {label} (ms)" + (", real-time cells" if delivery else ""),
        "ms",
        +1,
        _column(col),
        realtime_only=delivery,
        quantile=q,
        raw="deliveries" if delivery else "samples",
    )


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        _latency("p50", 0.50),
        _latency("p90", 0.90),
        _latency("p99", 0.99),
        _latency("p99.9", 0.999),
        Metric("throughput", "requests per second", "rps", -1, _column("throughput_rps")),
        Metric(
            "cpu_server",
            "server CPU per request (echo) or per useful message (real-time)",
            "cpu",
            +1,
            _cost("server"),
        ),
        Metric(
            "cpu_client",
            "load-generator CPU per request (echo) or per useful message (real-time)",
            "cpu",
            +1,
            _cost("client"),
        ),
        Metric(
            "bytes",
            "wire bytes per request (echo) or per useful message (real-time)",
            "bytes",
            +1,
            _bytes,
        ),
        _latency("p50", 0.50, delivery=True),
        _latency("p99", 0.99, delivery=True),
        Metric(
            "lost",
            "lost deliveries in the current run (absolute count)",
            "count",
            +1,
            _column("deliveries_lost"),
            count=True,
            realtime_only=True,
        ),
        Metric(
            "errors",
            "failed requests in the current run (absolute count)",
            "count",
            +1,
            _column("errors"),
            count=True,
        ),
    )
}
