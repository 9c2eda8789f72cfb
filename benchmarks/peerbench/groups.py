"""What is compared: the groups (server, connection count, peer, rtbench clients) and
the order their points run in.

::

    for rnd, group, contender, refusal in plan(GROUPS, rounds, refusals): ...
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

WRK = "wrk"
NODE_WS = "node-ws"
H2LOAD = "h2load"


@dataclass(frozen=True)
class Group:
    """One comparison: a server, a connection count, a peer and the rtbench clients."""

    key: str
    title: str
    server: str
    connections: int
    peer: str
    clients: tuple[str, ...]
    #: The HTTP version every contender speaks ("2": h2c with prior knowledge).
    http_version: str = "1.1"

    @property
    def http(self) -> bool:
        return self.server.startswith("http")


HTTP_CLIENTS = ("aiohttp", "httpx", "lean")
WS_CLIENTS = ("websockets", "aiohttp", "lean")
#: rtbench's clients that speak HTTP/2.
H2_CLIENTS = ("httpx", "lean")
GROUPS = (
    Group("http-c1", "HTTP keep-alive, 1 connection", "http", 1, WRK, HTTP_CLIENTS),
    Group("ws-aiohttp-c1", "WebSocket, 1 connection", "ws-aiohttp", 1, NODE_WS, WS_CLIENTS),
    Group("ws-websockets-c1", "WebSocket, 1 connection", "ws-websockets", 1, NODE_WS, WS_CLIENTS),
    Group("http-c50", "HTTP keep-alive, 50 connections", "http", 50, WRK, HTTP_CLIENTS),
    Group("ws-aiohttp-c50", "WebSocket, 50 connections", "ws-aiohttp", 50, NODE_WS, WS_CLIENTS),
    Group(
        "ws-websockets-c50", "WebSocket, 50 connections", "ws-websockets", 50, NODE_WS, WS_CLIENTS
    ),
    Group("h2-c1", "HTTP/2, 1 connection", "http-hypercorn", 1, H2LOAD, H2_CLIENTS, "2"),
    Group("h2-c50", "HTTP/2, 50 connections", "http-hypercorn", 50, H2LOAD, H2_CLIENTS, "2"),
)


def point_head(group: Group, contender: str, rnd: int) -> dict[str, Any]:
    """What names a point in ``peers.json``: its group, server, round and contender."""
    return {
        "group": group.key,
        "server": group.server,
        "http_version": group.http_version if group.http else None,
        "connections": group.connections,
        "round": rnd,
        "contender": contender,
        "kind": "peer" if contender == group.peer else "rtbench",
    }


def plan(
    groups: Sequence[Group], rounds: int, refusals: dict[tuple[str, str], str | None]
) -> Iterator[tuple[int, Group, str, str | None]]:
    """The points in run order: every round runs every group, peer first, then its clients.

    ``refusals`` maps ``(group.key, client)`` to why that client cannot be measured."""
    for rnd in range(rounds):
        for group in groups:
            yield rnd, group, group.peer, None
            for client in group.clients:
                yield rnd, group, client, refusals.get((group.key, client))
