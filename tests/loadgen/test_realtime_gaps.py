"""Retention gaps reach the tracker on every delivery path, on 127.0.0.1.

The server keeps only the newest ``inbox_retention`` items per inbox; a
reader whose cursor fell behind them is told so (a poll reply's ``gap``, a
``subscribe_inbox`` reply's ``gap``, an ``event: gap`` on the event stream).
A user goes offline while more items than the retention arrive, comes back,
and the tracker counts the gap; the skipped items stay owed (lost). With
fewer items than the retention nothing is skipped and no gap is counted.
The same holds through :func:`~loadgen.realtime.engine.run_realtime`, where
churners are away while their group keeps sending.
"""

from __future__ import annotations

import asyncio

import pytest
from realtime_cells import endpoint, realtime_cell, tracking
from serving import running

from loadgen.events import EventHook
from loadgen.realtime.engine import run_realtime
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.tracker import Tracker
from loadgen.realtime.users import VirtualUser
from servers.hub import Hub
from servers.realtime.config import RealtimeConfig

pytestmark = pytest.mark.timeout(60)

STEP_S = 5.0  # bound on any single wait
RETENTION = 4

#: (server kind, client library, delivery, how items arrive)
PATHS = [
    ("http", "aiohttp", "short-poll", "poll"),
    ("http", "aiohttp", "long-poll", "poll"),
    ("ws-aiohttp", "aiohttp", "push", "push"),
    ("ws-websockets", "websockets", "push", "push"),
    ("http", "aiohttp", "sse", "sse"),
]


async def absent_while_items_arrive(kind: str, client: str, delivery: str, n: int) -> Tracker:
    """bob goes offline, ``n`` messages reach his inbox, he comes back; his tracker."""
    hub = Hub(realtime=RealtimeConfig(inbox_retention=RETENTION))
    params = RealtimeParams(users=2, group_size=2, poll_interval_ms=20, long_poll_timeout_ms=200)
    tracker = Tracker(0)
    async with running(kind, hub=hub) as server:
        bob = VirtualUser(
            "bob",
            endpoint(server.base_url, kind, client, delivery),
            params,
            lambda *a: None,
            tracking(tracker),
            lambda *a: None,
            tracker.gap,
        )
        await bob.start()
        try:
            await bob.go_offline()
            for mid in range(1, n + 1):
                tracker.expect(("message", mid), 1, ["bob"], "alice", mid)
                hub.realtime.deliver(["bob"], {"type": "message", "mid": mid, "ts": 1})
            await bob.go_online()
            async with asyncio.timeout(STEP_S):
                while tracker.owed(("message", n)):
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)  # anything more (a second gap report) would show by now
        finally:
            await bob.stop()
    return tracker


@pytest.mark.parametrize(("kind", "client", "delivery", "via"), PATHS)
async def test_falling_behind_the_retention_counts_a_gap(
    kind: str, client: str, delivery: str, via: str
) -> None:
    n = RETENTION * 3
    tracker = await absent_while_items_arrive(kind, client, delivery, n)
    counts = tracker.counts()
    assert counts["gaps"] == 1, counts
    assert tracker.gaps_by_via == {via: 1}
    assert tracker.gapped == {"bob"}
    # The kept items arrived; the skipped ones are still owed.
    assert counts["delivered"] == RETENTION
    assert counts["lost"] == n - RETENTION
    assert sorted(r.item_id for r in tracker.rows) == list(range(n - RETENTION + 1, n + 1))


@pytest.mark.parametrize(("kind", "client", "delivery", "via"), PATHS)
async def test_within_the_retention_there_is_no_gap(
    kind: str, client: str, delivery: str, via: str
) -> None:
    tracker = await absent_while_items_arrive(kind, client, delivery, RETENTION)
    counts = tracker.counts()
    assert counts["gaps"] == 0 and tracker.gaps_by_via == {}
    assert counts["delivered"] == counts["expected"] == RETENTION
    assert counts["lost"] == 0


# -- through the engine ----------------------------------------------------------------------

#: Two churners per group of four, away 1.2-1.8 s while the others send 20 messages/s.
CHURN = {
    "users": 4,
    "group_size": 4,
    "message_rate": 20.0,
    "churn_fraction": 0.5,
    "presence_timeout_s": 0.3,
    "online_s": 0.4,
    "offline_s": 1.5,
    "poll_interval_ms": 50,
    "drain_s": 1.0,
}


async def engine_run(kind: str, client: str, delivery: str, retention: int) -> dict[str, int]:
    """One repeat of a churning messaging cell; its delivery counts."""
    hub = Hub(realtime=RealtimeConfig(inbox_retention=retention, presence_timeout_s=0.3))
    params = RealtimeParams.model_validate(CHURN | {"inbox_retention": max(10, retention)})
    tracker = Tracker(0)
    async with running(kind, hub=hub) as server:
        spec = realtime_cell(
            kind,
            delivery,
            server.base_url,
            client=client,
            duration_s=2.0,
            warmup_s=0.2,
            workload="mix",
        )
        await run_realtime(spec, params, EventHook(), tracker)
    return tracker.counts()


@pytest.mark.timeout(90)
async def test_engine_counts_gaps_when_churners_fall_behind() -> None:
    cells = [("http", "aiohttp", "short-poll"), ("ws-websockets", "websockets", "push")]
    behind = await asyncio.gather(*(engine_run(*cell, retention=3) for cell in cells))
    normal = await asyncio.gather(*(engine_run(*cell, retention=100_000) for cell in cells))
    for cell, counts in zip(cells, behind, strict=True):
        assert counts["gaps"] > 0, (cell, counts)
        assert counts["lost"] > 0, (cell, counts)
    for cell, counts in zip(cells, normal, strict=True):
        assert counts["gaps"] == 0, (cell, counts)
        assert counts["lost"] == 0 and counts["delivered"] == counts["expected"] > 0, (cell, counts)
