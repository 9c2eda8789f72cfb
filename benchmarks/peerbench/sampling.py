"""Reading a load generator's output to its end while sampling CPU over the measured
window (the server's, the load generator's and what else ran on their cores).

::

    lines, cpu = collect(child, server, deadline, phases=True, timed=None)
    finish(child, log)                   # PointFailed unless it exited 0
"""

from __future__ import annotations

import json
import queue
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from loadgen.procs import Child, log_tail, stop_process


class PointFailed(RuntimeError):
    """One point could not be measured; the message says why."""


@dataclass(frozen=True)
class CpuMark:
    """CPU seconds used so far by the server, the load generator and each core, at ``wall``."""

    server: float | None
    client: float | None
    cores: list[float]
    wall: float

    @classmethod
    def now(cls, server: Child, client: Child) -> CpuMark:
        # Child.cpu_seconds reads schedstat (sub-tick), falling back to psutil's times.
        # Per-core busy time shows whether anything else ran on the pinned cores.
        times = psutil.cpu_times(percpu=True)
        cores = [t.user + t.nice + t.system + t.irq + t.softirq for t in times]
        return cls(server.cpu_seconds(), client.cpu_seconds(), cores, time.monotonic())


def cpu_percents(
    start: CpuMark, end: CpuMark, server_cpus: list[int] | None, client_cpus: list[int] | None
) -> dict[str, float | None]:
    """CPU % (of one core) over the window: the server, the load generator, and what
    everything else (other processes, interrupts) used of their cores
    (``*_core_others_pct``)."""
    wall = end.wall - start.wall

    def pct(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or wall <= 0 else 100.0 * (b - a) / wall

    def others(cpus: list[int] | None, own: float | None) -> float | None:
        if not cpus or own is None or wall <= 0 or max(cpus) >= len(end.cores):
            return None
        busy = sum(end.cores[c] - start.cores[c] for c in cpus) / wall * 100.0
        return max(0.0, busy - own)

    server, client = pct(start.server, end.server), pct(start.client, end.client)
    return {
        "server_cpu_pct": server,
        "client_cpu_pct": client,
        "server_core_others_pct": others(server_cpus, server),
        "client_core_others_pct": others(client_cpus, client),
    }


def collect(
    child: Child, server: Child, deadline: float, phases: bool, timed: tuple[float, float] | None
) -> tuple[list[str], dict[str, float | None]]:
    """Read ``child``'s stdout to its end, sampling CPU over the measured window.

    The window is given by ``phase`` events (``phases``: rtbench's worker and the node
    script print them) or by offsets in seconds from now (``timed``: wrk prints nothing
    until it ends). Kills the child and raises PointFailed past ``deadline``.
    """
    try:
        return _read(child, server, deadline, phases, timed)
    except BaseException:
        stop_process(child)  # Ctrl-C included: it runs in its own session and would outlive us
        raise


def _read(
    child: Child, server: Child, deadline: float, phases: bool, timed: tuple[float, float] | None
) -> tuple[list[str], dict[str, float | None]]:
    lines: list[str] = []
    started = time.monotonic()
    marks: dict[str, CpuMark] = {}
    while True:
        now = time.monotonic()
        if now > deadline:
            raise PointFailed(f"{child.name} did not finish by its deadline; killed")
        if timed is not None:
            for name, offset in zip(("measure", "drain"), timed, strict=True):
                if name not in marks and now >= started + offset:
                    marks[name] = CpuMark.now(server, child)
        wait = 0.25
        if timed is not None and "drain" not in marks:
            wait = max(0.0, min(wait, started + timed[len(marks)] - now))
        try:
            line = child.lines.get(timeout=wait)
        except queue.Empty:
            continue
        if line is None:
            break
        lines.append(line)
        if phases and line.startswith("{"):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "phase" and event.get("phase") in ("measure", "drain"):
                marks.setdefault(event["phase"], CpuMark.now(server, child))
    if "measure" in marks and "drain" in marks:
        return lines, cpu_percents(marks["measure"], marks["drain"], server.cpus, child.cpus)
    return lines, {}


def finish(child: Child, log: Path) -> None:
    """Wait for ``child`` to exit; raise PointFailed (with its log's tail) unless it exited 0."""
    code = child.proc.wait(timeout=10)
    if code != 0:
        raise PointFailed(f"{child.name} exited with code {code}: {log_tail(log)}")
