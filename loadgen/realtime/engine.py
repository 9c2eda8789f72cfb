"""One repeat of one real-time cell: set up users, run the workload, drain, account.

::

    stats = await run_realtime(spec, params, hook, tracker, on_phase=print)

``hook`` receives a :class:`~loadgen.recorder.Sample` per request (``kind``
is the operation: ``poll``, ``send``, ``publish``, ``activity``, ``connect``
...; ``items`` counts what a poll carried); ``tracker`` accumulates one row
per delivery, and a gap whenever a user's reader is told it fell behind its
inbox's retention. What each user does is :mod:`loadgen.realtime.schedule`'s,
run here with asyncio. The run is bounded: set-up, ``warmup_s + duration_s``
of load, then at most ``drain_s`` for deliveries still in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from loadgen.cellspec import CellRun
from loadgen.clients.errors import ClientError
from loadgen.events import EventHook
from loadgen.pacer import NS_PER_S
from loadgen.realtime import schedule
from loadgen.realtime.conns import OpFailed
from loadgen.realtime.groups import churners_of, split_groups, topic_count
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.samples import build_sample
from loadgen.realtime.tracker import Tracker
from loadgen.realtime.users import Endpoint, VirtualUser
from loadgen.realtime.visits import time_on_site_report, visits_ms
from loadgen.shares import id_counter, my_groups, tag
from servers.protocol import make_payload

clock = time.perf_counter_ns

SETUP_CONCURRENCY = 32
SYSTEM_USER = "system"
#: A behaviour this far behind its schedule no longer offers the configured load.
LATE_NS = 100_000_000


@dataclass(slots=True)
class RealtimeStats:
    """Counters of one repeat besides samples and deliveries.

    Both engines count through :meth:`count_request` (each request a user
    made) and :meth:`count_action` (each action a behaviour took).
    """

    users: int = 0
    setup_s: float = 0.0
    measure_started_ns: int = 0
    ended_ns: int = 0
    drained_ns: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    action_errors: dict[str, int] = field(default_factory=dict)
    reconnects: int = 0
    wire_sent: int = 0
    wire_received: int = 0
    requests: int = 0
    polls: int = 0
    empty_polls: int = 0
    activity: dict[str, Any] = field(default_factory=dict)
    server_stats: dict[str, Any] = field(default_factory=dict)
    #: Scheduled steps that came due more than LATE_NS before their behaviour got to them.
    late_steps: int = 0
    max_late_ms: float = 0.0

    def count_lateness(self, late_ns: int) -> None:
        """A behaviour reached a step ``late_ns`` after it was due."""
        if late_ns > LATE_NS:
            self.late_steps += 1
            self.max_late_ms = max(self.max_late_ms, late_ns / 1e6)

    def count_request(self, op: str, error: str | None, items: int) -> None:
        """One request finished; a poll that succeeded with no items is empty."""
        self.requests += 1
        if op == "poll":
            self.polls += 1
            if error is None and items == 0:
                self.empty_polls += 1

    def count_action(self, op: str, ok: bool) -> None:
        """A behaviour's action (send, publish, activity) succeeded or failed."""
        self.actions[op] = self.actions.get(op, 0) + 1
        if not ok:
            self.action_errors[op] = self.action_errors.get(op, 0) + 1


async def _bounded(coros: list[Awaitable[Any]], limit: int) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def one(c: Awaitable[Any]) -> Any:
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)


async def _sleep_until(deadline_ns: int, stop: asyncio.Event | None = None) -> bool:
    """Sleep until ``deadline_ns``; False if ``stop`` was set first."""
    while (remaining := deadline_ns - clock()) > 0:
        if stop is None:
            await asyncio.sleep(remaining / NS_PER_S)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), remaining / NS_PER_S)
            if stop.is_set():
                return False
    return True


