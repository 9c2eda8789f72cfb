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
here under gevent; samples are built by :func:`loadgen.realtime.samples.build_sample`,
as in the asyncio engines.
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
from loadgen.clients.errors import ClientError
from loadgen.engine import EngineStats
from loadgen.locust_engine.net import configure_tls
from loadgen.locust_engine.people import Person
from loadgen.pacer import NS_PER_S
from loadgen.realtime import schedule
from loadgen.realtime.conns import OpFailed
from loadgen.realtime.engine import RealtimeStats
from loadgen.realtime.groups import churners_of, topic_count
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.samples import build_sample, echo_sample
from loadgen.realtime.tracker import Tracker
from loadgen.realtime.users import Endpoint
from loadgen.realtime.visits import time_on_site_report, visits_ms
from loadgen.recorder import LatencyHistograms, RawRecorder, Sample
from loadgen.worker import ACTION_KINDS, _delivery_histograms, _delivery_table
from servers.protocol import make_payload

clock = time.perf_counter_ns
log = logging.getLogger("rtbench.locust")

SETUP_CONCURRENCY = 32
#: Appended to locust's request names for what happens before the measured window.
WARMUP_SUFFIX = " [warm-up]"


class RequestFailed(Exception):
    """What locust's stats record as a failure: the rtbench error code."""


