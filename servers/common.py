"""Pieces shared by the three servers and the command line.

Every server module (``http_server``, ``ws_aiohttp``, ``ws_websockets``)
exposes ``KIND``, ``PATH`` and::

    async def serve(config: ServerConfig, hub: Hub,
                    on_ready: Callable[[int], None], stop: asyncio.Event) -> None

``serve`` binds ``config.host:config.port``, calls ``on_ready(bound_port)``
once listening, runs until ``stop`` is set, then shuts down gracefully.

A server started with ``python -m servers`` announces itself with one line
on stdout; load generators read it with :func:`parse_ready_line`::

    RTBENCH-READY {"kind": "http", "host": "127.0.0.1", "port": 43127, ...}

and, once stopped, reports its counters (the ``stats`` operation's, such as
``limit_refusals``) on one last line, read with :func:`parse_stats_line`::

    RTBENCH-STATS {"messages": 120, "limit_refusals": 0, "unknown_recipients": 0, ...}
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import signal
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from servers.hub import Hub
from servers.protocol import DEFAULT_MAX_MESSAGE_BYTES

READY_PREFIX = "RTBENCH-READY "
STATS_PREFIX = "RTBENCH-STATS "

#: Keys of the JSON object on the ready line, in the order they are printed.
READY_KEYS = (
    "kind",
    "host",
    "port",
    "pid",
    "path",
    "loop",
    "max_message_bytes",
    "tls",
    "liveness",
)

JSON_CONTENT_TYPE = "application/json"

#: WebSocket messages up to this many times ``max_message_bytes`` are read whole
#: and answered with a ``too_large`` envelope; larger ones make the library close
#: the connection with 1009 before buffering them.
WS_HARD_LIMIT_FACTOR = 2

#: Seconds a server waits for open connections to finish when stopping.
SHUTDOWN_TIMEOUT = 5.0

#: Seconds one WebSocket frame may take to leave; a client that stopped reading
#: is then disconnected (counted as a slow consumer) instead of held forever.
SEND_TIMEOUT = 10.0

#: nginx's defaults: keepalive_timeout 75 s, client_body_timeout 60 s; websockets' ping 20 s.
DEFAULT_KEEPALIVE_TIMEOUT_S = 75.0
DEFAULT_BODY_TIMEOUT_S = 60.0
DEFAULT_WS_PING_INTERVAL_S = 20.0

#: Connections the kernel queues before the server accepts them (aiohttp's default;
#: the kernel caps it at net.core.somaxconn).
DEFAULT_BACKLOG = 128

OnReady = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Where and how a server listens: ``ServerConfig("127.0.0.1", 0, 65536)``."""

    host: str = "127.0.0.1"
    port: int = 0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    #: PEM certificate chain and key: serve https/wss instead of http/ws.
    tls_cert: str | None = None
    tls_key: str | None = None
    #: Highest TLS version offered: "1.3" (default) or "1.2".
    tls_version: str = "1.3"
    #: Allow TLS session resumption (tickets); off so every new connection
    #: pays a full handshake, as a first visit does.
    tls_resumption: bool = False
    #: Seconds without an event after which ``GET /events`` sends a ``: ping``
    #: comment (keeps proxies from closing an idle stream); 0: never, the default,
    #: so a benchmark's SSE bytes are its events only.
    sse_heartbeat_s: float = 0.0
    #: Seconds a connection may go without a complete request (idle between requests,
    #: or still sending its headers) before it is closed; nginx's keepalive_timeout.
    keepalive_timeout_s: float = DEFAULT_KEEPALIVE_TIMEOUT_S
    #: Seconds a request body may take to arrive (HTTP 408 after); nginx's client_body_timeout.
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    #: WebSocket liveness: a ping every this many seconds, and a client that does not
    #: answer is disconnected (so it goes offline); 0: no pings.
    ws_ping_interval_s: float = DEFAULT_WS_PING_INTERVAL_S
    #: The listen backlog: connections not yet accepted that the kernel keeps waiting.
    backlog: int = DEFAULT_BACKLOG

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.max_message_bytes <= 0:
            raise ValueError("max_message_bytes must be positive")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both a certificate and a key")
        if self.sse_heartbeat_s < 0:
            raise ValueError(f"sse_heartbeat_s must be >= 0, got {self.sse_heartbeat_s}")
        for name in ("keepalive_timeout_s", "body_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.ws_ping_interval_s < 0:
            raise ValueError(f"ws_ping_interval_s must be >= 0, got {self.ws_ping_interval_s}")
        if self.backlog <= 0:
            raise ValueError(f"backlog must be positive, got {self.backlog}")
        if self.tls_version not in ("1.2", "1.3"):
            raise ValueError(f"tls_version must be 1.2 or 1.3, got {self.tls_version!r}")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def liveness(self) -> dict[str, float]:
        """The timeouts and ping interval, as printed on the ready line and recorded per run."""
        return {
            "keepalive_timeout_s": self.keepalive_timeout_s,
            "body_timeout_s": self.body_timeout_s,
            "ws_ping_interval_s": self.ws_ping_interval_s,
        }

    @property
    def ws_ping(self) -> float | None:
        """The WebSocket ping interval for the libraries: None when pings are off."""
        return self.ws_ping_interval_s or None

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server's TLS context, or None for plain TCP."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.tls_cert, self.tls_key)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = (
            ssl.TLSVersion.TLSv1_3 if self.tls_version == "1.3" else ssl.TLSVersion.TLSv1_2
        )
        if not self.tls_resumption:
            # No tickets (TLS 1.2 and 1.3); rtbench's clients never offer a cached
            # session either, so every connection pays a full handshake.
            ctx.options |= ssl.OP_NO_TICKET
            ctx.num_tickets = 0
        return ctx


