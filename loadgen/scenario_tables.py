"""The tables of a scenario file, each checked as it is read (pydantic models).

:class:`RunSettings` is ``[scenario]``, :class:`LoadSettings` ``[load]``,
:class:`ServerSettings` ``[server]``, :class:`SloSettings` ``[slo]``,
:class:`NetworkSettings` ``[network]``, :class:`Cell` one ``[[cells]]`` entry and
:class:`Part` one ``[[parts]]`` entry; :class:`loadgen.scenario.Scenario` holds them::

    load = LoadSettings.model_validate({"model": "open", "rate": 500})   # ValidationError
    Cell(transport="http", client="aiohttp").id    # "http/aiohttp/keep-alive"
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from loadgen.clients.kinds import LEAN, WS_CONN_MODE, WS_H2_TRANSPORTS, check_combination
from loadgen.link.profiles import LinkProfileError, resolve_profile
from loadgen.realtime.params import RealtimeParams
from loadgen.schema import HTTP_TRANSPORTS, WS_TRANSPORTS
from loadgen.server_url import UNKNOWN_SERVER_NAME, default_server_name, parse_server_url
from servers.common import DEFAULT_KEEPALIVE_TIMEOUT_S, DEFAULT_WS_PING_INTERVAL_S

#: The ASGI servers that run servers.asgi_app (transports ``http-STACK``, ``ws-STACK``).
ASGI_STACKS = ("uvicorn", "hypercorn", "granian")

Transport = Literal[
    "http",
    "ws-aiohttp",
    "ws-websockets",
    "ws",
    "http-uvicorn",
    "ws-uvicorn",
    "http-hypercorn",
    "ws-hypercorn",
    "http-granian",
    "ws-granian",
]
ClientName = Literal["httpx", "aiohttp", "websockets", "lean"]
ConnMode = Literal["keep-alive", "new-connection", "persistent"]
Workload = Literal["echo", "messaging", "presence", "notifications", "activity", "mix"]
DeliveryMode = Literal["short-poll", "long-poll", "push", "sse"]
HttpVersion = Literal["1.1", "2", "3"]

#: The transports whose servers speak HTTP/2 and HTTP/3 beyond HTTP/1.1: hypercorn
#: (HTTP/2 as h2c with prior knowledge or by ALPN over TLS; HTTP/3 over QUIC with TLS 1.3).
HTTP2_TRANSPORTS = ("http-hypercorn",)


class Strict(BaseModel):
    """A table: unknown keys and loose types are errors, and it cannot change once read."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class RunSettings(Strict):
    """The ``[scenario]`` table."""

    name: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9._-]+$")
    description: str = ""
    workload: Workload = "echo"
    repeats: int = Field(default=3, ge=1, le=100)
    duration_s: float = Field(default=5.0, gt=0, le=3600)
    warmup_s: float = Field(default=1.0, ge=0, le=600)
    payload_bytes: int = Field(default=64, ge=0, le=16 * 1024 * 1024)
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    max_requests: int = Field(default=2_000_000, ge=1, le=50_000_000)
    placement: Literal["split", "same", "none"] = "split"
    client_loop: Literal["uvloop", "asyncio"] = "uvloop"
    #: Highest TLS version for cells with tls = true.
    tls_version: Literal["1.2", "1.3"] = "1.3"
    #: Load-generator processes per cell, each pinned to its own CPU where there is one;
    #: echo connections and rate, or real-time groups, are shared out between them.
    client_processes: int = Field(default=1, ge=1, le=256)


class LoadSettings(Strict):
    """The ``[load]`` table."""

    model: Literal["closed", "open"] = "closed"
    connections: int = Field(default=4, ge=1, le=10_000)
    rate: float | None = Field(default=None, gt=0, le=1_000_000)
    #: A rate sweep: every cell runs at each of these open-loop rates (req/s).
    rates: list[float] | None = Field(default=None, min_length=1, max_length=50)
    #: The sweep's latency objective: the report names each transport's highest
    #: rate (or, in a users sweep, user count) whose p99 stays under it.
    sweep_slo_p99_ms: float | None = Field(default=None, gt=0, le=60_000)
    think_time_ms: float = Field(default=0.0, ge=0, le=60_000)

    @model_validator(mode="after")
    def _rate_matches_model(self) -> LoadSettings:
        if self.rates is not None:
            if self.model != "open":
                raise ValueError("a rate sweep ('rates') needs model = \"open\"")
            if self.rate is not None:
                raise ValueError("give either 'rate' or 'rates' (a sweep), not both")
            if any(not 0 < r <= 1_000_000 for r in self.rates):
                raise ValueError("every sweep rate must be > 0 and <= 1000000 req/s")
            if len(set(self.rates)) != len(self.rates):
                raise ValueError("sweep rates must be distinct")
            return self
        if self.model == "open" and self.rate is None:
            raise ValueError("an open-loop load needs 'rate' (total requests per second)")
        if self.model == "closed" and self.rate is not None:
            raise ValueError("'rate' only applies to model = \"open\"; remove it or switch model")
        if self.model == "open" and self.think_time_ms:
            raise ValueError("'think_time_ms' only applies to model = \"closed\"")
        return self