def sleep_until(deadline_ns: int, stop: Event | None = None) -> bool:
    """Sleep until ``clock() >= deadline_ns``; False if ``stop`` was set first."""
    while (remaining := deadline_ns - clock()) > 0:
        if stop is None:
            gevent.sleep(remaining / NS_PER_S)
        elif stop.wait(remaining / NS_PER_S):
            return False
    return True


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
        self.people: dict[str, Person] = {}
        self.order: list[str] = []
        self.groups: list[list[str]] = []
        self.group_of: dict[str, int] = {}
        self.churners: set[str] = set()
        self.subscribers: dict[str, list[str]] = {}
        self.publisher: Person | None = None
        self.truth: dict[str, list[list[int]]] = {}
        self.behaviours: list[gevent.pool.Group] = []
        self.body = make_payload(self.params.message_bytes) if self.params else ""
        self.setup_sem = Semaphore(SETUP_CONCURRENCY)
        self._ids = itertools.count(1)
        self._people_n = itertools.count()
        self._groups_n = itertools.count()
        if interactive:
            # The web UI: no barrier, no end; users act as soon as they are set up.
            self.go.set()
            self.start_ns = self.warmup_end_ns = clock()
            self.end_ns = 1 << 62

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
        return next(self._ids) * self.n_workers + self.index

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

    def new_group(self, size: int | None = None) -> list[Person]:
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
            self.people[name] = person
            self.order.append(name)
            self.group_of[name] = gi
            members.append(person)
        self.groups.append(names)
        self.churners.update(churners)
        return members

    def _person(self, name: str, params: RealtimeParams, receives: bool = True) -> Person:
        return Person(
            name,
            self.endpoint,
            params,
            self.on_request,
            self.on_item if receives else lambda *a: None,
            self.on_connect,
            self.tracker.gap,
        )

    def _start_publisher(self, params: RealtimeParams) -> None:
        """This process's notification publisher: a person who receives nothing."""
        self.publisher = self._person(f"{self.tag}-system", params, receives=False)
        self.publisher.start()

    def room(self, user: str) -> str:
        """The room of ``user``'s group."""
        return f"{self.tag}g{self.group_of[user]}"

    def setup_group(self, members: list[Person]) -> None:
        """Sign in and join everyone first (an HTTP user is online from its first
        authenticated request), then watch the churners: set-up causes no presence
        changes that nobody expects."""
        params = self.params
        assert params is not None
        for p in members:
            with self.setup_sem:
                p.start()
                p.call("join", {"room": self.room(p.name)})
                if self.interactive and params.notification_rate:
                    self._subscribe(p, self.order.index(p.name) // params.fanout)
        watched = [m.name for m in members if m.name in self.churners]
        if not (params.churn_fraction and watched):
            return
        for p in members:
            if p.name not in self.churners:
                with self.setup_sem:
                    p.call("watch", {"users": watched})

    def _subscribe(self, p: Person, topic_index: int) -> None:
        topic = f"{self.tag}t{topic_index}"
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
            except (ClientError, OpFailed) as exc:
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
        """Topics over this process's people, and this process's notification publisher."""
        params = self.params
        assert params is not None
        if not params.notification_rate:
            return
        n_topics = topic_count(len(self.order), params.fanout)
        jobs = [
            gevent.spawn(self._locked_subscribe, self.people[name], i % n_topics)
            for i, name in enumerate(self.order)
        ]
        gevent.joinall(jobs, raise_error=True)
        self._start_publisher(params)

    def _locked_subscribe(self, p: Person, topic_index: int) -> None:
        with self.setup_sem:
            self._subscribe(p, topic_index)

    # -- the timeline ----------------------------------------------------------------

    def begin(self) -> None:
        """Start the clock: warm-up, then the measured window, then the end."""
        spec = self.spec
        self.start_ns = clock()
        self.echo_stats.started_ns = self.start_ns
        self.warmup_end_ns = self.start_ns + int(spec.warmup_s * NS_PER_S)
        self.tracker.warmup_end_ns = self.warmup_end_ns
        self.end_ns = self.warmup_end_ns + int(spec.duration_s * NS_PER_S)
        self.go.set()
        if self.publisher is not None:
            group = gevent.pool.Group()
            group.spawn(self._notifications)
            self.behaviours.append(group)
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

    def spawn_behaviours(self, members: list[Person]) -> gevent.pool.Group:
        """Start what each member of a group does once the clock runs."""
        params = self.params
        assert params is not None
        group = gevent.pool.Group()
        for p in members:
            members_of = self.groups[self.group_of[p.name]]
            if params.message_rate:
                others = [m for m in members_of if m != p.name]
                group.spawn(self._run, schedule.messaging(self, params, p.name, others))
            if p.name in self.churners:
                watchers = [m for m in members_of if m not in self.churners]
                group.spawn(self._run, schedule.churn(self, params, p.name, watchers))
            elif params.activity_rate:
                visits: list[list[int]] = []
                self.truth[p.name] = visits
                group.spawn(self._run, schedule.activity(self, params, p.name, visits))
        self.behaviours.append(group)
        return group

    # The schedule's Stage: what the behaviours share.

    def begin_ns(self) -> int:
        """The run's start; in the web UI, now (users join a test already running)."""
        return max(self.start_ns, clock()) if self.interactive else self.start_ns

    def offline(self, users: list[str]) -> list[str]:
        """Those of ``users`` who are offline now."""
        return [u for u in users if not self.people[u].online]

    def stopped(self) -> bool:
        """Whether this process's window has closed."""
        return self.stop.is_set()

    def _act(self, p: Person, op: str, payload: dict[str, Any]) -> bool:
        try:
            p.call(op, payload)
        except (ClientError, OpFailed):
            self.rt_stats.count_action(op, False)
            return False
        self.rt_stats.count_action(op, True)
        return True

    def _person_named(self, name: str) -> Person:
        publisher = self.publisher
        return publisher if publisher is not None and name == publisher.name else self.people[name]

    def _perform(self, step: schedule.Step) -> Any:
        """Carry out one step of a behaviour; returns what the behaviour is sent back."""
        match step:
            case schedule.SleepUntil(deadline_ns):
                return sleep_until(deadline_ns, self.stop)
            case schedule.Pause(seconds):
                gevent.sleep(seconds)
            case schedule.Act(user, op, payload):
                return self._act(self._person_named(user), op, payload)
            case schedule.GoOffline(user):
                self.people[user].go_offline()
            case schedule.GoOnline(user):
                try:
                    self.people[user].go_online()
                except (ClientError, OpFailed):
                    return False
                return True
        return None

    def _run(self, steps: schedule.Steps) -> None:
        """Run one behaviour to its end."""
        result: Any = None
        while True:
            try:
                step = steps.send(result)
            except StopIteration:
                return
            result = self._perform(step)

    def notification_rate(self) -> float:
        """This process's share of the scenario's notification rate (by its share of people)."""
        params = self.params
        assert params is not None
        if self.interactive:
            return params.notification_rate
        return (
            params.notification_rate * len(self.order) / (group_count(params) * params.group_size)
        )

    def _notifications(self) -> None:
        publisher = self.publisher
        assert publisher is not None
        self._run(
            schedule.notifications(self, publisher.name, self.notification_rate(), self.subscribers)
        )

    def start_interactive_publisher(self) -> gevent.Greenlet | None:
        """Web UI: a publisher for this process, publishing while the test runs."""
        params = self.params
        if params is None or not params.notification_rate or self.publisher is not None:
            return None
        self._start_publisher(params)
        return gevent.spawn(self._notifications)

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
        grace = self.spec.timeout_s + 2 + (params.presence_timeout_s + 3 if self.churners else 0)
        limit = time.monotonic() + grace
        for group in self.behaviours:
            group.join(timeout=max(0.0, limit - time.monotonic()))
        for group in self.behaviours:
            group.kill(block=True, timeout=2.0)
        # Everyone comes back, so what was owed to an absent user can still arrive.
        back = [gevent.spawn(self._back_online, p) for p in self.people.values() if not p.online]
        gevent.joinall(back, timeout=self.spec.timeout_s + 2)
        drain_end = clock() + int(params.drain_s * NS_PER_S)
        while self.tracker.outstanding() > 0 and clock() < drain_end:
            gevent.sleep(0.02)
        stats.drained_ns = clock()
        if params.activity_rate:
            stats.activity = self._time_on_site()
        if self.order:
            with contextlib.suppress(ClientError, OpFailed):
                stats.server_stats = self.people[self.order[0]].call("stats", {})
        everyone = [*self.people.values(), *([self.publisher] if self.publisher else [])]
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

    def _back_online(self, p: Person) -> None:
        with self.setup_sem, contextlib.suppress(ClientError, OpFailed):
            p.go_online()

    def _time_on_site(self) -> dict[str, Any]:
        """Server's time on site per person against the person's own record of its visits."""
        pairs: list[tuple[float, float]] = []
        for name, visits in self.truth.items():
            try:
                report = self.people[name].call("time_on_site", {})
            except (ClientError, OpFailed):
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
        tracker = self.tracker
        measured = [s for s in self.raw.rows if not s.warmup]
        hdrs, top = _delivery_histograms(tracker)
        useful = sum(1 for r in tracker.rows if not r.warmup and not r.duplicate)
        useful += sum(1 for s in self.raw.rows if s.kind == "activity" and s.ok and not s.warmup)
        start = stats_rt.measure_started_ns
        out.update(
            {
                "window_s": max(0, stats_rt.ended_ns - start) / 1e9 if start else 0.0,
                "stats": asdict(stats_rt),
                "deliveries_table": _table_bytes(_delivery_table(self.spec, tracker)),
                "deliveries": tracker.counts(),
                "useful_measured": useful,
                "delivery_hdr": hdrs,
                "delivery_max_ns": top,
                "requests_measured": len(measured),
                "polls_measured": sum(1 for s in measured if s.kind == "poll"),
                "empty_polls_measured": sum(
                    1 for s in measured if s.kind == "poll" and s.items == 0
                ),
                "measured_wire_bytes": sum(s.bytes_sent + s.bytes_received for s in measured),
                "push_bytes_measured": sum(
                    r.bytes for r in tracker.rows if r.via in ("push", "sse") and not r.warmup
                ),
            }
        )
        return out
