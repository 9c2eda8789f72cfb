"""One repeat of one synthetic real-time cell, written as a worker writes its part files.

::

    part = write_part(out, index=0, cell=CELLS[0], repeat=0, rows=1_000_000, seed=1)

writes ``out/000-CELL-r0.parquet`` (samples, through RawRecorder) and
``out/000-CELL-r0.deliveries.parquet`` (through delivery_table) and returns the part record
the orchestrator hands to :func:`loadgen.summary.build_summary`.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from loadgen.realtime.part import ACTION_KINDS, delivery_table
from loadgen.realtime.tracker import Delivery
from loadgen.recorder import (
    LatencyHistograms,
    RawRecorder,
    Sample,
    encode_histogram,
    new_histogram,
    record_batch,
)
from loadgen.run.files import slug


def _cell(transport: str, client: str, delivery: str) -> dict[str, Any]:
    return {
        "cell": f"{transport}-{delivery}",
        "part": None,
        "transport": transport,
        "client": client,
        "conn_mode": "keep-alive",
        "delivery": delivery,
        "workload": "messaging",
        "load_model": "open",
        "connections": USERS,
        "target_rate": None,
        "payload_bytes": 256,
        "tls": None,
        "profile": None,
        "rtt_ms": None,
        "sweep_group": None,
        "slo_p99_ms": None,
    }


USERS = 10_000
REPEATS = 2
#: Five cells: the HTTP delivery modes against WebSocket push on both servers.
CELLS: tuple[dict[str, Any], ...] = (
    _cell("http", "aiohttp", "short-poll"),
    _cell("http", "aiohttp", "long-poll"),
    _cell("http", "aiohttp", "sse"),
    _cell("ws-aiohttp", "aiohttp", "push"),
    _cell("ws-websockets", "websockets", "push"),
)
#: Median latency of a send and of a delivery (ms) per delivery mode.
_MEDIAN_MS = {"short-poll": (4.0, 260.0), "long-poll": (4.0, 12.0), "sse": (4.0, 6.0)}
_PUSH_MEDIAN_MS = (1.5, 2.5)
WINDOW_S = 60.0
WARMUP_S = 6.0
#: Rows made at a time: keeps the Python objects of one chunk, not of a whole repeat.
CHUNK = 65_536
_NAMES = [f"u{i}" for i in range(USERS)]


def write_part(
    out: Path, index: int, cell: dict[str, Any], repeat: int, rows: int, seed: int
) -> dict[str, Any]:
    """Write one repeat's part files in ``out``; return its part record."""
    stem = f"{index:03d}-{slug(cell['cell'])}-r{repeat}"
    rng = np.random.default_rng([seed, index])
    delivery = cell["delivery"]
    send_ms, deliver_ms = _MEDIAN_MS.get(delivery, _PUSH_MEDIAN_MS)
    t0 = 1_000_000_000 * (1 + index * 100)
    raw, hist = RawRecorder(), LatencyHistograms(ACTION_KINDS)
    spec = SimpleNamespace(**{k: cell[k] for k in ("cell", "transport", "client", "conn_mode")})
    spec.delivery, spec.repeat = delivery, repeat
    tables: list[pa.Table] = []
    totals = _Totals()
    done = 0
    while done < rows:
        n = min(CHUNK, rows - done)
        for sample in _samples(rng, cell, repeat, n, t0, send_ms, delivery):
            raw.record(sample)
            hist.record(sample)
            totals.sample(sample)
        got = _deliveries(rng, n, t0, deliver_ms, delivery)
        tables.append(delivery_table(spec, SimpleNamespace(rows=got)))  # type: ignore[arg-type]
        totals.deliveries(got)
        done += n
    pq.write_table(raw.to_table(), out / f"{stem}.parquet")
    pq.write_table(pa.concat_tables(tables), out / f"{stem}.deliveries.parquet")
    return {
        "cell": cell["cell"],
        "repeat": repeat,
        "part": stem,
        "spec": {"repeat": repeat, "cell": cell["cell"]},
        "loop": "uvloop",
        "window_s": WINDOW_S,
        **hist.as_record(),
        "send_lag_ms": {"p50": 0.05, "p99": 0.4, "max": 2.0},
        "procs": {
            "server_cpu_s": 40.0 + 2 * index,
            "client_cpu_s": 30.0 + index,
            "client_cpu_count": 1,
            "server_rss_mb": 180.0 + index,
            "server_rss_before_users_mb": 40.0,
            "client_rss_mb": 300.0,
        },
        "stats": {"users": USERS, "errors_by_code": {}, "reconnects": 0, "late_steps": 0},
        "server_counters": {"limit_refusals": 0, "unknown_recipients": 0},
        **totals.record(),
    }


def _lognormal(rng: np.random.Generator, n: int, median_ms: float) -> np.ndarray:
    return (rng.lognormal(np.log(median_ms * 1e6), 0.6, n)).astype(np.int64)