class ServeFunction(Protocol):
    """The signature every server module's ``serve`` has."""

    async def __call__(
        self, config: ServerConfig, hub: Hub, on_ready: OnReady, stop: asyncio.Event
    ) -> None: ...


def ws_hard_limit(max_message_bytes: int) -> int:
    """Largest WebSocket message (bytes) a WS server reads before closing with 1009."""
    return max_message_bytes * WS_HARD_LIMIT_FACTOR


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


#: The kernel link's subnet (``loadgen.link.kernel``: 10.77.0.1 client, 10.77.0.2 server).
#: The only addresses besides loopback a server may bind or a load generator dial, and
#: only from inside a network namespace rtbench created (see :func:`host_allowed`).
LINK_SUBNET = ipaddress.ip_network("10.77.0.0/30")

#: Every network namespace rtbench creates is named ``rtbench-...`` (``ip netns add``).
LINK_NETNS_PREFIX = "rtbench-"

#: Where ``ip netns add`` bind-mounts named namespaces.
NETNS_DIR = "/run/netns"

#: The inode number Linux gives the initial network namespace (PROC_NET_INIT_INO).
INIT_NET_INO = 0xEFFFFFF9


def _ns_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def link_namespace(
    self_ns: str = "/proc/self/ns/net",
    init_ns: str = "/proc/1/ns/net",
    netns_dir: str = NETNS_DIR,
) -> str | None:
    """The name of the rtbench network namespace this process runs in, or None.

    None unless every check passes: this process's network namespace is known,
    is not the initial one (not pid 1's, where that can be read, and not the
    initial namespace's fixed inode), and is one of the ``rtbench-`` namespaces
    under ``/run/netns`` (same device and inode, as ``ip netns identify`` finds it).
    """
    mine = _ns_id(self_ns)
    if mine is None or mine[1] == INIT_NET_INO:
        return None
    init = _ns_id(init_ns)  # unreadable without ptrace rights over pid 1 in some sandboxes
    if init is not None and init == mine:
        return None
    try:
        names = sorted(os.listdir(netns_dir))
    except OSError:
        return None
    for name in names:
        if name.startswith(LINK_NETNS_PREFIX) and _ns_id(os.path.join(netns_dir, name)) == mine:
            return name
    return None


