"""One repeat of one cell: its server, its link and its load generators, started and stopped.

::

    runner = RepeatRunner(scenario, out, placement, progress, engine="asyncio")
    part = runner.run_one(index, repeat, run_cell)   # the part record ("failed" on error)

Over the kernel link each repeat gets its own pair of network namespaces,
deleted once every child has stopped. A cell with a ``server_url`` starts no server: the
one listening there is found and measured (:mod:`loadgen.run.attach`), never stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.progress import Progress

from loadgen.cellspec import CellRun
from loadgen.floor import measure_floor
from loadgen.link.kernel import KernelLink
from loadgen.link.namespaces import KernelLinkError
from loadgen.processes import merge_process_parts, process_prefixes
from loadgen.procs import (
    Child,
    Placement,
    ProcessFailed,
    final_counters,
    start_link,
    start_server,
    start_worker,
    stop_process,
)
from loadgen.run.attach import attach_server
from loadgen.run.capacity import read_somaxconn, server_sizing, sizing_args
from loadgen.run.cell import cell_run, server_args
from loadgen.run.files import slug, write_json
from loadgen.run.network import check_kernel_server
from loadgen.run.stop import StopRequest
from loadgen.run.watch import watch_workers
from loadgen.scenario import RunCell, Scenario
from loadgen.server_url import ServerUnreachable
from loadgen.shares import process_specs
from loadgen.tls import CertPaths, make_certificates
from servers.realtime.credentials import new_secret


def _into(record: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``record`` updated in place with ``extra``: what a ``finally`` adds later still lands."""
    record.update(extra)
    return record


