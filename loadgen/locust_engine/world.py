"""What one locust process knows about its share of a cell: timeline, samples, deliveries.

Every locust process that runs users (the single process of a local run, or
each worker of a distributed one) has one :class:`World`, attached to the
locust environment as ``environment.rtbench``. The users register with it,
record every request and delivery through it, and wait on its timeline::

    world = World(spec, worker_index=0, n_workers=2)
    world.attach(environment)
    ...                     # users spawn, set up, call world.user_ready()
    world.wait_ready(60)    # all local users set up (and topics subscribed)
    world.begin()           # the clock starts: warm-up, measure, end
    result = world.finish() # drain, account, and the worker's result record

A worker's users never expect anything from another worker's users: in the
real-time workloads a locust user is a whole group (room) of people, so
everyone who can receive a message, presence change or notification sits in
the same process as its sender, and one :class:`~loadgen.realtime.tracker.Tracker`
per process accounts for every delivery it owes.

What each person does and when is :mod:`loadgen.realtime.schedule`'s, run
through the shared stage (:mod:`loadgen.realtime.stage`) by the gevent driver
(:mod:`loadgen.locust_engine.engine`); samples are built by
:func:`loadgen.realtime.samples.build_sample` and the part record's deliveries by
:mod:`loadgen.realtime.part`, as in the asyncio engine.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import os
import random
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
from loadgen.locust_engine.engine import Stage, sleep_until
from loadgen.locust_engine.net import configure_tls
from loadgen.locust_engine.users import VirtualUser
from loadgen.pacer import NS_PER_S
from loadgen.realtime.groups import churners_of
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.part import ACTION_KINDS, delivery_record, delivery_table
from loadgen.realtime.samples import build_sample, echo_sample
from loadgen.realtime.stage import (
    FAILURES,
    drain_done,
    group_behaviours,
    publisher_behaviours,
    publisher_names,
    stop_grace_s,
    topics_of,
)
from loadgen.realtime.stats import RealtimeStats
from loadgen.realtime.tracker import Tracker
from loadgen.realtime.user_state import Endpoint
from loadgen.realtime.visits import time_on_site_report, visits_ms
from loadgen.recorder import LatencyHistograms, RawRecorder, Sample
from servers.protocol import make_payload

clock = time.perf_counter_ns
log = logging.getLogger("rtbench.locust")

SETUP_CONCURRENCY = 32
#: Appended to locust's request names for what happens before the measured window.
WARMUP_SUFFIX = " [warm-up]"


class RequestFailed(Exception):
    """What locust's stats record as a failure: the rtbench error code."""


