"""How a locust process ends its share of a run: drain, account, and its result record.

:class:`Ending` is a part of :class:`~loadgen.locust_engine.world.World`::

    result = world.finish()   # after the end: what the master merges into the part
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import gevent
import gevent.pool
import pyarrow.parquet as pq
from gevent.event import Event
from gevent.lock import Semaphore

from loadgen.cellspec import CellRun
from loadgen.engine import EngineStats
from loadgen.locust_engine.users import VirtualUser
from loadgen.pacer import NS_PER_S
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.part import delivery_record, delivery_table
from loadgen.realtime.stage import FAILURES, drain_done, stop_grace_s
from loadgen.realtime.stats import RealtimeStats
from loadgen.realtime.tracker import Tracker
from loadgen.realtime.visits import time_on_site_report, visits_ms
from loadgen.recorder import LatencyHistograms, RawRecorder
from servers import gcfreeze

clock = time.perf_counter_ns
log = logging.getLogger("rtbench.locust")


def _table_bytes(table: Any) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


class Ending:
    """The drain after the end and the process's result record."""

    spec: CellRun
    params: RealtimeParams | None
    realtime: bool
    index: int
    stop: Event
    setup_sem: Semaphore
    failure: str | None
    fd_limit: dict[str, Any] | None
    local_users: int | None
    in_flight: int
    cpu0: float
    _cpu_measure: list[float]
    raw: RawRecorder
    hist: LatencyHistograms
    tracker: Tracker
    echo_stats: EngineStats
    rt_stats: RealtimeStats
    behaviours: list[gevent.pool.Group]
    churners: set[str]
    people: dict[str, VirtualUser]
    order: list[str]
    everyone: dict[str, VirtualUser]
    truth: dict[str, list[list[int]]]
    start_ns: int
    #: World's: stops timing this process's stalls and returns their report.
    stop_watching_stalls: Callable[[], dict[str, Any]]

    def finish(self) -> dict[str, Any]:
        """After the end: let work in flight finish, drain deliveries, and build the result."""
        self.stop.wait()
        try:
            if self.realtime:
                self._finish_realtime()
            else:
                self._finish_echo()
        except Exception as exc:
            log.exception("finishing the run failed")
            self.failure = self.failure or f"{type(exc).__name__}: {exc}"
        return self.result()

    def _finish_echo(self) -> None:
        deadline = clock() + int((self.spec.timeout_s + 1.0) * NS_PER_S)
        while self.in_flight > 0 and clock() < deadline:
            gevent.sleep(0.01)
        self.echo_stats.cancelled_in_flight = self.in_flight
        self.echo_stats.drained_ns = clock()

    def _finish_realtime(self) -> None:
        params = self.params
        assert params is not None
        stats = self.rt_stats
        grace = stop_grace_s(self.spec.timeout_s, params, bool(self.churners))
        limit = time.monotonic() + grace
        for group in self.behaviours:
            group.join(timeout=max(0.0, limit - time.monotonic()))
        for group in self.behaviours:
            group.kill(block=True, timeout=2.0)
        # Everyone comes back, so what was owed to an absent user can still arrive.
        back = [gevent.spawn(self._back_online, p) for p in self.people.values() if not p.online]
        gevent.joinall(back, timeout=self.spec.timeout_s + 2)
        drain_end = clock() + int(params.drain_s * NS_PER_S)
        while not drain_done(self.tracker, drain_end):
            gevent.sleep(0.02)
        stats.drained_ns = clock()
        if params.activity_rate:
            stats.activity = self._time_on_site()
        if self.order:
            with contextlib.suppress(*FAILURES):
                stats.server_stats = self.people[self.order[0]].call(
                    "stats", {"stalls_since_ns": self.start_ns}
                )
        stats.stalls = self.stop_watching_stalls()
        stats.gc = gcfreeze.describe()
        everyone = list(self.everyone.values())
        stats.reconnects = sum(p.reconnects for p in everyone)
        stats.auth_closes = sum(p.auth_closes for p in everyone)
        broken = [p.failure for p in self.people.values() if p.failure is not None]
        if broken:
            self.failure = f"{len(broken)} users' receivers failed: {broken[0]!r}"
        for p in everyone:
            s, r = p.wire_totals()
            stats.wire_sent += s
            stats.wire_received += r
        stats.users = len(self.order)
        gevent.joinall([gevent.spawn(p.stop) for p in everyone], timeout=5.0)

    def _back_online(self, p: VirtualUser) -> None:
        with self.setup_sem, contextlib.suppress(*FAILURES):
            p.go_online()

    def _time_on_site(self) -> dict[str, Any]:
        """Server's time on site per person against the person's own record of its visits."""
        pairs: list[tuple[float, float]] = []
        for name, visits in self.truth.items():
            try:
                report = self.people[name].call("time_on_site", {})
            except FAILURES:
                continue
            pairs.append((float(report.get("time_on_site_ms", 0.0)), visits_ms(visits)))
        return time_on_site_report(pairs)

    def result(self) -> dict[str, Any]:
        """This process's result record: what the master merges into the part."""
        cpu = time.process_time() - self.cpu0
        measured_cpu = (
            self._cpu_measure[1] - self._cpu_measure[0] if len(self._cpu_measure) == 2 else None
        )
        hist = self.hist
        out: dict[str, Any] = {
            "worker_index": self.index,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "users": self.local_users or 0,
            "error": self.failure,
            "samples": _table_bytes(self.raw.to_table()),
            **hist.as_record(),
            "cpu_s_total": cpu,
            "cpu_s_measured": measured_cpu,
            "fd_limit": self.fd_limit,
        }
        if not self.realtime:
            stats = self.echo_stats
            measured = [s for s in self.raw.rows if not s.warmup and s.kind == "request"]
            window_end = stats.ended_ns
            if stats.budget_exhausted and measured:
                window_end = max(s.received_ns for s in measured)
            start = stats.measure_started_ns
            out["window_s"] = max(0, window_end - start) / 1e9 if start else 0.0
            out["stats"] = asdict(stats)
            return out
        stats_rt = self.rt_stats
        start = stats_rt.measure_started_ns
        out["window_s"] = max(0, stats_rt.ended_ns - start) / 1e9 if start else 0.0
        out["stats"] = asdict(stats_rt)
        out["deliveries_table"] = _table_bytes(delivery_table(self.spec, self.tracker))
        out |= delivery_record(self.tracker, self.raw.rows)
        return out
