"""WebSocket transport on aiohttp: ``GET /ws``, one envelope per message.

Each text or binary message goes to :meth:`Hub.handle` and ``reply.body`` is
sent back as a text message. Compression is off so frame bytes match the
``ws_websockets`` server. With ``ws_ping_interval_s`` (default 20) a ping
goes out after that long without traffic and a client that does not answer
within half of it is disconnected (aiohttp's heartbeat), which ends its
presence; 0 turns pings off. A connection that sends no complete upgrade
request within ``keepalive_timeout_s`` is closed. A message over
``max_message_bytes`` gets a ``too_large`` envelope and the connection stays
open; one over :func:`~servers.common.ws_hard_limit` is refused by aiohttp,
which closes the connection with 1009.

A token (``Authorization: Bearer TOKEN`` or ``?token=TOKEN``) binds the
connection to its user once the handshake has succeeded; an unknown token is
refused with HTTP 401 before it. Replies and pushed inbox items leave
through the session's bounded queue; a session that must close (slow
consumer 1013, policy 1008) is closed with its code::

    await serve(ServerConfig("127.0.0.1", 0), Hub(), on_ready, stop)
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

from aiohttp import WebSocketError, WSCloseCode, WSMsgType, web
from aiohttp.web_request import BaseRequest

from servers import protocol
from servers.aiohttp_site import serve_app
from servers.common import SEND_TIMEOUT, OnReady, ServerConfig, ws_hard_limit
from servers.hub import Hub, Session
from servers.realtime.auth import request_token
from servers.ws_frames import MaskCheck


class _MaskedFramesOnly:
    """aiohttp's frame parser behind a :class:`~servers.ws_frames.MaskCheck`.

    aiohttp's server accepts unmasked client frames; RFC 6455 (5.1) says close
    with 1002. On the first unmasked frame the parser's queue gets the same
    WebSocketError aiohttp raises for its own protocol errors, so ``receive()``
    closes with 1002 and nothing of that frame reaches the hub.
    """

    def __init__(self, inner: Any, queue: Any, check: MaskCheck) -> None:
        self._inner = inner
        self._queue = queue
        self._check = check

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if not self._check.feed(data):
            if not self._failed():
                self._queue.set_exception(
                    WebSocketError(WSCloseCode.PROTOCOL_ERROR, "client frames must be masked")
                )
            return True, b""  # what aiohttp's parser answers after a protocol error
        result: tuple[bool, bytes] = self._inner.feed_data(data)
        return result

    def _failed(self) -> bool:
        return self._queue.exception() is not None

    def feed_eof(self) -> None:
        self._inner.feed_eof()


class _WebSocketResponse(web.WebSocketResponse):
    """aiohttp's WebSocket response, closing with 1002 on an unmasked client frame."""

    def _post_start(self, request: BaseRequest, protocol: str | None, writer: Any) -> None:
        handler = request.protocol
        # Frames that arrived with the handshake are parsed as the parser is set up:
        # check them first, so the check starts on a frame boundary.
        check = MaskCheck()
        check.feed(bytes(handler._message_tail))
        super()._post_start(request, protocol, writer)
        wrapped = _MaskedFramesOnly(handler._payload_parser, self._reader, check)
        handler._payload_parser = wrapped
        if check.violated:
            wrapped.feed_data(b"")


KIND = "ws-aiohttp"
PATH = "/ws"

_SOCKETS = web.AppKey("rtbench_sockets", weakref.WeakSet)


def make_app(config: ServerConfig, hub: Hub) -> web.Application:
    """The aiohttp application answering WebSocket upgrades on ``/ws`` through ``hub``."""
    # aiohttp refuses a message whose size is >= max_msg_size.
    max_msg_size = ws_hard_limit(config.max_message_bytes) + 1
    app = web.Application()
    app[_SOCKETS] = weakref.WeakSet()

    async def ws_handler(request: web.Request) -> web.StreamResponse:
        try:
            token = request_token(request.headers.get("Authorization"), request.query.get("token"))
            hub.authenticate(token)
        except protocol.Unauthorized as exc:
            return web.Response(status=401, text=f"{exc}\n")
        ws = _WebSocketResponse(
            heartbeat=config.ws_ping,
            compress=False,
            max_msg_size=max_msg_size,
            decode_text=False,
        )
        # A failed handshake raises here (400): no session is open yet to leak.
        await ws.prepare(request)
        try:
            session = hub.open_session(token)
        except protocol.Unauthorized as exc:
            # The token expired between the check and now.
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=str(exc)[:120].encode())
            return ws
        app[_SOCKETS].add(ws)
        transport = request.transport
        writer = asyncio.create_task(
            _write(ws, session, lambda: transport.abort() if transport is not None else None)
        )
        try:
            while not writer.done():
                msg = await ws.receive()
                if msg.type is not WSMsgType.TEXT and msg.type is not WSMsgType.BINARY:
                    break
                await session.handle(msg.data)
        except ConnectionError:
            pass
        finally:
            app[_SOCKETS].discard(ws)
            session.close()
            writer.cancel()
            code = session.close_code
            if code is not None and not ws.closed:
                await ws.close(code=code, message=session.close_reason.encode())
        return ws

    async def close_sockets(app: web.Application) -> None:
        sockets = list(app[_SOCKETS])
        await asyncio.gather(
            *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown") for ws in sockets),
            return_exceptions=True,
        )

    app.router.add_get(PATH, ws_handler)
    app.on_shutdown.append(close_sockets)
    return app


async def _write(ws: web.WebSocketResponse, session: Session, abort: Callable[[], None]) -> None:
    """Send the session's replies and pushes in order; close when it asks to.

    A frame that cannot leave within ``SEND_TIMEOUT`` (the client stopped
    reading) aborts the connection and counts as a slow consumer.
    """
    try:
        while (body := await session.next_outgoing()) is not None:
            async with asyncio.timeout(SEND_TIMEOUT):
                await ws.send_frame(body, WSMsgType.TEXT)
        async with asyncio.timeout(SEND_TIMEOUT):
            await ws.close(code=session.close_code or 1000, message=session.close_reason.encode())
    except ConnectionError:
        return
    except TimeoutError:
        session.stalled()
        abort()


async def serve(config: ServerConfig, hub: Hub, on_ready: OnReady, stop: asyncio.Event) -> None:
    """Serve WebSockets on ``ws://config.host:config.port/ws`` until ``stop`` is set."""
    await serve_app(make_app(config, hub), config, hub, on_ready, stop)