class ServerSettings(Strict):
    """The ``[server]`` table."""

    max_message_bytes: int = Field(default=1 << 20, ge=64, le=64 * 1024 * 1024)
    #: Test-only slowdown: every echo request sleeps this long in the hub (validates a gate).
    delay_ms: float = Field(default=0.0, ge=0, le=10_000)
    #: WebSocket liveness pings (seconds between them; a client that does not answer is
    #: disconnected). 0 turns them off, for cells whose scenario wants no ping frames.
    ws_ping_interval_s: float = Field(default=DEFAULT_WS_PING_INTERVAL_S, ge=0, le=3600)
    #: Users who may sign in on the server (``--max-users``); further sign-ins are refused
    #: and counted (``limit_refusals``). None: the server's default.
    max_users: int | None = Field(default=None, ge=1, le=10_000_000)
    #: Seconds an HTTP or ws-aiohttp connection may stay idle between requests before the
    #: server closes it (``--keepalive-timeout``; nginx's 75 s by default, uvicorn's and
    #: node's is 5). At thousands of users it decides how many idle action connections stay
    #: open, and so whether they fit the open-files limit.
    keepalive_timeout_s: float = Field(default=DEFAULT_KEEPALIVE_TIMEOUT_S, ge=1, le=3600)

    @model_validator(mode="after")
    def _check_ping(self) -> ServerSettings:
        if 0 < self.ws_ping_interval_s < 1:
            raise ValueError(
                "'ws_ping_interval_s' must be 0 (no pings) or at least 1 s, "
                f"got {self.ws_ping_interval_s}"
            )
        return self


#: ``[slo]`` keys that only real-time workloads can meet.
REALTIME_SLO_KEYS = ("delivery_p50_ms", "delivery_p99_ms", "lost")


