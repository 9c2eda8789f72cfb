"""Several notification publishers share one rate, on 127.0.0.1."""

from __future__ import annotations

import pytest
from serving import running

from loadgen.engine import CellRun
from loadgen.events import EventHook
from loadgen.realtime.engine import run_realtime
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
        spec = CellRun(
            cell=f"{kind}/{delivery}",
            transport=kind,
            client="aiohttp",
            conn_mode="keep-alive" if kind == "http" else "persistent",
            base_url=server.base_url,
            duration_s=1.0,
            warmup_s=0.0,
            timeout_s=3.0,
            workload="notifications",
            delivery=delivery,
        )
        stats = await run_realtime(spec, params, hook, tracker)
    # 40/s over one second, from four lanes of 10/s each.
    assert 38 <= stats.actions["publish"] <= 40
    assert len(publishes) == stats.actions["publish"]
    counts = tracker.counts()
    assert counts["expected"] == 3 * stats.actions["publish"]
    assert counts["delivered"] == counts["expected"] and counts["lost"] == 0
