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

import itertools
import random
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.pool
from gevent.event import Event
from gevent.lock import Semaphore

from loadgen.cellspec import CellRun
from loadgen.engine import EngineStats
from loadgen.footprint import locust_share, make_room
from loadgen.locust_engine.ending import Ending
from loadgen.locust_engine.engine import Stage, sleep_until
from loadgen.locust_engine.net import configure_tls
from loadgen.locust_engine.recording import Recording
from loadgen.locust_engine.set_up import SetUp
from loadgen.locust_engine.users import VirtualUser
from loadgen.pacer import NS_PER_S
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.part import ACTION_KINDS
from loadgen.realtime.ramp import Ramp, process_connect_rate
from loadgen.realtime.stage import (
    group_behaviours,
    publisher_behaviours,
)
from loadgen.realtime.stats import RealtimeStats
from loadgen.realtime.tracker import Tracker
from loadgen.realtime.user_state import Endpoint
from loadgen.recorder import LatencyHistograms, RawRecorder
from servers import gcfreeze
from servers.fdlimit import FdLimitTooLow
from servers.protocol import make_payload
from servers.stalls import Stalls

clock = time.perf_counter_ns

SETUP_CONCURRENCY = 32


def group_count(params: RealtimeParams) -> int:
    """How many groups (real-time locust users) a scenario's ``users`` make: whole groups."""
    return -(-params.users // params.group_size)


class World(Recording, SetUp, Ending):
    """One process's share of a cell (see the module docstring).

    Its recording, set-up and ending are :class:`Recording`, :class:`SetUp` and
    :class:`Ending`; the timeline and the real-time behaviours are here.
    """

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
        #: The open-files limit set for this process's share (None in the web UI, whose
        #: user count changes), or why it could not be: the run stops before set-up.
        self.fd_limit: dict[str, Any] | None = None
        self.fd_error: str | None = None
        if not interactive:
            try:
                self.fd_limit = make_room(spec, locust_share(spec, self.n_workers))
            except FdLimitTooLow as exc:
                self.fd_error = str(exc)
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
        #: This process's collections and late turns of its gevent hub, from the clock's start.
        self.stalls = Stalls()
        self._watchers: list[gevent.Greenlet] = []
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
            spec.http_version,
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
        rate = process_connect_rate(self.params, self.n_workers) if self.params else 1.0
        self.ramp = Ramp(rate)
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
        if self.realtime:
            self._watch_stalls()
        self.go.set()
        if self.publishers:
            self.behaviours.append(self._spawn_notifications())
        gevent.spawn(self._phases)

    def _watch_stalls(self) -> None:
        """Time collections and the hub's late wake-ups (the asyncio engine's
        :meth:`servers.stalls.Stalls.watch_loop`, on gevent), and freeze what each
        promoting collection leaves, as the asyncio engine does."""
        self.stalls.install()
        settler = gcfreeze.Settler()

        def watch() -> None:
            for wait in self.stalls.loop_waits():
                gevent.sleep(wait)

        def settle() -> None:
            while settler.active:
                gevent.sleep(0.5)
                settler.settle()

        self._watchers = [gevent.spawn(watch), gevent.spawn(settle)]

    def stop_watching_stalls(self) -> dict[str, Any]:
        """Stop :meth:`_watch_stalls`; this process's stalls since the clock started."""
        gevent.killall(self._watchers)
        self._watchers = []
        self.stalls.uninstall()
        return self.stalls.report(self.start_ns, clock())

    def _phases(self) -> None:
        if self.on_phase:
            self.on_phase("warm-up")  # set-up is over: the clock runs
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
