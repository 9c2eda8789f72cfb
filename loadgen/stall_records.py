"""The stalls of a run's real-time repeats: rows for ``stalls.parquet`` and a summary block.

Each real-time part record carries its load generator's stalls (``stats.stalls``) and
its server's (``stats.server_stats.stalls``), as :meth:`servers.stalls.Stalls.report`
made them::

    table = stall_table(parts)      # STALL_SCHEMA rows, every part's, in part order
    block = stalls_block(parts)     # summary.json's "stalls" for one cell's parts

Only the stalls a recorder kept one by one (at least ``min_event_ms``) are rows; the
counters of every collection are in the part records.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from loadgen.schema import STALL_PROCESSES, STALL_SCHEMA

#: A stall this long (ms) or longer is counted apart in the summary block.
LONG_STALL_MS = 50.0


def _reports(part: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    stats = part.get("stats") or {}
    server = (stats.get("server_stats") or {}).get("stalls") or {}
    for process, report in zip(STALL_PROCESSES, (server, stats.get("stalls") or {}), strict=True):
        if report:
            yield process, report


def _events(part: dict[str, Any]) -> Iterator[tuple[str, int, int, str]]:
    """``(process, start_ns, duration_ns, kind)`` of each kept stall of a part."""
    for process, report in _reports(part):
        for start, ms, kind in report.get("events") or []:
            yield process, int(start), round(float(ms) * 1e6), str(kind)


def stall_table(parts: list[dict[str, Any]]) -> pa.Table:
    """Every part's kept stalls as one table of :data:`STALL_SCHEMA`."""
    columns: dict[str, list[Any]] = {name: [] for name in STALL_SCHEMA.names}
    for part in parts:
        spec = part.get("spec") or {}
        window = int((part.get("stats") or {}).get("measure_started_ns") or 0)
        for process, start, duration, kind in _events(part):
            row = {
                "cell": part.get("cell", spec.get("cell")),
                "transport": spec.get("transport"),
                "client": spec.get("client"),
                "conn_mode": spec.get("conn_mode"),
                "delivery": spec.get("delivery"),
                "repeat": part.get("repeat", spec.get("repeat")),
                "process": process,
                "kind": kind,
                "start_ns": start,
                "duration_ns": duration,
                "warmup": start < window,
            }
            for name, value in row.items():
                columns[name].append(value)
    return pa.table(columns, schema=STALL_SCHEMA)


#: The figures of :func:`stalls_block`, each under ``<process>_`` (``server_``,
#: ``load_generator_``).
STALL_FIGURES = ("longest_gc_ms", "longest_loop_ms", "long_loop_stalls", "long_loop_stalled_ms")


def stalls_block(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The stalls inside the measured windows of a cell's repeats, per process
    (``server_...``, ``load_generator_...``): the longest collection and the longest
    loop stall (ms), how many loop stalls lasted :data:`LONG_STALL_MS` or more, and
    their total (ms); the loop figures are None for a process that did not watch its loop
    (a server without ``RTBENCH_LOOP_WATCH=1``). A process that recorded nothing has no
    keys; ``{}`` for none."""
    out: dict[str, Any] = {}
    for process in STALL_PROCESSES:
        gc_max = 0.0
        loops: list[float] = []
        seen = watched_loop = False
        for part in parts:
            stats = part.get("stats") or {}
            start = int(stats.get("measure_started_ns") or 0)
            end = int(stats.get("ended_ns") or 0) or 2**63
            for proc, report in _reports(part):
                if proc != process:
                    continue
                seen = True
                watched_loop = watched_loop or bool((report.get("loop") or {}).get("checks"))
                for t, ms, kind in report.get("events") or []:
                    if not start <= t < end:
                        continue
                    if kind == "loop":
                        loops.append(float(ms))
                    else:
                        gc_max = max(gc_max, float(ms))
        if seen:
            long = [ms for ms in loops if ms >= LONG_STALL_MS]
            figures: tuple[float | None, ...] = (round(gc_max, 3), None, None, None)
            if watched_loop:
                figures = (figures[0], round(max(loops, default=0.0), 3), len(long))
                figures += (round(sum(long), 3),)
            prefix = process.replace(" ", "_")
            out.update(
                {f"{prefix}_{name}": v for name, v in zip(STALL_FIGURES, figures, strict=True)}
            )
    return out
