"""One repeat of one real-time cell: set up users, run the workload, drain, account.

::

    stats = await run_realtime(spec, params, hook, tracker, on_phase=print)

``hook`` receives a :class:`~loadgen.recorder.Sample` per request (``kind``
is the operation: ``poll``, ``send``, ``publish``, ``activity``, ``connect``
...; ``items`` counts what a poll carried); ``tracker`` accumulates one row
per delivery. The run is bounded: set-up, ``warmup_s + duration_s`` of
load, then at most ``drain_s`` for deliveries still in flight.
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

from loadgen.clients.base import ClientError
from loadgen.engine import CellRun
from loadgen.events import EventHook
from loadgen.pacer import NS_PER_S, Pacer
from loadgen.realtime.conns import OpFailed
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.tracker import Tracker
from loadgen.realtime.users import Endpoint, VirtualUser
from loadgen.recorder import Sample
from servers.protocol import make_payload

clock = time.perf_counter_ns

SETUP_CONCURRENCY = 32
SYSTEM_USER = "system"


@dataclass(slots=True)
class RealtimeStats:
    """Counters of one repeat besides samples and deliveries."""

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


def _groups(users: list[str], size: int) -> list[list[str]]:
    return [users[i : i + size] for i in range(0, len(users), size)]


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


async def run_realtime(
    spec: CellRun,
    params: RealtimeParams,
    hook: EventHook,
    tracker: Tracker,
    on_phase: Callable[[str], None] | None = None,
) -> RealtimeStats:
    """Run one repeat of a real-time cell (see the module docstring)."""
    stats = RealtimeStats(users=params.users)
    rng = random.Random(params.seed * 1_000_003 + spec.repeat)
    endpoint = Endpoint(
        spec.base_url, spec.transport, spec.client, spec.conn_mode, spec.delivery, spec.timeout_s
    )
    names = [f"u{i}" for i in range(params.users)]
    groups = _groups(names, params.group_size)
    churners: set[str] = set()
    for g in groups:
        k = min(params.churners_per_group, len(g) - 1)
        churners.update(g[len(g) - k :] if k else [])
    group_of = {u: gi for gi, g in enumerate(groups) for u in g}
    n_topics = max(1, -(-params.users // params.fanout)) if params.notification_rate else 0
    topic_of = {u: f"t{i % n_topics}" for i, u in enumerate(names)} if n_topics else {}
    subscribers: dict[str, list[str]] = {}
    for u, t in topic_of.items():
        subscribers.setdefault(t, []).append(u)
    body = make_payload(params.message_bytes)
    warmup_end = [0]

    def fire(
        op: str, sent: int, received: int, bs: int, br: int, items: int, error: str | None
    ) -> None:
        # Real-time requests are not paced: intended = sent, latency is uncorrected.
        hook.fire(
            Sample(
                spec.cell,
                spec.transport,
                spec.client,
                spec.conn_mode,
                spec.repeat,
                0,
                op,
                sent,
                sent,
                received,
                received - sent,
                received - sent,
                bs,
                br,
                items,
                error is None,
                error,
                sent < warmup_end[0] or warmup_end[0] == 0,
            )
        )

    def on_request(
        op: str, sent: int, received: int, bs: int, br: int, error: str | None, items: int
    ) -> None:
        stats.requests += 1
        if op == "poll":
            stats.polls += 1
            if error is None and items == 0:
                stats.empty_polls += 1
        fire(op, sent, received, bs, br, items, error)

    def on_connect(user: str, t0: int, t1: int, error: str | None) -> None:
        fire("connect", t0, t1, 0, 0, 0, error)

    def on_item(recipient: str, seq: int, item: Any, received: int, via: str, nbytes: int) -> None:
        if not isinstance(item, dict):
            tracker.received(recipient, seq, None, received, via, nbytes)
            return
        kind = item.get("type")
        key: tuple[Any, ...] | None
        if kind == "message":
            key = ("message", item.get("mid"))
        elif kind == "notification":
            key = ("notification", item.get("nid"))
        elif kind == "presence":
            key = tracker.presence_key(recipient, str(item.get("user")), str(item.get("status")))
        else:
            key = None
        tracker.received(recipient, seq, key, received, via, nbytes)

    users = {n: VirtualUser(n, endpoint, params, on_request, on_item, on_connect) for n in names}
    publisher = None
    if params.notification_rate:
        publisher = VirtualUser(
            SYSTEM_USER, endpoint, params, on_request, lambda *a: None, on_connect
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
    if publisher is not None:
        await publisher.start()
    stats.setup_s = (clock() - t_setup) / 1e9

    start = clock()
    warmup_end[0] = start + int(spec.warmup_s * NS_PER_S)
    tracker.warmup_end_ns = warmup_end[0]
    end = warmup_end[0] + int(spec.duration_s * NS_PER_S)
    stop = asyncio.Event()
    ids = itertools.count(1)
    truth: dict[str, list[list[int]]] = {}

    def count(op: str, ok: bool) -> None:
        stats.actions[op] = stats.actions.get(op, 0) + 1
        if not ok:
            stats.action_errors[op] = stats.action_errors.get(op, 0) + 1

    async def act(u: VirtualUser, op: str, payload: dict[str, Any]) -> bool:
        try:
            await u.call(op, payload)
        except (ClientError, OpFailed):
            count(op, False)
            return False
        count(op, True)
        return True

    def offline_now(recipients: list[str]) -> list[str]:
        return [r for r in recipients if not users[r].online]

    async def messaging(u: VirtualUser) -> None:
        pacer = Pacer(params.message_rate, int(rng.random() * NS_PER_S / params.message_rate))
        group = [m for m in groups[group_of[u.name]] if m != u.name]
        sent = 0
        while True:
            due = start + pacer.intended_ns(sent)
            if due >= end or not await _sleep_until(due, stop):
                return
            sent += 1
            if not u.online:
                continue
            mid = next(ids)
            ts = clock()
            if rng.random() < params.direct_ratio:
                to = rng.choice(group)
                payload = {"to": to, "mid": mid, "ts": ts, "body": body}
                recipients = [to]
            else:
                payload = {"room": f"g{group_of[u.name]}", "mid": mid, "ts": ts, "body": body}
                recipients = group
            key = ("message", mid)
            tracker.expect(key, ts, recipients, u.name, mid, deferred=offline_now(recipients))
            if not await act(u, "send", payload):
                tracker.cancel(key)

    async def churn(u: VirtualUser) -> None:
        watchers = [m for m in groups[group_of[u.name]] if m not in churners]
        n = 0
        # Churners start at a random point of their online period.
        t = start + int(rng.random() * params.online_s * NS_PER_S)
        while True:
            if t >= end or not await _sleep_until(t, stop):
                return
            n += 1
            key = ("presence", u.name, "offline", n)
            # Expected before acting: a closed WebSocket is seen at once, and the
            # watchers' push can arrive before go_offline returns.
            off = clock()
            tracker.expect(key, off, watchers, u.name, n)
            await u.go_offline()
            t = off + int(params.offline_s * rng.uniform(0.8, 1.2) * NS_PER_S)
            if not await _sleep_until(t, stop):
                # The run ends while this user is away: let the absence be seen
                # (an HTTP server needs the presence timeout), then come back.
                limit = clock() + int((params.presence_timeout_s + 2.0) * NS_PER_S)
                while tracker.owed(key) and clock() < limit:
                    await asyncio.sleep(0.02)
            n += 1
            on = clock()
            tracker.expect(("presence", u.name, "online", n), on, watchers, u.name, n)
            try:
                await u.go_online()
            except (ClientError, OpFailed):
                tracker.cancel(("presence", u.name, "online", n))
            if stop.is_set():
                return
            t = clock() + int(params.online_s * rng.uniform(0.8, 1.2) * NS_PER_S)

    async def activity(u: VirtualUser) -> None:
        interval = int(NS_PER_S / params.activity_rate)
        visits: list[list[int]] = []
        truth[u.name] = visits
        t = start + int(rng.random() * interval)
        page = 0
        while t < end:
            visit_end = min(end, t + int(params.visit_s * NS_PER_S))
            visit: list[int] = []
            while t < visit_end:
                if not await _sleep_until(t, stop):
                    return
                page += 1
                sent = clock()
                if await act(u, "activity", {"event": "page_view", "page": f"/p{page % 7}"}):
                    visit.append(sent)
                t += interval
            if visit:
                visits.append([visit[0], visit[-1]])
            # Away for longer than the idle timeout, so the next visit is a new session.
            t = visit_end + int(params.idle_timeout_s * 2 * NS_PER_S)

    async def notifications() -> None:
        assert publisher is not None
        pacer = Pacer(params.notification_rate)
        topics = sorted(subscribers)
        sent = 0
        while True:
            due = start + pacer.intended_ns(sent)
            if due >= end or not await _sleep_until(due, stop):
                return
            sent += 1
            nid = next(ids)
            topic = topics[sent % len(topics)]
            ts = clock()
            subs = subscribers[topic]
            key = ("notification", nid)
            tracker.expect(key, ts, subs, SYSTEM_USER, nid, deferred=offline_now(subs))
            if not await act(
                publisher, "publish", {"topic": topic, "nid": nid, "ts": ts, "body": body}
            ):
                tracker.cancel(key)

    tasks: list[asyncio.Task[None]] = []
    for u in users.values():
        if params.message_rate:
            tasks.append(asyncio.create_task(messaging(u)))
        if u.name in churners:
            tasks.append(asyncio.create_task(churn(u)))
        elif params.activity_rate:
            tasks.append(asyncio.create_task(activity(u)))
    if publisher is not None:
        tasks.append(asyncio.create_task(notifications()))

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
    everyone = [*users.values(), *([publisher] if publisher else [])]
    for u in everyone:
        s, r = u.wire_totals()
        stats.wire_sent += s
        stats.wire_received += r
    await _bounded([u.stop() for u in everyone], SETUP_CONCURRENCY)
    return stats


async def _time_on_site(
    users: dict[str, VirtualUser], truth: dict[str, list[list[int]]]
) -> dict[str, Any]:
    """Server's time on site per user against the client's own record of its visits."""
    diffs: list[float] = []
    server_total = client_total = 0.0
    for name, visits in truth.items():
        client_ms = sum(b - a for a, b in visits) / 1e6
        try:
            report = await users[name].call("time_on_site", {})
        except (ClientError, OpFailed):
            continue
        server_ms = float(report.get("time_on_site_ms", 0.0))
        diffs.append(server_ms - client_ms)
        server_total += server_ms
        client_total += client_ms
    if not diffs:
        return {}
    abs_diffs = sorted(abs(d) for d in diffs)
    return {
        "users": len(diffs),
        "server_ms": round(server_total, 3),
        "client_ms": round(client_total, 3),
        "mean_diff_ms": round(sum(diffs) / len(diffs), 3),
        "mean_abs_diff_ms": round(sum(abs_diffs) / len(abs_diffs), 3),
        "max_abs_diff_ms": round(abs_diffs[-1], 3),
    }