def _samples(
    rng: np.random.Generator,
    cell: dict[str, Any],
    repeat: int,
    n: int,
    t0: int,
    send_ms: float,
    delivery: str,
) -> list[Sample]:
    """``n`` requests: sends, and polls in the poll modes; times spread over the run."""
    span = int((WINDOW_S + WARMUP_S) * 1e9)
    intended = t0 + np.sort(rng.integers(0, span, n))
    polls = delivery in ("short-poll", "long-poll")
    is_poll = rng.random(n) < 0.6 if polls else np.zeros(n, bool)
    median = np.where(is_poll, 25.0 if delivery == "long-poll" else 3.0, send_ms) * 1e6
    latency = (median * rng.lognormal(0.0, 0.6, n)).astype(np.int64)
    lag = rng.exponential(50_000, n).astype(np.int64)
    empty = is_poll & (rng.random(n) < (0.7 if delivery == "short-poll" else 0.1))
    items = np.where(is_poll, np.where(empty, 0, rng.integers(1, 4, n)), 1)
    received = rng.integers(180, 900, n)
    columns = (
        np.where(is_poll, "poll", "send").tolist(),
        intended.tolist(),
        (intended + lag).tolist(),
        (intended + latency).tolist(),
        latency.tolist(),
        (latency - np.minimum(lag, latency)).tolist(),
        rng.integers(300, 420, n).tolist(),
        received.tolist(),
        items.tolist(),
        (intended < t0 + int(WARMUP_S * 1e9)).tolist(),
        rng.integers(0, USERS, n).tolist(),
    )
    ident = (cell["cell"], cell["transport"], cell["client"], cell["conn_mode"], repeat)
    return [
        Sample(*ident, conn, kind, i, s, r, lat, unc, bs, br, it, True, None, warm)
        for kind, i, s, r, lat, unc, bs, br, it, warm, conn in zip(*columns, strict=True)
    ]


def _deliveries(
    rng: np.random.Generator, n: int, t0: int, median_ms: float, delivery: str
) -> list[Delivery]:
    """``n`` deliveries of messages between random users."""
    span = int((WINDOW_S + WARMUP_S) * 1e9)
    origin = t0 + np.sort(rng.integers(0, span, n))
    latency = _lognormal(rng, n, median_ms)
    via = {"sse": "sse", "push": "push"}.get(delivery, "poll")
    senders = rng.integers(0, USERS, n).tolist()
    recipients = rng.integers(0, USERS, n).tolist()
    ids = rng.integers(0, 2**40, n).tolist()
    warm = (origin < t0 + int(WARMUP_S * 1e9)).tolist()
    sizes = rng.integers(280, 360, n).tolist()
    return [
        Delivery(
            "message", i, _NAMES[s], _NAMES[r], k, o, o + lat, lat, via, False, False, w, False, b
        )
        for k, (i, s, r, o, lat, w, b) in enumerate(
            zip(
                ids,
                senders,
                recipients,
                origin.tolist(),
                latency.tolist(),
                warm,
                sizes,
                strict=True,
            )
        )
    ]


class _Totals:
    """The part-record keys the worker computes from its samples and deliveries."""

    def __init__(self) -> None:
        self.requests = self.polls = self.empty = self.wire = 0
        self.delivered = self.useful = self.push_bytes = 0
        self.top = 0
        self.latencies: list[np.ndarray] = []

    def sample(self, s: Sample) -> None:
        if s.warmup:
            return
        self.requests += 1
        self.wire += s.bytes_sent + s.bytes_received
        if s.kind == "poll":
            self.polls += 1
            self.empty += s.items == 0

    def deliveries(self, rows: list[Delivery]) -> None:
        measured = [r for r in rows if not r.warmup]
        self.delivered += len(rows)
        self.useful += len(measured)
        self.push_bytes += sum(r.bytes for r in measured if r.via in ("push", "sse"))
        lat = np.fromiter((r.latency_ns for r in measured), np.int64, len(measured))
        self.latencies.append(lat)
        self.top = max(self.top, int(lat.max()) if len(lat) else 0)

    def record(self) -> dict[str, Any]:
        hist = new_histogram()
        # The same counts as the worker's record_clamped per row, in one pass.
        record_batch(hist, np.concatenate(self.latencies))
        text = encode_histogram(hist)
        return {
            "deliveries": {
                "expected": self.delivered,
                "delivered": self.delivered,
                "lost": 0,
                "duplicated": 0,
                "out_of_order": 0,
                "unexpected": 0,
                "gaps": 0,
            },
            "useful_measured": self.useful,
            "delivery_hdr": {"all": text, "message": text},
            "delivery_max_ns": self.top,
            "requests_measured": self.requests,
            "polls_measured": self.polls,
            "empty_polls_measured": self.empty,
            "measured_wire_bytes": self.wire,
            "push_bytes_measured": self.push_bytes,
        }