@dataclass(slots=True)
class _Stage:
    """The behaviours' shared state (a :class:`~loadgen.realtime.schedule.Stage`) and runner."""

    rng: random.Random
    tracker: Tracker
    body: str
    users: dict[str, VirtualUser]
    group_of: dict[str, int]
    stats: RealtimeStats
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    start_ns: int = 0
    end_ns: int = 0
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def begin_ns(self) -> int:
        return self.start_ns

    def next_id(self) -> int:
        return next(self.ids)

    def room(self, user: str) -> str:
        return f"g{self.group_of[user]}"

    def offline(self, users: list[str]) -> list[str]:
        return [u for u in users if not self.users[u].online]

    def stopped(self) -> bool:
        return self.stop.is_set()

    async def act(self, user: VirtualUser, op: str, payload: dict[str, Any]) -> bool:
        """One counted action; False when it failed."""
        try:
            await user.call(op, payload)
        except (ClientError, OpFailed):
            self.stats.count_action(op, False)
            return False
        self.stats.count_action(op, True)
        return True

    async def perform(self, step: schedule.Step) -> Any:
        """Carry out one step of a behaviour; returns what the behaviour is sent back."""
        match step:
            case schedule.SleepUntil(deadline_ns):
                if deadline_ns < self.end_ns:
                    self.stats.count_lateness(clock() - deadline_ns)
                return await _sleep_until(deadline_ns, self.stop)
            case schedule.Pause(seconds):
                await asyncio.sleep(seconds)
            case schedule.Act(user, op, payload):
                return await self.act(self.users[user], op, payload)
            case schedule.GoOffline(user):
                await self.users[user].go_offline()
            case schedule.GoOnline(user):
                try:
                    await self.users[user].go_online()
                except (ClientError, OpFailed):
                    return False
                return True
        return None

    async def run(self, steps: schedule.Steps) -> None:
        """Run one behaviour to its end."""
        result: Any = None
        try:
            while True:
                try:
                    step = steps.send(result)
                except StopIteration:
                    return
                result = await self.perform(step)
        finally:
            # Cancelled at the end of the run: the behaviour settles what it owes now,
            # not whenever the generator is collected.
            steps.close()


