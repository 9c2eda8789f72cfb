"""The same stage cases through both real-time drivers: asyncio and gevent (locust's).

Each driver runs behaviours over the shared sans-I/O core (:mod:`loadgen.realtime.stage`)
with its own sleeping and calling. The stage cases use fake users that answer at
once (or fail, or hang), so they run without a server and under plain gevent
(nothing here imports locust, which would patch this process); the last case runs
whole notification cells through both engines (locust in a subprocess) on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import orjson
import pytest
from link_cells import notifications_over_link

from loadgen.clients.errors import ClientError
from loadgen.events import EventHook
from loadgen.locust_engine import engine as gevent_engine
from loadgen.locust_engine import worker_argv
from loadgen.pacer import NS_PER_S
from loadgen.realtime import engine as asyncio_engine
from loadgen.realtime import schedule
from loadgen.realtime.engine import run_realtime
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.replies import OpFailed
from loadgen.realtime.schedule import Act, GoOffline, GoOnline, SleepUntil
from loadgen.realtime.stage import StageCore, publisher_behaviours
from loadgen.realtime.stats import RealtimeStats
from loadgen.realtime.tracker import Tracker

pytestmark = pytest.mark.timeout(20)

clock = time.perf_counter_ns
MS = 1_000_000


class FakeUser:
    """A user whose calls succeed at once, fail (``fails``), or hang until killed (``hangs``)."""

    def __init__(self, fails: frozenset[str] = frozenset(), hangs: bool = False) -> None:
        self.online = True
        self.fails = fails
        self.hangs = hangs
        self.calls: list[tuple[str, Any]] = []

    def _do(self, op: str, payload: Any) -> None:
        self.calls.append((op, payload))
        if op in self.fails:
            raise OpFailed("refused") if op == "send" else ClientError("closed", "gone")


class GeventUser(FakeUser):
    def call(self, op: str, payload: Any) -> Any:
        self._do(op, payload)
        if self.hangs:
            gevent.sleep(60)
        return {}

    def go_offline(self) -> None:
        self._do("go_offline", None)
        self.online = False

    def go_online(self) -> None:
        self._do("go_online", None)
        self.online = True


class AsyncioUser(FakeUser):
    async def call(self, op: str, payload: Any) -> Any:
        self._do(op, payload)
        if self.hangs:
            await asyncio.sleep(60)
        return {}

    async def go_offline(self) -> None:
        self._do("go_offline", None)
        self.online = False

    async def go_online(self) -> None:
        self._do("go_online", None)
        self.online = True


class Driver:
    """Makes a driver's stage over fake users and runs behaviours on it."""

    name: str
    user_cls: type[FakeUser]
    stage_cls: type[StageCore]
    stop_cls: type[Any]

    def stage(self, users: dict[str, FakeUser], group_of: dict[str, int]) -> StageCore:
        rng, stats, ids = random.Random(1), RealtimeStats(), itertools.count(1)
        return self.stage_cls(rng, Tracker(0), "hi", stats, users, group_of, self.stop_cls(), ids)

    def run(self, stage: Any, behaviours: list[schedule.Steps], kill_after_s: float) -> None:
        """Run ``behaviours`` to their end, or end them after ``kill_after_s``."""
        raise NotImplementedError


