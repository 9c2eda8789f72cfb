"""The locust engine's processes: a local run, a master and its workers, a joining worker, the UI.

Run as ``python -m loadgen.locust_engine.worker`` (which imports locust, and so
gevent's monkey patching, before anything else)::

    ... worker SPEC.json OUT_PREFIX                  # one process (locust LocalRunner)
    ... worker SPEC.json OUT_PREFIX --workers 2      # master + 2 local worker processes
    ... worker SPEC.json OUT_PREFIX --workers 0 --remote-workers 1 \\
            --master-bind 0.0.0.0 --master-port 5557 # a master waiting for another machine
    ... worker --join HOST[:PORT]                    # a worker joining that master
    ... worker SPEC.json --web-ui [--web-host H] [--web-port P]

A run prints the asyncio worker's JSON events on stdout (``phase`` measure and
drain, ``progress``, ``done``) and writes ``OUT_PREFIX.parquet``,
``OUT_PREFIX.deliveries.parquet`` (real-time cells) and ``OUT_PREFIX.json``,
plus locust's ``OUT_PREFIX.locust_stats.csv``, ``_stats_history.csv``,
``_failures.csv``, ``_exceptions.csv`` and ``OUT_PREFIX.locust.html``; local
workers log to ``OUT_PREFIX.locust_workerN.log``. Errors go to stderr with
exit code 1 (2 for a worker that cannot join).

The master and its workers agree first (versions: a mismatch is refused with
a clear error), then every worker spawns its users and sets them up, then the
master starts everyone's clock at once. Each worker runs warm-up, measured
window and drain on its own and sends back its raw samples, histograms and
delivery counts, which the master merges into the one part. A worker that dies
or goes silent is named in ``worker_failures`` and the part is marked
``partial``; what the other workers gathered is kept.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.pool
import geventhttpclient
import locust
import locust.runners
import orjson
import websocket
from gevent.event import Event
from locust import argument_parser
from locust import stats as locust_stats
from locust.env import Environment
from locust.event import Events
from locust.html import get_html_report

from loadgen.cellspec import CellRun
from loadgen.escape import csv_writer
from loadgen.lifeline import child_setup
from loadgen.locust_engine import DEFAULT_MASTER_BIND, MODULE, parse_master
from loadgen.locust_engine.compat import check_compat, node_info
from loadgen.locust_engine.locustfile import ALL_USER_CLASSES, user_class_for, user_count_for
from loadgen.locust_engine.merge import merge_results, merged_tables, write_part
from loadgen.locust_engine.world import World
from loadgen.targets import check_target
from loadgen.worker import emit

clock = time.perf_counter_ns
log = logging.getLogger("rtbench.locust")

PROGRESS_EVERY_S = 0.5
#: How long the master waits for its workers to join, and a worker for the master's answer.
JOIN_TIMEOUT_S = 60.0
#: Extra seconds, beyond the cell's own timeline, before a silent worker counts as failed.
RESULT_GRACE_S = 20.0
#: A worker quits when it has not heard from its master for this long (locust's is 60 s).
MASTER_SILENCE_S = 15.0


class RunError(RuntimeError):
    """The run cannot go on; the message says why (printed on stderr, exit code 1)."""


def setup_timeout_s(spec: CellRun) -> float:
    """How long users may take to spawn and set up before the run is abandoned."""
    people = 0
    if spec.realtime:
        people = int(spec.realtime.get("users", 20))  # type: ignore[call-overload]
    return 30.0 + people / 50.0 + spec.connections / 100.0


def result_deadline_s(spec: CellRun) -> float:
    """Seconds after the clock starts by which every worker should have reported."""
    rt = spec.realtime or {}
    drain = float(rt.get("drain_s", 0.0)) if spec.workload != "echo" else 0.0  # type: ignore[arg-type]
    presence = float(rt.get("presence_timeout_s", 0.0)) + 3.0 if rt.get("churn_fraction") else 0.0  # type: ignore[arg-type]
    return (
        spec.warmup_s + spec.duration_s + spec.timeout_s + 2.0 + drain + presence + RESULT_GRACE_S
    )


def _clients() -> dict[str, str]:
    return {
        "http": f"geventhttpclient {geventhttpclient.__version__}",
        "ws": f"websocket-client {websocket.__version__}",
    }


class LocustOutputs:
    """locust's own CSV files (updated during the run) and HTML report (at the end)."""

    def __init__(self, environment: Environment, out_prefix: Path) -> None:
        self.environment = environment
        self.base = str(out_prefix.with_suffix(".locust"))
        self.writer = locust_stats.StatsCSVFileWriter(
            environment, locust_stats.PERCENTILES_TO_REPORT, self.base, full_history=True
        )
        self.greenlets = [
            gevent.spawn(self.writer.stats_writer),
            gevent.spawn(locust_stats.stats_history, environment.runner),
        ]

    def close(self) -> dict[str, str]:
        """Write the final figures; returns the files' names."""
        gevent.killall(self.greenlets, block=True, timeout=2.0)
        with contextlib.suppress(Exception):
            locust_stats.update_stats_history(self.environment.runner)
        self.writer.close_files()
        final = locust_stats.StatsCSV(self.environment, locust_stats.PERCENTILES_TO_REPORT)
        files = {
            "stats": self.base + "_stats.csv",
            "stats_history": self.base + "_stats_history.csv",
            "failures": self.base + "_failures.csv",
            "exceptions": self.base + "_exceptions.csv",
            "html": self.base + ".html",
        }
        for key, method in (
            ("stats", final.requests_csv),
            ("failures", final.failures_csv),
            ("exceptions", final.exceptions_csv),
        ):
            with open(files[key], "w", newline="") as fh:
                method(csv_writer(fh))  # error messages and names: no spreadsheet formulas
        try:
            html = get_html_report(self.environment, show_download_link=False)
            Path(files["html"]).write_text(html)
        except Exception as exc:  # the report is a courtesy; the run's results are elsewhere
            log.warning("could not write locust's HTML report: %s", exc)
            del files["html"]
        return {k: Path(v).name for k, v in files.items()}


