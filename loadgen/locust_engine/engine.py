"""The real-time stage under gevent: the locust engine's twin of :mod:`loadgen.realtime.engine`.

What each person does and how its steps are settled (lateness, actions) is
:mod:`loadgen.realtime.stage`'s; this driver only sleeps and calls with gevent::

    stage = Stage(rng, tracker, body, stats, users, group_of, Event(), ids, room_prefix="w0")
    stage.start_ns, stage.end_ns = start, end
    group = gevent.pool.Group()
    for steps in group_behaviours(stage, params, members, churners, visits):
        group.spawn(stage.run, steps)

Nothing here imports locust (whose import patches the process for gevent):
the stage runs under plain gevent too.
"""

from __future__ import annotations

import time
from typing import Any

import gevent
from gevent.event import Event

from loadgen.pacer import NS_PER_S
from loadgen.realtime import schedule
from loadgen.realtime.stage import FAILURES, Behaviour, Failed, StageCore

clock = time.perf_counter_ns


def sleep_until(deadline_ns: int, stop: Event | None = None) -> bool:
    """Sleep until ``clock() >= deadline_ns``; False if ``stop`` was set first."""
    while (remaining := deadline_ns - clock()) > 0:
        if stop is None:
            gevent.sleep(remaining / NS_PER_S)
        elif stop.wait(remaining / NS_PER_S):
            return False
    return True


class Stage(StageCore):
    """The shared stage, run with gevent: each behaviour a greenlet."""

    stop: Event

    def do(self, step: schedule.Step) -> Any:
        """One step's I/O; :class:`~loadgen.realtime.stage.Failed` when an action failed."""
        try:
            match step:
                case schedule.SleepUntil(deadline_ns):
                    return sleep_until(deadline_ns, self.stop)
                case schedule.Pause(seconds):
                    gevent.sleep(seconds)
                case schedule.Act(user, op, payload):
                    self.users[user].call(op, payload)
                case schedule.GoOffline(user):
                    self.users[user].go_offline()
                case schedule.GoOnline(user):
                    self.users[user].go_online()
        except FAILURES as exc:
            return Failed(exc)
        return None

    def run(self, steps: schedule.Steps) -> None:
        """Run one behaviour to its end."""
        with Behaviour(self, steps) as run:
            step = run.start()
            while step is not None:
                step = run.resume(self.do(step))