async def run_realtime(
    spec: CellRun,
    params: RealtimeParams,
    hook: EventHook,
    tracker: Tracker,
    on_phase: Callable[[str], None] | None = None,
    ready: Callable[[], Awaitable[None]] | None = None,
) -> RealtimeStats:
    """Run one repeat of a real-time cell (see the module docstring).

    With ``spec.processes > 1`` this process runs its share of the groups
    (:mod:`loadgen.shares`) and awaits ``ready()`` between set-up and the load.
    """
    rng = random.Random(params.seed * 1_000_003 + spec.repeat + 7919 * spec.process_index)
    endpoint = Endpoint(
        spec.base_url, spec.transport, spec.client, spec.conn_mode, spec.delivery, spec.timeout_s
    )
    groups = split_groups([f"u{i}" for i in range(params.users)], params.group_size)
    # This process's whole groups (all of them for one process); names and rooms stay
    # those of the whole cell, so they are unique on the server.
    mine = my_groups(len(groups), spec)
    names = [u for gi in mine for u in groups[gi]]
    stats = RealtimeStats(users=len(names))
    churners = {c for gi in mine for c in churners_of(groups[gi], params)}
    group_of = {u: gi for gi in mine for u in groups[gi]}
    n_topics = topic_count(len(names), params.fanout) if params.notification_rate else 0
    # Topics over this process's users only, so a publisher's subscribers are all here.
    topic_of = {u: f"{tag(spec)}t{i % n_topics}" for i, u in enumerate(names)} if n_topics else {}
    notification_rate = params.notification_rate * len(names) / params.users
    subscribers: dict[str, list[str]] = {}
    for u, t in topic_of.items():
        subscribers.setdefault(t, []).append(u)
    warmup_end = [0]

    def on_request(
        op: str, sent: int, received: int, bs: int, br: int, error: str | None, items: int
    ) -> None:
        stats.count_request(op, error, items)
        # Real-time requests are not paced: intended = sent, latency is uncorrected.
        hook.fire(
            build_sample(
                spec,
                op,
                sent,
                received,
                warmup_end[0],
                bytes_sent=bs,
                bytes_received=br,
                items=items,
                error=error,
            )
        )

    def on_connect(user: str, t0: int, t1: int, error: str | None) -> None:
        hook.fire(build_sample(spec, "connect", t0, t1, warmup_end[0], error=error))

    def on_item(recipient: str, seq: int, item: Any, received: int, via: str, nbytes: int) -> None:
        key = tracker.key_of(recipient, item)
        tracker.received(recipient, seq, key, received, via, nbytes)

    def user(name: str, receives: bool = True) -> VirtualUser:
        return VirtualUser(
            name,
            endpoint,
            params,
            on_request,
            on_item if receives else lambda *a: None,
            on_connect,
            tracker.gap,
        )

    users = {n: user(n) for n in names}
    publishers = (
        {
            f"{tag(spec)}{SYSTEM_USER}{i}": user(f"{tag(spec)}{SYSTEM_USER}{i}", receives=False)
            for i in range(params.publishers)
        }
        if params.notification_rate
        else {}
    )

    # -- set-up: sign in, join rooms, subscribe topics, watch contacts ---------------
    t_setup = clock()

    async def setup(u: VirtualUser) -> None:
        # Everyone is signed in (online) before anyone watches, so set-up causes
        # no presence changes that nobody expects.
        await u.call("join", {"room": f"g{group_of[u.name]}"})
        if u.name in topic_of:
            await u.call("subscribe", {"topic": topic_of[u.name]})
        if params.churn_fraction and u.name not in churners:
            watched = [m for m in groups[group_of[u.name]] if m in churners]
            if watched:
                await u.call("watch", {"users": watched})

    results = await _bounded([u.start() for u in users.values()], SETUP_CONCURRENCY)
    if not any(isinstance(r, BaseException) for r in results):
        results = await _bounded([setup(u) for u in users.values()], SETUP_CONCURRENCY)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        for u in users.values():
            await u.stop()
        raise RuntimeError(f"{len(failed)} of {len(users)} users failed to set up: {failed[0]!r}")
    failed = [
        r
        for r in await _bounded([p.start() for p in publishers.values()], SETUP_CONCURRENCY)
        if isinstance(r, BaseException)
    ]
    if failed:
        for u in [*users.values(), *publishers.values()]:
            await u.stop()
        raise RuntimeError(f"{len(failed)} notification publishers failed: {failed[0]!r}")
    stats.setup_s = (clock() - t_setup) / 1e9
    if ready is not None:
        # Several processes: every one is set up before any clock starts.
        await ready()

    start = clock()
    warmup_end[0] = start + int(spec.warmup_s * NS_PER_S)
    tracker.warmup_end_ns = warmup_end[0]
    end = warmup_end[0] + int(spec.duration_s * NS_PER_S)
    everyone = {**users, **publishers}
    stage = _Stage(
        rng,
        tracker,
        make_payload(params.message_bytes),
        everyone,
        group_of,
        stats,
        start_ns=start,
        end_ns=end,
        ids=id_counter(spec),
    )
    stop = stage.stop
    truth: dict[str, list[list[int]]] = {}

    behaviours: list[schedule.Steps] = []
    for u in users.values():
        if params.message_rate:
            others = [m for m in groups[group_of[u.name]] if m != u.name]
            behaviours.append(schedule.messaging(stage, params, u.name, others))
        if u.name in churners:
            watchers = [m for m in groups[group_of[u.name]] if m not in churners]
            behaviours.append(schedule.churn(stage, params, u.name, watchers))
        elif params.activity_rate:
            truth[u.name] = []
            behaviours.append(schedule.activity(stage, params, u.name, truth[u.name]))
    for lane, name in enumerate(publishers):
        behaviours.append(
            schedule.notifications(
                stage, name, notification_rate, subscribers, lane, len(publishers)
            )
        )
    tasks = [asyncio.create_task(stage.run(steps)) for steps in behaviours]

    async def phases() -> None:
        await _sleep_until(warmup_end[0])
        stats.measure_started_ns = clock()
        if on_phase:
            on_phase("measure")
        await _sleep_until(end)
        stats.ended_ns = clock()
        if on_phase:
            on_phase("drain")

    await phases()
    stop.set()
    grace = spec.timeout_s + 2 + (params.presence_timeout_s + 3 if churners else 0)
    await asyncio.wait(tasks, timeout=grace)
    for task in tasks:
        task.cancel()
    # Everyone comes back, so what was owed to an absent user can still arrive.
    back = [u.go_online() for u in users.values() if not u.online]
    await _bounded(back, SETUP_CONCURRENCY)
    drain_end = clock() + int(params.drain_s * NS_PER_S)
    while tracker.outstanding() > 0 and clock() < drain_end:
        await asyncio.sleep(0.02)
    stats.drained_ns = clock()

    if params.activity_rate:
        stats.activity = await _time_on_site(users, truth)
    with contextlib.suppress(ClientError, OpFailed):
        first = next(iter(users.values()))
        stats.server_stats = await first.call("stats", {})
    stats.reconnects = sum(u.reconnects for u in users.values())
    broken = [u.failure for u in users.values() if u.failure is not None]
    if broken:
        await _bounded([u.stop() for u in users.values()], SETUP_CONCURRENCY)
        raise RuntimeError(f"{len(broken)} users' receivers failed: {broken[0]!r}") from broken[0]
    for u in everyone.values():
        s, r = u.wire_totals()
        stats.wire_sent += s
        stats.wire_received += r
    await _bounded([u.stop() for u in everyone.values()], SETUP_CONCURRENCY)
    return stats


async def _time_on_site(
    users: dict[str, VirtualUser], truth: dict[str, list[list[int]]]
) -> dict[str, Any]:
    """Server's time on site per user against the client's own record of its visits."""
    pairs: list[tuple[float, float]] = []
    for name, visits in truth.items():
        try:
            report = await users[name].call("time_on_site", {})
        except (ClientError, OpFailed):
            continue
        pairs.append((float(report.get("time_on_site_ms", 0.0)), visits_ms(visits)))
    return time_on_site_report(pairs)