def _progress_loop(totals: Any, stop: Event) -> None:
    while not stop.wait(PROGRESS_EVERY_S):
        requests, errors = totals()
        emit("progress", requests=requests, errors=errors)


def _extra(
    spec: CellRun,
    mode: str,
    n_workers: int,
    results: list[dict[str, Any]],
    failures: list[dict[str, Any]],
    files: dict[str, str],
    master_cpu: tuple[float, float | None] | None = None,
) -> dict[str, Any]:
    measured = [r.get("cpu_s_measured") for r in results]
    measured_total = sum(m for m in measured if m is not None) if measured else None
    extra: dict[str, Any] = {
        "engine": "locust",
        "locust_version": locust.__version__,
        "locust_workers": n_workers,
        "locust_mode": mode,
        "closed_loop": True,
        "load_model": spec.model,
        "locust_user_class": user_class_for(spec).__name__,
        "locust_users": user_count_for(spec),
        "locust_clients": _clients(),
        "locust_files": files,
        "workers": [
            {
                "index": r.get("worker_index"),
                "host": r.get("host"),
                "pid": r.get("pid"),
                "users": r.get("users"),
                "cpu_s_total": r.get("cpu_s_total"),
                "cpu_s_measured": r.get("cpu_s_measured"),
                "error": r.get("error"),
            }
            for r in results
        ],
        "worker_failures": failures,
        "partial": bool(failures),
    }
    if master_cpu is not None:
        extra["master_cpu_s_total"] = master_cpu[0]
        extra["master_cpu_s_measured"] = master_cpu[1]
        if measured_total is not None and master_cpu[1] is not None:
            measured_total += master_cpu[1]
    # The load generator's CPU over the measured window, summed over every locust process
    # (a psutil reading of the master process alone misses its workers).
    extra["client_cpu_s_measured"] = measured_total
    return extra


