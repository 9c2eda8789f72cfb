"""A user whose token ends (the server closes its WebSocket with 1008, ends its event
stream, answers its poll 401) counts an auth close, signs in again and resumes: every
item still arrives once, and nothing is counted as a dropped connection. On 127.0.0.1,
for every delivery path and both client families."""

from __future__ import annotations

import asyncio

import pytest
from realtime_cells import endpoint, tracking
from serving import running

from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.tracker import Tracker
from loadgen.realtime.users import VirtualUser
from servers.hub import Hub
from servers.realtime.config import RealtimeConfig

pytestmark = pytest.mark.timeout(60)

STEP_S = 5.0  # bound on any single wait
TTL_S = 0.4

#: (server kind, client, delivery)
PATHS = [
    ("http", "aiohttp", "short-poll"),
    ("http", "aiohttp", "long-poll"),
    ("http", "lean", "long-poll"),
    ("ws-aiohttp", "aiohttp", "push"),
    ("ws-websockets", "websockets", "push"),
    ("ws-aiohttp", "lean", "push"),
    ("http", "aiohttp", "sse"),
    ("http", "lean", "sse"),
]


@pytest.mark.parametrize(("kind", "client", "delivery"), PATHS)
async def test_an_ended_token_is_an_auth_close_and_loses_nothing(
    kind: str, client: str, delivery: str
) -> None:
    hub = Hub(realtime=RealtimeConfig(token_ttl_s=TTL_S))
    params = RealtimeParams(users=2, group_size=2, poll_interval_ms=20, long_poll_timeout_ms=5000)
    tracker = Tracker(0)
    async with running(kind, hub=hub) as server:
        where = endpoint(server.base_url, kind, client, delivery)
        bob = VirtualUser("bob", where, params, lambda *a: None, tracking(tracker), lambda *a: None)
        await bob.start()
        try:
            mid = 0
            # Items arrive before, across and after two token lifetimes.
            for _ in range(6):
                mid += 1
                tracker.expect(("message", mid), 1, ["bob"], "alice", mid)
                hub.realtime.deliver(["bob"], {"type": "message", "mid": mid, "ts": 1})
                await asyncio.sleep(TTL_S / 1.5)
            async with asyncio.timeout(STEP_S):
                while tracker.owed(("message", mid)) or bob.auth_closes == 0:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)  # a duplicate would show by now
        finally:
            await bob.stop()
    counts = tracker.counts()
    assert counts["delivered"] == counts["expected"] == mid
    assert counts["lost"] == counts["duplicated"] == 0
    assert bob.auth_closes >= 1
    assert bob.reconnects == 0  # an auth close is not a dropped connection
    assert bob.failure is None
