"""The results format: what ``rtbench run`` writes and ``rtbench report`` reads.

A run folder holds these files:

- ``samples.parquet``: one row per request, columns :data:`SAMPLE_SCHEMA`.
- ``deliveries.parquet``: one row per item delivered to a user in the
  real-time workloads, columns :data:`DELIVERY_SCHEMA` (absent for echo runs).
- ``stalls.parquet``: one row per stall of a server or load generator in the
  real-time workloads (a collection or a late event-loop turn of at least 5 ms),
  columns :data:`STALL_SCHEMA` (absent for echo runs).
- ``summary.json``: ``{"schema": SCHEMA_VERSION, "cells": [...]}``, per-cell
  statistics (see :mod:`loadgen.summary`).
- ``meta.json``: ``{"schema": SCHEMA_VERSION, ...}``, environment, pinning,
  the scenario as run, start/end times and whether the run completed.

Bump :data:`SCHEMA_VERSION` on any incompatible change; readers refuse a
newer version than they know.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 2

SAMPLES_FILE = "samples.parquet"
DELIVERIES_FILE = "deliveries.parquet"
STALLS_FILE = "stalls.parquet"
SUMMARY_FILE = "summary.json"
META_FILE = "meta.json"

#: One row per request. Times are monotonic nanoseconds on the load
#: generator's clock; ``latency_ns`` is measured from the intended send
#: time (coordinated-omission corrected), ``latency_uncorrected_ns`` from
#: the actual send time. Byte counts are TCP payload bytes on the wire:
#: HTTP request/status lines, headers and bodies; WebSocket frame headers
#: and payloads. ``kind`` is ``"request"`` for echo requests, ``"connect"``
#: for a WebSocket's opening handshake, or the operation (``poll``,
#: ``send``, ``publish``, ``activity``, ...) in the real-time workloads;
#: ``items`` is how many useful items the reply carried (0: an empty poll).
SAMPLE_SCHEMA = pa.schema(
    [
        pa.field("cell", pa.string()),
        pa.field("transport", pa.string()),
        pa.field("client", pa.string()),
        pa.field("conn_mode", pa.string()),
        pa.field("repeat", pa.int32()),
        pa.field("conn", pa.int32()),
        pa.field("kind", pa.string()),
        pa.field("intended_ns", pa.int64()),
        pa.field("sent_ns", pa.int64()),
        pa.field("received_ns", pa.int64()),
        pa.field("latency_ns", pa.int64()),
        pa.field("latency_uncorrected_ns", pa.int64()),
        pa.field("bytes_sent", pa.int64()),
        pa.field("bytes_received", pa.int64()),
        pa.field("items", pa.int32()),
        pa.field("ok", pa.bool_()),
        pa.field("error", pa.string()),
        pa.field("warmup", pa.bool_()),
    ]
)

SAMPLE_COLUMNS = tuple(SAMPLE_SCHEMA.names)

#: One row per delivery: an item (message, presence change, notification)
#: reaching one recipient. ``origin_ns`` is when it was caused (the sender's
#: send, the publisher's publish, the user going offline/online) and
#: ``latency_ns = received_ns - origin_ns`` on the host's monotonic clock.
#: ``via`` is ``push`` (WebSocket), ``sse`` (Server-Sent Events) or ``poll``;
#: ``deferred`` marks recipients that were offline when it happened (counted,
#: but left out of latency statistics); ``bytes`` is the wire bytes of the push
#: frame or SSE event (with its HTTP chunk framing), or the poll reply's bytes
#: shared by the items it carried.
#: What names the cell and repeat a real-time row belongs to (deliveries, stalls).
_REALTIME_CELL_FIELDS = [
    pa.field("cell", pa.string()),
    pa.field("transport", pa.string()),
    pa.field("client", pa.string()),
    pa.field("conn_mode", pa.string()),
    pa.field("delivery", pa.string()),
    pa.field("repeat", pa.int32()),
]

DELIVERY_SCHEMA = pa.schema(
    [
        *_REALTIME_CELL_FIELDS,
        pa.field("type", pa.string()),
        pa.field("item_id", pa.int64()),
        pa.field("sender", pa.string()),
        pa.field("recipient", pa.string()),
        pa.field("seq", pa.int64()),
        pa.field("origin_ns", pa.int64()),
        pa.field("received_ns", pa.int64()),
        pa.field("latency_ns", pa.int64()),
        pa.field("via", pa.string()),
        pa.field("duplicate", pa.bool_()),
        pa.field("out_of_order", pa.bool_()),
        pa.field("warmup", pa.bool_()),
        pa.field("deferred", pa.bool_()),
        pa.field("bytes", pa.int64()),
    ]
)

DELIVERY_COLUMNS = tuple(DELIVERY_SCHEMA.names)

#: One row per stall (:mod:`servers.stalls`) from the start of a real-time repeat's clock
#: to its end: ``process`` is ``server`` or ``load generator``; ``kind`` is ``gc0``,
#: ``gc1`` or ``gc2`` (a collection of that generation, timed by ``gc.callbacks``) or
#: ``loop`` (a wake-up of the event loop that came ``duration_ns`` late, whatever held
#: it). ``start_ns`` is on the same monotonic clock as the samples and deliveries, so a
#: stall can be laid over the deliveries in flight; ``warmup`` is true before the window.
STALL_SCHEMA = pa.schema(
    [
        *_REALTIME_CELL_FIELDS,
        pa.field("process", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("start_ns", pa.int64()),
        pa.field("duration_ns", pa.int64()),
        pa.field("warmup", pa.bool_()),
    ]
)

STALL_COLUMNS = tuple(STALL_SCHEMA.names)
STALL_PROCESSES = ("server", "load generator")

WORKLOADS = ("echo", "messaging", "presence", "notifications", "activity", "mix")
DELIVERY_MODES = ("short-poll", "long-poll", "push", "sse")

#: Percentiles reported everywhere, as (label, percentile) pairs.
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9))

#: ``http``/``ws`` alone are a cell on a server started by its ``server_command``
#: (``http`` alone also names rtbench's aiohttp HTTP server); ``-uvicorn``,
#: ``-hypercorn`` and ``-granian`` are the ASGI application (servers.asgi_app) on
#: those servers.
HTTP_TRANSPORTS = ("http", "http-uvicorn", "http-hypercorn", "http-granian")
WS_TRANSPORTS = (
    "ws-aiohttp",
    "ws-websockets",
    "ws",
    "ws-uvicorn",
    "ws-hypercorn",
    "ws-granian",
)
TRANSPORTS = (*HTTP_TRANSPORTS, *WS_TRANSPORTS)
CLIENTS = ("httpx", "aiohttp", "websockets")
CONN_MODES = ("keep-alive", "new-connection")


def family(transport: str) -> str:
    """``"http"`` or ``"ws"``: which side of the claim a transport is on."""
    return "ws" if transport.startswith("ws") else "http"


#: Delivery counters of a real-time cell (``summary.json`` ``deliveries``); ``gaps``: times
#: a reader fell behind the server's inbox retention (its skipped items are lost).
#: The server's own counts of what it refused (its ``stats`` counters), per cell and
#: repeat in summary.json; None where the server did not report them.
REFUSAL_COUNTERS: tuple[str, ...] = ("limit_refusals", "unknown_recipients")

DELIVERY_COUNTS: tuple[str, ...] = (
    "expected",
    "delivered",
    "lost",
    "duplicated",
    "out_of_order",
    "unexpected",
    "gaps",
)
