"""The ASGI application (:mod:`servers.asgi_app`) on uvicorn, HTTP/1.1, in this event loop.

Every endpoint is served (``POST /rpc``, ``GET /inbox``, ``GET /events``,
``GET /ws``) whichever kind is run; the two kinds, ``http-uvicorn``
(:mod:`servers.http_uvicorn`) and ``ws-uvicorn`` (:mod:`servers.ws_uvicorn`), only tell
rtbench which family its cells use::

    await serve(ServerConfig("127.0.0.1", 0), Hub(), on_ready, stop)

uvicorn parses HTTP with httptools and WebSockets with the ``websockets``
library's sans-I/O protocol (uvicorn's ``websockets-sansio``; its older
``websockets`` one is deprecated). Compression is off; with
``ws_ping_interval_s`` a ping goes out that often and a client that does not
answer within the same time is disconnected (as ``ws_websockets``); a message
over :func:`~servers.common.ws_hard_limit` closes the connection with 1009.
``keepalive_timeout_s`` closes a connection idle between requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

import uvicorn

from servers.asgi_app import listening_socket, make_app, run_until_stopped
from servers.common import SHUTDOWN_TIMEOUT, OnReady, ServerConfig, ws_hard_limit
from servers.hub import Hub

STACK = "uvicorn"


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handlers: ``python -m servers`` owns
    SIGTERM and SIGINT (they set ``stop``), and tests run it off the main loop's
    signals too."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


async def _run(server: uvicorn.Server, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exc:
        # uvicorn exits the process when its lifespan startup fails.
        raise RuntimeError(f"uvicorn failed to start (exit {exc.code})") from None


async def serve(config: ServerConfig, hub: Hub, on_ready: OnReady, stop: asyncio.Event) -> None:
    """Serve every endpoint on ``config.host:config.port`` until ``stop`` is set."""
    app = make_app(config, hub)
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        interface="asgi3",
        http="httptools",
        ws="websockets-sansio",
        lifespan="on",
        ws_max_size=ws_hard_limit(config.max_message_bytes),
        ws_ping_interval=config.ws_ping,
        ws_ping_timeout=config.ws_ping,
        ws_per_message_deflate=False,
        timeout_keep_alive=config.keepalive_timeout_s,  # type: ignore[arg-type]
        timeout_graceful_shutdown=SHUTDOWN_TIMEOUT,  # type: ignore[arg-type]
        backlog=config.backlog,
        # The client address is the peer's: no X-Forwarded-For middleware in the way.
        proxy_headers=False,
        log_level="warning",
        access_log=False,
    )
    uv_config.load()
    # The same TLS context as every other server (uvicorn would build its own from files).
    uv_config.ssl = config.ssl_context()
    sock = listening_socket(config)
    try:
        server = _Server(uv_config)

        def shut_down() -> None:
            server.should_exit = True

        port = sock.getsockname()[1]
        await run_until_stopped(app, _run(server, sock), port, on_ready, stop, shut_down)
    finally:
        sock.close()
