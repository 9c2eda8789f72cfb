"""What each virtual user does and when, as generators of steps (no I/O).

A behaviour yields :data:`Step` objects and is sent back each one's result;
an engine runs it with its own sleeping and networking (asyncio in
:mod:`loadgen.realtime.engine`, gevent in :mod:`loadgen.locust_engine.engine`; both
through :class:`loadgen.realtime.stage.Behaviour`)::

    steps = messaging(stage, params, "u3", ["u0", "u1", "u2"])
    result = None
    while True:
        try:
            step = steps.send(result)
        except StopIteration:
            break
        result = perform(step)   # SleepUntil -> bool, Act -> bool, GoOffline -> None,
                                 # GoOnline -> bool, Pause -> None

``stage`` (a :class:`Stage`) is what the behaviours share: the seeded random
generator, the delivery tracker, the run's timeline, who is online; ``params``
the workload's parameters. Every delivery a behaviour causes is registered with the tracker
before the action that causes it, and cancelled when the action fails.
"""

from __future__ import annotations

import random
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Protocol

from loadgen.pacer import NS_PER_S, Pacer
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.tracker import Tracker

clock = time.perf_counter_ns


@dataclass(frozen=True, slots=True)
class SleepUntil:
    """Wait until ``clock() >= deadline_ns``; the result is False if the run stopped first."""

    deadline_ns: int


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait ``seconds`` whatever happens; the result is None."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Act:
    """``user`` calls ``op`` with ``payload``; the result is True when it succeeded."""

    user: str
    op: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class GoOffline:
    """``user`` leaves (closes the tab); the result is None."""

    user: str


@dataclass(frozen=True, slots=True)
class GoOnline:
    """``user`` comes back; the result is True unless reconnecting failed."""

    user: str


Step = SleepUntil | Pause | Act | GoOffline | GoOnline
Steps = Generator[Step, Any, None]


class Stage(Protocol):
    """What the behaviours of one process share."""

    rng: random.Random
    tracker: Tracker
    body: str
    start_ns: int
    end_ns: int

    def begin_ns(self) -> int:
        """Where a behaviour starting now counts its schedule from."""
        ...

    def rng_for(self, behaviour: str, user: str) -> random.Random:
        """A random stream of its own for ``user``'s ``behaviour`` (the same whatever
        runs first, and in either driver)."""
        ...

    def next_id(self) -> int:
        """A new message or notification id."""
        ...

    def room(self, user: str) -> str:
        """The room of ``user``'s group."""
        ...

    def offline(self, users: list[str]) -> list[str]:
        """Those of ``users`` who are offline now."""
        ...

    def stopped(self) -> bool:
        """Whether the run has ended."""
        ...


def messaging(stage: Stage, params: RealtimeParams, user: str, others: list[str]) -> Steps:
    """``user`` sends to one of ``others`` (direct) or to the room, at ``message_rate``."""
    rng, tracker = stage.rng_for("messaging", user), stage.tracker
    pacer = Pacer(params.message_rate, int(rng.random() * NS_PER_S / params.message_rate))
    if not others:
        return
    start = stage.begin_ns()
    sent = 0
    while True:
        due = start + pacer.intended_ns(sent)
        if due >= stage.end_ns or not (yield SleepUntil(due)):
            return
        sent += 1
        if stage.offline([user]):
            continue
        mid = stage.next_id()
        ts = clock()
        payload: dict[str, Any]
        if rng.random() < params.direct_ratio:
            to = rng.choice(others)
            payload = {"to": to, "mid": mid, "ts": ts, "body": stage.body}
            recipients = [to]
        else:
            payload = {"room": stage.room(user), "mid": mid, "ts": ts, "body": stage.body}
            recipients = others
        key = ("message", mid)
        tracker.expect(key, ts, recipients, user, mid, deferred=stage.offline(recipients))
        try:
            ok = yield Act(user, "send", payload)
        except GeneratorExit:
            tracker.cancel(key)  # abandoned in flight when the run ended
            raise
        if not ok:
            tracker.cancel(key)


