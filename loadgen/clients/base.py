"""The interface every load-generator client implements.

One client object is one virtual connection::

    client = make_client("http", "aiohttp", "keep-alive", "http://127.0.0.1:8080")
    await client.connect()
    status, body = await client.request(encoded_envelope)
    await client.close()

``request`` returns the HTTP status (101-style transports return 200) and
the response body; it raises :class:`ClientError` with a short ``code`` when
the transport fails, so the engine can record the error and carry on.

A client that timestamps at the socket (the lean client) also has
``socket_stamps``: ``(sent_ns, received_ns)`` of its last successful request,
which the engine uses instead of the times around the ``await``.
"""

from __future__ import annotations

from typing import Protocol

from loadgen.schema import CONN_MODES, HTTP_TRANSPORTS, WS_TRANSPORTS

#: Which clients can drive which transport family.
HTTP_CLIENTS = ("httpx", "aiohttp", "lean")
WS_CLIENTS = ("websockets", "aiohttp", "lean")
#: The client with no library between the engine and the socket (loadgen.lean).
LEAN = "lean"
WS_CONN_MODE = "persistent"

PATHS = {"http": "/rpc", "ws-aiohttp": "/ws", "ws-websockets": "/ws"}


class ClientError(Exception):
    """A transport-level failure; ``code`` is what goes in the ``error`` column."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


class Client(Protocol):
    """A virtual connection to one server."""

    async def connect(self) -> None:
        """Open the connection (a no-op for HTTP new-connection mode)."""

    async def request(self, body: bytes) -> tuple[int, bytes]:
        """Send one encoded request envelope; return ``(status, response body)``."""

    async def close(self) -> None:
        """Close the connection; safe to call twice."""


def check_combination(transport: str, client: str, conn_mode: str) -> str | None:
    """Return why a (transport, client, conn_mode) cell is impossible, or None."""
    if transport in HTTP_TRANSPORTS:
        if client not in HTTP_CLIENTS:
            return f"client {client!r} cannot speak HTTP; use one of {', '.join(HTTP_CLIENTS)}"
        if conn_mode not in CONN_MODES:
            return f"conn_mode for HTTP must be one of {', '.join(CONN_MODES)}"
        return None
    if transport in WS_TRANSPORTS:
        if client not in WS_CLIENTS:
            return f"client {client!r} cannot speak WebSocket; use one of {', '.join(WS_CLIENTS)}"
        if conn_mode != WS_CONN_MODE:
            return f"conn_mode for WebSocket must be {WS_CONN_MODE!r}"
        return None
    return f"unknown transport {transport!r}"


def make_client(
    transport: str, client: str, conn_mode: str, base_url: str, timeout_s: float = 5.0
) -> Client:
    """Build the client for a cell; ``base_url`` is ``http://HOST:PORT``."""
    problem = check_combination(transport, client, conn_mode)
    if problem:
        raise ValueError(problem)
    url = base_url.rstrip("/") + PATHS[transport]
    if transport in WS_TRANSPORTS:
        ws_url = "ws" + url[len("http") :]  # http->ws, https->wss
        if client == LEAN:
            from loadgen.clients.lean_client import LeanWSClient

            return LeanWSClient(ws_url, timeout_s)
        if client == "websockets":
            from loadgen.clients.websockets_client import WebsocketsClient

            return WebsocketsClient(ws_url, timeout_s)
        from loadgen.clients.aiohttp_client import AiohttpWSClient

        return AiohttpWSClient(ws_url, timeout_s)
    keep_alive = conn_mode == "keep-alive"
    if client == LEAN:
        from loadgen.clients.lean_client import LeanHttpClient

        return LeanHttpClient(url, keep_alive, timeout_s)
    if client == "httpx":
        from loadgen.clients.httpx_client import HttpxClient

        return HttpxClient(url, keep_alive, timeout_s)
    from loadgen.clients.aiohttp_client import AiohttpClient

    return AiohttpClient(url, keep_alive, timeout_s)
