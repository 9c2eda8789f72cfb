"""HTTP/1.1 transport on aiohttp: ``POST /rpc`` carries one envelope each way.

The request body goes to :meth:`Hub.handle`; the reply body is sent with
status ``reply.status`` and ``Content-Type: application/json``. A body larger
than ``max_message_bytes`` gets 413 with a ``too_large`` envelope::

    await serve(ServerConfig("127.0.0.1", 0), Hub(), on_ready, stop)
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from servers import protocol
from servers.common import JSON_CONTENT_TYPE, SHUTDOWN_TIMEOUT, OnReady, ServerConfig
from servers.hub import Hub, Reply

KIND = "http"
PATH = "/rpc"


def make_app(config: ServerConfig, hub: Hub) -> web.Application:
    """The aiohttp application answering ``POST /rpc`` through ``hub``."""
    limit = config.max_message_bytes
    app = web.Application(client_max_size=limit)

    async def rpc(request: web.Request) -> web.Response:
        reply: Reply
        length = request.content_length
        if length is not None and length > limit:
            reply = hub.reject(protocol.message_too_large(length, limit))
        else:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                reply = hub.reject(
                    protocol.MessageTooLarge(f"message exceeds the limit of {limit} bytes")
                )
            else:
                reply = await hub.handle(body)
        return web.Response(body=reply.body, status=reply.status, content_type=JSON_CONTENT_TYPE)

    app.router.add_post(PATH, rpc)
    return app


async def serve(config: ServerConfig, hub: Hub, on_ready: OnReady, stop: asyncio.Event) -> None:
    """Serve ``POST /rpc`` on ``config.host:config.port`` until ``stop`` is set."""
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