class SloSettings(Strict):
    """The optional ``[slo]`` table: absolute limits every cell must meet (see reports.gate.slo)."""

    p50_ms: float | None = Field(default=None, gt=0)
    p90_ms: float | None = Field(default=None, gt=0)
    p99_ms: float | None = Field(default=None, gt=0)
    p99_9_ms: float | None = Field(default=None, gt=0)
    max_ms: float | None = Field(default=None, gt=0)
    delivery_p50_ms: float | None = Field(default=None, gt=0)
    delivery_p99_ms: float | None = Field(default=None, gt=0)
    lost: int | None = Field(default=None, ge=0)
    errors: int | None = Field(default=None, ge=0)
    min_throughput_rps: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _not_empty(self) -> SloSettings:
        if not self.limits():
            raise ValueError("an empty [slo] table checks nothing; give a limit or remove it")
        return self

    def limits(self) -> dict[str, float]:
        """The limits that were given, by key."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Cell(Strict):
    """One ``[[cells]]`` entry: a transport driven by a client in a connection mode."""

    transport: Transport
    client: ClientName
    conn_mode: ConnMode | None = None
    delivery: DeliveryMode | None = None
    #: https/wss with a throwaway CA; the handshake is part of new connections' latency.
    tls: bool = False
    #: The HTTP version of an HTTP cell: "1.1", "2" (h2c with prior knowledge, or ALPN
    #: h2 with tls = true) or "3" (QUIC, which needs tls = true). A ws-hypercorn echo
    #: cell on the lean client may take "2": its WebSocket over HTTP/2 (RFC 8441).
    http_version: HttpVersion = "1.1"
    name: str | None = Field(default=None, min_length=1, max_length=80)
    #: The command that starts this cell's server instead of ``python -m servers KIND``
    #: (any server speaking docs/protocol.md, e.g. ``["node", "servers/node/server.js"]``).
    server_command: list[Annotated[str, Field(min_length=1, max_length=1000)]] | None = Field(
        default=None, min_length=1, max_length=64
    )
    #: How results name that server (default: the command's program name, e.g. ``node``).
    server_name: str | None = Field(
        default=None, min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._-]+$"
    )
    #: The base URL of a server already running on loopback (``http://127.0.0.1:9000``),
    #: measured but neither started nor stopped by rtbench (see loadgen.server_url).
    server_url: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _fill_and_check(self) -> Cell:
        self._check_server()
        ws = self.transport in WS_TRANSPORTS
        if self.conn_mode is None:
            object.__setattr__(self, "conn_mode", WS_CONN_MODE if ws else "keep-alive")
        problem = check_combination(self.transport, self.client, self.conn_mode or "")
        if problem:
            raise ValueError(problem)
        self._check_http_version()
        if self.delivery is not None:
            if ws and self.delivery != "push":
                raise ValueError("a WebSocket cell delivers by 'push'")
            if not ws and self.delivery == "push":
                raise ValueError("an HTTP cell delivers by 'short-poll', 'long-poll' or 'sse'")
            if not ws and self.client not in ("aiohttp", "lean"):
                raise ValueError("real-time HTTP users run on the aiohttp or lean client")
        return self

    def _check_http_version(self) -> None:
        version = self.http_version
        if version == "1.1":
            return
        if self.transport in WS_TRANSPORTS:
            self._check_ws_http_version()
            return
        if self.transport not in HTTP2_TRANSPORTS or self.server_command is not None:
            raise ValueError(
                f"http_version = {version!r}: transport {self.transport!r} serves HTTP/1.1 "
                f"only; HTTP/{version} is served by {', '.join(HTTP2_TRANSPORTS)}"
            )
        if version == "3":
            self._check_http3()
            return
        if self.delivery is not None and self.client != LEAN:
            raise ValueError(
                f"http_version = '2' with delivery {self.delivery!r}: real-time users speak "
                f'HTTP/2 on the lean client only, not {self.client!r}; use client = "lean" '
                "or remove http_version"
            )
        problem = check_combination(
            self.transport, self.client, self.conn_mode or "", http_version=version
        )
        if problem:
            raise ValueError(problem)

    def _check_ws_http_version(self) -> None:
        """WebSocket over HTTP/2 (RFC 8441): ws-hypercorn, the lean client, echo cells."""
        version = self.http_version
        if self.server_command is not None or self.server_url is not None:
            raise ValueError(
                f"http_version = {version!r}: a server_command's or server_url's WebSocket "
                "cell runs over HTTP/1.1; WebSocket over HTTP/2 is offered on "
                f"{', '.join(WS_H2_TRANSPORTS)} only; remove http_version"
            )
        if version == "2" and self.delivery is not None:
            raise ValueError(
                f"http_version = '2' with delivery {self.delivery!r}: real-time WebSocket "
                "users open their WebSockets over HTTP/1.1; WebSocket over HTTP/2 is "
                "offered to echo cells only; remove http_version or delivery"
            )
        problem = check_combination(
            self.transport, self.client, self.conn_mode or "", http_version=version
        )
        if problem:
            raise ValueError(f"http_version = {version!r}: {problem}")

    def _check_http3(self) -> None:
        """HTTP/3 runs over QUIC: always TLS, the lean client (echo and real-time cells)."""
        if not self.tls:
            raise ValueError(
                "http_version = '3' runs over QUIC, which is always encrypted: add tls = true"
            )
        if self.delivery is not None and self.client != LEAN:
            raise ValueError(
                f"http_version = '3' with delivery {self.delivery!r}: real-time users speak "
                f'HTTP/3 on the lean client only, not {self.client!r}; use client = "lean" '
                "or remove http_version"
            )
        problem = check_combination(
            self.transport, self.client, self.conn_mode or "", http_version="3"
        )
        if problem:
            raise ValueError(problem)

    def _check_server(self) -> None:
        if self.server_url is not None:
            self._check_server_url()
            return
        if self.server_command is None:
            if self.transport == "ws":
                raise ValueError(
                    "transport 'ws' needs server_command (the server to start) or server_url "
                    "(a server already running); rtbench's own WebSocket servers are "
                    "'ws-aiohttp' and 'ws-websockets'"
                )
            if self.server_name is not None:
                raise ValueError(
                    "server_name names a server_command's or a server_url's server; give one "
                    "or remove it"
                )
            return
        if self.transport not in ("http", "ws"):
            raise ValueError(
                f"a cell with server_command has transport 'http' or 'ws', not "
                f"{self.transport!r} (which names one of rtbench's own servers)"
            )
        if self.tls:
            raise ValueError(
                "tls = true applies to rtbench's own servers; a server_command serves plain TCP"
            )
        if Path(self.server_command[0]).name == "":
            program = self.server_command[0]
            raise ValueError(f"server_command[0] must name a program, got {program!r}")

    def _check_server_url(self) -> None:
        """A server already running: loopback, plain http, a port; named after its process
        (``node``) unless server_name names it, ``url`` when no process can be found."""
        if self.server_command is not None:
            raise ValueError(
                "give server_command (a server rtbench starts) or server_url (one already "
                "running), not both"
            )
        if self.transport not in ("http", "ws"):
            raise ValueError(
                f"a cell with server_url has transport 'http' or 'ws', not "
                f"{self.transport!r} (which names one of rtbench's own servers)"
            )
        if self.tls:
            raise ValueError(
                "tls = true applies to rtbench's own servers (it trusts only the CA it made "
                "for them); a server_url is plain http://"
            )
        target = parse_server_url(self.server_url)
        if self.server_name is None:
            # Filled in once, here: a part's cells are checked again from their dump,
            # which then carries the name and looks nothing up.
            found = default_server_name(target)
            object.__setattr__(self, "server_name", found or UNKNOWN_SERVER_NAME)

    @property
    def server(self) -> str | None:
        """The server stack when it is not rtbench's aiohttp/websockets pair: a
        server_command's name, or the ASGI server (``uvicorn``, ``hypercorn``,
        ``granian``); cells of different stacks are never paired. None for rtbench's
        aiohttp and websockets. A server_url's server is its server_name (by default its
        process's name)."""
        if self.server_url is not None:
            return self.server_name or UNKNOWN_SERVER_NAME
        if self.server_command is None:
            _, _, stack = self.transport.partition("-")
            return stack if stack in ASGI_STACKS else None
        return self.server_name or Path(self.server_command[0]).name

    @property
    def id(self) -> str:
        """The cell's name in results, e.g. ``http/aiohttp/keep-alive[/long-poll]``;
        ``http@node/lean/keep-alive`` for a cell on a server_command's or server_url's server."""
        command = self.server_command is not None or self.server_url is not None
        transport = f"{self.transport}@{self.server}" if command else self.transport
        base = f"{transport}/{self.client}/{self.conn_mode}"
        if self.delivery is not None and self.delivery != "push":
            base += f"/{self.delivery}"
        if self.http_version != "1.1":
            base += f"+h{self.http_version}"
        if self.tls:
            base += "+tls"
        return self.name or base

    @property
    def delivery_mode(self) -> str:
        """``request`` for echo cells, else how items reach users."""
        return self.delivery or "request"

    @property
    def family(self) -> str:
        return "http" if self.transport in HTTP_TRANSPORTS else "ws"


