"""Synthetic results folders for the reports tests.

``make_run_dir(tmp_path)`` writes samples.parquet (loadgen.schema.SAMPLE_SCHEMA),
summary.json and meta.json for the :data:`DEFAULT_CELLS` (echo) and returns the folder;
``schema=1`` writes the version 1 format (samples without ``items``).
Every cell's measured latencies are one shared lognormal base (integer ns) times the
cell's ``scale``, so with integer scales every percentile ratio between two cells is
exactly the ratio of their scales. Warmup and failed rows get absurd latencies
(:data:`JUNK_NS`) so any statistic that fails to exclude them is visibly wrong.

``make_run_dir(tmp_path, sweep_cells({...}))`` writes a rate sweep (cells named
``CELL@RATErps`` with ``sweep_group``, ``target_rate`` and ``slo_p99_ms``);
``make_realtime_run_dir(tmp_path, users_sweep_cells({...}))`` a users sweep (cells named
``CELL@USERSu`` with ``users``, ``sweep_group`` and ``slo_p99_ms``).
``real_runs(base)`` makes two tiny *real* runs (echo and messaging) with ``rtbench run``;
``real_parts_run(base)`` one tiny real run of a multi-part scenario (echo and messaging).

``make_parts_run_dir(tmp_path, {"echo": folder_a, "messaging": folder_b})`` merges
synthetic folders into one run of a multi-part scenario (``[[parts]]``): cell ids get the
``PART:`` prefix, summary.json cells a ``part``, meta.json a ``parts`` dict.

``make_realtime_run_dir(tmp_path)`` writes a real-time (messaging) run for the
:data:`DEFAULT_RT_CELLS`: samples (sends and polls), deliveries.parquet and the
summary's delivery fields, computed from those rows the way the load generator does.
Delivery latency is the shared base times the cell's ``scale`` (short poll 10x push);
warmup, deferred and duplicate deliveries get :data:`JUNK_NS`. The byte sizes are
chosen so that bytes per useful message are exactly :data:`HTTP_BYTES_PER_MESSAGE`
for polling cells and :data:`WS_BYTES_PER_MESSAGE` for push cells.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scenario_toml import cell_table, cells_toml, open_load, part_table, toml_text

from loadgen.schema import (
    DELIVERIES_FILE,
    DELIVERY_SCHEMA,
    META_FILE,
    SAMPLE_SCHEMA,
    SAMPLES_FILE,
    SCHEMA_VERSION,
    SUMMARY_FILE,
    family,
)
from loadgen.user_costs import per_1000_users

JUNK_NS = 10_000_000_000  # 10 s: warmup and failed rows
REPO_ROOT = Path(__file__).resolve().parent.parent
LABELS = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9), ("max", 100.0))


@dataclass(frozen=True)
class Cell:
    """What names a synthetic cell: ``transport/client/conn_mode``."""

    transport: str
    client: str
    conn_mode: str

    @property
    def triple(self) -> str:
        return f"{self.transport}/{self.client}/{self.conn_mode}"

    @property
    def name(self) -> str:
        return self.triple

    def identity(self) -> dict[str, str]:
        """The first keys of the cell's summary.json entry."""
        return {
            "cell": self.name,
            "transport": self.transport,
            "client": self.client,
            "conn_mode": self.conn_mode,
        }


