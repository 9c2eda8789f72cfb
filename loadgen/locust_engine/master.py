"""A locust master for one cell: its workers joined, started together, their results merged.

::

    part = Master(spec, out_prefix, local_workers=2).run()
    part = Master(spec, out_prefix, 0, remote_workers=1, bind="0.0.0.0", port=5557).run()

A worker that dies or goes silent is named in the part's ``worker_failures``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import locust
import locust.runners
from locust.env import Environment
from locust.event import Events

from loadgen.cellspec import CellRun
from loadgen.lifeline import child_setup
from loadgen.locust_engine import DEFAULT_MASTER_BIND, MODULE
from loadgen.locust_engine.compat import check_compat, node_info
from loadgen.locust_engine.limits import (
    JOIN_TIMEOUT_S,
    PROGRESS_EVERY_S,
    RunError,
    result_deadline_s,
    setup_timeout_s,
)
from loadgen.locust_engine.locustfile import user_class_for, user_count_for
from loadgen.locust_engine.outputs import LocustOutputs
from loadgen.locust_engine.part import finish_part, part_extra
from loadgen.procs import log_tail
from loadgen.worker import emit

clock = time.perf_counter_ns
log = logging.getLogger("rtbench.locust")


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
                    f"{phase}: {log_tail(path)}"
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
                return f"{node.describe()} exited with code {code} mid-run: {log_tail(local[1])}"
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
        emit("phase", phase="warm-up")  # every worker is set up: the clock runs
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
        extra = part_extra(spec, "distributed", self.expected, results, failed, files, master_cpu)
        return finish_part(spec, self.out_prefix, results, failed, extra, master_cpu[0])

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
