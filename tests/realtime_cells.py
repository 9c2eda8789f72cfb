"""A real-time cell spec for tests that run ``run_realtime`` against an in-process server,
and what a single virtual user needs there.

::

    spec = realtime_cell(kind, "push", server.base_url, workload="notifications", duration_s=1.0)
    where = endpoint(server.base_url, kind, "aiohttp", "long-poll")
    user = VirtualUser("bob", where, params, on_send, tracking(tracker), on_connect)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loadgen.cellspec import CellRun
from loadgen.realtime.tracker import Tracker
from loadgen.realtime.users import Endpoint

#: A virtual user's timeouts, in seconds.
STEP_S = 5.0


def realtime_cell(kind: str, delivery: str, base_url: str, **fields: Any) -> CellRun:
    """Cell ``kind/delivery`` at ``base_url``; ``fields`` set or override any other field.

    The defaults: the aiohttp client, kept-alive HTTP or a persistent WebSocket, 3 s timeouts.
    """
    return CellRun(
        **{
            "cell": f"{kind}/{delivery}",
            "transport": kind,
            "client": "aiohttp",
            "conn_mode": "keep-alive" if kind == "http" else "persistent",
            "base_url": base_url,
            "timeout_s": 3.0,
            "delivery": delivery,
            **fields,
        }
    )


def endpoint(base_url: str, kind: str, client: str, delivery: str) -> Endpoint:
    """Where a virtual user connects: kept-alive HTTP or a persistent WebSocket, 5 s timeouts."""
    conn_mode = "keep-alive" if kind == "http" else "persistent"
    return Endpoint(base_url, kind, client, conn_mode, delivery, STEP_S)


def tracking(tracker: Tracker) -> Callable[[str, int, Any, int, str, int], None]:
    """A virtual user's ``on_item`` that hands each item to ``tracker``."""

    def on_item(user: str, seq: int, item: Any, received: int, via: str, nbytes: int) -> None:
        tracker.received(user, seq, tracker.key_of(user, item), received, via, nbytes)

    return on_item
