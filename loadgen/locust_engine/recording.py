"""How a locust process records what its users see: samples, deliveries, locust's events.

:class:`Recording` is a part of :class:`~loadgen.locust_engine.world.World`; the users
call its methods through their world::

    world.echo(sample, "POST", "/rpc echo")   # an echo_sample row (request or connect)
    world.on_request(op, sent, received, bytes_sent, bytes_received, error, items)
    world.on_item(recipient, seq, item, received, via, nbytes)
"""

from __future__ import annotations

from typing import Any

from loadgen.cellspec import CellRun
from loadgen.engine import EngineStats
from loadgen.realtime.samples import build_sample
from loadgen.realtime.stats import RealtimeStats
from loadgen.realtime.tracker import Tracker
from loadgen.recorder import LatencyHistograms, RawRecorder, Sample

#: Appended to locust's request names for what happens before the measured window.
WARMUP_SUFFIX = " [warm-up]"


class RequestFailed(Exception):
    """What locust's stats record as a failure: the rtbench error code."""


class Recording:
    """Samples and deliveries kept, and reported to locust with their real latency."""

    spec: CellRun
    events: Any
    interactive: bool
    requests: int
    errors: int
    raw: RawRecorder
    hist: LatencyHistograms
    tracker: Tracker
    echo_stats: EngineStats
    rt_stats: RealtimeStats
    warmup_end_ns: int

    def report(
        self,
        request_type: str,
        name: str,
        latency_ns: int,
        nbytes: int,
        error: str | None,
        warmup: bool,
    ) -> None:
        """Fire locust's request event with a real, sub-millisecond response time."""
        if self.events is None:
            return
        self.events.request.fire(
            request_type=request_type,
            name=name + WARMUP_SUFFIX if warmup else name,
            response_time=latency_ns / 1e6,
            response_length=nbytes,
            exception=RequestFailed(error) if error else None,
            context={},
        )

    def record(self, sample: Sample) -> None:
        """Keep one sample (raw row and histograms) unless this is the interactive web UI."""
        self.requests += 1
        if not sample.ok:
            self.errors += 1
        if self.interactive:
            return
        self.raw.record(sample)
        self.hist.record(sample)

    def echo(self, sample: Sample, request_type: str, name: str) -> None:
        """Record one echo request or WebSocket connect, as the asyncio engine's ``fire``."""
        self.echo_stats.count(sample)
        self.record(sample)
        self.report(
            request_type,
            name,
            sample.latency_ns,
            sample.bytes_received,
            sample.error,
            sample.warmup,
        )

    def on_request(
        self, op: str, sent: int, received: int, bs: int, br: int, error: str | None, items: int
    ) -> None:
        """A real-time operation finished (see :data:`loadgen.realtime.conns.OnRequest`)."""
        spec = self.spec
        self.rt_stats.count_request(op, error, items)
        sample = build_sample(
            spec,
            op,
            sent,
            received,
            self.warmup_end_ns,
            bytes_sent=bs,
            bytes_received=br,
            items=items,
            error=error,
        )
        self.record(sample)
        if spec.delivery == "push":
            request_type, name = "WS", f"ws {op}"
        elif op == "poll":
            request_type, name = "GET", f"/inbox {spec.delivery}"
        else:
            request_type, name = "POST", f"/rpc {op}"
        self.report(request_type, name, received - sent, br, error, sample.warmup)

    def on_connect(self, user: str, t0: int, t1: int, error: str | None) -> None:
        """A person's WebSocket or event stream opened (or failed to)."""
        sample = build_sample(self.spec, "connect", t0, t1, self.warmup_end_ns, error=error)
        self.record(sample)
        if self.spec.delivery == "sse":
            self.report("SSE", "sse connect", t1 - t0, 0, error, sample.warmup)
        else:
            self.report("WS", "ws connect", t1 - t0, 0, error, sample.warmup)

    def on_item(
        self, recipient: str, seq: int, item: Any, received: int, via: str, nbytes: int
    ) -> None:
        """An item reached ``recipient``: account for it and report its real latency."""
        tracker = self.tracker
        row = tracker.received(
            recipient, seq, tracker.key_of(recipient, item), received, via, nbytes
        )
        if self.interactive and len(tracker.rows) > 100_000:
            tracker.rows.clear()
        if not isinstance(item, dict):
            return
        kind = item.get("type")
        # Messages and notifications carry their sender's send time ("ts", the same
        # monotonic clock: the sender is in this process); a presence change's origin
        # is when its user left or came back, which only the tracker knows.
        ts = item.get("ts")
        if kind in ("message", "notification") and isinstance(ts, int) and 0 < ts < received:
            latency = received - ts
        elif row is not None:
            latency = row.latency_ns
        else:
            return
        label = str(kind)
        if row is not None and row.type:
            label = row.type
        name = f"{label} delivery"
        if row is not None and row.duplicate:
            name += " (duplicate)"
        elif row is not None and row.deferred:
            name += " (deferred)"
        elif row is None:
            name += " (unexpected)"
        warmup = row.warmup if row is not None else received < self.warmup_end_ns
        self.report(
            "PUSH" if via == "push" else "POLL", name, max(latency, 1), nbytes, None, warmup
        )
