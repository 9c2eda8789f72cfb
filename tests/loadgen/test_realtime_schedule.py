"""What each virtual user does and when: the behaviours' steps, run on a fake clock."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from loadgen.pacer import NS_PER_S
from loadgen.realtime import schedule
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.schedule import Act, GoOffline, GoOnline, Pause, SleepUntil, Step
from loadgen.realtime.tracker import Tracker

pytestmark = pytest.mark.timeout(10)


@dataclass
class FakeStage:
    """A :class:`~loadgen.realtime.schedule.Stage` on a clock that moves only when told."""

    end_ns: int
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    tracker: Tracker = field(default_factory=lambda: Tracker(0))
    body: str = "hello"
    start_ns: int = 0
    now: int = 0
    away: set[str] = field(default_factory=set)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def begin_ns(self) -> int:
        return self.start_ns

    def rng_for(self, behaviour: str, user: str) -> random.Random:
        # Every behaviour shares the one seeded stream: the cases here run one at a time.
        return self.rng

    def next_id(self) -> int:
        return next(self.ids)

    def room(self, user: str) -> str:
        return "g0"

    def offline(self, users: list[str]) -> list[str]:
        return [u for u in users if u in self.away]

    def stopped(self) -> bool:
        return self.now >= self.end_ns


def run(
    stage: FakeStage,
    steps: schedule.Steps,
    acts_ok: Callable[[Act], bool] = lambda act: True,
    online_ok: bool = True,
) -> list[tuple[int, Step]]:
    """Carry out every step at once on the fake clock; returns (when, step) pairs."""
    done: list[tuple[int, Step]] = []
    result: Any = None
    while True:
        try:
            step = steps.send(result)
        except StopIteration:
            return done
        done.append((stage.now, step))
        result = None
        match step:
            case SleepUntil(deadline_ns):
                stage.now = max(stage.now, min(deadline_ns, stage.end_ns))
                result = stage.now >= deadline_ns
            case Pause(seconds):
                stage.now += int(seconds * NS_PER_S)
            case Act():
                result = acts_ok(step)
            case GoOffline(user):
                stage.away.add(user)
            case GoOnline(user):
                stage.away.discard(user)
                result = online_ok


@pytest.fixture(autouse=True)
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[FakeStage], None]:
    stages: list[FakeStage] = []
    monkeypatch.setattr(schedule, "clock", lambda: stages[-1].now)
    return stages.append


def _staged(fake_clock: Callable[[FakeStage], None], **fields: Any) -> FakeStage:
    """A :class:`FakeStage` of ``fields`` whose clock is the fake one."""
    stage = FakeStage(**fields)
    fake_clock(stage)
    return stage


def acts(done: list[tuple[int, Step]]) -> list[tuple[int, Act]]:
    return [(t, s) for t, s in done if isinstance(s, Act)]


def test_messaging_paced_direct_or_room_and_owed_before_sending(
    fake_clock: Callable[[FakeStage], None],
) -> None:
    stage = _staged(fake_clock, end_ns=3 * NS_PER_S)
    params = RealtimeParams(users=4, group_size=4, message_rate=2.0, direct_ratio=0.5)
    sent = acts(run(stage, schedule.messaging(stage, params, "a", ["b", "c"])))
    assert len(sent) == 6  # 2 per second for 3 seconds
    gaps = {b - a for (a, _), (b, _) in itertools.pairwise(sent)}
    assert gaps == {NS_PER_S // 2}
    kinds = {"to" in act.payload for _, act in sent}
    assert kinds == {True, False}  # this seed draws both
    for t, act in sent:
        assert act.user == "a" and act.op == "send"
        assert act.payload["ts"] == t and act.payload["body"] == "hello"
        assert act.payload.get("to", "b") in ("b", "c") and act.payload.get("room", "g0") == "g0"
    expected = sum(1 if "to" in act.payload else 2 for _, act in sent)
    assert stage.tracker.counts()["expected"] == expected


def test_messaging_is_reproducible_and_cancels_what_failed(
    fake_clock: Callable[[FakeStage], None],
) -> None:
    params = RealtimeParams(users=4, group_size=4, message_rate=5.0)
    runs = []
    for _ in range(2):
        stage = _staged(fake_clock, end_ns=NS_PER_S)
        steps = schedule.messaging(stage, params, "a", ["b", "c", "d"])
        runs.append(run(stage, steps, lambda act: False))
    assert runs[0] == runs[1]
    assert stage.tracker.counts()["expected"] == 0 and stage.tracker.cancelled == 5


def test_messaging_skips_while_offline_and_alone(fake_clock: Callable[[FakeStage], None]) -> None:
    params = RealtimeParams(users=4, group_size=4, message_rate=5.0)
    stage = _staged(fake_clock, end_ns=NS_PER_S, away={"a"})
    assert acts(run(stage, schedule.messaging(stage, params, "a", ["b"]))) == []
    assert run(stage, schedule.messaging(stage, params, "b", [])) == []


def test_churn_goes_offline_and_back_with_presence_owed_to_watchers(
    fake_clock: Callable[[FakeStage], None],
) -> None:
    params = RealtimeParams(users=4, group_size=4, churn_fraction=0.5, online_s=1.0, offline_s=4.0)
    stage = _staged(fake_clock, end_ns=20 * NS_PER_S)
    done = run(stage, schedule.churn(stage, params, "d", ["a", "b"]))
    moves = [s for _, s in done if isinstance(s, GoOffline | GoOnline)]
    assert moves[:4] == [GoOffline("d"), GoOnline("d"), GoOffline("d"), GoOnline("d")]
    tracker = stage.tracker
    assert tracker.owed(("presence", "d", "offline", 1)) == 2
    assert tracker.owed(("presence", "d", "online", 2)) == 2
    assert tracker.counts()["expected"] == 2 * len(moves)
    offline_at = [t for t, s in done if isinstance(s, GoOffline)]
    online_at = [t for t, s in done if isinstance(s, GoOnline)]
    assert len(offline_at) == len(online_at) >= 3
    # Away offline_s +-20%; the last absence outlasts the run, waiting to be seen.
    for off, on in zip(offline_at[:-1], online_at[:-1], strict=True):
        assert 3.2 * NS_PER_S <= on - off <= 4.8 * NS_PER_S


def _churn(**timing: float) -> RealtimeParams:
    """One churner in a group of four, with ``timing`` (online_s, offline_s...)."""
    return RealtimeParams(users=4, group_size=4, churn_fraction=0.5, **timing)


def test_churn_waits_for_the_absence_to_be_seen_when_the_run_ends(
    fake_clock: Callable[[FakeStage], None],
) -> None:
    params = _churn(online_s=1.0, offline_s=4.0, presence_timeout_s=1.0)
    stage = _staged(fake_clock, end_ns=2 * NS_PER_S)
    done = run(stage, schedule.churn(stage, params, "d", ["a"]), online_ok=False)
    steps = [s for _, s in done]
    assert steps.count(GoOffline("d")) == 1 and steps.count(GoOnline("d")) == 1
    # Nobody saw the absence: it waits out presence_timeout_s + 2 s in pauses.
    pauses = [s for s in steps if isinstance(s, Pause)]
    assert len(pauses) == pytest.approx(3.0 / 0.02, abs=2)
    # Coming back failed: that change is not owed.
    assert stage.tracker.owed(("presence", "d", "online", 2)) == 0
    assert stage.tracker.cancelled == 1


def test_churn_away_when_the_run_ends_comes_back_when_due_not_at_once(
    fake_clock: Callable[[FakeStage], None],
) -> None:
    # Nobody watches, so the absence is seen at once; the return still keeps its time,
    # so the users away at the end do not all reconnect in the same instant.
    params = _churn(online_s=0.1, offline_s=8.0, presence_timeout_s=6.0)
    stage = _staged(fake_clock, end_ns=2 * NS_PER_S)
    done = run(stage, schedule.churn(stage, params, "d", []))
    (off,) = [t for t, s in done if isinstance(s, GoOffline)]
    (on,) = [t for t, s in done if isinstance(s, GoOnline)]
    assert stage.end_ns < on
    assert 6.4 * NS_PER_S <= on - off <= 9.6 * NS_PER_S + 0.02 * NS_PER_S


def test_activity_records_each_visit_from_its_successful_views(
    fake_clock: Callable[[FakeStage], None],
) -> None:
    params = RealtimeParams(activity_rate=10.0, visit_s=1.0, idle_timeout_s=0.5)
    stage = _staged(fake_clock, end_ns=5 * NS_PER_S)
    visits: list[list[int]] = []
    done = run(stage, schedule.activity(stage, params, "a", visits))
    views = acts(done)
    assert {act.op for _, act in views} == {"activity"}
    assert [act.payload["page"] for _, act in views[:8]] == [f"/p{i % 7}" for i in range(1, 9)]
    # Visits of 1 s, 10 views each, 1 s apart (twice the idle timeout).
    assert len(visits) == 3
    for first, last in visits:
        assert last - first == 9 * NS_PER_S // 10
    assert [b[0] - a[0] for a, b in itertools.pairwise(visits)] == [2 * NS_PER_S] * 2


def test_notifications_go_to_topics_in_turn(fake_clock: Callable[[FakeStage], None]) -> None:
    stage = _staged(fake_clock, end_ns=NS_PER_S, away={"c"})
    subscribers = {"t1": ["c", "d"], "t0": ["a", "b"]}
    done = run(
        stage,
        schedule.notifications(stage, "system", 4.0, subscribers),
        lambda act: act.payload["nid"] != 2,
    )
    sent = [act for _, act in acts(done)]
    assert [a.payload["topic"] for a in sent] == ["t1", "t0", "t1", "t0"]
    assert {(a.user, a.op) for a in sent} == {("system", "publish")}
    tracker = stage.tracker
    assert tracker.cancelled == 1 and tracker.counts()["expected"] == 6
    # c was offline: its deliveries are deferred (kept out of latency statistics).
    t1_nid = sent[0].payload["nid"]
    row_c = tracker.received("c", 1, ("notification", t1_nid), stage.now, "poll")
    row_d = tracker.received("d", 1, ("notification", t1_nid), stage.now, "poll")
    assert row_c is not None and row_c.deferred
    assert row_d is not None and not row_d.deferred
    assert run(stage, schedule.notifications(stage, "system", 0.0, subscribers)) == []
    assert run(stage, schedule.notifications(stage, "system", 4.0, {})) == []


def test_publisher_lanes_share_the_rate_and_interleave(
    fake_clock: Callable[[FakeStage], None],
) -> None:
    subscribers = {"t0": ["a"], "t1": ["b"], "t2": ["c"], "t3": ["d"]}
    lanes = []
    for i in range(2):
        stage = _staged(
            fake_clock, end_ns=NS_PER_S
        )  # each lane on its own clock from the same start
        lanes.append(
            acts(run(stage, schedule.notifications(stage, f"p{i}", 8.0, subscribers, i, 2)))
        )
    # Each lane publishes every other notification: 4 per second each, 8 in all.
    assert [len(lane) for lane in lanes] == [4, 4]
    times = sorted(t for lane in lanes for t, _ in lane)
    # Lane 1 is offset by 1/rate, so the two lanes together keep the 8/s schedule.
    assert times == [int(i * NS_PER_S / 8) for i in range(8)]
    topics = [a.payload["topic"] for lane in lanes for _, a in lane]
    assert sorted(topics) == ["t0", "t0", "t1", "t1", "t2", "t2", "t3", "t3"]
    assert {a.user for _, a in lanes[1]} == {"p1"}


def test_an_action_abandoned_in_flight_is_not_owed(
    fake_clock: Callable[[FakeStage], None],
) -> None:
    stage = _staged(fake_clock, end_ns=NS_PER_S)
    steps = schedule.notifications(stage, "system", 4.0, {"t0": ["a", "b"]})
    assert isinstance(next(steps), SleepUntil)
    assert isinstance(steps.send(True), Act)
    assert stage.tracker.counts()["expected"] == 2
    steps.close()  # the run ended while the publish was in flight
    assert stage.tracker.counts()["expected"] == 0 and stage.tracker.cancelled == 1