class RepeatRunner:
    """Runs the repeats of one scenario into ``out_dir``, one :meth:`run_one` call each.

    ::

        runner = RepeatRunner(scenario, out, plan_placement("auto"), progress)
        floors = runner.harness_floors(run_cells)
        part = runner.run_one(index, repeat, run_cell)   # its part record

    ``progress`` (optional) shows the repeat's phase in the task ``task_id``;
    :attr:`stop` is the run's :class:`StopRequest`, to route signals to.
    ``server_secret`` is the sign-in secret of the servers at cells' server_url, which
    their load generators sign in with (None: echo cells only, which do not sign in).
    """

    def __init__(
        self,
        scenario: Scenario,
        out_dir: Path,
        placement: Placement,
        progress: Progress | None,
        engine: str = "asyncio",
        locust_workers: int = 0,
        links: dict[str, str] | None = None,
        server_secret: str | None = None,
    ) -> None:
        self.engine = engine
        self.server_secret = server_secret
        #: Profile name -> "kernel", "userspace" or "none" (from :func:`plan_link`).
        self.links = links or {}
        self.locust_workers = locust_workers
        self.scenario = scenario
        self.out = out_dir
        self.placement = placement
        self.progress = progress
        self.task_id: Any = None
        self.stop = StopRequest()
        self.certs: CertPaths | None = None
        #: The run's sign-in secret: servers and load generators get it in their
        #: environment, so only this run's users can sign in.
        self.signin_secret = new_secret()
        #: The kernel's cap on listen backlogs, read once for the run (None: unknown).
        self.somaxconn = read_somaxconn()

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

    def sizing(self, run_cell: RunCell) -> dict[str, int]:
        """The connections ``run_cell``'s server makes room for and its listen backlog
        (:mod:`loadgen.run.capacity`), for all the cell's load-generator processes."""
        s = run_cell.settings.scenario
        processes = max(1, self.locust_workers) if self.engine == "locust" else s.client_processes
        return server_sizing(run_cell, processes, self.somaxconn)

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
        stem = f"{index:03d}-{slug(run_cell.id)}-r{repeat}"
        base: dict[str, Any] = {
            "cell": run_cell.id,
            "repeat": repeat,
            "index": index,
            "part": f"parts/{stem}",
        }
        if self._link_mode(run_cell) != "kernel":
            return self._run_children(run_cell, repeat, stem, base, None)
        if run_cell.cell.server_url is not None:
            # The scenario refuses this; a running server cannot join a namespace.
            return _into(base, {"failed": "a server_url cell cannot run over the kernel link"})
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
        running: dict[str, Any] | None = None  # the record of a server rtbench did not start
        try:
            try:
                with self.stop.deferred():
                    if cell.server_url is not None:
                        server, host, running = attach_server(run_cell)
                        base["server_process"] = running
                    else:
                        server = start_server(
                            cell.transport,
                            self.placement.server_cpus,
                            self.out / "logs" / f"{stem}-server.log",
                            settings.server.max_message_bytes,
                            host=host,
                            extra_args=server_args(settings)
                            + sizing_args(self.sizing(run_cell))
                            + self._tls_args(cell.tls),
                            argv_prefix=server_prefix,
                            signin_secret=self.signin_secret,
                            command=cell.server_command,
                        )
            except (ProcessFailed, ServerUnreachable) as exc:
                # One repeat fails; the run goes on and what other cells measured is kept.
                return _into(base, {"failed": str(exc)})
            target_port = server.info["port"]
            if klink is not None:
                problem = check_kernel_server(server, klink, base["link"])
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
                            target_host=host,
                            # HTTP/3 runs over QUIC: the relay carries UDP as well.
                            udp=cell.http_version == "3",
                        )
                except ProcessFailed as exc:
                    return _into(base, {"failed": str(exc)})
                target_port = link.info["port"]
                host = "127.0.0.1"  # where the relay listens
                base["link"] = {"mode": "userspace", "port": target_port, "cpus": link.cpus}
            shown = f"[{host}]" if ":" in host else host
            spec = cell_run(
                run_cell,
                f"{'https' if cell.tls else 'http'}://{shown}:{target_port}",
                repeat=repeat,
                think_time_s=settings.load.think_time_ms / 1000.0,
                max_requests=s.max_requests,
                tls=s.tls_version if cell.tls else None,
                ca_file=self._certs().ca if cell.tls else None,
            )
            # The server's own footprint before any user signs in: what each
            # connected user costs is measured above it.
            rss_before_users = server.sample_rss()
            n = s.client_processes
            prefixes = process_prefixes(prefix, n)
            cpus = self.placement.client_process_cpus(n)
            logs: list[Path] = []
            for sub, sub_prefix, sub_cpus in zip(
                process_specs(spec, n), prefixes, cpus, strict=True
            ):
                spec_path = sub_prefix.with_suffix(".spec.json")
                write_json(spec_path, sub.to_dict())
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
                            signin_secret=self.signin_secret
                            if running is None
                            else self.server_secret,
                        )
                    )
            client_ns = None if klink is None else (klink.client_ns, base["link"])
            part = watch_workers(
                server,
                workers,
                spec,
                prefix,
                logs,
                self.out / "logs",
                self.stop,
                self._status,
                client_ns,
                link,
                server_rss_before=rss_before_users,
            )
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
                if server is not None and running is not None:
                    # Left running; what the repeat cost it is read from it now.
                    running["after"] = server.reading()
                elif server is not None:
                    code = stop_process(server)
                    base["server_exit_code"] = code
                    # Refusals and the like, counted by the server (None if it said nothing).
                    base["server_counters"] = final_counters(server)

    def _merged(
        self, spec: CellRun, prefixes: list[Path], prefix: Path, first: dict[str, Any]
    ) -> dict[str, Any]:
        """The processes' parts merged into one (see :mod:`loadgen.processes`), with the
        ``procs`` block :func:`watch_workers` measured."""
        try:
            part = merge_process_parts(spec, prefixes, prefix)
        except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
            return {"failed": f"could not merge the load generators' results: {exc!r}"}
        part["procs"] = first["procs"]
        return part
