"""Run a whole scenario: every cell, every repeat, interleaved, into a results folder.

::

    result = run_scenario(load_scenario("scenarios/quick.toml"), Path("scenarios/quick.toml"))
    result.out_dir        # results/<run-id>/ with samples.parquet, summary.json, meta.json

For each repeat of each cell a fresh server starts pinned to one CPU and a
load-generator process pinned to another; both are sampled with psutil over
the measured window. Cells run in the order A B C A B C ... so drift in the
machine affects every cell alike. Ctrl-C or SIGTERM stops the run cleanly:
children are stopped, finished repeats are written and meta.json says the
run is incomplete.

With a ``[network]`` table each link profile runs over the link
:func:`plan_link` chose for it: directly (a profile that adds nothing), through
the userspace relay, or over the kernel link, where every repeat gets its own
pair of network namespaces (server and load generator each in one) that are
deleted once both children have stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import queue
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from loadgen.cellspec import CellRun
from loadgen.environment import collect_environment
from loadgen.escape import term_text
from loadgen.floor import measure_floor
from loadgen.link.kernel import KernelLink, KernelLinkError, cleanup_stale, pid_in_namespace
from loadgen.link.overhead import measure_relay_overhead
from loadgen.link.plan import plan_link
from loadgen.processes import merge_process_parts, process_prefixes
from loadgen.procs import (
    Child,
    Placement,
    ProcessFailed,
    log_tail,
    plan_placement,
    start_link,
    start_server,
    start_worker,
    stop_process,
)
from loadgen.runfolder import claim_run_folder
from loadgen.scenario import RunCell, Scenario
from loadgen.schema import (
    DELIVERIES_FILE,
    DELIVERY_SCHEMA,
    META_FILE,
    SAMPLE_SCHEMA,
    SAMPLES_FILE,
    SCHEMA_VERSION,
    SUMMARY_FILE,
)
from loadgen.shares import process_specs
from loadgen.summary import build_summary
from loadgen.tls import CertPaths, make_certificates
from servers.realtime.credentials import SECRET_ENV, new_secret

#: Extra seconds a worker may take beyond its warm-up, duration and timeout.
WORKER_GRACE_S = 30.0


@dataclass
class RunResult:
    """Where a run went and how it ended."""

    out_dir: Path
    complete: bool
    summary: dict[str, Any]
    meta: dict[str, Any]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    tmp.replace(path)


def _slug(text: str) -> str:
    # No dots: part files are named with Path.with_suffix, which would cut at one.
    return "".join(ch if ch.isalnum() or ch == "-" else "_" for ch in text)


def _into(record: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``record`` updated in place with ``extra``: what a ``finally`` adds later still lands."""
    record.update(extra)
    return record


def _remove_stale_namespaces(console: Console) -> list[str]:
    """Delete ``rtbench-`` namespaces left by runs that were killed (their owner is gone)."""
    try:
        removed = cleanup_stale()
    except KernelLinkError as exc:
        console.print(f"[yellow]note:[/] could not remove stale namespaces: {exc}")
        return []
    if removed:
        console.print(f"[yellow]note:[/] removed namespaces of killed runs: {', '.join(removed)}")
    return removed


def _relay_overhead() -> dict[str, Any] | None:
    """What the userspace relay itself adds to a round trip (zero-delay relay vs direct)."""
    try:
        return asyncio.run(measure_relay_overhead(n=300)).as_dict()
    except OSError as exc:
        return {"error": str(exc)}


def _check_kernel_server(server: Child, klink: Any, record: dict[str, Any]) -> str | None:
    """Record where a kernel-link server runs; why that is wrong, if it is.

    ``ip netns exec`` executes the server in place, so the pid started is the
    one serving (the one pinned, sampled and stopped), inside the server namespace.
    """
    record["port"] = server.info["port"]
    record["server_cpus"] = server.cpus
    same_pid = server.info.get("pid") == server.proc.pid
    in_ns = pid_in_namespace(server.proc.pid, klink.server_ns)
    record["server_pid_in_place"] = same_pid
    record["server_in_namespace"] = in_ns
    if not same_pid:
        return (
            f"the server's pid {server.info.get('pid')} is not the pid started "
            f"({server.proc.pid}): ip netns exec did not execute it in place, so "
            "pinning, CPU sampling and stopping would miss it"
        )
    if in_ns is False:
        return f"the server (pid {server.proc.pid}) is not in namespace {klink.server_ns}"
    return None


