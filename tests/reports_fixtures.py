"""Synthetic results folders for the reports tests.

``make_run_dir(tmp_path)`` writes samples.parquet (loadgen.schema.SAMPLE_SCHEMA),
summary.json and meta.json for the :data:`DEFAULT_CELLS` and returns the folder.
Every cell's measured latencies are one shared lognormal base (integer ns) times the
cell's ``scale``, so with integer scales every percentile ratio between two cells is
exactly the ratio of their scales. Warmup and failed rows get absurd latencies
(:data:`JUNK_NS`) so any statistic that fails to exclude them is visibly wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from loadgen.schema import (
    META_FILE,
    SAMPLE_SCHEMA,
    SAMPLES_FILE,
    SCHEMA_VERSION,
    SUMMARY_FILE,
    family,
)

JUNK_NS = 10_000_000_000  # 10 s: warmup and failed rows
LABELS = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9), ("max", 100.0))


@dataclass(frozen=True)
class CellSpec:
    """One synthetic cell; latency = shared base * ``scale``."""

    transport: str
    client: str
    conn_mode: str
    scale: float = 1.0
    cpu_util_client: float = 0.5
    failed: int = 0  # failed (ok=False) rows per repeat
    status: str = "ok"

    @property
    def name(self) -> str:
        return f"{self.transport}/{self.client}/{self.conn_mode}"


DEFAULT_CELLS: tuple[CellSpec, ...] = (
    CellSpec("http", "httpx", "keep-alive", scale=2),
    CellSpec("http", "aiohttp", "new-connection", scale=6),
    CellSpec("ws-aiohttp", "aiohttp", "persistent", scale=1),
    CellSpec("ws-websockets", "websockets", "persistent", scale=1),
)


def base_latencies_ns(n: int, seed: int = 0) -> np.ndarray:
    """``n`` lognormal latencies around 0.3 ms with a heavy-ish tail, as int64 ns >= 1000."""
    rng = np.random.default_rng(seed)
    values = rng.lognormal(mean=np.log(300_000), sigma=0.5, size=n)
    return np.maximum(values.astype("int64"), 1000)


def make_run_dir(
    tmp_path: Path,
    cells: Sequence[CellSpec] = DEFAULT_CELLS,
    *,
    run_id: str = "20261129-015000-quick",
    scenario_name: str = "quick",
    n: int = 2000,
    repeats: int = 2,
    warmup: int = 50,
    seed: int = 0,
    complete: bool = True,
    drop_columns: Sequence[str] = (),
    summary_overrides: Mapping[str, Any] | None = None,
    meta_overrides: Mapping[str, Any] | None = None,
) -> Path:
    """Write a results folder ``tmp_path / run_id`` and return it.

    ``n`` measured requests per cell, split over ``repeats``; ``drop_columns`` removes
    sample columns (to test validation); the overrides are merged into the JSON files.
    """
    folder = tmp_path / run_id
    folder.mkdir(parents=True)
    base = base_latencies_ns(n, seed)
    columns: dict[str, list[Any]] = {name: [] for name in SAMPLE_SCHEMA.names}
    summary_cells = []
    for spec in cells:
        measured = np.round(base * spec.scale).astype("int64")
        per_repeat = []
        for rep, chunk in enumerate(np.array_split(measured, repeats)):
            _add_rows(columns, spec, rep, chunk, warmup)
            per_repeat.append(
                {"repeat": rep, **_stats(spec, chunk, len(chunk), spec.failed, 5.0 / repeats)}
            )
        entry = {
            "cell": spec.name,
            "transport": spec.transport,
            "client": spec.client,
            "conn_mode": spec.conn_mode,
            "family": family(spec.transport),
            "load_model": "closed",
            "connections": 8,
            "target_rate": None,
            "status": spec.status,
            "failures": ["ConnectionResetError: peer reset"] if spec.failed else [],
            "repeats": repeats,
            **_stats(spec, measured, len(measured), spec.failed * repeats, 5.0),
            "rss_mb": {"server": 40.1, "client": 60.2},
            "per_repeat": per_repeat,
        }
        summary_cells.append(entry)
    table = pa.Table.from_pydict(columns, schema=SAMPLE_SCHEMA)
    if drop_columns:
        table = table.drop_columns(list(drop_columns))
    pq.write_table(table, folder / SAMPLES_FILE)
    summary = {
        "schema": SCHEMA_VERSION,
        "run_id": run_id,
        "scenario": scenario_name,
        "complete": complete,
        "cells": summary_cells,
        **(summary_overrides or {}),
    }
    meta = {
        "schema": SCHEMA_VERSION,
        "run_id": run_id,
        "complete": complete,
        "started_at": "2026-11-29T01:50:00+00:00",
        "ended_at": "2026-11-29T01:52:10+00:00",
        "scenario": {
            "name": scenario_name,
            "duration_s": 5.0,
            "warmup_s": 1.0,
            "repeats": repeats,
            "cells": [spec.name for spec in cells],
        },
        "environment": {
            "python": "3.12.3",
            "packages": {
                "aiohttp": "3.10.5",
                "httpx": "0.27.2",
                "websockets": "13.1",
                "uvloop": "0.20.0",
                "pandas": "3.0.0",
            },
            "cpu_model": "Synthetic CPU @ 3.0GHz",
            "cpu_count": 2,
            "platform": "Linux-6.8-x86_64",
            "git_commit": "f42e18e",
            "hostname": "bench-1",
        },
        "pinning": {"server_cpus": [0], "client_cpus": [1], "placement": "split"},
        **(meta_overrides or {}),
    }
    (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (folder / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return folder


def _add_rows(
    columns: dict[str, list[Any]], spec: CellSpec, rep: int, latencies: np.ndarray, warmup: int
) -> None:
    """Append warmup rows, measured rows and failed rows for one repeat."""
    kinds = (
        [(JUNK_NS, True, True)] * warmup
        + [(int(v), True, False) for v in latencies]
        + [(JUNK_NS, False, False)] * spec.failed
    )
    is_http = family(spec.transport) == "http"
    t = 1_000_000_000 * (rep + 1)
    for i, (latency, ok, is_warmup) in enumerate(kinds):
        uncorrected = latency * 9 // 10
        intended = t + i * 1_000_000
        row = {
            "cell": spec.name,
            "transport": spec.transport,
            "client": spec.client,
            "conn_mode": spec.conn_mode,
            "repeat": rep,
            "conn": i % 8,
            "kind": "request",
            "intended_ns": intended,
            "sent_ns": intended + latency - uncorrected,
            "received_ns": intended + latency,
            "latency_ns": latency,
            "latency_uncorrected_ns": uncorrected,
            "bytes_sent": 180 if is_http else 30,
            "bytes_received": 170 if is_http else 28,
            "items": 1 if ok else 0,
            "ok": ok,
            "error": None if ok else "ConnectionResetError: peer reset",
            "warmup": is_warmup,
        }
        for name, value in row.items():
            columns[name].append(value)


def _stats(
    spec: CellSpec, latencies_ns: np.ndarray, count: int, errors: int, duration_s: float
) -> dict[str, Any]:
    """The summary.json statistics of one cell or repeat."""
    ms = latencies_ns / 1e6
    uncorrected_ms = (latencies_ns * 9 // 10) / 1e6
    is_http = family(spec.transport) == "http"
    return {
        "count": count,
        "errors": errors,
        "duration_s": duration_s,
        "throughput_rps": count / duration_s,
        "latency_ms": {label: float(np.percentile(ms, q)) for label, q in LABELS},
        "latency_uncorrected_ms": {
            label: float(np.percentile(uncorrected_ms, q)) for label, q in LABELS
        },
        "cpu_s_per_request": {"server": 0.0001 * spec.scale, "client": 0.0003 * spec.scale},
        "cpu_util": {"server": 0.45, "client": spec.cpu_util_client},
        "bytes_per_request": {
            "sent": 180.0 if is_http else 30.0,
            "received": 170.0 if is_http else 28.0,
        },
    }