def churn(stage: Stage, params: RealtimeParams, user: str, watchers: list[str]) -> Steps:
    """``user`` goes offline and back, ``online_s``/``offline_s`` (+-20%) at a time."""
    rng, tracker = stage.rng_for("churn", user), stage.tracker
    n = 0
    # Churners start at a random point of their online period.
    t = stage.begin_ns() + int(rng.random() * params.online_s * NS_PER_S)
    while True:
        if t >= stage.end_ns or not (yield SleepUntil(t)):
            return
        n += 1
        key = ("presence", user, "offline", n)
        # Expected before acting: a closed WebSocket is seen at once, and the
        # watchers' push can arrive before going offline returns.
        off = clock()
        tracker.expect(key, off, watchers, user, n)
        yield GoOffline(user)
        t = off + int(params.offline_s * rng.uniform(0.8, 1.2) * NS_PER_S)
        if not (yield SleepUntil(t)):
            # The run ends while this user is away: let the absence be seen (an HTTP
            # server needs the presence timeout), then come back when due. Coming back
            # at once, with every other absent user, would be a burst of reconnections
            # the schedule never offers, and its deliveries would wait on it.
            limit = clock() + int((params.presence_timeout_s + 2.0) * NS_PER_S)
            while (tracker.owed(key) or clock() < t) and clock() < limit:
                yield Pause(0.02)
        n += 1
        key = ("presence", user, "online", n)
        tracker.expect(key, clock(), watchers, user, n)
        if not (yield GoOnline(user)):
            tracker.cancel(key)
        if stage.stopped():
            return
        t = clock() + int(params.online_s * rng.uniform(0.8, 1.2) * NS_PER_S)


def activity(stage: Stage, params: RealtimeParams, user: str, visits: list[list[int]]) -> Steps:
    """``user`` views pages at ``activity_rate`` in visits of ``visit_s``, idle between.

    Each visit's first and last successful page view (ns) is appended to
    ``visits``: the client's own record of its time on site.
    """
    interval = int(NS_PER_S / params.activity_rate)
    t = stage.begin_ns() + int(stage.rng_for("activity", user).random() * interval)
    page = 0
    while t < stage.end_ns:
        visit_end = min(stage.end_ns, t + int(params.visit_s * NS_PER_S))
        visit: list[int] = []
        while t < visit_end:
            if not (yield SleepUntil(t)):
                return
            page += 1
            sent = clock()
            if (yield Act(user, "activity", {"event": "page_view", "page": f"/p{page % 7}"})):
                visit.append(sent)
            t += interval
        if visit:
            visits.append([visit[0], visit[-1]])
        # Away for longer than the idle timeout, so the next visit is a new session.
        t = visit_end + int(params.idle_timeout_s * 2 * NS_PER_S)


def notifications(
    stage: Stage,
    publisher: str,
    rate: float,
    subscribers: dict[str, list[str]],
    lane: int = 0,
    lanes: int = 1,
) -> Steps:
    """``publisher`` publishes to the topics of ``subscribers`` in turn, at ``rate`` in all.

    With ``lanes`` publishers sharing the rate, lane ``i`` publishes every
    ``lanes``-th notification (``rate / lanes`` per second, offset by ``i / rate``),
    so a slow publish holds up only its own lane and the total stays on schedule.
    """
    if rate <= 0 or not subscribers:
        return
    tracker = stage.tracker
    pacer = Pacer(rate / lanes)
    start = stage.start_ns + int(lane * NS_PER_S / rate)
    sent = 0
    while True:
        due = start + pacer.intended_ns(sent)
        if due >= stage.end_ns or not (yield SleepUntil(due)):
            return
        sent += 1
        topics = sorted(subscribers)
        if not topics:
            continue
        nid = stage.next_id()
        topic = topics[(sent * lanes + lane) % len(topics)]
        ts = clock()
        subs = list(subscribers[topic])
        key = ("notification", nid)
        tracker.expect(key, ts, subs, publisher, nid, deferred=stage.offline(subs))
        payload = {"topic": topic, "nid": nid, "ts": ts, "body": stage.body}
        try:
            ok = yield Act(publisher, "publish", payload)
        except GeneratorExit:
            # Abandoned in flight when the run ended: owed only if it had been sent.
            tracker.cancel(key)
            raise
        if not ok:
            tracker.cancel(key)
