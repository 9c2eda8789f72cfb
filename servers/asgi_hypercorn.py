"""The ASGI application (:mod:`servers.asgi_app`) on hypercorn, HTTP/1.1, HTTP/2 and HTTP/3,
in this event loop.

Every endpoint is served (``POST /rpc``, ``GET /inbox``, ``GET /events``,
``GET /ws``) whichever kind is run; the two kinds, ``http-hypercorn``
(:mod:`servers.http_hypercorn`) and ``ws-hypercorn`` (:mod:`servers.ws_hypercorn`), only
tell rtbench which family its cells use::

    await serve(ServerConfig("127.0.0.1", 0), Hub(), on_ready, stop)

hypercorn parses HTTP/1.1 with h11, HTTP/2 with h2 and WebSockets with wsproto. It
serves HTTP/2 on plain TCP to a client that opens with the HTTP/2 preface (prior
knowledge, "h2c") and over TLS to one that picks ``h2`` by ALPN. With TLS (1.3) it
also serves HTTP/3 over QUIC (aioquic) on the UDP port with the same number as its
TCP port, so ``https://127.0.0.1:PORT`` names both; clients reach it by prior
knowledge: no ``alt-svc`` header is added to HTTP/1.1 and HTTP/2 replies, whose
bytes stay those of every other server. QUIC has no session tickets here either:
every connection pays a full handshake. A request stream the client resets or
stops over HTTP/3 is closed as an HTTP/2 RST_STREAM is
(:mod:`servers.hypercorn_h3`). Over HTTP/2 it takes WebSockets by extended CONNECT
(RFC 8441; its SETTINGS enable it), and DATA reaching a stream it has already closed
(the END_STREAM a client ends such a WebSocket with) is dropped
(:mod:`servers.hypercorn_h2`). With
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
import errno
import os
import socket
import ssl

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from servers.asgi_app import listening_socket, make_app, run_until_stopped
from servers.common import SHUTDOWN_TIMEOUT, OnReady, ServerConfig, ws_hard_limit
from servers.hub import Hub
from servers.hypercorn_h2 import install as install_h2_late_data
from servers.hypercorn_h3 import install as install_h3_resets

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

    def response_headers(self, protocol: str) -> list[tuple[bytes, bytes]]:
        # hypercorn would advertise its QUIC port in an alt-svc header on every reply.
        return [h for h in super().response_headers(protocol) if h[0] != b"alt-svc"]


#: Tries at a TCP port whose UDP twin is free, before giving up.
PORT_TRIES = 20


def serves_http3(config: ServerConfig) -> bool:
    """True when hypercorn serves HTTP/3 for ``config``: TLS 1.3 (QUIC's only version)."""
    return config.tls and config.tls_version == "1.3"


def quic_socket(host: str, port: int) -> socket.socket:
    """A UDP socket bound to ``host:port`` for hypercorn's QUIC listener."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_sockets(config: ServerConfig) -> tuple[socket.socket, socket.socket | None]:
    """The listening TCP socket and, for HTTP/3, a UDP socket on the same port number.

    With port 0 a TCP port whose UDP twin is taken is given back and another one
    tried; a port asked for by number must be free on both or OSError is raised.
    """
    for _ in range(PORT_TRIES):
        tcp = listening_socket(config)
        if not serves_http3(config):
            return tcp, None
        try:
            return tcp, quic_socket(config.host, tcp.getsockname()[1])
        except OSError as exc:
            tcp.close()
            if config.port or exc.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, f"no port on {config.host} free for both TCP and UDP")


#: How often a stopping server's QUIC listener is woken, and for how long at most.
WAKE_EVERY_S = 0.05


async def _wake_quic(host: str, port: int) -> None:
    """Send empty datagrams to our own QUIC port while the server stops.

    hypercorn's QUIC listener checks whether to stop only when a datagram arrives;
    without one it sits out the whole graceful timeout. An empty datagram is not
    QUIC and is dropped; each one lets the listener see that it may stop (once its
    QUIC connections have closed).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for _ in range(int((SHUTDOWN_TIMEOUT + 1) / WAKE_EVERY_S)):
            with contextlib.suppress(OSError):
                sock.sendto(b"", (host, port))
            await asyncio.sleep(WAKE_EVERY_S)


async def serve(config: ServerConfig, hub: Hub, on_ready: OnReady, stop: asyncio.Event) -> None:
    """Serve every endpoint on ``config.host:config.port`` until ``stop`` is set."""
    app = make_app(config, hub)
    install_h2_late_data()
    cfg = _Config(config.ssl_context())
    sock, udp = bind_sockets(config)
    port = sock.getsockname()[1]
    # hypercorn takes the bound sockets by descriptor and owns them from then on.
    fd = sock.detach()
    fds = [fd]
    cfg.bind = [f"fd://{fd}"]
    cfg.insecure_bind = []
    if udp is not None:
        install_h3_resets()
        # hypercorn's QUIC listener reads the certificate from files (aioquic has no
        # ssl.SSLContext); they are the files the TLS context was made from.
        cfg.certfile, cfg.keyfile = config.tls_cert, config.tls_key
        fds.append(udp.detach())
        cfg.quic_bind = [f"fd://{fds[-1]}"]
    cfg.backlog = config.backlog
    cfg.keep_alive_timeout = config.keepalive_timeout_s
    # hypercorn closes a connection after 1000 requests by default; rtbench's other
    # servers keep it for as long as the client does, and so must this one, or a
    # keep-alive cell would pay a new connection every 1000 requests on hypercorn only.
    cfg.keep_alive_max_requests = 1 << 62
    cfg.websocket_ping_interval = config.ws_ping
    cfg.websocket_max_message_size = ws_hard_limit(config.max_message_bytes)
    # hypercorn may wait this long for connections it still holds (a closed
    # WebSocket's task, say), and rtbench kills a server SHUTDOWN_TIMEOUT after
    # SIGTERM: a second less leaves it time to print its counters and exit.
    cfg.graceful_timeout = SHUTDOWN_TIMEOUT - 1.0
    cfg.accesslog = None
    cfg.loglevel = "WARNING"
    shutdown = asyncio.Event()
    wakers: set[asyncio.Task[None]] = set()

    def shut_down() -> None:
        shutdown.set()
        if udp is not None:
            waker = asyncio.ensure_future(_wake_quic(config.host, port))
            wakers.add(waker)
            waker.add_done_callback(wakers.discard)

    try:
        await run_until_stopped(
            app,
            hypercorn_serve(app, cfg, shutdown_trigger=shutdown.wait, mode="asgi"),  # type: ignore[arg-type]
            port,
            on_ready,
            stop,
            shut_down,
        )
    finally:
        for waker in list(wakers):
            waker.cancel()
        if not app.started.is_set():
            # hypercorn makes its sockets after the lifespan startup: it never took the fds.
            for each in fds:
                with contextlib.suppress(OSError):
                    os.close(each)