@dataclass(frozen=True)
class CellSpec(Cell):
    """One synthetic cell; latency = shared base * ``scale``.

    ``rate`` makes it an open-loop cell of a rate sweep (named ``...@RATErps``, with
    ``sweep_group``, ``target_rate`` and ``slo_p99_ms``); ``reached`` is the fraction of the
    rate it achieved.
    """

    scale: float = 1.0
    cpu_util_client: float = 0.5
    #: Client CPU per request as a multiple of the server's (2 or more is warned about).
    client_cpu_factor: float = 1.5
    failed: int = 0  # failed (ok=False) rows per repeat
    status: str = "ok"
    rate: float | None = None
    slo_p99_ms: float | None = None
    reached: float = 1.0
    label: str | None = None  # a cell ``name`` given in the scenario, else the default

    @property
    def group(self) -> str:
        return self.label or self.triple

    @property
    def name(self) -> str:
        return self.group if self.rate is None else f"{self.group}@{self.rate:g}rps"


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
    schema: int = SCHEMA_VERSION,
) -> Path:
    """Write a results folder ``tmp_path / run_id`` and return it.

    ``n`` measured requests per cell, split over ``repeats``; ``drop_columns`` removes
    sample columns (to test validation); the overrides are merged into the JSON files.
    ``schema=1`` writes the version 1 format: no ``items`` sample column, no ``delivery``
    or ``workload`` in summary.json.
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
            **spec.identity(),
            **({"delivery": "request", "workload": "echo"} if schema >= 2 else {}),
            "family": family(spec.transport),
            "load_model": "closed" if spec.rate is None else "open",
            "connections": 8,
            "target_rate": spec.rate,
            "payload_bytes": 64,
            "status": spec.status,
            "failures": ["ConnectionResetError: peer reset"] if spec.failed else [],
            "repeats": repeats,
            **_stats(spec, measured, len(measured), spec.failed * repeats, 5.0),
            "rss_mb": {"server": 40.1, "client": 60.2},
            "per_repeat": per_repeat,
        }
        if spec.rate is not None:
            entry.update(
                sweep_group=spec.group,
                slo_p99_ms=spec.slo_p99_ms,
                offered_rps=spec.rate,
                throughput_rps=spec.rate * spec.reached,
            )
        summary_cells.append(entry)
    table = pa.Table.from_pydict(columns, schema=SAMPLE_SCHEMA)
    if schema < 2:
        table = table.drop_columns(["items"])
    if drop_columns:
        table = table.drop_columns(list(drop_columns))
    pq.write_table(table, folder / SAMPLES_FILE)
    _write_json(
        folder,
        run_id,
        scenario_name,
        summary_cells,
        schema,
        complete,
        repeats,
        [spec.name for spec in cells],
        summary_overrides,
        meta_overrides,
    )
    return folder


def _write_json(
    folder: Path,
    run_id: str,
    scenario_name: str,
    summary_cells: list[dict[str, Any]],
    schema: int,
    complete: bool,
    repeats: int,
    cell_names: list[str],
    summary_overrides: Mapping[str, Any] | None,
    meta_overrides: Mapping[str, Any] | None,
    workload: str = "echo",
) -> None:
    """summary.json and meta.json of a synthetic run."""
    summary = {
        "schema": schema,
        "run_id": run_id,
        "scenario": scenario_name,
        "complete": complete,
        "cells": summary_cells,
        **(summary_overrides or {}),
    }
    meta = {
        "schema": schema,
        "run_id": run_id,
        "complete": complete,
        "started_at": "2026-11-29T01:50:00+00:00",
        "ended_at": "2026-11-29T01:52:10+00:00",
        "scenario": {
            "name": scenario_name,
            "workload": workload,
            "duration_s": 5.0,
            "warmup_s": 1.0,
            "repeats": repeats,
            "cells": cell_names,
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


def edit_cell(folder: Path, name: str, /, **fields: Any) -> None:
    """Overwrite ``fields`` (``cell`` too) of cell ``name``'s entry in ``folder``'s
    summary.json."""
    path = folder / SUMMARY_FILE
    summary = json.loads(path.read_text(encoding="utf-8"))
    entry = next(c for c in summary["cells"] if c["cell"] == name)
    entry.update(fields)
    path.write_text(json.dumps(summary), encoding="utf-8")


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
        "cpu_s_per_request": {
            "server": 0.0001 * spec.scale,
            "client": 0.0001 * spec.scale * spec.client_cpu_factor,
        },
        "cpu_util": {"server": 0.45, "client": spec.cpu_util_client},
        "bytes_per_request": {
            "sent": 180.0 if is_http else 30.0,
            "received": 170.0 if is_http else 28.0,
        },
    }


def sweep_cells(
    scales: dict[str, Sequence[float]],
    rates: Sequence[float] = (1000, 2000, 4000, 8000),
    *,
    slo_p99_ms: float | None = 5.0,
    reached: dict[tuple[str, float], float] | None = None,
) -> list[CellSpec]:
    """The cells of a synthetic rate sweep, rates ascending (as ``rtbench`` runs them).

    ``scales`` maps ``"transport/client/conn_mode"`` to one latency scale per rate; the
    base's p99 is about 0.96 ms, so a scale of ``s`` gives a p99 near ``0.96 * s`` ms.
    ``reached`` gives the fraction of the rate some (group, rate) achieved.
    """
    reached = reached or {}
    out = []
    for i, rate in enumerate(rates):
        for group, per_rate in scales.items():
            transport, client, conn_mode = group.split("/")
            out.append(
                CellSpec(
                    transport,
                    client,
                    conn_mode,
                    scale=per_rate[i],
                    rate=float(rate),
                    slo_p99_ms=slo_p99_ms,
                    reached=reached.get((group, rate), 1.0),
                )
            )
    return out


def users_sweep_cells(
    scales: dict[str, Sequence[float]],
    users: Sequence[int] = (20, 40, 80),
    *,
    slo_p99_ms: float | None = 5.0,
    lost: dict[tuple[str, int], int] | None = None,
) -> list[RtCellSpec]:
    """The cells of a synthetic users sweep, counts rising (as ``rtbench`` runs them).

    ``scales`` maps ``"transport/client/conn_mode/delivery"`` to one delivery latency
    scale per count (p99 near ``0.96 * scale`` ms); ``lost`` gives some (group, count)
    lost deliveries per repeat.
    """
    lost = lost or {}
    out = []
    for i, n in enumerate(users):
        for group, per_count in scales.items():
            transport, client, conn_mode, delivery = group.split("/")
            out.append(
                RtCellSpec(
                    transport,
                    client,
                    conn_mode,
                    delivery,
                    scale=per_count[i],
                    users=n,
                    slo_p99_ms=slo_p99_ms,
                    lost=lost.get((group, n), 0),
                )
            )
    return out


# --- real runs ----------------------------------------------------------------------------

#: A two-cell echo scenario, about a second per cell and repeat.
TINY_ECHO_TOML = """
[scenario]
name = "tiny-echo"
description = "Two-cell echo run made by the reports tests"
repeats = 2
duration_s = 1
warmup_s = 0.2
payload_bytes = 64
timeout_s = 5
placement = "none"

