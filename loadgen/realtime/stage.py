"""The real-time stage without I/O: what behaviours share, and how their steps are settled.

A driver (asyncio in :mod:`loadgen.realtime.engine`, gevent in
:mod:`loadgen.locust_engine.engine`) makes one :class:`StageCore` per process,
plans the behaviours with :func:`group_behaviours` and :func:`publisher_behaviours`,
and runs each one through a :class:`Behaviour`, doing only the I/O itself::

    with Behaviour(stage, steps) as run:
        step = run.start()
        while step is not None:
            step = run.resume(do(step))   # the driver's I/O; Failed(exc) when it failed

The core counts what both drivers count the same way: each action (and whether
it failed) and each scheduled step reached more than
:data:`~loadgen.realtime.stats.LATE_NS` after it was due.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from loadgen.clients.errors import ClientError
from loadgen.realtime import schedule
from loadgen.realtime.groups import topic_count
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.replies import OpFailed
from loadgen.realtime.stats import RealtimeStats
from loadgen.realtime.tracker import Tracker

clock = time.perf_counter_ns

#: What a user's action or reconnection raises when it failed (not a bug).
FAILURES: tuple[type[Exception], ...] = (ClientError, OpFailed)


class StopFlag(Protocol):
    """An asyncio or gevent event: set when the run's window closes."""

    def is_set(self) -> bool: ...


@dataclass(eq=False)
class StageCore:
    """What the behaviours of one process share (a :class:`~loadgen.realtime.schedule.Stage`).

    ``users`` maps every name a step may name (people and publishers) to its user
    (the driver's ``VirtualUser``);
    ``group_of`` a person to its group's index, its room ``f"{room_prefix}g{index}"``;
    ``ids`` gives message and notification ids (strided so processes never collide).
    ``interactive`` (locust's web UI) starts each behaviour's schedule when it starts.
    """

    rng: random.Random
    tracker: Tracker
    body: str
    stats: RealtimeStats
    users: Mapping[str, Any]
    group_of: Mapping[str, int]
    stop: StopFlag
    ids: Iterator[int]
    room_prefix: str = ""
    interactive: bool = False
    start_ns: int = 0
    end_ns: int = 0

    def __post_init__(self) -> None:
        # Drawn once, before any behaviour runs: each behaviour's own stream derives
        # from it, so the drivers' different interleavings make the same draws.
        self._seed = self.rng.getrandbits(64)

    def rng_for(self, behaviour: str, user: str) -> random.Random:
        """A random stream of its own for ``user``'s ``behaviour``.

        Keyed by the name without this process's prefix (``w0u3`` under locust is
        ``u3`` under asyncio), so both drivers draw the same for the same person.
        """
        return random.Random(f"{self._seed}:{behaviour}:{user.removeprefix(self.room_prefix)}")

    def begin_ns(self) -> int:
        """The run's start; in the web UI, now (users join a test already running)."""
        return max(self.start_ns, clock()) if self.interactive else self.start_ns

    def next_id(self) -> int:
        return next(self.ids)

    def room(self, user: str) -> str:
        return f"{self.room_prefix}g{self.group_of[user]}"

    def offline(self, users: list[str]) -> list[str]:
        return [u for u in users if not self.users[u].online]

    def stopped(self) -> bool:
        return self.stop.is_set()


@dataclass(frozen=True, slots=True)
class Failed:
    """What a driver's ``do(step)`` returns when the step's I/O raised one of :data:`FAILURES`."""

    exc: BaseException


class Behaviour:
    """One behaviour's steps, settled the same way under every driver (module docstring)."""

    def __init__(self, stage: StageCore, steps: schedule.Steps) -> None:
        self.stage = stage
        self.steps = steps
        self.step: schedule.Step | None = None

    def __enter__(self) -> Behaviour:
        return self

    def __exit__(self, *exc: object) -> None:
        # Ended early (the run is over): the behaviour settles what it owes now,
        # not whenever the generator is collected.
        self.steps.close()

    def start(self) -> schedule.Step | None:
        """The first step, or None when the behaviour has nothing to do."""
        return self._send(None)

    def resume(self, value: Any = None) -> schedule.Step | None:
        """The current step's I/O returned ``value`` (a :class:`Failed` when it raised one
        of :data:`FAILURES`); the next step, or None at the end.

        An action or a reconnection that failed tells the behaviour False; a failure
        of any other step is raised.
        """
        step = self.step
        ok = not isinstance(value, Failed)
        if isinstance(step, schedule.Act):
            self.stage.stats.count_action(step.op, ok)
            return self._send(ok)
        if isinstance(step, schedule.GoOnline):
            return self._send(ok)
        if isinstance(value, Failed):
            raise value.exc
        return self._send(value)

    def _send(self, result: Any) -> schedule.Step | None:
        try:
            step = self.steps.send(result)
        except StopIteration:
            self.step = None
            return None
        if isinstance(step, schedule.SleepUntil) and step.deadline_ns < self.stage.end_ns:
            self.stage.stats.count_lateness(clock() - step.deadline_ns)
        self.step = step
        return step


def group_behaviours(
    stage: StageCore,
    params: RealtimeParams,
    members: list[str],
    churners: set[str] | frozenset[str],
    visits: dict[str, list[list[int]]],
) -> list[schedule.Steps]:
    """What each person of one group does: messaging, then churn or activity.

    An active person's record of its visits goes into ``visits[name]``.
    """
    out: list[schedule.Steps] = []
    for name in members:
        if params.message_rate:
            others = [m for m in members if m != name]
            out.append(schedule.messaging(stage, params, name, others))
        if name in churners:
            watchers = [m for m in members if m not in churners]
            out.append(schedule.churn(stage, params, name, watchers))
        elif params.activity_rate:
            visits[name] = []
            out.append(schedule.activity(stage, params, name, visits[name]))
    return out


def publisher_behaviours(
    stage: StageCore, publishers: list[str], rate: float, subscribers: dict[str, list[str]]
) -> list[schedule.Steps]:
    """One notification lane per publisher, sharing ``rate`` between them."""
    return [
        schedule.notifications(stage, name, rate, subscribers, lane, len(publishers))
        for lane, name in enumerate(publishers)
    ]


def publisher_names(prefix: str, params: RealtimeParams) -> list[str]:
    """The publishers' names (``params.publishers`` lanes); none without notifications."""
    return [f"{prefix}{i}" for i in range(params.publishers)] if params.notification_rate else []


def topics_of(names: list[str], fanout: int, prefix: str) -> dict[str, str]:
    """Each person's notification topic: ``names`` dealt round ``ceil(len / fanout)`` topics."""
    n = topic_count(len(names), fanout)
    return {u: f"{prefix}t{i % n}" for i, u in enumerate(names)}


def subscribers_of(topic_of: Mapping[str, str]) -> dict[str, list[str]]:
    """Each topic's subscribers, from each person's topic."""
    out: dict[str, list[str]] = {}
    for user, topic in topic_of.items():
        out.setdefault(topic, []).append(user)
    return out


def stop_grace_s(timeout_s: float, params: RealtimeParams, churn: bool) -> float:
    """How long behaviours may take to finish once the window closed: a request's
    timeout, and with churners the presence timeout a last absence needs to be seen."""
    return timeout_s + 2 + (params.presence_timeout_s + 3 if churn else 0)


def drain_done(tracker: Tracker, drain_end_ns: int) -> bool:
    """Whether draining is over: nothing owed, or ``drain_end_ns`` has passed."""
    return tracker.outstanding() <= 0 or clock() >= drain_end_ns
