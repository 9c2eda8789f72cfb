"""Serving an aiohttp application the way every aiohttp transport does.

::

    await serve_app(make_app(config, hub), config, hub, on_ready, stop)

Listens on ``config.host:config.port`` with ``config.backlog`` (TLS when
``config`` has a certificate), starts ``hub``, calls ``on_ready(port)`` and
serves until ``stop`` is set; then closes connections (waiting up to
``SHUTDOWN_TIMEOUT``) and stops the hub.
``handler_cancellation`` ends a handler whose client went away.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from servers.common import SHUTDOWN_TIMEOUT, OnReady, ServerConfig
from servers.hub import Hub


async def serve_app(
    app: web.Application,
    config: ServerConfig,
    hub: Hub,
    on_ready: OnReady,
    stop: asyncio.Event,
    *,
    handler_cancellation: bool = False,
) -> None:
    """Serve ``app`` until ``stop`` is set (see the module docstring)."""
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        handler_cancellation=handler_cancellation,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        # Also closes a connection that has not sent a complete request (an HTTP
        # request, a WebSocket upgrade) this long after opening: slow or half-sent
        # headers. aiohttp starts the timer on connect.
        keepalive_timeout=config.keepalive_timeout_s,
    )
    await runner.setup()
    await hub.start()
    try:
        site = web.TCPSite(
            runner,
            config.host,
            config.port,
            ssl_context=config.ssl_context(),
            backlog=config.backlog,
        )
        await site.start()
        on_ready(runner.addresses[0][1])
        await stop.wait()
    finally:
        await runner.cleanup()
        await hub.stop()
