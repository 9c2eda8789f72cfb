"""servers.stalls: collections and late loop turns, timed and kept in bounds."""

from __future__ import annotations

import asyncio
import gc
import time

import orjson
import pytest

from servers import protocol
from servers.hub import Context, Hub
from servers.protocol import Request
from servers.stalls import LOOP, Stalls, merge_reports

pytestmark = pytest.mark.timeout(20)

MS = 1_000_000


def test_a_collection_is_counted_per_generation_and_kept_when_long_enough() -> None:
    stalls = Stalls(min_event_ms=0)
    stalls.install()
    try:
        gc.collect()
    finally:
        stalls.uninstall()
    assert stalls.gc_count[2] >= 1
    assert stalls.gc_max_ns[2] > 0
    assert any(kind == "gc2" for _, _, kind in stalls.events())
    before = stalls.gc_count[2]
    gc.collect()  # uninstalled: no longer counted
    assert stalls.gc_count[2] == before


def test_install_and_uninstall_are_idempotent() -> None:
    stalls = Stalls()
    stalls.install()
    stalls.install()
    assert gc.callbacks.count(stalls._on_gc) == 1
    stalls.uninstall()
    stalls.uninstall()
    assert stalls._on_gc not in gc.callbacks


def test_short_stalls_are_counted_but_not_kept() -> None:
    stalls = Stalls(min_event_ms=5)
    stalls.loop_turn(due_ns=0, late_ns=4 * MS)  # under the threshold
    stalls.loop_turn(due_ns=10 * MS, late_ns=-3)  # early wake-ups count as on time
    stalls.loop_turn(due_ns=20 * MS, late_ns=5 * MS)  # at the threshold: kept
    assert stalls.loop_checks == 3
    assert stalls.loop_late_ns == 9 * MS
    assert stalls.loop_max_ns == 5 * MS
    assert stalls.events() == [(20 * MS, 5.0, LOOP)]


def test_once_full_the_longest_stalls_are_kept() -> None:
    stalls = Stalls(min_event_ms=0, max_events=3)
    for i, ms in enumerate([7, 1, 9, 3, 8, 2]):
        stalls.gc_pause(0, i * 100 * MS, ms * MS)
    # 7, 9 and 8 ms survive, in time order; the counters still saw all six.
    assert [ms for _, ms, _ in stalls.events()] == [7.0, 9.0, 8.0]
    assert stalls.gc_count[0] == 6
    assert stalls.gc_total_ns[0] == 30 * MS


def test_report_keeps_the_span_and_at_most_limit_of_the_longest() -> None:
    stalls = Stalls(min_event_ms=0)
    for i, ms in enumerate([5, 50, 6, 40, 7]):
        stalls.gc_pause(2, i * 1000 * MS, ms * MS)
    report = stalls.report(since_ns=1000 * MS, until_ns=4000 * MS)
    assert [e[1] for e in report["events"]] == [50.0, 6.0, 40.0]
    report = stalls.report(limit=2)
    # The two longest, still in time order.
    assert [e[1] for e in report["events"]] == [50.0, 40.0]
    assert report["gc"]["collections"] == [0, 0, 5]
    assert report["gc"]["max_ms"] == [0.0, 0.0, 50.0]
    orjson.dumps(report)  # JSON as it is


def test_max_events_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_events"):
        Stalls(max_events=0)


async def test_watching_times_a_blocked_loop_and_cleans_up() -> None:
    stalls = Stalls()
    async with stalls.watching():
        await asyncio.sleep(0.05)
        time.sleep(0.06)  # the loop is held: the watcher wakes ~60 ms late
        await asyncio.sleep(0.03)
    assert stalls._on_gc not in gc.callbacks
    assert stalls.loop_checks >= 3
    assert stalls.loop_max_ns >= 40 * MS
    assert any(kind == LOOP and ms >= 40 for _, ms, kind in stalls.events())


def test_merge_adds_counts_and_keeps_the_longest() -> None:
    a, b = Stalls(min_event_ms=0), Stalls(min_event_ms=0)
    a.gc_pause(0, 30 * MS, 2 * MS)
    b.gc_pause(0, 10 * MS, 5 * MS)
    b.gc_pause(2, 20 * MS, 9 * MS)
    a.loop_turn(0, 1 * MS)
    b.loop_turn(0, 3 * MS)
    merged = merge_reports([a.report(), {}, b.report()])
    assert merged["gc"]["collections"] == [2, 0, 1]
    assert merged["gc"]["total_ms"] == [7.0, 0.0, 9.0]
    assert merged["gc"]["max_ms"] == [5.0, 0.0, 9.0]
    assert merged["loop"]["checks"] == 2 and merged["loop"]["max_ms"] == 3.0
    assert [e[0] for e in merged["events"]] == sorted(e[0] for e in merged["events"])
    assert merge_reports([]) == {}
    assert merge_reports([a.report()]) == a.report()


async def test_a_hub_watches_its_loop_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Hub().watch_loop is False
    monkeypatch.setenv("RTBENCH_LOOP_WATCH", "1")
    hub = Hub()
    assert hub.watch_loop is True
    await hub.start()
    try:
        await asyncio.sleep(0.05)
        assert hub.stalls.loop_checks > 0
    finally:
        await hub.stop()
    assert Hub(watch_loop=False).watch_loop is False


async def test_the_hub_stats_carry_its_stalls_since_the_time_asked() -> None:
    hub = Hub()
    hub.realtime.sign_in("alice")
    await hub.start()
    try:
        hub.stalls.gc_pause(2, 100, 30 * MS)
        hub.stalls.gc_pause(2, 300, 40 * MS)

        async def stats(payload: object) -> dict[str, object]:
            body = protocol.encode_request(Request(op="stats", id=1, ts=1, payload=payload))
            reply = await hub.handle(body, Context(user="alice"))
            assert reply.status == 200
            return orjson.loads(reply.body)["payload"]

        assert [e[1] for e in (await stats({}))["stalls"]["events"]] == [30.0, 40.0]
        assert [e[1] for e in (await stats({"stalls_since_ns": 200}))["stalls"]["events"]] == [40.0]
        # Anything but a whole number is ignored, as is one past a signed 64-bit integer.
        assert len((await stats({"stalls_since_ns": "x"}))["stalls"]["events"]) == 2
        assert len((await stats({"stalls_since_ns": 2**63}))["stalls"]["events"]) == 2
        assert (await stats({}))["users"] == 1
    finally:
        await hub.stop()
    assert hub.stalls._on_gc not in gc.callbacks