def is_link_host(host: str) -> bool:
    """True for an IP address inside the kernel link's subnet (:data:`LINK_SUBNET`)."""
    try:
        return ipaddress.ip_address(host.strip("[]")) in LINK_SUBNET
    except ValueError:
        return False


def host_allowed(host: str, in_link_namespace: Callable[[], bool] | None = None) -> bool:
    """Whether a server may bind, or a load generator dial, ``host``.

    Loopback always; an address of the kernel link's subnet only when this
    process runs inside one of rtbench's own network namespaces
    (``in_link_namespace``, by default :func:`link_namespace` is not None);
    anything else never.
    """
    if is_loopback_host(host):
        return True
    if not is_link_host(host):
        return False
    check = in_link_namespace or (lambda: link_namespace() is not None)
    return bool(check())


def host_refusal_note(host: str) -> str:
    """Why ``host`` was refused, for an address of the link's subnet; else ``""``."""
    if is_link_host(host):
        return (
            f"; {host} belongs to the kernel link ({LINK_SUBNET}) and is only accepted "
            "inside a network namespace rtbench created (ip netns exec rtbench-...)"
        )
    return ""


def bind_host(host: str) -> str:
    """The address to bind for ``host``: ``localhost`` becomes 127.0.0.1 (one socket)."""
    if host.lower() == "localhost":
        return "127.0.0.1"
    return host.strip("[]")


def format_ready_line(info: Mapping[str, Any]) -> str:
    """``READY_PREFIX`` followed by ``info`` as single-line JSON (``READY_KEYS`` first)."""
    ordered = {key: info[key] for key in READY_KEYS if key in info}
    ordered.update({k: v for k, v in info.items() if k not in ordered})
    return READY_PREFIX + json.dumps(ordered)


def parse_ready_line(line: str) -> dict[str, Any] | None:
    """The JSON object of a ready line, or None when ``line`` is not one.

    ``parse_ready_line(proc.stdout.readline().decode())["port"]``
    """
    info = _prefixed_object(line, READY_PREFIX)
    if info is None or not isinstance(info.get("port"), int):
        return None
    return info


def format_stats_line(counters: Mapping[str, int]) -> str:
    """``STATS_PREFIX`` followed by ``counters`` as single-line JSON."""
    return STATS_PREFIX + json.dumps(dict(counters))


def parse_stats_line(line: str) -> dict[str, int] | None:
    """The counters of a stats line (whole-number values only), or None when ``line``
    is not one: ``parse_stats_line(last_line)["limit_refusals"]``."""
    counters = _prefixed_object(line, STATS_PREFIX)
    if counters is None or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in counters.values()
    ):
        return None
    return counters


def _prefixed_object(line: str, prefix: str) -> dict[str, Any] | None:
    """The JSON object after ``prefix`` on ``line``, or None."""
    line = line.strip()
    prefix = prefix.strip()
    if not line.startswith(prefix):
        return None
    try:
        obj = json.loads(line[len(prefix) :])
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def loop_factory(
    choice: str = "auto",
) -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    """``(factory, name)`` for ``asyncio.Runner(loop_factory=factory)``.

    ``choice`` is ``"auto"`` (uvloop when importable), ``"uvloop"`` or ``"asyncio"``;
    ``name`` is ``"uvloop"`` or ``"asyncio"``.
    """
    if choice not in ("auto", "uvloop", "asyncio"):
        raise ValueError(f"unknown loop {choice!r}")
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise
        else:
            return uvloop.new_event_loop, "uvloop"
    return asyncio.new_event_loop, "asyncio"


def install_signal_handlers(stop: asyncio.Event) -> None:
    """Make SIGTERM and SIGINT set ``stop`` (call from inside the running loop)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def remove_signal_handlers() -> None:
    """Undo :func:`install_signal_handlers`."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