def server_args(scenario: Scenario) -> list[str]:
    """Server command-line options: test delay, WebSocket pings, real-time settings."""
    delay = ["--delay-ms", str(d)] if (d := scenario.server.delay_ms) else []
    delay += ["--ws-ping-interval", str(scenario.server.ws_ping_interval_s)]
    rt = scenario.realtime
    if rt is None:
        return delay
    return [
        *delay,
        "--presence-timeout",
        str(rt.presence_timeout_s),
        "--idle-timeout",
        str(rt.idle_timeout_s),
        "--inbox-retention",
        str(rt.inbox_retention),
        "--send-queue",
        str(rt.send_queue),
    ]


def cell_identity(run_cell: RunCell) -> dict[str, Any]:
    """The columns that name a cell and its load in summary.json."""
    scenario: Scenario = run_cell.settings
    load = scenario.load
    cell = run_cell.cell
    return {
        "cell": run_cell.id,
        "part": run_cell.part,
        "transport": cell.transport,
        "client": cell.client,
        "conn_mode": cell.conn_mode,
        "delivery": cell.delivery_mode,
        "workload": scenario.scenario.workload,
        "load_model": load.model if scenario.scenario.workload == "echo" else "open",
        "connections": load.connections,
        "target_rate": run_cell.rate,
        "payload_bytes": scenario.scenario.payload_bytes,
        "tls": scenario.scenario.tls_version if cell.tls else None,
        "profile": run_cell.profile.name if run_cell.profile is not None else None,
        "rtt_ms": run_cell.profile.rtt_ms if run_cell.profile is not None else None,
        "sweep_group": run_cell.sweep_group,
        "slo_p99_ms": load.sweep_slo_p99_ms,
    }


class _StopRequest:
    """Set when SIGTERM or SIGINT arrives; raises KeyboardInterrupt unless deferred.

    While a child is being started the interrupt is deferred to the end of the
    ``deferred()`` block: raised inside ``subprocess.Popen`` it would lose the new
    child (which runs in its own session and would outlive the run), and raised in
    an ``os.fork()`` hook Python would print and swallow it. The run also polls
    :meth:`check` between and during repeats.
    """

    def __init__(self) -> None:
        self.requested = False
        self._deferring = 0

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    def on_signal(self, signum: int, frame: Any) -> None:
        self.requested = True
        if not self._deferring:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        self.check()


@contextlib.contextmanager
def _sigterm_as_interrupt(stop: _StopRequest) -> Iterator[None]:
    signums = (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.signal(signum, stop.on_signal) for signum in signums}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