[load]
model = "open"
rate = 200
connections = 2

""" + cells_toml("http/aiohttp/keep-alive", "ws-aiohttp/aiohttp")

#: A two-cell messaging scenario (short polling against push), about a second per cell.
TINY_MESSAGING_TOML = """
[scenario]
name = "tiny-messaging"
description = "Two-cell messaging run made by the reports tests"
workload = "messaging"
repeats = 2
duration_s = 1
warmup_s = 0.2
timeout_s = 5
placement = "none"

[realtime]
users = 8
group_size = 4
message_rate = 4.0
poll_interval_ms = 100
long_poll_timeout_ms = 2000
drain_s = 0.5

[[cells]]
transport = "http"
client = "aiohttp"
delivery = "short-poll"

[[cells]]
transport = "ws-aiohttp"
client = "aiohttp"
"""


@dataclass(frozen=True)
class RealRuns:
    """Results folders of the tiny real runs: ``echo`` and ``realtime`` (messaging)."""

    echo: Path
    realtime: Path


def real_runs(base: Path, timeout_s: float = 120.0) -> RealRuns:
    """Make (once per ``base`` folder) a tiny real echo run and a tiny real messaging run.

    Both run at the same time as ``python -m loadgen.cli run ... --no-report``
    subprocesses; a second call with the same ``base`` (another test module of the same
    session, given ``tmp_path_factory.getbasetemp()``) reuses the folders. Raises
    ``RuntimeError`` with the run's output when one fails.
    """
    root = base / "reports-real-runs"
    runs = RealRuns(root / "echo", root / "realtime")
    if all((p / "summary.json").is_file() for p in (runs.echo, runs.realtime)):
        return runs
    root.mkdir(parents=True, exist_ok=True)
    procs = []
    for name, text, out in (
        ("echo", TINY_ECHO_TOML, runs.echo),
        ("realtime", TINY_MESSAGING_TOML, runs.realtime),
    ):
        if out.exists():
            shutil.rmtree(out)
        scenario = root / f"{name}.toml"
        scenario.write_text(text, encoding="utf-8")
        cmd = [sys.executable, "-m", "loadgen.cli", "run", str(scenario), "--out", str(out)]
        cmd += ["--no-report", "--no-progress"]
        procs.append(
            subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    for proc in procs:
        output, _ = proc.communicate(timeout=timeout_s)
        if proc.returncode not in (0, 1):  # 1: a cell had errors; the files are still there
            raise RuntimeError(f"rtbench run failed ({proc.returncode}):\n{output}")
    for out in (runs.echo, runs.realtime):
        if not (out / "summary.json").is_file():
            raise RuntimeError(f"rtbench run wrote no summary.json in {out}")
    return runs


# --- real-time runs ---------------------------------------------------------------------

#: Wire bytes per useful message of the synthetic real-time cells (see the byte sizes below).
HTTP_BYTES_PER_MESSAGE = 800.0
WS_BYTES_PER_MESSAGE = 80.0
SSE_BYTES_PER_MESSAGE = 190.0

# Each measured delivery costs, in a polling cell: one poll carrying it (150 sent, 250
# received), one empty poll (150 + 100), half a send (200 + 100): 400 + 250 + 150 = 800.
# In a push cell: its pushed frame (40) and half a send (60 + 20): 40 + 40 = 80.
# In a Server-Sent Events cell: its event (40) and half an HTTP send (200 + 100): 190.
POLL_SENT, POLL_REPLY, EMPTY_REPLY = 150, 250, 100
HTTP_SEND = (200, 100)
WS_SEND = (60, 20)
PUSH_BYTES = 40


#: Connected users of every synthetic real-time cell.
RT_USERS = 40


@dataclass(frozen=True)
class RtCellSpec(Cell):
    """One synthetic real-time cell; delivery latency = shared base * ``scale``.

    ``lost`` and ``duplicated`` are per repeat; ``deferred`` adds that many deliveries per
    repeat to offline recipients (counted, left out of latency statistics). ``users``
    makes it a cell of a users sweep (named ``...@USERSu``, with ``users``,
    ``sweep_group`` and ``slo_p99_ms``; its server RSS is ``40 + users / 100`` MB and
    its server CPU utilisation ``users / 1000``).
    """

    delivery: str
    scale: float = 1.0
    lost: int = 0
    duplicated: int = 0
    deferred: int = 0
    reconnects: int = 0
    slow_consumer_closes: int = 0
    late_steps: int = 0
    item_type: str = "message"
    users: int | None = None
    slo_p99_ms: float | None = None

    @property
    def group(self) -> str:
        return self.triple if self.delivery == "push" else f"{self.triple}/{self.delivery}"

    @property
    def name(self) -> str:
        return self.group if self.users is None else f"{self.group}@{self.users}u"

    @property
    def polls(self) -> bool:
        return self.delivery in ("short-poll", "long-poll")

    @property
    def http(self) -> bool:
        """Sends go over HTTP (polling and Server-Sent Events cells)."""
        return family(self.transport) == "http"


DEFAULT_RT_CELLS: tuple[RtCellSpec, ...] = (
    RtCellSpec("http", "aiohttp", "keep-alive", "short-poll", scale=10),
    RtCellSpec("http", "aiohttp", "keep-alive", "long-poll", scale=3),
    RtCellSpec("ws-aiohttp", "aiohttp", "persistent", "push", scale=1),
    RtCellSpec("ws-websockets", "websockets", "persistent", "push", scale=2),
)


def make_realtime_run_dir(
    tmp_path: Path,
    cells: Sequence[RtCellSpec] = DEFAULT_RT_CELLS,
    *,
    run_id: str = "20261130-101500-messaging-quick",
    scenario_name: str = "messaging-quick",
    workload: str = "messaging",
    n: int = 1000,
    repeats: int = 2,
    warmup: int = 20,
    seed: int = 0,
    complete: bool = True,
    write_deliveries: bool = True,
    drop_delivery_columns: Sequence[str] = (),
    summary_overrides: Mapping[str, Any] | None = None,
    meta_overrides: Mapping[str, Any] | None = None,
) -> Path:
    """Write a real-time results folder ``tmp_path / run_id`` and return it.

    ``n`` (even) measured deliveries per cell, split over ``repeats``;
    ``write_deliveries=False`` leaves deliveries.parquet out; ``drop_delivery_columns``
    removes its columns (to test validation).
    """
    folder = tmp_path / run_id
    folder.mkdir(parents=True)
    base = base_latencies_ns(n, seed)
    samples: dict[str, list[Any]] = {name: [] for name in SAMPLE_SCHEMA.names}
    rows: dict[str, list[Any]] = {name: [] for name in DELIVERY_SCHEMA.names}
    summary_cells = []
    for spec in cells:
        measured = np.round(base * spec.scale).astype("int64")
        per_repeat, totals = [], []
        for rep, chunk in enumerate(np.array_split(measured, repeats)):
            stats = _rt_repeat(samples, rows, spec, rep, chunk, warmup)
            totals.append(stats)
            per_repeat.append({"repeat": rep, **_rt_block(spec, [stats], 5.0 / repeats)})
        entry = {
            **spec.identity(),
            "delivery": spec.delivery,
            "workload": workload,
            "family": family(spec.transport),
            "load_model": "open",
            "connections": 4,
            "target_rate": None,
            "status": "error" if spec.lost or spec.duplicated else "ok",
            "failures": [],
            "repeats": repeats,
            **_rt_block(spec, totals, 5.0),
            "delivery_latency_by_type_ms": {
                spec.item_type: _percentiles(np.concatenate([t["latencies"] for t in totals]))
            },
            "polls": sum(t["polls"] for t in totals),
            "empty_polls": sum(t["empty_polls"] for t in totals),
            "empty_poll_ratio": 0.5 if spec.polls else None,
            "reconnects": spec.reconnects,
            "slow_consumer_closes": spec.slow_consumer_closes,
            "late_steps": spec.late_steps,
            "max_late_ms": 420.0 if spec.late_steps else 0.0,
            "activity": None,
            "rss_mb": {"server": 40.1, "client": 60.2},
            "per_repeat": per_repeat,
        }
        if spec.users is not None:
            entry.update(users=spec.users, sweep_group=spec.group, slo_p99_ms=spec.slo_p99_ms)
            entry["rss_mb"] = {"server": 40.0 + spec.users / 100, "client": 60.2}
            entry["cpu_util"] = {"server": spec.users / 1000, "client": 0.2}
        summary_cells.append(entry)
    pq.write_table(pa.Table.from_pydict(samples, schema=SAMPLE_SCHEMA), folder / SAMPLES_FILE)
    if write_deliveries:
        table = pa.Table.from_pydict(rows, schema=DELIVERY_SCHEMA)
        if drop_delivery_columns:
            table = table.drop_columns(list(drop_delivery_columns))
        pq.write_table(table, folder / DELIVERIES_FILE)
    _write_json(
        folder,
        run_id,
        scenario_name,
        summary_cells,
        SCHEMA_VERSION,
        complete,
        repeats,
        [spec.name for spec in cells],
        summary_overrides,
        meta_overrides,
        workload,
    )
    return folder


def _percentiles(values_ns: np.ndarray) -> dict[str, float]:
    ms = values_ns / 1e6
    return {label: float(np.percentile(ms, q)) for label, q in LABELS}


def _rt_block(spec: RtCellSpec, parts: list[dict[str, Any]], duration_s: float) -> dict[str, Any]:
    """The summary.json statistics of a real-time cell (or repeat) from its rows' totals."""
    latencies = np.concatenate([p["latencies"] for p in parts])
    sends = np.concatenate([p["send_latencies"] for p in parts])
    count = len(sends)
    useful = sum(p["useful"] for p in parts)
    wire = sum(p["wire"] for p in parts)
    requests = sum(p["requests"] for p in parts)
    delivered = sum(p["delivered"] for p in parts)
    lost = spec.lost * len(parts)
    sent_b, recv_b = HTTP_SEND if spec.http else WS_SEND
    return {
        "count": count,
        "errors": 0,
        "duration_s": duration_s,
        "throughput_rps": count / duration_s,
        "latency_ms": _percentiles(sends),
        "latency_uncorrected_ms": _percentiles(sends),
        "cpu_s_per_request": {"server": 0.0002, "client": 0.0003},
        "cpu_util": {"server": 0.1, "client": 0.2},
        "bytes_per_request": {"sent": float(sent_b), "received": float(recv_b)},
        "deliveries": {
            "expected": delivered + lost,
            "delivered": delivered,
            "lost": lost,
            "duplicated": spec.duplicated * len(parts),
            "out_of_order": 0,
            "unexpected": 0,
        },
        "delivery_latency_ms": _percentiles(latencies),
        "useful_messages": useful,
        "per_useful_message": {
            "bytes": wire / useful,
            "requests": requests / useful,
            "cpu_s_server": 0.00002 * spec.scale,
            "cpu_s_client": 0.00004 * spec.scale,
        },
        "per_1000_users": per_1000_users(
            users=RT_USERS,
            rss_with_mb=40.1,
            rss_before_mb=round(40.1 - 0.4 * spec.scale, 2),
            server_cpu_s=0.1 * duration_s,
            window_s=duration_s,
            wire_bytes=wire,
        ),
    }


