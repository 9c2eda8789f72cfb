"""Open-loop pacing as a pure function of (elapsed, sent).

A connection that must send at ``rate`` requests per second, starting
``offset_ns`` after the run begins, asks before each request::

    pacer = Pacer(rate=100.0, offset_ns=0)
    wait = pacer.wait_ns(elapsed_ns, sent)   # sleep this long, then send
    intended = pacer.intended_ns(sent)       # latency is measured from here

The schedule never slips: a late connection sends at once (wait 0) and the
request keeps its intended time, so queueing delay shows up in latency
(coordinated-omission correction, as in wrk2).
"""

from __future__ import annotations

from dataclasses import dataclass

NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Pacer:
    """A constant-rate schedule: request ``k`` is due at ``offset + k / rate``."""

    rate: float
    offset_ns: int = 0

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0 requests/s, got {self.rate}")
        if self.offset_ns < 0:
            raise ValueError("offset_ns must be >= 0")

    def intended_ns(self, sent: int) -> int:
        """When request number ``sent`` (0-based) is due, in ns since the start."""
        return self.offset_ns + round(sent * NS_PER_S / self.rate)

    def wait_ns(self, elapsed_ns: int, sent: int) -> int:
        """How long to wait before sending request number ``sent``; never negative."""
        return max(0, self.intended_ns(sent) - elapsed_ns)


def split_rate(total_rate: float, connections: int) -> list[Pacer]:
    """Spread ``total_rate`` over ``connections`` pacers with staggered offsets.

    Connection ``i`` starts ``i / total_rate`` seconds in, so the union of
    all schedules is evenly spaced at ``total_rate``.
    """
    if connections < 1:
        raise ValueError("connections must be >= 1")
    if not total_rate > 0:
        raise ValueError(f"total_rate must be > 0 requests/s, got {total_rate}")
    per_conn = total_rate / connections
    return [
        Pacer(rate=per_conn, offset_ns=round(i * NS_PER_S / total_rate)) for i in range(connections)
    ]


def lag_block(lags: list[int]) -> dict[str, float | None]:
    """How late requests left against their schedule, in ms, from ``lags`` sorted in ns.

    ``lag_block(sorted(sent - intended ...))`` gives ``{"p50", "p99", "max"}``;
    every value is None when nothing was measured.
    """
    if not lags:
        return {"p50": None, "p99": None, "max": None}
    return {
        "p50": lags[int(0.5 * (len(lags) - 1))] / 1e6,
        "p99": lags[int(0.99 * (len(lags) - 1))] / 1e6,
        "max": lags[-1] / 1e6,
    }
