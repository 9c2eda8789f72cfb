"""WebSocket transport on the ``websockets`` library's asyncio server, path ``/ws``.

Each text or binary message goes to :meth:`Hub.handle` and ``reply.body`` is
sent back as a text message. Compression and keepalive pings are off so
frame bytes match the ``ws_aiohttp`` server. A message over
``max_message_bytes`` gets a ``too_large`` envelope and the connection stays
open; one over :func:`~servers.common.ws_hard_limit` is refused by websockets,
which closes the connection with 1009. Other paths get HTTP 404::

    await serve(ServerConfig("127.0.0.1", 0), Hub(), on_ready, stop)
"""

from __future__ import annotations

import asyncio
import contextlib
from http import HTTPStatus
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from servers.common import SHUTDOWN_TIMEOUT, OnReady, ServerConfig, ws_hard_limit
from servers.hub import Hub

KIND = "ws-websockets"
PATH = "/ws"


def _check_path(connection: ServerConnection, request: Request) -> Response | None:
    if urlsplit(request.path).path != PATH:
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
    return None


async def serve(config: ServerConfig, hub: Hub, on_ready: OnReady, stop: asyncio.Event) -> None:
    """Serve WebSockets on ``ws://config.host:config.port/ws`` until ``stop`` is set."""

    async def handler(ws: ServerConnection) -> None:
        try:
            while True:
                data = await ws.recv(decode=False)
                reply = await hub.handle(data)
                await ws.send(reply.body, text=True)
        except ConnectionClosed:
            pass

    server: Server = await ws_serve(
        handler,
        config.host,
        config.port,
        process_request=_check_path,
        compression=None,
        ping_interval=None,
        max_size=ws_hard_limit(config.max_message_bytes),
        close_timeout=SHUTDOWN_TIMEOUT,
    )
    try:
        on_ready(next(iter(server.sockets)).getsockname()[1])
        await stop.wait()
    finally:
        server.close(close_connections=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), SHUTDOWN_TIMEOUT * 2)