def _rt_repeat(
    samples: dict[str, list[Any]],
    rows: dict[str, list[Any]],
    spec: RtCellSpec,
    rep: int,
    latencies: np.ndarray,
    warmup: int,
) -> dict[str, Any]:
    """Append one repeat's samples and deliveries; return its totals (worker's formulas)."""
    t0 = 1_000_000_000 * (rep + 1)
    cell = {
        "cell": spec.name,
        "transport": spec.transport,
        "client": spec.client,
        "conn_mode": spec.conn_mode,
        "repeat": rep,
    }
    sent_b, recv_b = HTTP_SEND if spec.http else WS_SEND
    send_latencies = latencies[::2] // 4 + 50_000  # sends: one per two deliveries
    measured_samples: list[tuple[int, int]] = []

    def sample(kind: str, t: int, latency: int, bs: int, br: int, items: int, warm: bool) -> None:
        row = {
            **cell,
            "conn": 0,
            "kind": kind,
            "intended_ns": t,
            "sent_ns": t,
            "received_ns": t + latency,
            "latency_ns": latency,
            "latency_uncorrected_ns": latency,
            "bytes_sent": bs,
            "bytes_received": br,
            "items": items,
            "ok": True,
            "error": None,
            "warmup": warm,
        }
        for name, value in row.items():
            samples[name].append(value)
        if not warm:
            measured_samples.append((bs, br))

    def delivery(i: int, latency: int, *, warm=False, deferred=False, dup=False) -> int:
        t = t0 + i * 1_000_000
        nbytes = POLL_REPLY if spec.polls else PUSH_BYTES
        row = {
            **cell,
            "delivery": spec.delivery,
            "type": spec.item_type,
            "item_id": i,
            "sender": f"u{i % 7}",
            "recipient": f"u{(i + 1) % 7}",
            "seq": i,
            "origin_ns": t,
            "received_ns": t + latency,
            "latency_ns": latency,
            "via": "poll" if spec.polls else ("sse" if spec.delivery == "sse" else "push"),
            "duplicate": dup,
            "out_of_order": False,
            "warmup": warm,
            "deferred": deferred,
            "bytes": nbytes,
        }
        for name, value in row.items():
            rows[name].append(value)
        return nbytes

    push = 0
    for i in range(warmup):
        delivery(i, JUNK_NS, warm=True)
        sample("send", t0 + i, JUNK_NS, sent_b, recv_b, 0, True)
        if spec.polls:
            sample("poll", t0 + i, JUNK_NS, POLL_SENT, POLL_REPLY, 1, True)
        else:
            sample("connect", t0 + i, JUNK_NS, 0, 0, 0, True)
    extra = [(JUNK_NS, {"deferred": True})] * spec.deferred
    extra += [(JUNK_NS, {"dup": True})] * spec.duplicated
    items = [(int(v), {}) for v in latencies] + extra
    for i, (latency, flags) in enumerate(items, start=warmup):
        nbytes = delivery(i, latency, **flags)
        if not spec.polls:
            push += nbytes
    for j, latency in enumerate(send_latencies):
        sample("send", t0 + j, int(latency), sent_b, recv_b, 0, False)
    polls = empty = 0
    if spec.polls:
        for j in range(len(items)):  # one poll per delivery, one empty poll each
            sample("poll", t0 + j, 1_000_000, POLL_SENT, POLL_REPLY, 1, False)
            sample("poll", t0 + j, 1_000_000, POLL_SENT, EMPTY_REPLY, 0, False)
            polls, empty = polls + 2, empty + 1
    useful = len(latencies) + spec.deferred
    return {
        "latencies": latencies,
        "send_latencies": send_latencies,
        "useful": useful,
        "delivered": useful,
        "wire": sum(bs + br for bs, br in measured_samples) + push,
        "requests": len(measured_samples),
        "polls": polls,
        "empty_polls": empty,
    }