def group_count(params: RealtimeParams) -> int:
    """How many groups (real-time locust users) a scenario's ``users`` make: whole groups."""
    return -(-params.users // params.group_size)


def _table_bytes(table: Any) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


class World:
    """One process's share of a cell (see the module docstring)."""

    def __init__(
        self,
        spec: CellRun,
        worker_index: int = 0,
        n_workers: int = 1,
        interactive: bool = False,
    ) -> None:
        self.spec = spec
        configure_tls(spec.ca_file, spec.tls)
        self.realtime = spec.workload != "echo"
        self.params = RealtimeParams.model_validate(spec.realtime or {}) if self.realtime else None
        self.index = worker_index
        self.n_workers = max(1, n_workers)
        self.tag = f"w{worker_index}"
        self.interactive = interactive
        self.events: Any = None
        self.runner: Any = None
        #: Called with "measure" and "drain" as this process's window opens and closes.
        self.on_phase: Callable[[str], None] | None = None
        self.raw = RawRecorder()
        self.hist = LatencyHistograms(ACTION_KINDS if self.realtime else frozenset({"request"}))
        self.tracker = Tracker(0)
        self.requests = 0
        self.errors = 0
        # Timeline.
        self.spawned = Event()
        self.go = Event()
        self.stop = Event()
        self.finished = Event()
        self.start_ns = 0
        self.warmup_end_ns = 0
        self.end_ns = 0
        self.cpu0 = time.process_time()
        self._cpu_measure: list[float] = []
        self.local_users: int | None = None
        self.users_ready = 0
        self.setup_errors: list[str] = []
        self.failure: str | None = None
        # Echo.
        self.echo_stats = EngineStats()
        self.in_flight = 0
        self._conns = itertools.count()
        share, extra = divmod(spec.max_requests, self.n_workers)
        self.budget = share + (1 if worker_index < extra else 0)
        if interactive:
            self.budget = 1 << 62
        # Real time.
        self.rt_stats = RealtimeStats()
        self.rng = random.Random(
            (self.params.seed if self.params else 1) * 1_000_003 + spec.repeat + 7919 * worker_index
        )
        self.endpoint = Endpoint(
            spec.base_url,
            spec.transport,
            spec.client,
            spec.conn_mode,
            spec.delivery,
            spec.timeout_s,
        )
        self.people: dict[str, VirtualUser] = {}
        self.order: list[str] = []
        self.groups: list[list[str]] = []
        self.group_of: dict[str, int] = {}
        self.churners: set[str] = set()
        self.subscribers: dict[str, list[str]] = {}
        self.publishers: dict[str, VirtualUser] = {}
        #: People and publishers: every user a behaviour's step may name.
        self.everyone: dict[str, VirtualUser] = {}
        self.truth: dict[str, list[list[int]]] = {}
        self.behaviours: list[gevent.pool.Group] = []
        self.body = make_payload(self.params.message_bytes) if self.params else ""
        self.setup_sem = Semaphore(SETUP_CONCURRENCY)
        self._ids = (i * self.n_workers + self.index for i in itertools.count(1))
        self._people_n = itertools.count()
        self._groups_n = itertools.count()
        self.stage = Stage(
            self.rng,
            self.tracker,
            self.body,
            self.rt_stats,
            self.everyone,
            self.group_of,
            self.stop,
            self._ids,
            room_prefix=self.tag,
            interactive=interactive,
        )
        if interactive:
            # The web UI: no barrier, no end; users act as soon as they are set up.
            self.go.set()
            self.start_ns = self.warmup_end_ns = clock()
            self.end_ns = 1 << 62
            self.stage.start_ns, self.stage.end_ns = self.start_ns, self.end_ns

    # -- wiring ------------------------------------------------------------------

    def attach(self, environment: Any) -> None:
        """Make this the world of ``environment``'s users and listen for spawning."""
        environment.rtbench = self
        self.events = environment.events
        self.runner = environment.runner

        def on_spawned(user_count: int, **_kw: Any) -> None:
            runner = environment.runner
            self.local_users = len(runner.user_greenlets) if runner is not None else user_count
            self.spawned.set()

        environment.events.spawning_complete.add_listener(on_spawned)

    def next_id(self) -> int:
        """A message/notification id unique across the workers of the run."""
        return next(self._ids)

    def new_conn(self) -> int:
        """The ``conn`` column of a new echo user: unique across the workers of the run."""
        return next(self._conns) * self.n_workers + self.index

    @property
    def is_warmup_over(self) -> bool:
        return self.warmup_end_ns > 0 and clock() >= self.warmup_end_ns

    # -- recording ---------------------------------------------------------------

    def report(
        self,
        request_type: str,
        name: str,
        latency_ns: int,
        nbytes: int,
        error: str | None,
        warmup: bool,
    ) -> None:
        """Fire locust's request event with a real, sub-millisecond response time."""
        if self.events is None:
            return
        self.events.request.fire(
            request_type=request_type,
            name=name + WARMUP_SUFFIX if warmup else name,
            response_time=latency_ns / 1e6,
            response_length=nbytes,
            exception=RequestFailed(error) if error else None,
            context={},
        )

    def record(self, sample: Sample) -> None:
        """Keep one sample (raw row and histograms) unless this is the interactive web UI."""
        self.requests += 1
        if not sample.ok:
            self.errors += 1
        if self.interactive:
            return
        self.raw.record(sample)
        self.hist.record(sample)

    def echo_sample(
        self,
        conn: int,
        kind: str,
        intended: int,
        sent: int,
        received: int,
        delta: tuple[int, int],
        error: str | None,
        origin: int | None,
        request_type: str,
        name: str,
    ) -> None:
        """Record one echo request or WebSocket connect, as the asyncio engine's ``fire``."""
        stats = self.echo_stats
        if error:
            stats.errors_by_code[error] = stats.errors_by_code.get(error, 0) + 1
        sample = echo_sample(
            self.spec,
            kind,
            conn,
            intended,
            sent,
            received,
            self.warmup_end_ns,
            delta,
            error,
            origin,
        )
        self.record(sample)
        self.report(request_type, name, sample.latency_ns, delta[1], error, sample.warmup)

    def on_request(
        self, op: str, sent: int, received: int, bs: int, br: int, error: str | None, items: int
    ) -> None:
        """A real-time operation finished (see :data:`loadgen.realtime.conns.OnRequest`)."""
        spec = self.spec
        self.rt_stats.count_request(op, error, items)
        sample = build_sample(
            spec,
            op,
            sent,
            received,
            self.warmup_end_ns,
            bytes_sent=bs,
            bytes_received=br,
            items=items,
            error=error,
        )
        self.record(sample)
        if spec.delivery == "push":
            request_type, name = "WS", f"ws {op}"
        elif op == "poll":
            request_type, name = "GET", f"/inbox {spec.delivery}"
        else:
            request_type, name = "POST", f"/rpc {op}"
        self.report(request_type, name, received - sent, br, error, sample.warmup)

    def on_connect(self, user: str, t0: int, t1: int, error: str | None) -> None:
        """A person's WebSocket or event stream opened (or failed to)."""
        sample = build_sample(self.spec, "connect", t0, t1, self.warmup_end_ns, error=error)
        self.record(sample)
        if self.spec.delivery == "sse":
            self.report("SSE", "sse connect", t1 - t0, 0, error, sample.warmup)
        else:
            self.report("WS", "ws connect", t1 - t0, 0, error, sample.warmup)

    def on_item(
        self, recipient: str, seq: int, item: Any, received: int, via: str, nbytes: int
    ) -> None:
        """An item reached ``recipient``: account for it and report its real latency."""
        tracker = self.tracker
        row = tracker.received(
            recipient, seq, tracker.key_of(recipient, item), received, via, nbytes
        )
        if self.interactive and len(tracker.rows) > 100_000:
            tracker.rows.clear()
        if not isinstance(item, dict):
            return
        kind = item.get("type")
        # Messages and notifications carry their sender's send time ("ts", the same
        # monotonic clock: the sender is in this process); a presence change's origin
        # is when its user left or came back, which only the tracker knows.
        ts = item.get("ts")
        if kind in ("message", "notification") and isinstance(ts, int) and 0 < ts < received:
            latency = received - ts
        elif row is not None:
            latency = row.latency_ns
        else:
            return
        label = str(kind)
        if row is not None and row.type:
            label = row.type
        name = f"{label} delivery"
        if row is not None and row.duplicate:
            name += " (duplicate)"
        elif row is not None and row.deferred:
            name += " (deferred)"
        elif row is None:
            name += " (unexpected)"
        warmup = row.warmup if row is not None else received < self.warmup_end_ns
        self.report(
            "PUSH" if via == "push" else "POLL", name, max(latency, 1), nbytes, None, warmup
        )

    # -- set-up --------------------------------------------------------------------

    def user_ready(self) -> None:
        self.users_ready += 1

    def user_failed(self, message: str) -> None:
        self.setup_errors.append(message)

    def new_group(self, size: int | None = None) -> list[VirtualUser]:
        """Create the people of one group (a real-time locust user); names are unique."""
        assert self.params is not None
        params = self.params
        size = size or params.group_size
        gi = next(self._groups_n)
        names = [f"{self.tag}u{next(self._people_n)}" for _ in range(size)]
        churners = churners_of(names, params)
        members = []
        for name in names:
            person = self._person(name, params)
            self.people[name] = self.everyone[name] = person
            self.order.append(name)
            self.group_of[name] = gi
            members.append(person)
        self.groups.append(names)
        self.churners.update(churners)
        return members

    def _person(self, name: str, params: RealtimeParams, receives: bool = True) -> VirtualUser:
        return VirtualUser(
            name,
            self.endpoint,
            params,
            self.on_request,
            self.on_item if receives else lambda *a: None,
            self.on_connect,
            self.tracker.gap,
        )

    def _start_publishers(self, params: RealtimeParams) -> None:
        """This process's notification publishers (one a lane): people who receive nothing."""
        for name in publisher_names(f"{self.tag}-system", params):
            publisher = self._person(name, params, receives=False)
            publisher.start()
            self.publishers[name] = self.everyone[name] = publisher

    def stop_publishers(self) -> None:
        """Web UI: the test stopped; its publishers leave."""
        for name, publisher in list(self.publishers.items()):
            publisher.stop()
            del self.publishers[name], self.everyone[name]

    def setup_group(self, members: list[VirtualUser]) -> None:
        """Sign in and join everyone first (an HTTP user is online from its first
        authenticated request), then watch the churners: set-up causes no presence
        changes that nobody expects."""
        params = self.params
        assert params is not None
        for p in members:
            with self.setup_sem:
                p.start()
                p.call("join", {"room": self.stage.room(p.name)})
                if self.interactive and params.notification_rate:
                    index = self.order.index(p.name) // params.fanout
                    self._subscribe(p, f"{self.tag}t{index}")
        watched = [m.name for m in members if m.name in self.churners]
        if not (params.churn_fraction and watched):
            return
        for p in members:
            if p.name not in self.churners:
                with self.setup_sem:
                    p.call("watch", {"users": watched})

    def _subscribe(self, p: VirtualUser, topic: str) -> None:
        p.call("subscribe", {"topic": topic})
        self.subscribers.setdefault(topic, []).append(p.name)

    def wait_ready(self, timeout_s: float) -> dict[str, Any]:
        """Wait until this process's users are spawned and set up; then the shared set-up.

        Returns what the worker reports to the master: ``users``, ``people``,
        ``setup_s`` and ``error`` (None when all is well).
        """
        t0 = clock()
        deadline = time.monotonic() + timeout_s
        if not self.spawned.wait(timeout_s):
            return self._ready_info(t0, "the master never finished spawning users")
        while (self.users_ready + len(self.setup_errors)) < (self.local_users or 0):
            if time.monotonic() > deadline:
                return self._ready_info(
                    t0, f"only {self.users_ready} of {self.local_users} users set up in time"
                )
            gevent.sleep(0.02)
        if self.setup_errors:
            return self._ready_info(
                t0,
                f"{len(self.setup_errors)} of {self.local_users} users failed to set up: "
                f"{self.setup_errors[0]}",
            )
        if self.realtime and self.order:
            try:
                self._shared_setup()
            except FAILURES as exc:
                return self._ready_info(t0, f"set-up failed: {exc!r}")
        return self._ready_info(t0, None)

    def _ready_info(self, t0: int, error: str | None) -> dict[str, Any]:
        self.rt_stats.setup_s = (clock() - t0) / 1e9
        return {
            "users": self.local_users or 0,
            "people": len(self.order),
            "setup_s": self.rt_stats.setup_s,
            "error": error,
        }

    def _shared_setup(self) -> None:
        """Topics over this process's people, and this process's notification publishers."""
        params = self.params
        assert params is not None
        if not params.notification_rate:
            return
        topic_of = topics_of(self.order, params.fanout, self.tag)
        jobs = [
            gevent.spawn(self._locked_subscribe, self.people[name], topic)
            for name, topic in topic_of.items()
        ]
        gevent.joinall(jobs, raise_error=True)
        self._start_publishers(params)

    def _locked_subscribe(self, p: VirtualUser, topic: str) -> None:
        with self.setup_sem:
            self._subscribe(p, topic)

    # -- the timeline ----------------------------------------------------------------

    def begin(self) -> None:
        """Start the clock: warm-up, then the measured window, then the end."""
        spec = self.spec
        self.start_ns = clock()
        self.echo_stats.started_ns = self.start_ns
        self.warmup_end_ns = self.start_ns + int(spec.warmup_s * NS_PER_S)
        self.tracker.warmup_end_ns = self.warmup_end_ns
        self.end_ns = self.warmup_end_ns + int(spec.duration_s * NS_PER_S)
        self.stage.start_ns, self.stage.end_ns = self.start_ns, self.end_ns
        self.go.set()
        if self.publishers:
            self.behaviours.append(self._spawn_notifications())
        gevent.spawn(self._phases)

    def _phases(self) -> None:
        sleep_until(self.warmup_end_ns, self.stop)
        now = clock()
        self.echo_stats.measure_started_ns = self.echo_stats.measure_started_ns or now
        self.rt_stats.measure_started_ns = now
        self._cpu_measure.append(time.process_time())
        if self.on_phase:
            self.on_phase("measure")
        sleep_until(self.end_ns, self.stop)
        now = clock()
        self.echo_stats.ended_ns = now
        self.rt_stats.ended_ns = now
        self._cpu_measure.append(time.process_time())
        self.stop.set()
        if self.on_phase:
            self.on_phase("drain")

    def take_budget(self) -> bool:
        """One more echo request may go; False (and the window ends) once the budget is spent."""
        if self.budget <= 0:
            if not self.echo_stats.budget_exhausted:
                # Out of requests before the clock ran out: the window ends now.
                self.echo_stats.budget_exhausted = True
                self.stop.set()
            return False
        self.budget -= 1
        return True

    # -- real-time behaviour (the asyncio engine's, under gevent) ---------------------

    def spawn_behaviours(self, members: list[VirtualUser]) -> gevent.pool.Group:
        """Start what each member of a group does once the clock runs."""
        params = self.params
        assert params is not None
        group = gevent.pool.Group()
        names = [p.name for p in members]
        for steps in group_behaviours(self.stage, params, names, self.churners, self.truth):
            group.spawn(self.stage.run, steps)
        self.behaviours.append(group)
        return group

    def notification_rate(self) -> float:
        """This process's share of the scenario's notification rate (by its share of people)."""
        params = self.params
        assert params is not None
        if self.interactive:
            return params.notification_rate
        return (
            params.notification_rate * len(self.order) / (group_count(params) * params.group_size)
        )

    def _spawn_notifications(self) -> gevent.pool.Group:
        group = gevent.pool.Group()
        lanes = publisher_behaviours(
            self.stage, list(self.publishers), self.notification_rate(), self.subscribers
        )
        for steps in lanes:
            group.spawn(self.stage.run, steps)
        return group

    def start_interactive_publishers(self) -> gevent.pool.Group | None:
        """Web UI: publishers for this process, publishing while the test runs."""
        params = self.params
        if params is None or not params.notification_rate or self.publishers:
            return None
        self._start_publishers(params)
        return self._spawn_notifications()

    # -- the end -----------------------------------------------------------------------

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
                stats.server_stats = self.people[self.order[0]].call("stats", {})
        everyone = list(self.everyone.values())
        stats.reconnects = sum(p.reconnects for p in everyone)
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

    # -- the result ----------------------------------------------------------------------

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
