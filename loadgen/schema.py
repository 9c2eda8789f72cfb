"""The results format: what ``rtbench run`` writes and ``rtbench report`` reads.

A run folder holds three files:

- ``samples.parquet``: one row per request, columns :data:`SAMPLE_SCHEMA`.
- ``summary.json``: ``{"schema": SCHEMA_VERSION, "cells": [...]}``, per-cell
  statistics (see :mod:`loadgen.summary`).
- ``meta.json``: ``{"schema": SCHEMA_VERSION, ...}``, environment, pinning,
  the scenario as run, start/end times and whether the run completed.

Bump :data:`SCHEMA_VERSION` on any incompatible change; readers refuse a
newer version than they know.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

SAMPLES_FILE = "samples.parquet"
SUMMARY_FILE = "summary.json"
META_FILE = "meta.json"

#: One row per request. Times are monotonic nanoseconds on the load
#: generator's clock; ``latency_ns`` is measured from the intended send
#: time (coordinated-omission corrected), ``latency_uncorrected_ns`` from
#: the actual send time. Byte counts are TCP payload bytes on the wire:
#: HTTP request/status lines, headers and bodies; WebSocket frame headers
#: and payloads. ``kind`` is ``"request"`` for request/response samples.
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
        pa.field("ok", pa.bool_()),
        pa.field("error", pa.string()),
        pa.field("warmup", pa.bool_()),
    ]
)

SAMPLE_COLUMNS = tuple(SAMPLE_SCHEMA.names)

#: Percentiles reported everywhere, as (label, percentile) pairs.
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9))

TRANSPORTS = ("http", "ws-aiohttp", "ws-websockets")
HTTP_TRANSPORTS = ("http",)
WS_TRANSPORTS = ("ws-aiohttp", "ws-websockets")
CLIENTS = ("httpx", "aiohttp", "websockets")
CONN_MODES = ("keep-alive", "new-connection")


def family(transport: str) -> str:
    """``"http"`` or ``"ws"``: which side of the claim a transport is on."""
    return "ws" if transport.startswith("ws") else "http"
