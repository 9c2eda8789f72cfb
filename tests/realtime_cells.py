"""A real-time cell spec for tests that run ``run_realtime`` against an in-process server.

::

    spec = realtime_cell(kind, "push", server.base_url, workload="notifications", duration_s=1.0)
"""

from __future__ import annotations

from typing import Any

from loadgen.cellspec import CellRun


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