def _finish_part(
    spec: CellRun,
    out_prefix: Path,
    results: list[dict[str, Any]],
    failures: list[dict[str, Any]],
    extra: dict[str, Any],
    extra_cpu_s: float = 0.0,
) -> dict[str, Any]:
    clean = [r for r in results if not r.get("error")]
    for r in results:
        if r.get("error"):
            failures.append(
                {
                    "worker_index": r.get("worker_index"),
                    "host": r.get("host"),
                    "pid": r.get("pid"),
                    "reason": r["error"],
                }
            )
    extra["worker_failures"] = failures
    extra["partial"] = bool(failures)
    if not clean:
        reasons = "; ".join(str(f["reason"]) for f in failures) or "no worker reported"
        raise RunError(f"no locust worker produced results: {reasons}")
    samples, deliveries = merged_tables(spec, results)
    part = merge_results(spec, results, samples, extra)
    part["client_cpu_s_total"] += extra_cpu_s
    write_part(out_prefix, part, samples, deliveries)
    for failure in failures:
        sys.stderr.write(f"locust worker failed: {failure['reason']}\n")
    return part


# -- one process -------------------------------------------------------------------------


def run_local(spec: CellRun, out_prefix: Path) -> dict[str, Any]:
    """Run the cell in this process with locust's LocalRunner."""
    cls = user_class_for(spec)
    count = user_count_for(spec)
    env = Environment(user_classes=[cls], host=spec.base_url, events=Events())
    runner = env.create_local_runner()
    world = World(spec, 0, 1)
    world.attach(env)
    world.on_phase = lambda phase: emit("phase", phase=phase)
    outputs = LocustOutputs(env, out_prefix)
    done = Event()
    progress = gevent.spawn(_progress_loop, lambda: (world.requests, world.errors), done)
    try:
        runner.start(count, spawn_rate=max(1, count))
        info = world.wait_ready(setup_timeout_s(spec))
        if info["error"]:
            raise RunError(info["error"])
        world.begin()
        result = world.finish()
    finally:
        world.finished.set()
        done.set()
        progress.kill()
    runner.quit()
    files = outputs.close()
    extra = _extra(spec, "local", 1, [result], [], files)
    return _finish_part(spec, out_prefix, [result], [], extra)


# -- master --------------------------------------------------------------------------------


class _Node:
    """A worker as the master sees it."""

    def __init__(self, node_id: str, info: dict[str, Any], index: int) -> None:
        self.id = node_id
        self.info = info
        self.index = index
        self.ready: dict[str, Any] | None = None
        self.progress = (0, 0)
        self.result: dict[str, Any] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: Path | None = None

    def describe(self) -> str:
        return (
            f"locust worker {self.index} on {self.info.get('host', '?')} "
            f"(pid {self.info.get('pid', '?')})"
        )


def _tail(path: Path | None, lines: int = 5) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


