"""Follow a repeat's load generators until they end, measuring CPU and memory meanwhile.

::

    part = watch_workers(server, workers, spec, prefix, logs, out / "logs", stop, status)
    part["procs"]["server_cpu_s"]   # or part["failed"], why the repeat failed

``logs`` are the load generators' logs; the server's and the relay's are
``PREFIX-server.log`` and ``PREFIX-link.log`` in ``logs_dir``.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from loadgen.cellspec import CellRun
from loadgen.link.namespaces import pid_in_namespace
from loadgen.processes import process_prefixes
from loadgen.procs import Child, Running, log_tail, stop_process
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.ramp import connect_ramp_s
from loadgen.run.stop import StopRequest

#: Extra seconds a worker may take beyond its warm-up, duration and timeout.
WORKER_GRACE_S = 30.0
#: Seconds between readings of the open files of the server and the load generators.
FD_SAMPLE_S = 1.0
#: A process using this share of one core or more is what limits the run.
SATURATED_SHARE = 0.85
#: A process this close to its open-files soft limit may have been refused a socket.
FD_NEAR_LIMIT = 16


def watch_workers(
    server: Child,
    workers: list[Child],
    spec: CellRun,
    prefix: Path,
    logs: list[Path],
    logs_dir: Path,
    stop: StopRequest,
    status: Callable[[str], None],
    client_ns: tuple[str, dict[str, Any]] | None = None,
    link: Child | None = None,
    server_rss_before: int | None = None,
) -> dict[str, Any]:
    """Follow the load generators' events until they end; CPU is read at each one's
    measure and drain events (the server's from the first measure to the last drain).

    Several processes are started together: each prints ``ready`` once set up, and
    when all have, each gets SIGUSR1 (:func:`loadgen.worker.wait_for_start`).
    ``stop`` is polled throughout; ``status`` is told the phase and the requests so far.
    ``server_rss_before`` is the server's RSS in bytes before the load generators
    started, recorded as ``procs["server_rss_before_users_mb"]``.
    """
    deadline = time.monotonic() + spec.warmup_s + spec.duration_s + spec.timeout_s
    deadline += WORKER_GRACE_S
    if spec.workload != "echo":
        # Set-up connects users at connect_rate before the clock starts.
        deadline += connect_ramp_s(RealtimeParams.model_validate(spec.realtime or {}))
    n = len(workers)
    lines = _merged_lines(workers)
    server_cpu: list[float | None] = [None, None]
    client_cpu: list[list[float | None]] = [[None, None] for _ in workers]
    measuring: set[int] = set()
    drained: set[int] = set()
    ready: set[int] = set()
    server_died: int | None = None
    link_died: int | None = None
    running = n
    requests = [0] * n
    phase = "set-up"  # until a load generator's clock starts
    next_fds = 0.0
    while running:
        stop.check()
        server.sample_rss()
        for worker in workers:
            worker.sample_rss()
        if time.monotonic() >= next_fds:
            # Once a second: listing 20,000 descriptors costs a few milliseconds.
            next_fds = time.monotonic() + FD_SAMPLE_S
            for child in (server, *workers):
                child.sample_fds()
                child.sample_cpu()
        if server_died is None and server.proc.poll() is not None:
            server_died = server.proc.returncode
        if link is not None and link_died is None and link.proc.poll() is not None:
            link_died = link.proc.returncode
        if time.monotonic() > deadline:
            for worker in workers:
                stop_process(worker)
            return {
                "failed": f"load generator did not stop by its deadline ({phase}); killed"
                + fd_exhaustion(server, workers)
                + saturation(server, workers)
            }
        try:
            index, line = lines.get(timeout=0.25)
        except queue.Empty:
            continue
        if line is None:
            running -= 1
            if n > 1 and len(ready) < n and index not in ready:
                # It ended before the start barrier: the others would wait for it
                # until the deadline. Stop them and report why it ended.
                code = workers[index].proc.wait(timeout=10)
                for worker in workers:
                    stop_process(worker)
                return {
                    "failed": f"load generator {index + 1} of {n} exited with code {code} "
                    f"before the start: {log_tail(logs[index])}"
                }
            continue
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        kind = event.get("event")
        worker = workers[index]
        if kind == "ready":
            ready.add(index)
            if len(ready) == n:
                for w in workers:
                    with contextlib.suppress(ProcessLookupError):
                        w.proc.send_signal(signal.SIGUSR1)
        elif kind == "phase" and event.get("phase") == "warm-up":
            phase = "warm-up" if phase == "set-up" else phase
        elif kind == "phase" and event.get("phase") == "measure":
            if not measuring:
                server_cpu[0] = server.cpu_seconds()
            measuring.add(index)
            client_cpu[index][0] = worker.cpu_seconds()
            phase = "measuring"
            if client_ns is not None:
                # The load generator is running Python by now: check it is the
                # pid started (exec'd in place by ip netns exec) in the namespace.
                name, record = client_ns
                inside = pid_in_namespace(worker.proc.pid, name)
                # Over several processes, one outside the namespace is what is kept.
                if inside is not True or "client_in_namespace" not in record:
                    record["client_in_namespace"] = inside
                record["client_cpus"] = sorted({c for w in workers for c in w.cpus or []})
        elif kind == "phase" and event.get("phase") == "drain":
            client_cpu[index][1] = worker.cpu_seconds()
            drained.add(index)
            if len(drained) == n:
                server_cpu[1] = server.cpu_seconds()
            phase = "draining"
        elif kind == "progress":
            requests[index] = int(event.get("requests", 0))
        status(f"{spec.cell} r{spec.repeat}: {phase}, {sum(requests):,} requests")
    for worker, log in zip(workers, logs, strict=True):
        code = worker.proc.wait(timeout=10)
        if code != 0:
            return {
                "failed": f"load generator exited with code {code}: {log_tail(log)}"
                + fd_exhaustion(server, workers)
            }
    prefixes = process_prefixes(prefix, n)
    for p in prefixes:
        if not p.with_suffix(".json").exists():
            return {"failed": f"load generator wrote no results ({p.name}.json missing)"}
    part: dict[str, Any] = orjson.loads(prefixes[0].with_suffix(".json").read_bytes())

    def delta(pair: list[float | None]) -> float | None:
        a, b = pair
        return None if a is None or b is None else b - a

    deltas = [delta(pair) for pair in client_cpu]
    client_cpus = sorted({c for w in workers for c in (w.cpus or [])})
    part["procs"] = {
        "server_cpu_s": delta(server_cpu),
        # A locust master's own CPU misses its worker processes; the engine
        # measures all of them over the window itself.
        "client_cpu_s": part.get("client_cpu_s_measured")
        if n == 1
        else (None if None in deltas else sum(d for d in deltas if d is not None)),
        "server_rss_mb": round(server.peak_rss / 2**20, 2) if server.peak_rss else None,
        "server_rss_before_users_mb": _mb(server_rss_before or 0),
        "client_rss_mb": _mb(sum(w.peak_rss for w in workers)),
        "server_cpus": server.cpus,
        "client_cpus": client_cpus or workers[0].cpus,
        # Utilisation is per client CPU: N processes on N CPUs can use N seconds a second.
        "client_cpu_count": len(client_cpus) or n,
        "server_loop": server.info.get("loop"),
        # Which server it was (its ready line's kind: "http", "ws-aiohttp", "node"...).
        "server_kind": server.info.get("kind"),
        # Timeouts and WebSocket pings the server ran with (its ready line).
        "server_liveness": server.info.get("liveness"),
        # Its garbage collector's settings (servers.gcfreeze): they change its pauses.
        "server_gc": server.info.get("gc"),
        # Whether it timed its late loop turns (servers.stalls, RTBENCH_LOOP_WATCH).
        "server_loop_watch": server.info.get("loop_watch"),
        # The listen backlog and the open-files limit it set (its ready line).
        "server_backlog": server.info.get("backlog"),
        "server_fd_limit": server.info.get("fd_limit"),
        "server_pid": server.proc.pid,
    }
    if link is not None and link_died is None and link.proc.poll() is not None:
        link_died = link.proc.returncode
    if n == 1 and part["procs"]["client_cpu_s"] is None:
        part["procs"]["client_cpu_s"] = deltas[0]
    if n > 1:
        part["procs"]["client_processes"] = [
            {
                "index": i,
                "pid": w.proc.pid,
                "cpus": w.cpus,
                "cpu_s": d,
                "rss_mb": _mb(w.peak_rss),
            }
            for i, (w, d) in enumerate(zip(workers, deltas, strict=True))
        ]
    if server_died is not None and isinstance(server.proc, Running):
        # Not rtbench's child: neither its exit code nor its log is rtbench's to read.
        part["failed"] = f"{server.name} (pid {server.proc.pid}) stopped during the run"
    elif server_died is not None:
        part["failed"] = (
            f"server exited with code {server_died} during the run: "
            f"{log_tail(logs_dir / (prefix.name + '-server.log'))}"
        )
    elif link_died is not None:
        # Every connection through it broke: what the load generator saw is no measurement.
        part["failed"] = (
            f"link emulator exited with code {link_died} during the run: "
            f"{log_tail(logs_dir / (prefix.name + '-link.log'))}"
        )
    return part


def fd_exhaustion(server: Child, workers: list[Child]) -> str:
    """A note naming every process that came within :data:`FD_NEAR_LIMIT` files of its
    open-files limit ("" when none did): at the limit, new sockets are refused (uvloop's
    server then closes the connection it cannot accept), which a client sees as a closed
    connection or a failed connect."""
    notes = []
    for child in (server, *workers):
        limit = child.fd_soft_limit
        if limit is not None and child.peak_fds and child.peak_fds >= limit - FD_NEAR_LIMIT:
            notes.append(f"{child.name} held {child.peak_fds} open files of its limit {limit}")
    if not notes:
        return ""
    return (
        f"; {', '.join(notes)} (ulimit -n): fewer connections per user "
        "([server] keepalive_timeout_s closes idle ones), more client_processes, "
        "or fewer users"
    )


def saturation(server: Child, workers: list[Child]) -> str:
    """A note of each process's CPU over its last readings, as a share of one core, and
    which of them was the limit ("" without readings): "; over the last 10 s, CPU used as
    a share of one core: server http 58%, load generator 92% (load generator saturated:
    ...)"."""
    shares = [(child, child.recent_cpu_share()) for child in (server, *workers)]
    known = [(child, share) for child, share in shares if share is not None]
    if not known:
        return ""
    window = max(child.recent_cpu_window_s() or 0.0 for child, _ in known)
    used = ", ".join(f"{child.name} {share:.0%}" for child, share in known)
    busy = [child.name for child, share in known if share >= SATURATED_SHARE]
    note = f"; over the last {window:.0f} s, CPU used as a share of one core: {used}"
    if busy:
        note += (
            f" ({' and '.join(busy)} saturated: fewer users, a longer poll interval, "
            "or more client_processes when it is the load generator)"
        )
    return note


def _mb(nbytes: int) -> float | None:
    return round(nbytes / 2**20, 2) if nbytes else None


def _merged_lines(workers: list[Child]) -> queue.Queue[tuple[int, str | None]]:
    """One queue of ``(worker index, line)`` fed from every worker's ``lines``; a worker's
    None (its stdout closed) is forwarded too."""
    merged: queue.Queue[tuple[int, str | None]] = queue.Queue()

    def forward(index: int, source: queue.Queue[str | None]) -> None:
        while True:
            line = source.get()
            merged.put((index, line))
            if line is None:
                return

    for index, worker in enumerate(workers):
        threading.Thread(target=forward, args=(index, worker.lines), daemon=True).start()
    return merged