class _Runner:
    def __init__(
        self,
        scenario: Scenario,
        out_dir: Path,
        placement: Placement,
        progress: Progress | None,
        engine: str = "asyncio",
        locust_workers: int = 0,
        links: dict[str, str] | None = None,
    ) -> None:
        self.engine = engine
        #: Profile name -> "kernel", "userspace" or "none" (from :func:`plan_link`).
        self.links = links or {}
        self.locust_workers = locust_workers
        self.scenario = scenario
        self.out = out_dir
        self.placement = placement
        self.progress = progress
        self.task_id: Any = None
        self.stop = _StopRequest()
        self.certs: CertPaths | None = None
        #: The run's sign-in secret: servers and load generators get it in their
        #: environment, so only this run's users can sign in.
        self.signin_secret = new_secret()

    def _certs(self) -> CertPaths:
        """The run's throwaway CA and server certificate, made on first use."""
        if self.certs is None:
            self.certs = make_certificates(self.out / "tls")
        return self.certs

    def _tls_args(self, tls: bool) -> list[str]:
        # tls_version is in the shared [scenario] table, the same for every part.
        if not tls:
            return []
        certs = self._certs()
        version = self.scenario.scenario.tls_version
        return ["--tls-cert", certs.cert, "--tls-key", certs.key, "--tls-version", version]

    def _status(self, text: str) -> None:
        if self.progress is not None and self.task_id is not None:
            self.progress.update(self.task_id, status=text)

    def _link_mode(self, run_cell: RunCell) -> str:
        """How this cell's profile is emulated: "kernel", "userspace" or "none"."""
        profile = run_cell.profile
        if profile is None:
            return "none"
        default = "none" if profile.is_zero else "userspace"
        return self.links.get(profile.name, default)

    def harness_floors(self, run_cells: list[RunCell]) -> list[dict[str, Any]]:
        """The raw-TCP round-trip floor (:mod:`loadgen.floor`) on loopback, once per payload
        size of the echo cells, pinned like a cell's server and (first) load generator."""
        payloads = sorted(
            {
                c.settings.scenario.payload_bytes
                for c in run_cells
                if c.settings.scenario.workload == "echo"
            }
        )
        floors = []
        for payload in payloads:
            self._status(f"harness floor ({payload} B)")
            # Deferred like a child's start: Ctrl-C lands once its processes are stopped.
            with self.stop.deferred():
                floors.append(
                    measure_floor(
                        self.placement.server_cpus,
                        self.placement.client_process_cpus(1)[0],
                        payload,
                        self.out / "logs",
                        loop=self.scenario.scenario.client_loop,
                    )
                )
        return floors

    def run_one(self, index: int, repeat: int, run_cell: RunCell) -> dict[str, Any]:
        """One repeat of one cell; returns its part record (with ``failed`` on error).

        Over the kernel link the repeat gets its own pair of namespaces: the
        server runs in the server one, bound to its veth address, the load
        generator in the client one; both children are stopped before the
        namespaces are deleted, whatever happens (Ctrl-C included).
        """
        stem = f"{index:03d}-{_slug(run_cell.id)}-r{repeat}"
        base: dict[str, Any] = {
            "cell": run_cell.id,
            "repeat": repeat,
            "index": index,
            "part": f"parts/{stem}",
        }
        if self._link_mode(run_cell) != "kernel":
            return self._run_children(run_cell, repeat, stem, base, None)
        klink = KernelLink(run_cell.profile)
        # The returned record is a shallow copy of base that shares this dict, so
        # what only the cleanup at the end knows still lands in it.
        record: dict[str, Any] = {
            "mode": "kernel",
            "namespaces": {"client": klink.client_ns, "server": klink.server_ns},
            "client_addr": klink.client_addr,
            "server_addr": klink.server_addr,
            "notes": list(klink.notes),
        }
        base["link"] = record
        try:
            try:
                with self.stop.deferred():
                    klink.__enter__()
            except KernelLinkError as exc:
                return _into(base, {"failed": f"kernel link set-up failed: {exc}"})
            return self._run_children(run_cell, repeat, stem, base, klink)
        finally:
            # _run_children has stopped every child by now; only then go the namespaces.
            errors = klink.close()
            record["removed"] = not errors
            if errors:
                record["cleanup_errors"] = errors

    def _run_children(
        self, run_cell: RunCell, repeat: int, stem: str, base: dict[str, Any], klink: Any
    ) -> dict[str, Any]:
        """Start the server (and the relay), run the load generator, stop them all."""
        settings: Scenario = run_cell.settings
        s = settings.scenario
        cell = run_cell.cell
        prefix = self.out / "parts" / stem
        host = "127.0.0.1" if klink is None else klink.server_addr
        server_prefix = None if klink is None else klink.exec_prefix("server")
        client_prefix = None if klink is None else klink.exec_prefix("client")
        server: Child | None = None
        workers: list[Child] = []
        link: Child | None = None
        try:
            try:
                with self.stop.deferred():
                    server = start_server(
                        cell.transport,
                        self.placement.server_cpus,
                        self.out / "logs" / f"{stem}-server.log",
                        settings.server.max_message_bytes,
                        host=host,
                        extra_args=server_args(settings) + self._tls_args(cell.tls),
                        argv_prefix=server_prefix,
                        signin_secret=self.signin_secret,
                    )
            except ProcessFailed as exc:
                return _into(base, {"failed": str(exc)})
            target_port = server.info["port"]
            if klink is not None:
                problem = _check_kernel_server(server, klink, base["link"])
                if problem:
                    return _into(base, {"failed": problem})
            elif self._link_mode(run_cell) == "userspace":
                assert run_cell.profile is not None
                try:
                    with self.stop.deferred():
                        link = start_link(
                            run_cell.profile,
                            target_port,
                            self.placement.server_cpus,
                            self.out / "logs" / f"{stem}-link.log",
                        )
                except ProcessFailed as exc:
                    return _into(base, {"failed": str(exc)})
                target_port = link.info["port"]
                base["link"] = {"mode": "userspace", "port": target_port, "cpus": link.cpus}
            spec = CellRun(
                cell=run_cell.id,
                transport=cell.transport,
                client=cell.client,
                conn_mode=cell.conn_mode or "",
                repeat=repeat,
                base_url=f"{'https' if cell.tls else 'http'}://{host}:{target_port}",
                model=settings.load.model,
                connections=settings.load.connections,
                rate=run_cell.rate,
                think_time_s=settings.load.think_time_ms / 1000.0,
                duration_s=s.duration_s,
                warmup_s=s.warmup_s,
                payload_bytes=s.payload_bytes,
                max_requests=s.max_requests,
                timeout_s=s.timeout_s,
                workload=s.workload,
                delivery=cell.delivery_mode,
                realtime=rt.model_dump(mode="json") if (rt := settings.realtime) else None,
                tls=s.tls_version if cell.tls else None,
                ca_file=self._certs().ca if cell.tls else None,
            )
            n = s.client_processes
            prefixes = process_prefixes(prefix, n)
            cpus = self.placement.client_process_cpus(n)
            logs: list[Path] = []
            for sub, sub_prefix, sub_cpus in zip(
                process_specs(spec, n), prefixes, cpus, strict=True
            ):
                spec_path = sub_prefix.with_suffix(".spec.json")
                _write_json(spec_path, sub.to_dict())
                logs.append(self.out / "logs" / f"{sub_prefix.name}-loadgen.log")
                with self.stop.deferred():
                    workers.append(
                        start_worker(
                            spec_path,
                            sub_prefix,
                            sub_cpus,
                            logs[-1],
                            s.client_loop,
                            self.engine,
                            self.locust_workers,
                            argv_prefix=client_prefix,
                            signin_secret=self.signin_secret,
                        )
                    )
            client_ns = None if klink is None else (klink.client_ns, base["link"])
            part = self._watch(server, workers, spec, prefix, logs, client_ns, link)
            if n > 1 and "failed" not in part:
                part = self._merged(spec, prefixes, prefix, part)
            return _into(base, part)
        finally:
            # A second Ctrl-C must not cut this short: over the kernel link the
            # namespaces are deleted next, and nothing may still run in them.
            with self.stop.deferred():
                for worker in workers:
                    stop_process(worker)
                if link is not None:
                    stop_process(link)
                if server is not None:
                    code = stop_process(server)
                    base["server_exit_code"] = code

    def _watch(
        self,
        server: Child,
        workers: list[Child],
        spec: CellRun,
        prefix: Path,
        logs: list[Path],
        client_ns: tuple[str, dict[str, Any]] | None = None,
        link: Child | None = None,
    ) -> dict[str, Any]:
        """Follow the load generators' events until they end; CPU is read at each one's
        measure and drain events (the server's from the first measure to the last drain).

        Several processes are started together: each prints ``ready`` once set up, and
        when all have, each gets SIGUSR1 (:func:`loadgen.worker.wait_for_start`).
        """
        deadline = time.monotonic() + spec.warmup_s + spec.duration_s + spec.timeout_s
        deadline += WORKER_GRACE_S
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
        phase = "warm-up"
        while running:
            self.stop.check()
            server.sample_rss()
            for worker in workers:
                worker.sample_rss()
            if server_died is None and server.proc.poll() is not None:
                server_died = server.proc.returncode
            if link is not None and link_died is None and link.proc.poll() is not None:
                link_died = link.proc.returncode
            if time.monotonic() > deadline:
                for worker in workers:
                    stop_process(worker)
                return {"failed": "load generator did not stop by its deadline; killed"}
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
            self._status(f"{spec.cell} r{spec.repeat}: {phase}, {sum(requests):,} requests")
        for worker, log in zip(workers, logs, strict=True):
            code = worker.proc.wait(timeout=10)
            if code != 0:
                return {"failed": f"load generator exited with code {code}: {log_tail(log)}"}
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
            "client_rss_mb": _mb(sum(w.peak_rss for w in workers)),
            "server_cpus": server.cpus,
            "client_cpus": client_cpus or workers[0].cpus,
            # Utilisation is per client CPU: N processes on N CPUs can use N seconds a second.
            "client_cpu_count": len(client_cpus) or n,
            "server_loop": server.info.get("loop"),
            # Timeouts and WebSocket pings the server ran with (its ready line).
            "server_liveness": server.info.get("liveness"),
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
        if server_died is not None:
            part["failed"] = (
                f"server exited with code {server_died} during the run: "
                f"{log_tail(self.out / 'logs' / (prefix.name + '-server.log'))}"
            )
        elif link_died is not None:
            # Every connection through it broke: what the load generator saw is no measurement.
            part["failed"] = (
                f"link emulator exited with code {link_died} during the run: "
                f"{log_tail(self.out / 'logs' / (prefix.name + '-link.log'))}"
            )
        return part

    def _merged(
        self, spec: CellRun, prefixes: list[Path], prefix: Path, first: dict[str, Any]
    ) -> dict[str, Any]:
        """The processes' parts merged into one (see :mod:`loadgen.processes`), with the
        ``procs`` block :meth:`_watch` measured."""
        try:
            part = merge_process_parts(spec, prefixes, prefix)
        except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
            return {"failed": f"could not merge the load generators' results: {exc!r}"}
        part["procs"] = first["procs"]
        return part


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


