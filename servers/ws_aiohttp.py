"""WebSocket transport on aiohttp: ``GET /ws``, one envelope per message.

Each text or binary message goes to :meth:`Hub.handle` and ``reply.body`` is
sent back as a text message. Compression and heartbeats are off so frame
bytes match the ``ws_websockets`` server. A message over
``max_message_bytes`` gets a ``too_large`` envelope and the connection stays
open; one over :func:`~servers.common.ws_hard_limit` is refused by aiohttp,
which closes the connection with 1009::

    await serve(ServerConfig("127.0.0.1", 0), Hub(), on_ready, stop)
"""

from __future__ import annotations

import asyncio
import weakref

from aiohttp import WSCloseCode, WSMsgType, web

from servers.common import SHUTDOWN_TIMEOUT, OnReady, ServerConfig, ws_hard_limit
from servers.hub import Hub

KIND = "ws-aiohttp"
PATH = "/ws"

_SOCKETS = web.AppKey("rtbench_sockets", weakref.WeakSet)


def make_app(config: ServerConfig, hub: Hub) -> web.Application:
    """The aiohttp application answering WebSocket upgrades on ``/ws`` through ``hub``."""
    # aiohttp refuses a message whose size is >= max_msg_size.
    max_msg_size = ws_hard_limit(config.max_message_bytes) + 1
    app = web.Application()
    app[_SOCKETS] = weakref.WeakSet()

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(
            heartbeat=None, compress=False, max_msg_size=max_msg_size, decode_text=False
        )
        await ws.prepare(request)
        app[_SOCKETS].add(ws)
        try:
            while True:
                msg = await ws.receive()
                if msg.type is not WSMsgType.TEXT and msg.type is not WSMsgType.BINARY:
                    break
                reply = await hub.handle(msg.data)
                await ws.send_frame(reply.body, WSMsgType.TEXT)
        except ConnectionError:
            pass
        finally:
            app[_SOCKETS].discard(ws)
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


async def serve(config: ServerConfig, hub: Hub, on_ready: OnReady, stop: asyncio.Event) -> None:
    """Serve WebSockets on ``ws://config.host:config.port/ws`` until ``stop`` is set."""
    runner = web.AppRunner(
        make_app(config, hub),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port)
        await site.start()
        on_ready(runner.addresses[0][1])
        await stop.wait()
    finally:
        await runner.cleanup()
