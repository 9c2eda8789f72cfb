"""The interface every load-generator client implements.

One client object is one virtual connection::

    client = make_client("http", "aiohttp", "keep-alive", "http://127.0.0.1:8080")
    client = make_client("http", "lean", "keep-alive", url, http_version="2")  # HTTP/2
    client = make_client("ws-hypercorn", "lean", "persistent", url, http_version="2")
    await client.connect()
    status, body = await client.request(encoded_envelope)
    await client.close()

``request`` returns the HTTP status (101-style transports return 200) and
the response body; it raises :class:`~loadgen.clients.errors.ClientError` with a short ``code`` when
the transport fails, so the engine can record the error and carry on.

A client that timestamps at the socket (the lean client) also has
``socket_stamps``: ``(sent_ns, received_ns)`` of its last successful request,
which the engine uses instead of the times around the ``await``.
"""

from __future__ import annotations

from typing import Protocol

from loadgen.clients.aiohttp_client import AiohttpClient, AiohttpWSClient
from loadgen.clients.httpx_client import HttpxClient
from loadgen.clients.kinds import LEAN, PATHS, check_combination
from loadgen.clients.lean_client import (
    LeanH2Client,
    LeanH3Client,
    LeanHttpClient,
    LeanWSClient,
    LeanWSH2Client,
)
from loadgen.clients.websockets_client import WebsocketsClient
from loadgen.schema import WS_TRANSPORTS


class Client(Protocol):
    """A virtual connection to one server."""

    async def connect(self) -> None:
        """Open the connection (a no-op for HTTP new-connection mode)."""

    async def request(self, body: bytes) -> tuple[int, bytes]:
        """Send one encoded request envelope; return ``(status, response body)``."""

    async def close(self) -> None:
        """Close the connection; safe to call twice."""


def make_client(
    transport: str,
    client: str,
    conn_mode: str,
    base_url: str,
    timeout_s: float = 5.0,
    http_version: str = "1.1",
) -> Client:
    """Build the client for a cell; ``base_url`` is ``http://HOST:PORT``.

    ``http_version`` "2" speaks HTTP/2 (prior knowledge on http://, ALPN h2 on
    https://) with the lean and httpx clients, "3" HTTP/3 over QUIC (https:// only)
    with the lean client; a WebSocket cell with "2" opens its WebSocket over HTTP/2
    (RFC 8441) on ws-hypercorn with the lean client; an impossible combination
    raises ValueError saying why (:func:`~loadgen.clients.kinds.check_combination`).
    """
    problem = check_combination(transport, client, conn_mode, http_version=http_version)
    if problem:
        raise ValueError(problem)
    url = base_url.rstrip("/") + PATHS[transport]
    if transport in WS_TRANSPORTS:
        ws_url = "ws" + url[len("http") :]  # http->ws, https->wss
        if client == LEAN:
            if http_version == "2":
                return LeanWSH2Client(ws_url, timeout_s)
            return LeanWSClient(ws_url, timeout_s)
        if client == "websockets":
            return WebsocketsClient(ws_url, timeout_s)
        return AiohttpWSClient(ws_url, timeout_s)
    keep_alive = conn_mode == "keep-alive"
    http2 = http_version == "2"
    if client == LEAN:
        if http_version == "3":
            return LeanH3Client(url, keep_alive, timeout_s)
        if http2:
            return LeanH2Client(url, keep_alive, timeout_s)
        return LeanHttpClient(url, keep_alive, timeout_s)
    if client == "httpx":
        return HttpxClient(url, keep_alive, timeout_s, http2=http2)
    return AiohttpClient(url, keep_alive, timeout_s)
