"""How a locust process sets its users up: groups of people, topics, publishers, readiness.

:class:`SetUp` is a part of :class:`~loadgen.locust_engine.world.World`::

    members = world.new_group()      # a real-time locust user's people
    world.setup_group(members)       # connected at connect_rate, joined, watching the churners
    world.user_ready()
    info = world.wait_ready(60)      # {"users", "people", "setup_s", "error"}
"""

from __future__ import annotations

import time
from typing import Any

import gevent
from gevent.event import Event
from gevent.lock import Semaphore

from loadgen.locust_engine.engine import Stage
from loadgen.locust_engine.users import VirtualUser
from loadgen.pacer import NS_PER_S
from loadgen.realtime.groups import churners_of
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.ramp import Ramp
from loadgen.realtime.stage import FAILURES, publisher_names, topics_of
from loadgen.realtime.stats import RealtimeStats
from loadgen.realtime.tracker import Tracker
from loadgen.realtime.user_state import Endpoint

clock = time.perf_counter_ns


class SetUp:
    """The people, groups, subscriptions and publishers of one process, and its readiness."""

    params: RealtimeParams | None
    realtime: bool
    interactive: bool
    tag: str
    endpoint: Endpoint
    tracker: Tracker
    rt_stats: RealtimeStats
    stage: Stage
    spawned: Event
    setup_sem: Semaphore
    #: Connection slots at this process's share of ``connect_rate``.
    ramp: Ramp
    local_users: int | None
    users_ready: int
    setup_errors: list[str]
    fd_error: str | None
    people: dict[str, VirtualUser]
    order: list[str]
    groups: list[list[str]]
    group_of: dict[str, int]
    churners: set[str]
    subscribers: dict[str, list[str]]
    publishers: dict[str, VirtualUser]
    everyone: dict[str, VirtualUser]
    _people_n: Any
    _groups_n: Any

    # Its users' reports (see :class:`~loadgen.locust_engine.recording.Recording`).
    on_request: Any
    on_item: Any
    on_connect: Any

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
            self._wait_for_slot()
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
                self._wait_for_slot()
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

    def _wait_for_slot(self) -> None:
        """Sleep until the next user may connect (the cell's connect_rate, no burst)."""
        gevent.sleep(self.ramp.next_wait_ns(clock()) / NS_PER_S)

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
        if self.fd_error is not None:
            return self._ready_info(t0, self.fd_error)
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