def merge_samples(out_dir: Path, parts: list[dict[str, Any]]) -> int:
    """Concatenate the parts' raw rows into ``samples.parquet`` (and ``deliveries.parquet``).

    Returns the number of sample rows. Part files are removed once merged.
    """
    merged = 0
    for suffix, schema, name in (
        (".parquet", SAMPLE_SCHEMA, SAMPLES_FILE),
        (".deliveries.parquet", DELIVERY_SCHEMA, DELIVERIES_FILE),
    ):
        paths = [out_dir / (part["part"] + suffix) for part in parts]
        tables = [pq.read_table(p).cast(schema) for p in paths if p.exists()]
        if name == DELIVERIES_FILE and not tables:
            continue
        table = pa.concat_tables(tables) if tables else schema.empty_table()
        pq.write_table(table, out_dir / name, compression="zstd")
        for p in paths:
            p.unlink(missing_ok=True)
        if name == SAMPLES_FILE:
            merged = table.num_rows
    return merged


def run_scenario(
    scenario: Scenario,
    scenario_path: Path | None = None,
    out_dir: Path | None = None,
    console: Console | None = None,
    show_progress: bool = True,
    engine: str = "asyncio",
    locust_workers: int = 0,
) -> RunResult:
    """Run every cell of ``scenario`` and write the results folder.

    ``engine`` is ``asyncio`` (rtbench's open/closed-loop generator) or
    ``locust`` (closed loop; ``locust_workers`` worker processes under a master).
    The folder is ``out_dir`` (which must be absent or empty) or a new
    ``results/RUN_ID``; :class:`loadgen.runfolder.RunFolderTaken` when another run has it.
    """
    console = console or Console(stderr=True)
    if engine == "locust" and scenario.scenario.client_processes > 1:
        raise ValueError("client_processes applies to the asyncio engine; locust has --workers")
    # Refuse an impossible link before anything starts or is written.
    network = None
    if scenario.network is not None:
        network = plan_link(scenario.network.link, scenario.network.resolved())
    # Exclusive: a second run never writes into this one's folder (RunFolderTaken).
    out = claim_run_folder(out_dir, scenario.name)
    run_id = out.name
    placement = plan_placement(scenario.scenario.placement)
    meta: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "run_id": run_id,
        "engine": engine,
        "locust_workers": locust_workers if engine == "locust" else None,
        "complete": False,
        "started_at": _now(),
        "ended_at": None,
        "command": shlex.join(sys.argv),
        "scenario_file": str(scenario_path) if scenario_path else None,
        "scenario": scenario.as_dict(),
        # Each [[parts]] entry as the single-workload scenario its cells ran under.
        "parts": {name: sub.as_dict() for name, sub in scenario.part_scenarios().items()},
        "environment": collect_environment(),
        "pinning": placement.as_dict(),
    }
    if network is not None:
        relayed = any(p["link"] == "userspace" for p in network["profiles"].values())
        if any(p["link"] == "kernel" for p in network["profiles"].values()):
            network["stale_namespaces_removed"] = _remove_stale_namespaces(console)
        # What the relay itself adds; None when no profile runs through it.
        network["relay_overhead"] = _relay_overhead() if relayed else None
        meta["network"] = network
    _write_json(out / META_FILE, meta)
    if placement.note:
        console.print(f"[yellow]note:[/] {placement.note}")
    run_cells = scenario.run_cells()
    order = [(r, c) for r in range(scenario.scenario.repeats) for c in run_cells]
    parts: list[dict[str, Any]] = []
    interrupted = False
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        disable=not show_progress,
    )
    links = {n: p["link"] for n, p in network["profiles"].items()} if network else None
    runner = _Runner(scenario, out, placement, progress, engine, locust_workers, links)
    try:
        with _sigterm_as_interrupt(runner.stop), progress:
            runner.task_id = progress.add_task(scenario.name, total=len(order), status="")
            floors = runner.harness_floors(run_cells)
            if floors:
                meta["harness_floor"] = floors
                _write_json(out / META_FILE, meta)
            for index, (repeat, cell) in enumerate(order):
                runner.stop.check()
                part = runner.run_one(index, repeat, cell)
                parts.append(part)
                _write_json(out / "parts" / f"{Path(part['part']).name}.record.json", part)
                if "failed" in part:
                    console.print(
                        f"[red]error[/] {term_text(cell.id)} repeat {repeat}: "
                        f"{term_text(part['failed'])}"
                    )
                progress.advance(runner.task_id)
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]interrupted: writing the repeats that finished[/]")
    finally:
        merge_samples(out, parts)
        summary = build_summary(
            run_id,
            scenario.name,
            [cell_identity(c) for c in run_cells],
            parts,
            complete=not interrupted,
        )
        _write_json(out / SUMMARY_FILE, summary)
        meta["complete"] = not interrupted
        meta["ended_at"] = _now()
        meta["loops"] = sorted({str(p.get("loop")) for p in parts if p.get("loop")})
        meta["pinning"]["client_processes"] = client_process_pinning(parts)
        _write_json(out / META_FILE, meta)
    return RunResult(out, not interrupted, summary, meta)