class NetworkSettings(Strict):
    """The ``[network]`` table: emulated links between client and server.

    Every cell runs over each profile (a preset name, or a table of
    ``delay_ms``/``rtt_ms``, ``jitter_ms``, ``rate_mbit``, ``handshake_rtts``
    with a ``name``). ``link`` picks the emulator: ``auto`` uses the kernel
    link (netns + netem/tbf) for each profile it can emulate here and the
    userspace relay for the others.
    """

    profiles: list[str | dict[str, Any]] = Field(min_length=1, max_length=20)
    link: Literal["auto", "kernel", "userspace"] = "auto"

    @model_validator(mode="after")
    def _profiles_resolve(self) -> NetworkSettings:
        names: set[str] = set()
        for spec in self.profiles:
            try:
                profile = resolve_profile(spec)
            except LinkProfileError as exc:
                raise ValueError(str(exc)) from None
            if profile.name in names:
                raise ValueError(f"two link profiles are both named {profile.name!r}")
            names.add(profile.name)
        return self

    def resolved(self) -> list[Any]:
        """The profiles as :class:`loadgen.link.profiles.LinkProfile` objects."""
        return [resolve_profile(spec) for spec in self.profiles]


class Part(Strict):
    """One ``[[parts]]`` entry: a workload with its own load, real-time settings and cells."""

    name: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
    description: str = ""
    workload: Workload = "echo"
    payload_bytes: int | None = Field(default=None, ge=0, le=16 * 1024 * 1024)
    load: LoadSettings | None = None
    realtime: RealtimeParams | None = None
    #: The part's own links (``[parts.network]``), in place of the shared ``[network]``.
    network: NetworkSettings | None = None
    cells: list[Cell] = Field(min_length=1)