class Master:
    """A locust master for one cell, its local worker processes, and the merge."""

    def __init__(
        self,
        spec: CellRun,
        out_prefix: Path,
        local_workers: int,
        remote_workers: int = 0,
        bind: str = DEFAULT_MASTER_BIND,
        port: int = 0,
        join_timeout_s: float = JOIN_TIMEOUT_S,
    ) -> None:
        self.spec = spec
        self.out_prefix = out_prefix
        self.local_workers = local_workers
        self.expected = local_workers + remote_workers
        self.bind = bind
        self.port = port
        self.join_timeout_s = join_timeout_s
        self.nodes: dict[str, _Node] = {}
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.fatal: str | None = None
        self.info = node_info(locust.__version__)
        self.env: Environment | None = None
        self.runner: Any = None

    # messages from workers (run in the master's receiving greenlet)

    def _on_hello(self, environment: Any, msg: Any, **_kw: Any) -> None:
        info = msg.data or {}
        problem = check_compat(self.info, info)
        if problem is None and len(self.nodes) >= self.expected:
            problem = (
                f"the worker on {info.get('host', '?')} (pid {info.get('pid', '?')}) is one too "
                f"many: this master expects {self.expected} workers"
            )
            self.runner.send_message("rtbench_reject", {"reason": problem}, client_id=msg.node_id)
            log.warning(problem)
            return
        if problem is not None:
            self.runner.send_message("rtbench_reject", {"reason": problem}, client_id=msg.node_id)
            self.fatal = problem
            return
        node = _Node(msg.node_id, info, self.runner.get_worker_index(msg.node_id))
        self.nodes[msg.node_id] = node
        self.runner.send_message(
            "rtbench_spec",
            {
                "spec": self.spec.to_dict(),
                "index": node.index,
                "workers": self.expected,
                "setup_timeout_s": setup_timeout_s(self.spec),
            },
            client_id=msg.node_id,
        )

    def _on_ready(self, environment: Any, msg: Any, **_kw: Any) -> None:
        if (node := self.nodes.get(msg.node_id)) is not None:
            node.ready = msg.data

    def _on_progress(self, environment: Any, msg: Any, **_kw: Any) -> None:
        if (node := self.nodes.get(msg.node_id)) is not None:
            node.progress = (int(msg.data["requests"]), int(msg.data["errors"]))

    def _on_result(self, environment: Any, msg: Any, **_kw: Any) -> None:
        if (node := self.nodes.get(msg.node_id)) is not None:
            node.result = msg.data

    # the run

    def _spawn_local(self, port: int) -> None:
        host = self.bind
        if host in ("*", "0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        for i in range(self.local_workers):
            log_path = Path(f"{self.out_prefix.with_suffix('')}.locust_worker{i}.log")
            argv = [
                sys.executable,
                "-m",
                MODULE,
                "--join",
                target,
                "--parent-pid",
                str(os.getpid()),
                "--connect-timeout",
                str(self.join_timeout_s),
            ]
            with log_path.open("wb") as fh:
                proc = subprocess.Popen(
                    argv,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=child_setup(),  # a killed master takes its workers along
                )
            self.procs.append((proc, log_path))

    def _proc_of(self, node: _Node) -> tuple[subprocess.Popen[bytes], Path] | None:
        pid = node.info.get("pid")
        for proc, path in self.procs:
            if proc.pid == pid and node.info.get("host") == self.info["host"]:
                return proc, path
        return None

    def _check(self, phase: str) -> None:
        """Raise RunError on a refused worker, or a worker that died before the run."""
        if self.fatal:
            raise RunError(self.fatal)
        joined = {n.info.get("pid") for n in self.nodes.values()}
        for proc, path in self.procs:
            code = proc.poll()
            if code is not None and proc.pid not in joined:
                raise RunError(
                    f"a local locust worker (pid {proc.pid}) exited with code {code} while "
                    f"{phase}: {_tail(path)}"
                )
        for node in self.nodes.values():
            if (why := self._dead(node)) is not None:
                raise RunError(f"{why} (while {phase})")

    def _wait(self, what: str, done: Any, timeout_s: float, phase: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            self._check(phase)
            if time.monotonic() > deadline:
                raise RunError(f"timed out after {timeout_s:.0f}s waiting for {what}")
            gevent.sleep(0.02)
        self._check(phase)

    def _dead(self, node: _Node) -> str | None:
        """Why ``node`` will not report, or None while it may still."""
        local = self._proc_of(node)
        if local is not None:
            code = local[0].poll()
            if code is not None:
                return f"{node.describe()} exited with code {code} mid-run: {_tail(local[1])}"
        client = self.runner.clients.get(node.id)
        if client is None:
            return f"{node.describe()} left the run before reporting results"
        if client.state == locust.runners.STATE_MISSING:
            return f"{node.describe()} stopped sending heartbeats mid-run"
        return None

    def run(self) -> dict[str, Any]:
        spec = self.spec
        cls = user_class_for(spec)
        count = user_count_for(spec)
        cpu0 = time.process_time()
        env = Environment(user_classes=[cls], host=spec.base_url, events=Events())
        self.env = env
        try:
            self.runner = env.create_master_runner(self.bind, self.port)
        except SystemExit:
            raise RunError(
                f"cannot listen for locust workers on {self.bind}:{self.port} "
                "(is another master using that port?)"
            ) from None
        port = self.runner.server.port
        log.info("locust master listening for workers on %s:%s", self.bind, port)
        sys.stderr.write(f"locust master listening on {self.bind}:{port}\n")
        for name, handler in (
            ("rtbench_hello", self._on_hello),
            ("rtbench_ready", self._on_ready),
            ("rtbench_progress", self._on_progress),
            ("rtbench_result", self._on_result),
        ):
            self.runner.register_message(name, handler)
        outputs: LocustOutputs | None = None
        try:
            self._spawn_local(port)
            self._wait(
                f"{self.expected} locust workers to join",
                lambda: len(self.nodes) >= self.expected,
                self.join_timeout_s,
                "joining",
            )
            outputs = LocustOutputs(env, self.out_prefix)
            self.runner.start(count, spawn_rate=max(1, count))
            self._wait(
                "every worker to spawn and set up its users",
                lambda: all(n.ready is not None for n in self.nodes.values()),
                setup_timeout_s(spec),
                "setting up",
            )
            bad = [(n, n.ready["error"]) for n in self.nodes.values() if n.ready["error"]]  # type: ignore[index]
            if bad:
                node, error = bad[0]
                raise RunError(f"{node.describe()} could not set up: {error}")
            return self._measure(outputs, cpu0)
        finally:
            self._shutdown()

    def _measure(self, outputs: LocustOutputs, cpu0: float) -> dict[str, Any]:
        spec = self.spec
        self.runner.send_message("rtbench_go")
        go = clock()
        measure_at = go + int(spec.warmup_s * 1e9)
        drain_at = measure_at + int(spec.duration_s * 1e9)
        deadline = go + int(result_deadline_s(spec) * 1e9)
        phase = 0
        next_progress = go
        cpu_marks: list[float] = []
        failures: dict[str, str] = {}
        while True:
            now = clock()
            if phase == 0 and now >= measure_at:
                emit("phase", phase="measure")
                cpu_marks.append(time.process_time())
                phase = 1
            if phase == 1 and now >= drain_at:
                emit("phase", phase="drain")
                cpu_marks.append(time.process_time())
                phase = 2
            if now >= next_progress:
                emit(
                    "progress",
                    requests=sum(n.progress[0] for n in self.nodes.values()),
                    errors=sum(n.progress[1] for n in self.nodes.values()),
                )
                next_progress = now + int(PROGRESS_EVERY_S * 1e9)
            pending = [n for n in self.nodes.values() if n.result is None and n.id not in failures]
            if not pending and phase == 2:
                break
            for node in pending:
                if (why := self._dead(node)) is not None:
                    failures[node.id] = why
            if now > deadline:
                for node in pending:
                    failures.setdefault(
                        node.id, f"{node.describe()} did not report results by the deadline"
                    )
                break
            gevent.sleep(0.02)
        if phase < 2:
            emit("phase", phase="drain")
            cpu_marks.append(time.process_time())
        results = [n.result for n in sorted(self.nodes.values(), key=lambda n: n.index) if n.result]
        failed = [
            {
                "worker_index": n.index,
                "host": n.info.get("host"),
                "pid": n.info.get("pid"),
                "reason": failures[n.id],
            }
            for n in sorted(self.nodes.values(), key=lambda n: n.index)
            if n.id in failures and n.result is None
        ]
        # Workers flush locust's statistics before their result: the master's are complete.
        files = outputs.close()
        master_cpu = (
            time.process_time() - cpu0,
            cpu_marks[1] - cpu_marks[0] if len(cpu_marks) >= 2 else None,
        )
        extra = _extra(spec, "distributed", self.expected, results, failed, files, master_cpu)
        return _finish_part(spec, self.out_prefix, results, failed, extra, master_cpu[0])

    def _shutdown(self) -> None:
        if self.runner is not None:
            with contextlib.suppress(Exception):
                self.runner.quit()
        deadline = time.monotonic() + 5.0
        for proc, _path in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=2.0)
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def terminate_children(self) -> None:
        for proc, _path in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.terminate()


# -- worker --------------------------------------------------------------------------------


def _watch_parent(parent_pid: int) -> None:
    while True:
        gevent.sleep(0.5)
        if os.getppid() != parent_pid:
            sys.stderr.write("the locust master process is gone; this worker stops\n")
            os._exit(3)


def run_worker(
    host: str,
    port: int,
    connect_timeout_s: float,
    parent_pid: int | None = None,
    advertise_version: str | None = None,
) -> int:
    """Join the master at ``host:port`` and run this worker's share of its cell."""
    env = Environment(user_classes=list(ALL_USER_CLASSES), events=Events())
    # Bound the wait for an unreachable master (locust retries for five minutes).
    locust.runners.CONNECT_TIMEOUT = 1
    locust.runners.CONNECT_RETRY_COUNT = max(1, math.ceil(connect_timeout_s))
    locust.runners.MASTER_HEARTBEAT_TIMEOUT = MASTER_SILENCE_S
    if parent_pid:
        gevent.spawn(_watch_parent, parent_pid)
    try:
        runner = env.create_worker_runner(host, port)
    except ConnectionError:
        sys.stderr.write(
            f"error: could not reach the locust master at {host}:{port} within "
            f"{connect_timeout_s:.0f}s; is it running, and listening on an address this "
            "machine can reach (--master-bind)?\n"
        )
        return 2
    state: dict[str, Any] = {}
    answered = Event()

    def on_spec(environment: Any, msg: Any, **_kw: Any) -> None:
        data = msg.data
        world = World(CellRun.from_dict(data["spec"]), int(data["index"]), int(data["workers"]))
        world.attach(environment)
        state["world"] = world
        state["setup_timeout_s"] = float(data["setup_timeout_s"])
        answered.set()

    def on_reject(environment: Any, msg: Any, **_kw: Any) -> None:
        state["reject"] = msg.data["reason"]
        answered.set()

    def on_go(environment: Any, msg: Any, **_kw: Any) -> None:
        state["world"].begin()

    runner.register_message("rtbench_spec", on_spec)
    runner.register_message("rtbench_reject", on_reject)
    runner.register_message("rtbench_go", on_go)
    runner.send_message("rtbench_hello", node_info(advertise_version or locust.__version__))
    if not answered.wait(JOIN_TIMEOUT_S):
        sys.stderr.write(f"error: the locust master at {host}:{port} did not answer\n")
        return 2
    if "reject" in state:
        sys.stderr.write(f"error: the locust master refused this worker: {state['reject']}\n")
        return 2
    world: World = state["world"]
    done = Event()

    def progress() -> None:
        while not done.wait(PROGRESS_EVERY_S):
            data = {"requests": world.requests, "errors": world.errors}
            runner.send_message("rtbench_progress", data)

    gevent.spawn(progress)
    info = world.wait_ready(state["setup_timeout_s"])
    runner.send_message("rtbench_ready", info)
    if info["error"]:
        sys.stderr.write(f"error: {info['error']}\n")
        runner.greenlet.join(timeout=30)
        return 1
    while not world.go.wait(0.5):
        if not runner.greenlet:
            sys.stderr.write("error: the master ended the run before it started\n")
            return 1
    result = world.finish()
    done.set()
    runner._send_stats()  # locust's statistics reach the master before the result
    runner.send_message("rtbench_result", result)
    world.finished.set()
    runner.greenlet.join()
    return 0


# -- web UI --------------------------------------------------------------------------------


def run_web(spec: CellRun, host: str, port: int) -> int:
    """locust's web UI with the cell's users, until Ctrl-C or SIGTERM."""
    cls = user_class_for(spec)
    count = user_count_for(spec)
    # locust's UI reads its own options (and parses sys.argv for extra ones): give it
    # the cell's as if from its command line.
    sys.argv = sys.argv[:1]
    options = argument_parser.get_parser().parse_args(
        ["--users", str(count), "--spawn-rate", str(count), "--host", spec.base_url]
    )
    env = Environment(
        user_classes=[cls], host=spec.base_url, events=Events(), parsed_options=options
    )
    runner = env.create_local_runner()
    world = World(spec, 0, 1, interactive=True)
    world.attach(env)
    web = env.create_web_ui(host, port)
    gevent.spawn(locust_stats.stats_history, runner)
    publishing: list[gevent.pool.Group] = []

    def on_test_start(**_kw: Any) -> None:
        if (group := world.start_interactive_publishers()) is not None:
            publishing.append(group)

    def on_test_stop(**_kw: Any) -> None:
        for group in publishing:
            group.kill(block=True, timeout=2.0)
        publishing.clear()
        world.stop_publishers()

    env.events.test_start.add_listener(on_test_start)
    env.events.test_stop.add_listener(on_test_stop)
    stop = Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, stop.set)
    sys.stderr.write(
        f"locust web UI for cell {spec.cell} on http://{host}:{port} "
        f"(one user is {'a connection' if spec.workload == 'echo' else 'a group of people'}; "
        f"the cell has {count}); Ctrl-C to stop\n"
    )
    stop.wait()
    runner.quit()
    web.stop()
    return 0


