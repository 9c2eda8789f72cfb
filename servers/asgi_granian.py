"""The ASGI application (:mod:`servers.asgi_app`) on granian, HTTP/1.1, in this event loop.

Every endpoint is served (``POST /rpc``, ``GET /inbox``, ``GET /events``,
``GET /ws``) whichever kind is run; the two kinds, ``http-granian``
(:mod:`servers.http_granian`) and ``ws-granian`` (:mod:`servers.ws_granian`), only tell
rtbench which family its cells use::

    await serve(ServerConfig("127.0.0.1", 0), Hub(), on_ready, stop)

granian parses HTTP with Rust's hyper and WebSockets with tungstenite. It runs
embedded (``granian.server.embed``): one worker, whose Python side (the app and its
hub) runs in this process's event loop and whose Rust side (accepting, parsing,
writing) runs in one thread of this process, with a single-threaded tokio runtime.
Threads inherit the process's CPU affinity, so the whole server stays on the cores
rtbench pinned it to; there are no worker processes.

granian listens on the socket this module binds, so port 0 works, the port is
known, and connections made before the lifespan startup ends wait in its backlog.
granian 2.x has no public option for that (its embedded server binds address and
port itself, after the lifespan startup); :class:`_Server` overrides the one method
that would bind, handing granian the socket as its own ``SocketHolder``, the type
granian passes to its worker processes. ``keepalive_timeout_s`` is hyper's header
read timeout, which also runs while a kept-alive connection sits idle. On ``stop``
granian stops accepting and waits for the connections it serves; streams and
WebSockets end at once (:meth:`~servers.asgi_app.RtbenchApp.end_connections`), and
a request still running :data:`GRACE_S` later (a held long poll) is cancelled, as
uvicorn and hypercorn cut theirs after their graceful timeouts. granian logs to
stderr only.

What granian 2.x has no setting for, so this kind does not do it:

- WebSocket pings: none are sent, so a silent client is only dropped by TCP
  (:func:`liveness` says so on the ready line; ``rtbench validate`` refuses a
  ``ws-granian`` cell unless ``[server] ws_ping_interval_s = 0``).
- The 1009 close past :func:`~servers.common.ws_hard_limit`: tungstenite's own
  limits hold (64 MiB a message, 16 MiB a frame), so a larger message is read and
  answered ``too_large`` as one over ``max_message_bytes`` is on every server.
- A TLS cap below 1.3 (rustls offers every version from a minimum up to 1.3):
  :func:`refusal`, and ``rtbench validate`` for ``[scenario] tls_version = "1.2"``.
- Turning TLS session resumption off: rustls keeps its default session cache.
  rtbench's clients never offer a session, so each connection still pays a full
  handshake. TLS is rustls, loaded from ``tls_cert`` and ``tls_key``.
"""

from __future__ import annotations

import asyncio
import resource
import socket
from pathlib import Path
from typing import Any

from granian._granian import SocketHolder
from granian.constants import HTTPModes, Interfaces, SSLProtocols
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server.embed import Server

from servers.asgi_app import (
    Receive,
    RtbenchApp,
    Scope,
    Send,
    listening_socket,
    make_app,
    run_until_stopped,
)
from servers.common import SHUTDOWN_TIMEOUT, OnReady, ServerConfig
from servers.hub import Hub

STACK = "granian"
#: Seconds a stopping server leaves the requests it still serves (a held long poll)
#: before cancelling them: granian's embedded server would wait for them however long
#: they take, and rtbench kills a server SHUTDOWN_TIMEOUT after SIGTERM.
GRACE_S = SHUTDOWN_TIMEOUT - 1.0

#: granian's log records go to stderr: stdout carries the ready and stats lines.
_LOGGING: dict[str, Any] = {
    "handlers": {
        "console": {
            "formatter": "generic",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
        },
        "access": {
            "formatter": "access",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
        },
    },
}


def refusal(config: ServerConfig) -> str | None:
    """Why granian cannot serve ``config``, or None when it can."""
    if config.tls and config.tls_version != "1.3":
        return (
            f"granian cannot cap TLS at {config.tls_version}: rustls offers every version "
            "from the lowest it is given up to 1.3"
        )
    return None


def liveness(config: ServerConfig) -> dict[str, float]:
    """The timeouts and ping interval granian serves with, for the ready line: no pings,
    whatever ``ws_ping_interval_s`` asked for."""
    return {**config.liveness(), "ws_ping_interval_s": 0.0}


class _Server(Server):
    """granian's embedded server, listening on a socket bound before it runs."""

    def __init__(self, app: Any, sock: socket.socket, **options: Any) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(app, address=host, port=port, **options)
        self._socket = sock

    def _init_shared_socket(self) -> None:
        # Where granian would bind its own socket from address and port.
        self._shd = SocketHolder(self._socket.fileno(), False, self.backlog)
        self._ssp = None


class _Requests:
    """The app, with the tasks running its HTTP requests and WebSockets tracked, so the
    ones still running after the grace period can be cancelled."""

    def __init__(self, app: RtbenchApp) -> None:
        self.app = app
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        if scope["type"] == "lifespan" or task is None:
            await self.app(scope, receive, send)
            return
        self._tasks.add(task)
        try:
            await self.app(scope, receive, send)
        finally:
            self._tasks.discard(task)

    def cancel(self) -> None:
        """Cancel every request still running (a long poll held, say)."""
        for task in list(self._tasks):
            task.cancel()


def _connection_cap() -> int:
    """Connections granian may serve at once: as many as there are file descriptors
    (granian's default, the listen backlog, would make every further one wait)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


async def serve(config: ServerConfig, hub: Hub, on_ready: OnReady, stop: asyncio.Event) -> None:
    """Serve every endpoint on ``config.host:config.port`` until ``stop`` is set."""
    refused = refusal(config)
    if refused is not None:
        raise ValueError(refused)
    app = make_app(config, hub)
    sock = listening_socket(config)
    port = sock.getsockname()[1]
    tls: dict[str, Any] = {}
    if config.tls_cert is not None and config.tls_key is not None:
        tls = {
            "ssl_cert": Path(config.tls_cert),
            "ssl_key": Path(config.tls_key),
            # TLS 1.2 and 1.3, as every other server offers with tls_version "1.3".
            "ssl_protocol_min": SSLProtocols.tls12,
        }
    requests = _Requests(app)
    server = _Server(
        requests,
        sock,
        interface=Interfaces.ASGI,
        http=HTTPModes.http1,
        websockets=True,
        backlog=config.backlog,
        backpressure=_connection_cap(),
        http1_settings=HTTP1Settings(
            header_read_timeout=max(1, round(config.keepalive_timeout_s * 1000)),
            keep_alive=True,
        ),
        log_level=LogLevels.warning,
        log_dictconfig=_LOGGING,
        log_access=False,
        **tls,
    )
    loop = asyncio.get_running_loop()
    grace: list[asyncio.TimerHandle] = []

    def shut_down() -> None:
        server.stop()
        grace.append(loop.call_later(GRACE_S, requests.cancel))

    try:
        await run_until_stopped(app, server.serve(), port, on_ready, stop, shut_down)
    finally:
        for timer in grace:
            timer.cancel()
        if app.started.is_set():
            # granian's listener owns the descriptor now, and closed it when it stopped.
            sock.detach()
        else:
            sock.close()
