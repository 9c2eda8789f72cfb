"""Several notification publishers share one rate, on 127.0.0.1."""

from __future__ import annotations

import pytest
from link_cells import notifications_over_link
from realtime_cells import realtime_cell
from serving import running

from loadgen.events import EventHook
from loadgen.realtime.engine import RealtimeStats, run_realtime
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.tracker import Tracker

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(("kind", "delivery"), [("http", "long-poll"), ("ws-aiohttp", "push")])
async def test_publishers_share_the_rate_and_everything_arrives(kind: str, delivery: str) -> None:
    params = RealtimeParams(
        users=12, group_size=4, notification_rate=40.0, fanout=3, publishers=4, drain_s=2.0
    )
    tracker = Tracker(0)
    publishes: list[object] = []
    hook = EventHook()
    hook.add_listener(lambda s: publishes.append(s) if s.kind == "publish" else None)
    async with running(kind) as server:
        spec = realtime_cell(
            kind, delivery, server.base_url, duration_s=1.0, warmup_s=0.0, workload="notifications"
        )
        stats = await run_realtime(spec, params, hook, tracker)
    # 40/s over one second, from four lanes of 10/s each.
    assert 38 <= stats.actions["publish"] <= 40
    assert len(publishes) == stats.actions["publish"]
    counts = tracker.counts()
    assert counts["expected"] == 3 * stats.actions["publish"]
    assert counts["delivered"] == counts["expected"] and counts["lost"] == 0


def test_lateness_counts_only_steps_far_behind_schedule() -> None:
    stats = RealtimeStats()
    stats.count_lateness(5_000_000)  # 5 ms: the event loop's own jitter
    stats.count_lateness(250_000_000)
    stats.count_lateness(150_000_000)
    assert stats.late_steps == 2 and stats.max_late_ms == pytest.approx(250.0)


async def _publish_over_link(publishers: int) -> RealtimeStats:
    """Notifications at 30/s through a 60 ms round-trip relay: one publish per round trip."""
    async with notifications_over_link(publishers) as (spec, params):
        return await run_realtime(spec, params, EventHook(), Tracker(0))


async def test_a_publisher_behind_schedule_is_counted_and_lanes_keep_up() -> None:
    alone = await _publish_over_link(publishers=1)
    assert alone.late_steps > 0 and alone.max_late_ms > 100
    lanes = await _publish_over_link(publishers=6)
    assert lanes.late_steps == 0
    assert lanes.actions["publish"] >= 29