# -- command line ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description="Run one repeat of one rtbench cell through locust (see the module docs).",
    )
    parser.add_argument("spec", type=Path, nargs="?", help="the cell's CellRun as JSON")
    parser.add_argument("out_prefix", type=Path, nargs="?", help="where the part files go")
    parser.add_argument(
        "--workers", type=int, default=0, help="local worker processes (0: run in this process)"
    )
    parser.add_argument(
        "--remote-workers",
        type=int,
        default=0,
        help="workers from other machines the master waits for (they run --join)",
    )
    parser.add_argument("--master-bind", default=DEFAULT_MASTER_BIND, help="master's address")
    parser.add_argument("--master-port", type=int, default=0, help="master's port (0: any)")
    parser.add_argument("--join", metavar="HOST[:PORT]", help="run as a worker of that master")
    parser.add_argument("--connect-timeout", type=float, default=30.0, help="seconds, --join")
    parser.add_argument("--join-timeout", type=float, default=JOIN_TIMEOUT_S, help="seconds")
    parser.add_argument("--web-ui", action="store_true", help="open locust's web UI instead")
    parser.add_argument("--web-host", default="127.0.0.1")
    parser.add_argument("--web-port", type=int, default=8089)
    parser.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--advertise-version", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--log-level", default="WARNING", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.join:
        try:
            host, port = parse_master(args.join)
        except ValueError as exc:
            parser.error(str(exc))
        try:
            return run_worker(
                host, port, args.connect_timeout, args.parent_pid, args.advertise_version
            )
        except KeyboardInterrupt:
            return 130
    if args.spec is None:
        parser.error("SPEC is required (or --join HOST[:PORT])")
    try:
        spec = CellRun.from_dict(orjson.loads(args.spec.read_bytes()))
    except (OSError, ValueError, TypeError) as exc:
        sys.stderr.write(f"error: cannot read the cell spec {args.spec}: {exc}\n")
        return 2
    if (refusal := check_target(spec.base_url)) is not None:
        sys.stderr.write(f"error: {refusal}\n")
        return 2
    if args.web_ui:
        return run_web(spec, args.web_host, args.web_port)
    if args.out_prefix is None:
        parser.error("OUT_PREFIX is required")
    if args.workers < 0 or args.remote_workers < 0:
        parser.error("--workers and --remote-workers must be >= 0")
    master: Master | None = None
    try:
        if args.workers or args.remote_workers:
            master = Master(
                spec,
                args.out_prefix,
                args.workers,
                args.remote_workers,
                args.master_bind,
                args.master_port,
                args.join_timeout,
            )

            def on_term() -> None:
                assert master is not None
                master.terminate_children()
                os._exit(143)

            gevent.signal_handler(signal.SIGTERM, on_term)
            part = master.run()
        else:
            part = run_local(spec, args.out_prefix)
    except KeyboardInterrupt:
        if master is not None:
            master.terminate_children()
        return 130
    except Exception as exc:  # report any failure to the orchestrator as one line
        sys.stderr.write(f"load generator failed: {type(exc).__name__}: {exc}\n")
        return 1
    emit("done", count=part["count"], errors=part["errors"], loop=part["loop"])
    return 0
