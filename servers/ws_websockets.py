"""WebSocket transport on the ``websockets`` library's asyncio server, path ``/ws``.

Each text or binary message goes to :meth:`Hub.handle` and ``reply.body`` is
sent back as a text message. Compression is off so frame bytes match the
``ws_aiohttp`` server. With ``ws_ping_interval_s`` (default 20) a ping goes
out that often and a client that does not answer within the same time is
disconnected, which ends its presence; 0 turns pings off. The handshake
must complete within websockets' ``open_timeout`` (10 s). A message over
``max_message_bytes`` gets a ``too_large`` envelope and the connection stays
open; one over :func:`~servers.common.ws_hard_limit` is refused by websockets,
which closes the connection with 1009. Other paths get HTTP 404.

Tokens, replies and pushes follow the same rules as :mod:`servers.ws_aiohttp`
(a token binds the connection to its user, an unknown one is refused with HTTP
401 before the handshake; a session that must close is closed with its code)::

    await serve(ServerConfig("127.0.0.1", 0), Hub(), on_ready, stop)
"""

from __future__ import annotations

import asyncio
import contextlib
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from servers import protocol
from servers.common import SEND_TIMEOUT, SHUTDOWN_TIMEOUT, OnReady, ServerConfig, ws_hard_limit
from servers.hub import Hub, Session
from servers.realtime.auth import request_token

KIND = "ws-websockets"
PATH = "/ws"


def _token(request: Request) -> str | None:
    """The handshake's token (Unauthorized for a malformed Authorization header)."""
    values = parse_qs(urlsplit(request.path).query).get("token")
    return request_token(request.headers.get("Authorization"), values[0] if values else None)


async def _write(ws: ServerConnection, session: Session) -> None:
    """Send the session's replies and pushes in order; close when it asks to.

    A frame that cannot leave within ``SEND_TIMEOUT`` (the client stopped
    reading) aborts the connection and counts as a slow consumer.
    """
    try:
        while (body := await session.next_outgoing()) is not None:
            async with asyncio.timeout(SEND_TIMEOUT):
                await ws.send(body, text=True)
        async with asyncio.timeout(SEND_TIMEOUT):
            await ws.close(code=session.close_code or 1000, reason=session.close_reason)
    except ConnectionClosed:
        return
    except TimeoutError:
        session.stalled()
        ws.transport.abort()


async def serve(config: ServerConfig, hub: Hub, on_ready: OnReady, stop: asyncio.Event) -> None:
    """Serve WebSockets on ``ws://config.host:config.port/ws`` until ``stop`` is set."""

    def check_request(connection: ServerConnection, request: Request) -> Response | None:
        # Only checks: the handshake may still fail after this (a bad upgrade), and
        # then the handler never runs, so nothing that must be closed is opened here.
        if urlsplit(request.path).path != PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        try:
            hub.authenticate(_token(request))
        except protocol.Unauthorized as exc:
            return connection.respond(HTTPStatus.UNAUTHORIZED, f"{exc}\n")
        return None

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        try:
            # The handshake is complete: from here on the session is always closed.
            session = hub.open_session(_token(ws.request))
        except protocol.Unauthorized as exc:
            # The token expired between the check and now.
            await ws.close(code=1008, reason=str(exc)[:120])
            return
        writer = asyncio.create_task(_write(ws, session))
        try:
            while not writer.done():
                data = await ws.recv(decode=False)
                await session.handle(data)
        except ConnectionClosed:
            pass
        finally:
            session.close()
            code = session.close_code
            if code is not None:
                with contextlib.suppress(ConnectionClosed):
                    await asyncio.wait_for(writer, SHUTDOWN_TIMEOUT)
            writer.cancel()

    server: Server = await ws_serve(
        handler,
        config.host,
        config.port,
        ssl=config.ssl_context(),
        process_request=check_request,
        compression=None,
        # Liveness: a client that does not answer a ping in time is disconnected.
        ping_interval=config.ws_ping,
        ping_timeout=config.ws_ping,
        max_size=ws_hard_limit(config.max_message_bytes),
        close_timeout=SHUTDOWN_TIMEOUT,
        # Passed on to the event loop's create_server.
        backlog=config.backlog,
    )
    await hub.start()
    try:
        on_ready(next(iter(server.sockets)).getsockname()[1])
        await stop.wait()
    finally:
        server.close(close_connections=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), SHUTDOWN_TIMEOUT * 2)
        await hub.stop()
