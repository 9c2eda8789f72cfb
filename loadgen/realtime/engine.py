"""One repeat of one real-time cell: set up users, run the workload, drain, account.

::

    stats = await run_realtime(spec, params, hook, tracker, on_phase=print)

``hook`` receives a :class:`~loadgen.recorder.Sample` per request (``kind``
is the operation: ``poll``, ``send``, ``publish``, ``activity``, ``connect``
...; ``items`` counts what a poll carried); ``tracker`` accumulates one row
per delivery, and a gap whenever a user's reader is told it fell behind its
inbox's retention. What each user does is :mod:`loadgen.realtime.schedule`'s,
run here with asyncio. Set-up connects users at ``connect_rate``
(:mod:`loadgen.realtime.ramp`). The run is bounded: set-up, ``warmup_s +
duration_s`` of load, then at most ``drain_s`` for deliveries still in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from loadgen.cellspec import CellRun
from loadgen.events import EventHook
from loadgen.pacer import NS_PER_S
from loadgen.realtime import schedule
from loadgen.realtime.groups import churners_of, split_groups
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.ramp import Ramp, process_connect_rate
from loadgen.realtime.samples import build_sample
from loadgen.realtime.stage import (
    FAILURES,
    Behaviour,
    Failed,
    StageCore,
    drain_done,
    group_behaviours,
    publisher_behaviours,
    publisher_names,
    stop_grace_s,
    subscribers_of,
    topics_of,
)
from loadgen.realtime.stats import RealtimeStats
from loadgen.realtime.tracker import Tracker
from loadgen.realtime.users import Endpoint, VirtualUser
from loadgen.realtime.visits import time_on_site_report, visits_ms
from loadgen.shares import id_counter, my_groups, tag
from loadgen.timeline import run_phases, sleep_until
from servers import gcfreeze
from servers.protocol import make_payload
from servers.stalls import Stalls

clock = time.perf_counter_ns

SETUP_CONCURRENCY = 32
SYSTEM_USER = "system"


async def _bounded(coros: list[Awaitable[Any]], limit: int) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def one(c: Awaitable[Any]) -> Any:
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)


class Stage(StageCore):
    """The shared stage, run with asyncio: each behaviour a task."""

    stop: asyncio.Event

    async def do(self, step: schedule.Step) -> Any:
        """One step's I/O; :class:`~loadgen.realtime.stage.Failed` when an action failed."""
        try:
            match step:
                case schedule.SleepUntil(deadline_ns):
                    return await sleep_until(deadline_ns, self.stop)
                case schedule.Pause(seconds):
                    await asyncio.sleep(seconds)
                case schedule.Act(user, op, payload):
                    await self.users[user].call(op, payload)
                case schedule.GoOffline(user):
                    await self.users[user].go_offline()
                case schedule.GoOnline(user):
                    await self.users[user].go_online()
        except FAILURES as exc:
            return Failed(exc)
        return None

    async def run(self, steps: schedule.Steps) -> None:
        """Run one behaviour to its end."""
        with Behaviour(self, steps) as run:
            step = run.start()
            while step is not None:
                step = run.resume(await self.do(step))


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
    (:mod:`loadgen.shares`) and awaits ``ready()`` between set-up and the load. This
    process's collections and late loop turns are timed throughout (``stats.stalls``).
    """
    stalls = Stalls()
    # Users keep making objects after set-up (reconnections, deliveries): what survives
    # into the oldest generation is frozen too, so no full collection walks it all.
    settling = asyncio.create_task(gcfreeze.Settler().keep_settled())
    try:
        async with stalls.watching():
            return await _run(spec, params, hook, tracker, on_phase, ready, stalls)
    finally:
        settling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await settling


async def _run(
    spec: CellRun,
    params: RealtimeParams,
    hook: EventHook,
    tracker: Tracker,
    on_phase: Callable[[str], None] | None,
    ready: Callable[[], Awaitable[None]] | None,
    stalls: Stalls,
) -> RealtimeStats:
    rng = random.Random(params.seed * 1_000_003 + spec.repeat + 7919 * spec.process_index)
    endpoint = Endpoint(
        spec.base_url,
        spec.transport,
        spec.client,
        spec.conn_mode,
        spec.delivery,
        spec.timeout_s,
        spec.http_version,
    )
    groups = split_groups([f"u{i}" for i in range(params.users)], params.group_size)
    # This process's whole groups (all of them for one process); names and rooms stay
    # those of the whole cell, so they are unique on the server.
    mine = my_groups(len(groups), spec)
    names = [u for gi in mine for u in groups[gi]]
    stats = RealtimeStats(users=len(names))
    churners = {c for gi in mine for c in churners_of(groups[gi], params)}
    group_of = {u: gi for gi in mine for u in groups[gi]}
    # Topics over this process's users only, so a publisher's subscribers are all here.
    topic_of = topics_of(names, params.fanout, tag(spec)) if params.notification_rate else {}
    notification_rate = params.notification_rate * len(names) / params.users
    subscribers = subscribers_of(topic_of)
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
    publishers = {
        name: user(name, receives=False)
        for name in publisher_names(f"{tag(spec)}{SYSTEM_USER}", params)
    }

    # -- set-up: sign in, join rooms, subscribe topics, watch contacts ---------------
    t_setup = clock()

    async def setup(u: VirtualUser) -> None:
        # Everyone of the group is signed in (online) before anyone watches, so
        # set-up causes no presence changes that nobody expects.
        await u.call("join", {"room": f"g{group_of[u.name]}"})
        if u.name in topic_of:
            await u.call("subscribe", {"topic": topic_of[u.name]})
        if params.churn_fraction and u.name not in churners:
            watched = [m for m in groups[group_of[u.name]] if m in churners]
            if watched:
                await u.call("watch", {"users": watched})

    # Users connect at the cell's connect_rate (this process's share), not all at once.
    ramp = Ramp(process_connect_rate(params, spec.processes))

    async def connect(u: VirtualUser) -> None:
        await asyncio.sleep(ramp.next_wait_ns(clock()) / NS_PER_S)
        await u.start()

    async def connect_group(gi: int) -> list[BaseException]:
        # A group is set up as soon as its members are in, so set-up ends user by user
        # along the ramp, as people arrive. Set up all at once, every user's last message
        # would reach the server in the same second, and a server that times its
        # liveness pings from the last message received (aiohttp's heartbeat) would ping
        # them all at once one interval later: a stall of every push then in flight.
        members = [users[n] for n in groups[gi]]
        errors = [
            r
            for r in await asyncio.gather(*(connect(u) for u in members), return_exceptions=True)
            if isinstance(r, BaseException)
        ]
        if not errors:
            done = await asyncio.gather(*(setup(u) for u in members), return_exceptions=True)
            errors = [r for r in done if isinstance(r, BaseException)]
        return errors

    # Each group's connections queue for the ramp's slots; SETUP_CONCURRENCY groups at once.
    per_group = await _bounded([connect_group(gi) for gi in mine], SETUP_CONCURRENCY)
    failed = [e for r in per_group for e in (r if isinstance(r, list) else [r])]
    if failed:
        for u in users.values():
            await u.stop()
        raise RuntimeError(f"{len(failed)} of {len(users)} users failed to set up: {failed[0]!r}")
    failed = [
        r
        for r in await _bounded([connect(p) for p in publishers.values()], SETUP_CONCURRENCY)
        if isinstance(r, BaseException)
    ]
    if failed:
        for u in [*users.values(), *publishers.values()]:
            await u.stop()
        raise RuntimeError(f"{len(failed)} notification publishers failed: {failed[0]!r}")
    stats.setup_s = (clock() - t_setup) / 1e9
    # The users' objects live until the end: frozen, no full collection rescans them
    # during the window (each would pause every delivery in flight).
    gcfreeze.freeze_now()
    stats.gc = gcfreeze.describe()
    if ready is not None:
        # Several processes: every one is set up before any clock starts.
        await ready()

    start = clock()
    warmup_end[0] = start + int(spec.warmup_s * NS_PER_S)
    tracker.warmup_end_ns = warmup_end[0]
    end = warmup_end[0] + int(spec.duration_s * NS_PER_S)
    everyone = {**users, **publishers}
    stop = asyncio.Event()
    stage = Stage(
        rng,
        tracker,
        make_payload(params.message_bytes),
        stats,
        everyone,
        group_of,
        stop,
        id_counter(spec),
    )
    stage.start_ns, stage.end_ns = start, end
    truth: dict[str, list[list[int]]] = {}
    behaviours = [
        steps
        for gi in mine
        for steps in group_behaviours(stage, params, groups[gi], churners, truth)
    ]
    behaviours += publisher_behaviours(stage, list(publishers), notification_rate, subscribers)
    tasks = [asyncio.create_task(stage.run(steps)) for steps in behaviours]

    await run_phases(warmup_end[0], end, stats, on_phase)
    stop.set()
    if tasks:  # a process may have nothing to run (asyncio.wait refuses an empty set)
        await asyncio.wait(tasks, timeout=stop_grace_s(spec.timeout_s, params, bool(churners)))
    for task in tasks:
        task.cancel()
    # Everyone comes back, so what was owed to an absent user can still arrive.
    back = [u.go_online() for u in users.values() if not u.online]
    await _bounded(back, SETUP_CONCURRENCY)
    drain_end = clock() + int(params.drain_s * NS_PER_S)
    while not drain_done(tracker, drain_end):
        await asyncio.sleep(0.02)
    stats.drained_ns = clock()

    if params.activity_rate:
        stats.activity = await _time_on_site(users, truth)
    with contextlib.suppress(*FAILURES):
        first = next(iter(users.values()))
        stats.server_stats = await first.call("stats", {"stalls_since_ns": start})
    # Its own stalls over the same span, on the same clock as the server's.
    stats.stalls = stalls.report(start, clock())
    stats.reconnects = sum(u.reconnects for u in users.values())
    stats.auth_closes = sum(u.auth_closes for u in users.values())
    broken = [u.failure for u in users.values() if u.failure is not None]
    if broken:
        await _bounded([u.stop() for u in users.values()], SETUP_CONCURRENCY)
        raise RuntimeError(f"{len(broken)} users' receivers failed: {broken[0]!r}") from broken[0]
    for u in everyone.values():
        s, r = u.wire_totals()
        stats.wire_sent += s
        stats.wire_received += r
        stats.count_headers(u.header_tally())
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
        except FAILURES:
            continue
        pairs.append((float(report.get("time_on_site_ms", 0.0)), visits_ms(visits)))
    return time_on_site_report(pairs)
