"""What a real-time part record says about deliveries and requests (no I/O).

::

    table = delivery_table(spec, tracker)          # one row per delivery (DELIVERY_SCHEMA)
    part |= delivery_record(tracker, raw.rows)     # counts, histograms, measured totals

Both drivers write these into their part records: the asyncio worker
(:mod:`loadgen.worker`) and each locust process (:mod:`loadgen.locust_engine.world`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from hdrh.histogram import HdrHistogram

from loadgen.realtime.tracker import Tracker
from loadgen.recorder import Sample, encode_histogram, new_histogram, record_clamped
from loadgen.schema import DELIVERY_SCHEMA

if TYPE_CHECKING:
    from loadgen.cellspec import CellRun

#: Real-time operations whose latency is the cell's request latency.
ACTION_KINDS = frozenset({"send", "publish", "activity"})


def delivery_table(spec: CellRun, tracker: Tracker) -> pa.Table:
    """The tracker's rows as a table of :data:`~loadgen.schema.DELIVERY_SCHEMA`."""
    rows = tracker.rows
    ident = [spec.cell, spec.transport, spec.client, spec.conn_mode, spec.delivery, spec.repeat]
    columns: dict[str, list[object]] = {name: [] for name in DELIVERY_SCHEMA.names}
    for value, name in zip(ident, DELIVERY_SCHEMA.names[:6], strict=True):
        columns[name] = [value] * len(rows)
    for name in DELIVERY_SCHEMA.names[6:]:
        columns[name] = [getattr(r, name) for r in rows]
    return pa.Table.from_pydict(columns, schema=DELIVERY_SCHEMA)


def delivery_histograms(tracker: Tracker) -> tuple[dict[str, str], int]:
    """Encoded latency histograms of measured deliveries: all, and per type; and the largest."""
    hists: dict[str, HdrHistogram] = {"all": new_histogram()}
    top = 0
    for row in tracker.rows:
        if row.warmup or row.deferred or row.duplicate:
            continue
        record_clamped(hists["all"], row.latency_ns)
        record_clamped(hists.setdefault(row.type, new_histogram()), row.latency_ns)
        top = max(top, row.latency_ns)
    return {k: encode_histogram(h) for k, h in hists.items()}, top


def delivery_record(tracker: Tracker, samples: Sequence[Sample]) -> dict[str, Any]:
    """The part-record keys of deliveries and measured requests, from ``tracker`` and the
    process's raw ``samples``."""
    measured = [s for s in samples if not s.warmup]
    hdrs, top = delivery_histograms(tracker)
    # Useful messages: deliveries, plus activity events the server accepted (their
    # value is in arriving, not in being delivered to someone).
    useful = sum(1 for r in tracker.rows if not r.warmup and not r.duplicate)
    useful += sum(1 for s in samples if s.kind == "activity" and s.ok and not s.warmup)
    return {
        "deliveries": tracker.counts(),
        "useful_measured": useful,
        "delivery_hdr": hdrs,
        "delivery_max_ns": top,
        "requests_measured": len(measured),
        "polls_measured": sum(1 for s in measured if s.kind == "poll"),
        "empty_polls_measured": sum(1 for s in measured if s.kind == "poll" and s.items == 0),
        "measured_wire_bytes": sum(s.bytes_sent + s.bytes_received for s in measured),
        "push_bytes_measured": sum(
            r.bytes for r in tracker.rows if r.via in ("push", "sse") and not r.warmup
        ),
    }
