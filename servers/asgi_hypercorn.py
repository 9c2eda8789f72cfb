"""The ASGI application (:mod:`servers.asgi_app`) on hypercorn, HTTP/1.1 and HTTP/2, in this
event loop.

Every endpoint is served (``POST /rpc``, ``GET /inbox``, ``GET /events``,
``GET /ws``) whichever kind is run; the two kinds, ``http-hypercorn``
(:mod:`servers.http_hypercorn`) and ``ws-hypercorn`` (:mod:`servers.ws_hypercorn`), only
tell rtbench which family its cells use::

    await serve(ServerConfig("127.0.0.1", 0), Hub(), on_ready, stop)

hypercorn parses HTTP/1.1 with h11, HTTP/2 with h2 and WebSockets with wsproto. It
serves HTTP/2 on plain TCP to a client that opens with the HTTP/2 preface (prior
knowledge, "h2c") and over TLS to one that picks ``h2`` by ALPN. With
``ws_ping_interval_s`` a ping goes out that often (hypercorn has no pong
deadline: a silent client is only dropped by TCP); a message over
:func:`~servers.common.ws_hard_limit` closes the connection with 1009.
``keepalive_timeout_s`` closes a connection idle between requests. hypercorn
always accepts permessage-deflate when a client offers it; rtbench's clients
never do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from servers.asgi_app import listening_socket, make_app, run_until_stopped
from servers.common import SHUTDOWN_TIMEOUT, OnReady, ServerConfig, ws_hard_limit
from servers.hub import Hub

STACK = "hypercorn"
#: What hypercorn offers over TLS, in its order of preference.
ALPN = ("h2", "http/1.1")


class _Config(Config):
    """hypercorn's config with the same TLS context as every other server (hypercorn
    would build its own from certificate files), offering h2 and http/1.1 by ALPN."""

    def __init__(self, context: ssl.SSLContext | None) -> None:
        super().__init__()
        if context is not None:
            # A client that offers no ALPN, or only http/1.1, gets HTTP/1.1 as before.
            context.set_alpn_protocols(list(ALPN))
        self._context = context

    @property
    def ssl_enabled(self) -> bool:
        return self._context is not None

    def create_ssl_context(self) -> ssl.SSLContext | None:
        return self._context


async def serve(config: ServerConfig, hub: Hub, on_ready: OnReady, stop: asyncio.Event) -> None:
    """Serve every endpoint on ``config.host:config.port`` until ``stop`` is set."""
    app = make_app(config, hub)
    cfg = _Config(config.ssl_context())
    sock = listening_socket(config)
    port = sock.getsockname()[1]
    # hypercorn takes the bound socket by descriptor and owns it from then on.
    fd = sock.detach()
    cfg.bind = [f"fd://{fd}"]
    cfg.insecure_bind = []
    cfg.backlog = config.backlog
    cfg.keep_alive_timeout = config.keepalive_timeout_s
    # hypercorn closes a connection after 1000 requests by default; rtbench's other
    # servers keep it for as long as the client does, and so must this one, or a
    # keep-alive cell would pay a new connection every 1000 requests on hypercorn only.
    cfg.keep_alive_max_requests = 1 << 62
    cfg.websocket_ping_interval = config.ws_ping
    cfg.websocket_max_message_size = ws_hard_limit(config.max_message_bytes)
    cfg.graceful_timeout = SHUTDOWN_TIMEOUT
    cfg.accesslog = None
    cfg.loglevel = "WARNING"
    shutdown = asyncio.Event()
    try:
        await run_until_stopped(
            app,
            hypercorn_serve(app, cfg, shutdown_trigger=shutdown.wait, mode="asgi"),  # type: ignore[arg-type]
            port,
            on_ready,
            stop,
            shutdown.set,
        )
    finally:
        if not app.started.is_set():
            # hypercorn makes its socket after the lifespan startup: it never took the fd.
            with contextlib.suppress(OSError):
                os.close(fd)