def client_process_pinning(parts: list[dict[str, Any]]) -> dict[str, list[list[int] | None]]:
    """The CPUs each load-generator process of a cell was given, read back from the
    processes (the first repeat that ran of each cell); one list per process."""
    out: dict[str, list[list[int] | None]] = {}
    for part in parts:
        procs = part.get("procs")
        if not procs or part["cell"] in out:
            continue
        each = procs.get("client_processes")
        out[part["cell"]] = [p["cpus"] for p in each] if each else [procs.get("client_cpus")]
    return out


@contextlib.contextmanager
def interactive_spec(scenario: Scenario, cell_id: str | None = None) -> Iterator[CellRun]:
    """Start a server for one cell and yield its spec, for interactive tools (locust's UI).

    The server is stopped when the block ends. TLS and link profiles are not
    applied here: the UI drives the plain server on loopback. A fresh sign-in
    secret is put in this process's environment for the block, so the server
    and the UI's processes (started inside it) share it.
    """
    run_cells = scenario.run_cells()
    chosen = next((c for c in run_cells if cell_id in (None, c.id, c.cell.id)), None)
    if chosen is None:
        known = ", ".join(c.id for c in run_cells)
        raise ValueError(f"no cell {cell_id!r} in scenario {scenario.name}; cells: {known}")
    scenario = chosen.settings
    s = scenario.scenario
    cell = chosen.cell
    folder = claim_run_folder(None, f"{scenario.name}-interactive")
    previous = os.environ.get(SECRET_ENV)
    os.environ[SECRET_ENV] = secret = new_secret()
    try:
        server = start_server(
            cell.transport,
            None,
            folder / "server.log",
            scenario.server.max_message_bytes,
            extra_args=server_args(scenario),
            signin_secret=secret,
        )
    except BaseException:
        _restore_env(SECRET_ENV, previous)
        raise
    try:
        yield CellRun(
            cell=chosen.id,
            transport=cell.transport,
            client=cell.client,
            conn_mode=cell.conn_mode or "",
            base_url=f"http://127.0.0.1:{server.info['port']}",
            model=scenario.load.model,
            connections=scenario.load.connections,
            rate=chosen.rate,
            duration_s=s.duration_s,
            warmup_s=s.warmup_s,
            payload_bytes=s.payload_bytes,
            timeout_s=s.timeout_s,
            workload=s.workload,
            delivery=cell.delivery_mode,
            realtime=rt.model_dump(mode="json") if (rt := scenario.realtime) else None,
        )
    finally:
        stop_process(server)
        _restore_env(SECRET_ENV, previous)


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
