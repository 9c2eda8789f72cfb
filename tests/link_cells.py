"""Real-time cells through an emulated link, for tests that run them on 127.0.0.1.

::

    async with notifications_over_link(publishers=4) as (spec, params):
        stats = await run_realtime(spec, params, EventHook(), Tracker(0))
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from realtime_cells import realtime_cell
from serving import running

from loadgen.cellspec import CellRun
from loadgen.link.relay import LinkRelay
from loadgen.realtime.params import RealtimeParams


@contextlib.asynccontextmanager
async def notifications_over_link(
    publishers: int,
) -> AsyncIterator[tuple[CellRun, RealtimeParams]]:
    """Notifications at 30/s through a 60 ms round-trip relay: one publish per round trip."""
    params = RealtimeParams(
        users=8, group_size=4, notification_rate=30.0, fanout=2, publishers=publishers
    )
    async with (
        running("ws-aiohttp") as server,
        LinkRelay({"rtt_ms": 60}, "127.0.0.1", server.port, seed=1) as relay,
    ):
        spec = realtime_cell(
            "ws-aiohttp",
            "push",
            f"http://127.0.0.1:{relay.port}",
            cell="ws",
            duration_s=1.0,
            warmup_s=0.0,
            workload="notifications",
            realtime=params.model_dump(),
        )
        yield spec, params