# --- multi-part runs ---------------------------------------------------------------------


def make_parts_run_dir(
    tmp_path: Path,
    parts: Mapping[str, Path],
    *,
    run_id: str = "20261201-090000-claim-matrix",
    scenario_name: str = "claim-matrix",
    realtime: Mapping[str, Mapping[str, Any]] | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> Path:
    """Merge synthetic results folders, one per part name, into one multi-part run folder.

    Every cell id (in summary.json, samples and deliveries) becomes ``PART:CELL`` and each
    summary.json cell gets ``"part"``, as ``rtbench run`` writes them. meta.json keeps the
    first folder's environment; its ``scenario`` is the file as declared (``parts`` list,
    no top-level ``realtime``) and ``parts`` maps each name to its single-workload
    scenario, with ``realtime`` from ``realtime[name]`` and a ``description`` from
    ``descriptions[name]`` when given. Returns ``tmp_path / run_id``.
    """
    folder = tmp_path / run_id
    folder.mkdir(parents=True)
    realtime, descriptions = realtime or {}, descriptions or {}
    samples, deliveries, cells, settings = [], [], [], {}
    meta: dict[str, Any] = {}
    for name, source in parts.items():
        samples.append(_prefixed(pq.read_table(source / SAMPLES_FILE), name))
        if (source / DELIVERIES_FILE).is_file():
            deliveries.append(_prefixed(pq.read_table(source / DELIVERIES_FILE), name))
        summary = json.loads((source / SUMMARY_FILE).read_text(encoding="utf-8"))
        for entry in summary["cells"]:
            group = entry.get("sweep_group")
            sweep = {"sweep_group": f"{name}:{group}"} if group else {}
            cells.append({**entry, "cell": f"{name}:{entry['cell']}", "part": name, **sweep})
        source_meta = json.loads((source / META_FILE).read_text(encoding="utf-8"))
        meta = meta or source_meta
        declared = source_meta["scenario"]
        settings[name] = {
            "scenario": {
                "name": scenario_name,
                "description": descriptions.get(name, ""),
                "workload": declared["workload"],
                "repeats": declared["repeats"],
                "payload_bytes": 64,
            },
            "load": {"model": "closed", "connections": 8},
            "realtime": dict(realtime[name]) if name in realtime else None,
            "cells": list(declared["cells"]),
            "parts": None,
            "slo": None,
        }
    pq.write_table(pa.concat_tables(samples), folder / SAMPLES_FILE)
    if deliveries:
        pq.write_table(pa.concat_tables(deliveries), folder / DELIVERIES_FILE)
    summary = {"schema": SCHEMA_VERSION, "run_id": run_id, "scenario": scenario_name}
    summary |= {"complete": True, "cells": cells}
    meta = {
        **meta,
        "run_id": run_id,
        "scenario": {
            "scenario": {"name": scenario_name, "description": "", "workload": "echo"},
            "realtime": None,
            "cells": [],
            "parts": [
                {"name": n, "workload": p["scenario"]["workload"]} for n, p in settings.items()
            ],
        },
        "parts": settings,
    }
    (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (folder / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return folder


def _prefixed(table: pa.Table, part: str) -> pa.Table:
    """``table`` with every ``cell`` value prefixed by ``PART:``."""
    i = table.schema.get_field_index("cell")
    cells = [f"{part}:{c}" for c in table.column(i).to_pylist()]
    return table.set_column(i, "cell", pa.array(cells, type=table.schema.field(i).type))


#: A multi-part scenario: an echo part and a messaging part, two cells each.
TINY_PARTS_TOML = toml_text(
    {
        "scenario": {
            "name": "tiny-parts",
            "description": "Multi-part run made by the reports tests",
            "repeats": 1,
            "duration_s": 1,
            "warmup_s": 0.2,
            "timeout_s": 5,
            "placement": "none",
        },
        "parts": [
            part_table(
                "echo", "http/aiohttp/keep-alive", "ws-aiohttp/aiohttp", load=open_load(100)
            ),
            part_table(
                "messaging",
                cell_table("http/aiohttp", delivery="short-poll"),
                "ws-aiohttp/aiohttp",
                workload="messaging",
                description="Short polling against push",
                realtime={
                    "users": 6,
                    "group_size": 3,
                    "message_rate": 4.0,
                    "poll_interval_ms": 100,
                    "long_poll_timeout_ms": 2000,
                    "drain_s": 0.5,
                },
            ),
        ],
    }
)


def real_parts_run(base: Path, timeout_s: float = 120.0) -> Path:
    """Make (once per ``base`` folder) a tiny real run of :data:`TINY_PARTS_TOML` with
    ``python -m loadgen.cli run ... --no-report``; return its results folder.

    Raises ``RuntimeError`` with the run's output when it fails.
    """
    root = base / "reports-real-parts"
    out = root / "run"
    if (out / "summary.json").is_file():
        return out
    root.mkdir(parents=True, exist_ok=True)
    if out.exists():
        shutil.rmtree(out)
    scenario = root / "parts.toml"
    scenario.write_text(TINY_PARTS_TOML, encoding="utf-8")
    cmd = [sys.executable, "-m", "loadgen.cli", "run", str(scenario), "--out", str(out)]
    cmd += ["--no-report", "--no-progress"]
    proc = subprocess.run(
        cmd,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode not in (0, 1) or not (out / "summary.json").is_file():
        raise RuntimeError(f"rtbench run failed ({proc.returncode}):\n{proc.stdout}")
    return out
