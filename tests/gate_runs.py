"""Synthetic results folders for the gate's tests (``rtbench compare`` and ``rtbench
baseline``), with known answers.

::

    base, cur = two_runs(tmp_path, {HTTP: {"latency": latencies(1)}},
                         {HTTP: {"latency": latencies(2, scale=1.3)}})   # a 30 % slowdown
    result = cli(str(base), str(cur), "-r", "p99:+15%")

A folder holds summary.json, meta.json and, when wanted, samples.parquet, written from
latencies drawn with a fixed seed (:func:`latencies`), so every expected verdict is known
in advance.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from loadgen.cli import app
from loadgen.schema import SAMPLE_SCHEMA, SAMPLES_FILE, SCHEMA_VERSION

HTTP = "http/aiohttp/keep-alive"
WS = "ws-websockets/websockets/persistent"
RT = "ws-aiohttp/aiohttp/persistent"

ENVIRONMENT = {
    "python": "3.11.7",
    "python_implementation": "CPython",
    "cpu_model": "Test CPU 9000",
    "cpu_count": 2,
    "hostname": "test",
    "kernel": "6.0",
    "git_commit": "0123456789abcdef0123456789abcdef01234567",
    "git_dirty": False,
    "packages": {"aiohttp": "3.9.0"},
}
SCENARIO = {
    "scenario": {
        "name": "synthetic",
        "workload": "echo",
        "repeats": 3,
        "duration_s": 2.0,
        "payload_bytes": 64,
        "client_loop": "uvloop",
    },
    "load": {"model": "open", "connections": 4, "rate": 400.0, "think_time_ms": 0.0},
    "server": {"max_message_bytes": 1048576, "delay_ms": 0.0},
    "realtime": None,
    "cells": [],
}


def _pct(values: np.ndarray, q: float) -> float:
    ordered = np.sort(values)
    return float(ordered[max(1, math.ceil(q * len(ordered))) - 1])


def _latency_block(ns: np.ndarray) -> dict[str, float]:
    ms = ns / 1e6
    return {
        "p50": _pct(ms, 0.5),
        "p90": _pct(ms, 0.9),
        "p99": _pct(ms, 0.99),
        "p99.9": _pct(ms, 0.999),
        "max": float(ms.max()),
    }


def _stats(
    ns: np.ndarray, throughput: float, cpu: float, lost: int | None, errors: int
) -> dict[str, Any]:
    count = len(ns)
    stats: dict[str, Any] = {
        "count": count,
        "errors": errors,
        "duration_s": count / throughput,
        "throughput_rps": throughput,
        "latency_ms": _latency_block(ns),
        "cpu_s_per_request": {"server": cpu, "client": 2 * cpu},
        "bytes_per_request": {"sent": 265.0, "received": 273.0},
    }
    if lost is not None:
        stats["deliveries"] = {"expected": count + lost, "delivered": count, "lost": lost}
        stats["delivery_latency_ms"] = _latency_block(ns * 3)
        stats["per_useful_message"] = {
            "bytes": 300.0,
            "requests": 1.0,
            "cpu_s_server": cpu,
            "cpu_s_client": cpu,
        }
    return stats


def make_run(
    folder: Path,
    cells: dict[str, dict[str, Any]],
    *,
    samples: bool = True,
    schema: int = SCHEMA_VERSION,
    complete: bool = True,
    environment: dict[str, Any] | None = None,
    scenario: dict[str, Any] | None = None,
    parts: dict[str, Any] | None = None,
) -> Path:
    """A results folder whose cells are given as ``{name: spec}``.

    A spec has ``latency`` (one array of ns per repeat), and optionally per-repeat
    ``throughput``, ``cpu`` lists, ``lost`` (real-time cell) and ``errors``.
    """
    folder.mkdir(parents=True)
    rows: dict[str, list[Any]] = {name: [] for name in SAMPLE_SCHEMA.names}
    entries = []
    for name, spec in cells.items():
        reps = spec["latency"]
        k = len(reps)
        tput = spec.get("throughput", [400.0] * k)
        cpu = spec.get("cpu", [1e-4] * k)
        lost = spec.get("lost")
        per_repeat = [{"repeat": r, **_stats(reps[r], tput[r], cpu[r], lost, 0)} for r in range(k)]
        every = np.concatenate(reps)
        transport = name.split("/")[0]
        entries.append(
            {
                "cell": name,
                "transport": transport,
                "delivery": "push" if lost is not None else "request",
                "status": "ok",
                "repeats": k,
                "repeats_ok": k,
                **_stats(every, float(np.mean(tput)), float(np.mean(cpu)), lost, 0),
                "errors": spec.get("errors", 0),
                "per_repeat": per_repeat,
            }
        )
        for r, values in enumerate(reps):
            n = len(values)
            for col, value in (
                ("cell", name),
                ("transport", transport),
                ("client", "aiohttp"),
                ("conn_mode", "keep-alive"),
                ("repeat", r),
                ("conn", 0),
                ("kind", "request"),
                ("intended_ns", 0),
                ("sent_ns", 0),
                ("received_ns", 0),
                ("bytes_sent", 265),
                ("bytes_received", 273),
                ("items", 0),
                ("ok", True),
                ("error", None),
                ("warmup", False),
            ):
                rows[col].extend([value] * n)
            rows["latency_ns"].extend(values.astype("int64").tolist())
            rows["latency_uncorrected_ns"].extend(values.astype("int64").tolist())
    if samples:
        pq.write_table(pa.Table.from_pydict(rows, schema=SAMPLE_SCHEMA), folder / SAMPLES_FILE)
    summary = {
        "schema": schema,
        "run_id": folder.name,
        "scenario": "synthetic",
        "complete": complete,
        "cells": entries,
    }
    meta = {
        "schema": schema,
        "run_id": folder.name,
        "complete": complete,
        "scenario": scenario or SCENARIO,
        "environment": environment or ENVIRONMENT,
        "pinning": {"placement": "split", "server_cpus": [0], "client_cpus": [1]},
    }
    if parts is not None:
        meta["parts"] = parts
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def latencies(
    seed: int, scale: float = 1.0, repeats: int = 3, n: int = 4000, wobble: float = 0.0
) -> list[np.ndarray]:
    """Lognormal latencies around 0.3 ms; ``wobble`` scales each repeat by N(1, wobble)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(repeats):
        factor = scale * (1.0 + wobble * rng.standard_normal())
        out.append(np.round(rng.lognormal(math.log(300_000), 0.35, n) * factor))
    return out


def two_runs(
    tmp_path: Path,
    base: dict[str, dict[str, Any]],
    cur: dict[str, dict[str, Any]],
    **kwargs: Any,
) -> tuple[Path, Path]:
    base_kwargs, cur_kwargs = kwargs.pop("base_kwargs", {}), kwargs.pop("cur_kwargs", {})
    b = make_run(tmp_path / "base", base, **base_kwargs, **kwargs)
    c = make_run(tmp_path / "cur", cur, **cur_kwargs, **kwargs)
    return b, c


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, ["compare", *args])


def rows_of(folder: Path) -> list[dict[str, Any]]:
    return json.loads((folder / "compare.json").read_text())["rows"]


def squash(text: str) -> str:
    return "".join(text.split())