class AsyncioDriver(Driver):
    name = "asyncio"
    user_cls = AsyncioUser
    stage_cls = asyncio_engine.Stage
    stop_cls = asyncio.Event

    def run(self, stage: Any, behaviours: list[schedule.Steps], kill_after_s: float) -> None:
        async def main() -> None:
            tasks = [asyncio.create_task(stage.run(steps)) for steps in behaviours]
            done, pending = await asyncio.wait(tasks, timeout=kill_after_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                task.result()

        asyncio.run(main())


class GeventDriver(Driver):
    name = "gevent"
    user_cls = GeventUser
    stage_cls = gevent_engine.Stage
    stop_cls = gevent.event.Event

    def run(self, stage: Any, behaviours: list[schedule.Steps], kill_after_s: float) -> None:
        greenlets = [gevent.spawn(stage.run, steps) for steps in behaviours]
        gevent.joinall(greenlets, timeout=kill_after_s)
        gevent.killall(greenlets, block=True, timeout=2.0)
        for g in greenlets:
            if g.exception is not None and not isinstance(g.exception, gevent.GreenletExit):
                raise g.exception


@pytest.fixture(params=[AsyncioDriver, GeventDriver], ids=lambda cls: cls.name)
def driver(request: pytest.FixtureRequest) -> Driver:
    return request.param()


def test_steps_are_settled_the_same_way(driver: Driver) -> None:
    users: dict[str, FakeUser] = {
        "a": driver.user_cls(),
        "b": driver.user_cls(fails=frozenset({"send"})),
    }
    stage = driver.stage(users, {"a": 0, "b": 0})
    now = clock()
    stage.start_ns, stage.end_ns = now, now + 10 * NS_PER_S
    told: list[Any] = []

    def steps() -> schedule.Steps:
        told.append((yield SleepUntil(clock() - 250 * MS)))  # far behind its schedule: late
        told.append((yield SleepUntil(clock() + 5 * MS)))  # on time
        told.append((yield Act("a", "send", {"x": 1})))
        told.append((yield Act("b", "send", {"x": 2})))  # the server refuses it
        told.append((yield GoOffline("a")))
        told.append(stage.offline(["a", "b"]))
        told.append((yield GoOnline("a")))

    driver.run(stage, [steps()], kill_after_s=5.0)
    assert told == [True, True, True, False, None, ["a"], True]
    assert stage.stats.actions == {"send": 2}
    assert stage.stats.action_errors == {"send": 1}
    assert stage.stats.late_steps == 1 and stage.stats.max_late_ms >= 250.0
    assert [op for op, _ in users["a"].calls] == ["send", "go_offline", "go_online"]


def test_a_failed_reconnection_is_told_and_a_failed_leave_is_raised(driver: Driver) -> None:
    users: dict[str, FakeUser] = {
        "a": driver.user_cls(fails=frozenset({"go_online", "go_offline"}))
    }
    stage = driver.stage(users, {"a": 0})
    stage.start_ns, stage.end_ns = clock(), clock() + NS_PER_S
    told: list[Any] = []

    def steps() -> schedule.Steps:
        told.append((yield GoOnline("a")))
        yield GoOffline("a")
        told.append("not reached")

    with pytest.raises(ClientError):
        driver.run(stage, [steps()], kill_after_s=5.0)
    assert told == [False]


def test_publisher_lanes_share_the_rate(driver: Driver) -> None:
    subscribers = {"t0": ["s0", "s1"], "t1": ["s2"]}
    names = ["s0", "s1", "s2", "p0", "p1", "p2", "p3"]
    users: dict[str, FakeUser] = {n: driver.user_cls() for n in names}
    stage = driver.stage(users, {})
    # 40/s from four lanes of 10/s, offset 25 ms: due at 0, 25, ..., 250 ms before 260 ms.
    start = clock()
    stage.start_ns, stage.end_ns = start, start + 260 * MS
    lanes = publisher_behaviours(stage, ["p0", "p1", "p2", "p3"], 40.0, subscribers)
    driver.run(stage, lanes, kill_after_s=5.0)
    assert stage.stats.actions == {"publish": 11}
    per_lane = [len(users[f"p{i}"].calls) for i in range(4)]
    assert per_lane == [3, 3, 3, 2]
    counts = stage.tracker.counts()
    topics = [payload["topic"] for i in range(4) for _, payload in users[f"p{i}"].calls]
    assert counts["expected"] == sum(len(subscribers[t]) for t in topics)


def test_an_action_in_flight_when_the_run_ends_is_not_owed(driver: Driver) -> None:
    users: dict[str, FakeUser] = {"a": driver.user_cls(hangs=True), "b": driver.user_cls()}
    stage = driver.stage(users, {"a": 0, "b": 0})
    start = clock()
    stage.start_ns, stage.end_ns = start, start + 10 * NS_PER_S
    params = RealtimeParams(users=2, group_size=2, message_rate=50.0)
    driver.run(stage, [schedule.messaging(stage, params, "a", ["b"])], kill_after_s=0.3)
    assert [op for op, _ in users["a"].calls] == ["send"]
    assert stage.tracker.outstanding() == 0


def test_both_drivers_send_the_same_steps() -> None:
    """Seeded alike, the two drivers make the same calls in the same order."""
    made: dict[str, list[tuple[str, Any]]] = {}
    for cls in (AsyncioDriver, GeventDriver):
        drv = cls()
        users: dict[str, FakeUser] = {n: drv.user_cls() for n in ["a", "b", "c"]}
        stage = drv.stage(users, {"a": 0, "b": 0, "c": 0})
        start = clock()
        stage.start_ns, stage.end_ns = start, start + 200 * MS
        params = RealtimeParams(users=3, group_size=3, message_rate=20.0, direct_ratio=0.5)
        drv.run(stage, [schedule.messaging(stage, params, "a", ["b", "c"])], kill_after_s=5.0)
        made[drv.name] = [
            (op, {k: v for k, v in p.items() if k != "ts"}) for op, p in users["a"].calls
        ]
    assert made["asyncio"] == made["gevent"] and len(made["asyncio"]) == 4


async def _publish_over_link(engine: str, publishers: int, tmp_path: Path) -> dict[str, Any]:
    """Notifications at 30/s through a 60 ms round-trip relay, by ``engine``; the run's
    stats (under locust, the part record's)."""
    async with notifications_over_link(publishers) as (spec, params):
        if engine == "asyncio":
            return asdict(await run_realtime(spec, params, EventHook(), Tracker(0)))
        spec_path, prefix = tmp_path / f"spec{publishers}.json", tmp_path / f"part{publishers}"
        spec_path.write_bytes(orjson.dumps(spec.to_dict()))
        proc = await asyncio.create_subprocess_exec(
            *worker_argv(spec_path, prefix),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        return orjson.loads(prefix.with_suffix(".json").read_bytes())["stats"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("engine", ["asyncio", "locust"])
async def test_both_engines_count_a_late_publisher_and_keep_up_with_lanes(
    engine: str, tmp_path: Path
) -> None:
    alone = await _publish_over_link(engine, 1, tmp_path)
    assert alone["late_steps"] > 0 and alone["max_late_ms"] > 100
    lanes = await _publish_over_link(engine, 6, tmp_path)
    assert lanes["late_steps"] < alone["late_steps"]
    assert lanes["actions"]["publish"] >= 29


def test_each_behaviour_draws_the_same_whatever_runs_first() -> None:
    # Two stages seeded alike, one as the gevent driver names its people (a process
    # prefix); their behaviours ask in opposite orders, as two interleavings may:
    # each person still gets the same draws.
    def stage(prefix: str) -> StageCore:
        return StageCore(
            random.Random(11),
            Tracker(0),
            "",
            RealtimeStats(),
            {},
            {},
            gevent.event.Event(),
            itertools.count(1),
            room_prefix=prefix,
        )

    def draws(s: StageCore, user: str) -> list[float]:
        rng = s.rng_for("messaging", user)
        return [rng.random() for _ in range(3)]

    asyncio_side, gevent_side = stage(""), stage("w0")
    a1, b1 = draws(asyncio_side, "u1"), draws(asyncio_side, "u2")
    b2, a2 = draws(gevent_side, "w0u2"), draws(gevent_side, "w0u1")
    assert (a1, b1) == (a2, b2)
    assert a1 != b1
