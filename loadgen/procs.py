"""Child processes of a run: a server and a load-generator worker, each pinned.

::

    placement = plan_placement("split")
    server = start_server("http", placement.server_cpus, log_path)   # waits for ready
    ...
    stop_process(server.proc)

Pinning is applied in the child before it executes Python, so every thread
it starts inherits it; what was actually applied is read back and recorded.
``argv_prefix`` runs a child through another program that executes it in place
(``ip netns exec NS``: same pid, the pinning carries over) for the kernel link.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

from loadgen.environment import available_cpus
from loadgen.lifeline import child_setup
from loadgen.link.command import parse_link_ready_line, relay_command
from loadgen.link.profiles import LinkProfile
from loadgen.locust_engine import worker_argv
from servers.common import parse_ready_line, parse_stats_line
from servers.realtime.credentials import SECRET_ENV

READY_TIMEOUT_S = 15.0
#: CPU readings a Child keeps (one a second while a repeat is watched): the last 10 s.
CPU_READINGS = 11


class ProcessFailed(RuntimeError):
    """A child process failed to start or died; the message says which and why."""


def schedstat_seconds(pid: int) -> float | None:
    """Time on CPU of every live thread of ``pid``, in seconds, from schedstat; None if
    the kernel does not expose it or the process is gone."""
    total = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except FileNotFoundError:
            continue  # the thread ended between listing and reading
        except (OSError, ValueError, IndexError):
            return None
    return total / 1e9 if tasks else None


@dataclass(frozen=True)
class Placement:
    """Which CPUs the server and the load generator run on (None: not pinned)."""

    mode: str
    server_cpus: list[int] | None
    client_cpus: list[int] | None
    note: str = ""
    #: CPUs the load-generator processes of one cell are spread over (never the
    #: server's under "split" when there is another); empty: ``client_cpus``.
    client_pool: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "placement": self.mode,
            "server_cpus": self.server_cpus,
            "client_cpus": self.client_cpus,
            "client_pool": list(self.client_pool or self.client_cpus or []) or None,
            "note": self.note,
        }

    def client_process_cpus(self, processes: int) -> list[list[int] | None]:
        """The CPUs of each of a cell's ``processes`` load generators: process ``i`` on
        the pool's ``i``-th CPU, wrapping round (so they share CPUs when there are more
        processes than CPUs in the pool); None each when nothing is pinned."""
        if self.client_cpus is None:
            return [None] * processes
        pool = list(self.client_pool) or self.client_cpus
        return [[pool[i % len(pool)]] for i in range(processes)]


def plan_placement(mode: str, cpus: list[int] | None = None) -> Placement:
    """Choose CPUs for ``mode`` (split, same or none) from the CPUs available."""
    cpus = cpus if cpus is not None else available_cpus()
    can_pin = hasattr(os, "sched_setaffinity") and bool(cpus)
    if mode == "none" or not can_pin:
        note = "" if mode == "none" else "this platform cannot pin processes"
        return Placement("none", None, None, note)
    if mode == "same":
        return Placement("same", [cpus[0]], [cpus[0]])
    if len(cpus) < 2:
        return Placement(
            "same", [cpus[0]], [cpus[0]], "only one CPU available: server and client share it"
        )
    return Placement("split", [cpus[0]], [cpus[1]], client_pool=tuple(cpus[1:]))


class Running:
    """What a :class:`Child` keeps in place of its Popen for a server rtbench did not start
    (a cell's ``server_url``): its ``pid`` (None when no process could be found) and
    :meth:`poll`. Its exit code is its parent's to read, so ``returncode`` is -1 once it is
    gone; :func:`stop_process` leaves it alone."""

    def __init__(self, process: psutil.Process | None) -> None:
        self.process = process
        self.pid: int | None = process.pid if process is not None else None
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """None while the process runs (or when there is none to watch), -1 once it is gone."""
        if self.process is not None and self.returncode is None:
            try:
                # is_running() is False for a pid since reused by another process too.
                running = self.process.is_running()
                gone = not running or self.process.status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                gone = True
            except psutil.Error:
                gone = False
            if gone:
                self.returncode = -1
        return self.returncode


@dataclass
class Child:
    """A running child with a thread draining its stdout into ``lines`` (or, with a
    :class:`Running` as ``proc``, a server rtbench did not start: :func:`attach_process`)."""

    proc: subprocess.Popen[bytes] | Running
    name: str
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    psutil_proc: psutil.Process | None = None
    cpus: list[int] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    peak_rss: int = 0
    peak_fds: int = 0
    fd_soft_limit: int | None = None
    #: (monotonic s, CPU s) of the last readings of :meth:`sample_cpu`, oldest first.
    cpu_readings: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=CPU_READINGS)
    )

    def cpu_seconds(self) -> float | None:
        """CPU time used so far (all threads), or None once the process is gone.

        Read from ``/proc/PID/task/*/schedstat`` (nanoseconds) where the kernel
        has it: psutil's user + system times tick at 10 ms, too coarse for a
        repeat of a few seconds at a few percent CPU.
        """
        if self.proc.pid is None:
            return None
        precise = schedstat_seconds(self.proc.pid)
        if precise is not None:
            return precise
        try:
            assert self.psutil_proc is not None
            t = self.psutil_proc.cpu_times()
        except (psutil.Error, AssertionError):
            return None
        return t.user + t.system

    def sample_rss(self) -> int | None:
        """The current resident set size in bytes (None once the process is gone or
        unwatched); ``peak_rss`` keeps the largest seen."""
        try:
            assert self.psutil_proc is not None
            rss = int(self.psutil_proc.memory_info().rss)
        except (psutil.Error, AssertionError):
            return None
        self.peak_rss = max(self.peak_rss, rss)
        return rss

    def sample_cpu(self) -> None:
        """Keep a reading of its CPU time (the last :data:`CPU_READINGS` are kept), for
        :meth:`recent_cpu_share`."""
        cpu = self.cpu_seconds()
        if cpu is not None:
            self.cpu_readings.append((time.monotonic(), cpu))

    def recent_cpu_share(self) -> float | None:
        """CPU used between its oldest and newest kept readings, as a share of one core
        (1.0: a whole core); None with fewer than two readings."""
        if len(self.cpu_readings) < 2:
            return None
        (t0, c0), (t1, c1) = self.cpu_readings[0], self.cpu_readings[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else None

    def recent_cpu_window_s(self) -> float | None:
        """Seconds between its oldest and newest kept readings (None with fewer than two)."""
        if len(self.cpu_readings) < 2:
            return None
        return self.cpu_readings[-1][0] - self.cpu_readings[0][0]

    def sample_fds(self) -> int | None:
        """The files it has open now (None once gone or unwatched); ``peak_fds`` keeps the
        most seen, ``fd_soft_limit`` its open-files soft limit then (None: unlimited).
        Lists ``/proc/PID/fd``: cheap, but not free at 20,000 sockets."""
        try:
            assert self.psutil_proc is not None
            fds = int(self.psutil_proc.num_fds())
        except (psutil.Error, AssertionError, AttributeError, OSError):
            return None
        try:
            soft = self.psutil_proc.rlimit(psutil.RLIMIT_NOFILE)[0]
        except (psutil.Error, AttributeError, OSError):
            # Another user's server may not let its limit be read; its count still can be.
            pass
        else:
            self.fd_soft_limit = None if soft == psutil.RLIM_INFINITY else int(soft)
        self.peak_fds = max(self.peak_fds, fds)
        return fds

    def reading(self) -> dict[str, float | int | None]:
        """Its CPU seconds so far, resident memory (MiB) and open files now, read as
        :meth:`cpu_seconds`, :meth:`sample_rss` and :meth:`sample_fds` read them (None each
        where it cannot be read): ``{"cpu_s": 1.5, "rss_mb": 41.2, "open_files": 12}``."""
        rss = self.sample_rss()
        return {
            "cpu_s": self.cpu_seconds(),
            "rss_mb": round(rss / 2**20, 2) if rss else None,
            "open_files": self.sample_fds(),
        }


def _drain(stream: IO[bytes], sink: queue.Queue[str | None]) -> None:
    for raw in iter(stream.readline, b""):
        sink.put(raw.decode("utf-8", "replace").rstrip("\n"))
    sink.put(None)


def _spawn(
    name: str,
    argv: list[str],
    cpus: list[int] | None,
    log_path: Path,
    env_extra: dict[str, str] | None = None,
) -> Child:
    log = log_path.open("wb")
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env_extra or {}))
    try:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            # Pinned, and killed if the orchestrator dies: in its own session (so Ctrl-C
            # reaches the orchestrator only, which stops it) nothing else would stop it.
            preexec_fn=child_setup(cpus),
            start_new_session=True,
            env=env,
        )
    finally:
        log.close()
    child = Child(proc=proc, name=name)
    assert proc.stdout is not None
    threading.Thread(target=_drain, args=(proc.stdout, child.lines), daemon=True).start()
    try:
        child.psutil_proc = psutil.Process(proc.pid)
        child.cpus = sorted(child.psutil_proc.cpu_affinity() or [])
    except (psutil.Error, AttributeError):
        child.cpus = cpus
    return child


def attach_process(name: str, pid: int | None, info: dict[str, Any] | None = None) -> Child:
    """A :class:`Child` for a process rtbench did not start (a server at a cell's
    server_url), watched like the servers it starts: ``attach_process("server node", 1234)``.

    ``cpus`` is its CPU affinity as read, never set: its placement is not rtbench's. With
    ``pid`` None (no process found) or a process that cannot be read, every reading is None.
    It has no ``lines`` and :func:`stop_process` does not stop it.
    """
    process: psutil.Process | None = None
    if pid is not None:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
    child = Child(proc=Running(process), name=name, psutil_proc=process, info=dict(info or {}))
    if process is not None:
        with contextlib.suppress(psutil.Error, AttributeError):
            child.cpus = sorted(process.cpu_affinity() or [])
    return child


def start_process(name: str, argv: list[str], cpus: list[int] | None, log_path: Path) -> Child:
    """Start any program pinned to ``cpus``, as servers and workers are started.

    Its stdout lines arrive on ``child.lines`` (None at the end), its stderr goes to
    ``log_path``; stop it with :func:`stop_process`. ``benchmarks/peers.py`` runs wrk
    and node this way, so the peers are pinned exactly like rtbench's own processes.
    """
    return _spawn(name, argv, cpus, log_path)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def start_server(
    kind: str,
    cpus: list[int] | None,
    log_path: Path,
    max_message_bytes: int,
    host: str = "127.0.0.1",
    timeout_s: float = READY_TIMEOUT_S,
    extra_args: list[str] | None = None,
    argv_prefix: list[str] | None = None,
    signin_secret: str | None = None,
    command: list[str] | None = None,
) -> Child:
    """Start ``python -m servers KIND`` on an ephemeral port and wait for its ready line.

    ``argv_prefix`` (``["ip", "netns", "exec", NS]``) runs it inside a network namespace.
    ``signin_secret`` reaches it in its environment (:func:`secret_env`), not its argv.
    ``command`` starts another server instead (a cell's ``server_command``), given the
    same options after it; ProcessFailed names the program when it cannot be started.
    """
    program = command if command else [sys.executable, "-m", "servers", kind]
    argv = [
        *(argv_prefix or []),
        *program,
        "--host",
        host,
        "--port",
        "0",
        "--max-message-bytes",
        str(max_message_bytes),
        *(extra_args or []),
    ]
    try:
        child = _spawn(f"server {kind}", argv, cpus, log_path, secret_env(signin_secret))
    except OSError as exc:
        raise ProcessFailed(
            f"server {kind}: cannot start {program[0]!r}: {exc.strerror or exc}"
        ) from None
    try:
        _wait_ready(child, f"server {kind}", log_path, timeout_s, parse_ready_line)
    except BaseException:
        # Timeout, early exit, or Ctrl-C/SIGTERM while waiting: the caller never gets
        # the child, so stop it here (it runs in its own session and would outlive us).
        stop_process(child)
        raise
    return child


def _wait_ready(
    child: Child,
    what: str,
    log_path: Path,
    timeout_s: float,
    parse: Callable[[str], dict[str, Any] | None],
) -> None:
    """Read ``child``'s lines until ``parse`` finds its ready line; sets ``child.info``.

    Raises :class:`ProcessFailed` naming ``what`` on a timeout or an early exit.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProcessFailed(f"{what} printed no ready line within {timeout_s:.0f}s")
        try:
            line = child.lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:
            code = child.proc.wait(timeout=5)
            raise ProcessFailed(
                f"{what} exited with code {code} before it was ready: {_tail(log_path)}"
            )
        info = parse(line)
        if info is not None:
            child.info = info
            return


def start_ready_child(
    name: str,
    argv: list[str],
    cpus: list[int] | None,
    log_path: Path,
    parse: Callable[[str], dict[str, Any] | None],
    timeout_s: float = READY_TIMEOUT_S,
) -> Child:
    """Start ``argv`` pinned to ``cpus`` and wait until ``parse`` finds its ready line
    (then in ``child.info``); raises :class:`ProcessFailed` naming ``name`` otherwise."""
    child = _spawn(name, argv, cpus, log_path)
    try:
        _wait_ready(child, name, log_path, timeout_s, parse)
    except BaseException:
        stop_process(child)
        raise
    return child


def start_worker(
    spec_path: Path,
    out_prefix: Path,
    cpus: list[int] | None,
    log_path: Path,
    loop: str,
    engine: str = "asyncio",
    locust_workers: int = 0,
    argv_prefix: list[str] | None = None,
    signin_secret: str | None = None,
) -> Child:
    """Start the load generator for one repeat of one cell.

    ``engine="asyncio"`` runs ``python -m loadgen.worker``; ``"locust"`` runs
    ``python -m loadgen.locust_engine.worker`` (a master and ``locust_workers``
    worker processes when that is > 0). Both print the same events and write
    the same part files. ``argv_prefix`` (``["ip", "netns", "exec", NS]``) runs
    it inside a network namespace. ``signin_secret`` reaches it (and any
    processes it starts) in its environment, as for the server.
    """
    if engine == "locust":
        argv = worker_argv(spec_path, out_prefix, workers=locust_workers)
    else:
        argv = [
            sys.executable,
            "-m",
            "loadgen.worker",
            str(spec_path),
            str(out_prefix),
            "--loop",
            loop,
        ]
    return _spawn(
        "load generator",
        [*(argv_prefix or []), *argv],
        cpus,
        log_path,
        secret_env(signin_secret),
    )


def secret_env(signin_secret: str | None) -> dict[str, str]:
    """Environment entries that hand a child the run's sign-in secret (none for None)."""
    return {} if signin_secret is None else {SECRET_ENV: signin_secret}


def stop_process(child: Child, timeout_s: float = 5.0) -> int | None:
    """SIGTERM, wait, then SIGKILL; returns the exit code (None if unknown). A process
    rtbench did not start (:func:`attach_process`) is left running: None."""
    proc = child.proc
    if isinstance(proc, Running):
        return None
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(timeout=timeout_s)
        except ProcessLookupError:
            pass
    return proc.poll()


def final_counters(child: Child, timeout_s: float = 2.0) -> dict[str, int] | None:
    """The counters a stopped server printed on its last stats line
    (:func:`servers.common.parse_stats_line`), or None when it printed none (killed,
    crashed, or not a server): ``stop_process(server); final_counters(server)``.
    Waits at most ``timeout_s`` for the rest of its stdout."""
    deadline = time.monotonic() + timeout_s
    found: dict[str, int] | None = None
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = child.lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:  # end of its stdout
            break
        found = parse_stats_line(line) or found
    return found


def log_tail(path: Path, lines: int = 5) -> str:
    """The last lines of a child's log, joined on one line, for error messages."""
    return _tail(path, lines)


def start_link(
    profile: LinkProfile | str | Mapping[str, Any],
    target_port: int,
    cpus: list[int] | None,
    log_path: Path,
    timeout_s: float = READY_TIMEOUT_S,
    target_host: str = "127.0.0.1",
    udp: bool = False,
) -> Child:
    """Start the userspace link emulator in front of ``target_host:target_port`` (a
    loopback address).

    Its argv comes from :func:`loadgen.link.command.relay_command` and its ready line
    is read by :func:`~loadgen.link.command.parse_link_ready_line`, the same functions
    ``python -m loadgen.link`` is driven by everywhere else. ``child.info["port"]`` is
    where clients connect instead of the server. ``udp=True`` relays UDP too (HTTP/3):
    on the same port number, to the server's UDP port ``target_port``, and
    ``child.info["udp"]`` is then true.
    Raises :class:`ProcessFailed` when it exits or prints no ready line in time.
    """
    argv = relay_command(profile, target_port, target_host=target_host, udp=udp)
    return start_ready_child(
        "link emulator", argv, cpus, log_path, parse_link_ready_line, timeout_s
    )
