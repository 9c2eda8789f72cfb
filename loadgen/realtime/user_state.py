"""A virtual user's state without I/O: who it is, its connections, its cursor, its counts.

Both drivers' ``VirtualUser`` (asyncio in :mod:`loadgen.realtime.users`, gevent
in :mod:`loadgen.locust_engine.users`) are a :class:`UserState` plus the I/O
loops (sign in, receive, go offline and back)::

    class VirtualUser(UserState):
        def conn_classes(self) -> ConnClasses:
            return ConnClasses(WsConn, HttpConn, SseConn)   # this driver's connections

The connections are built from :meth:`UserState.conn_classes` with the same
arguments under every driver: ``ws(ws_url, client, timeout_s, on_request, on_item)``,
``http(base_url, keep_alive, timeout_s, on_request)`` and ``sse(base_url, timeout_s,
on_item, on_connect, on_gap=...)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loadgen.realtime.params import RealtimeParams
from servers.hub import CLOSE_POLICY

clock = time.perf_counter_ns

OnRequest = Callable[[str, int, int, int, int, str | None, int], None]
OnUserItem = Callable[[str, int, Any, int, str, int], None]
OnConnect = Callable[[str, int, int, str | None], None]
OnUserGap = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how users connect for one cell."""

    base_url: str
    transport: str
    client: str
    conn_mode: str
    delivery: str
    timeout_s: float
    #: "1.1", or "2" for HTTP/2 (the lean client's real-time connections).
    http_version: str = "1.1"

    @property
    def ws_url(self) -> str:
        return "ws" + self.base_url[len("http") :].rstrip("/") + "/ws"


@dataclass(frozen=True, slots=True)
class ConnClasses:
    """A driver's connection classes (see the module docstring for their arguments)."""

    ws: Any
    http: Any
    sse: Any


class PollClock:
    """When a polling user polls next: at once for long polls, every interval for short ones.

    ::

        clock = PollClock(endpoint, params)
        delay_ns = clock.next_delay_ns()   # wait this long, then poll with clock.wait_ms
        clock.restart()                    # after coming back online
    """

    def __init__(self, endpoint: Endpoint, params: RealtimeParams) -> None:
        self.long = endpoint.delivery == "long-poll"
        self.wait_ms = params.long_poll_timeout_ms if self.long else 0
        self.interval_ns = params.poll_interval_ms * 1_000_000
        self.next_ns = clock()

    def restart(self) -> None:
        self.next_ns = clock()

    def next_delay_ns(self) -> int:
        """How long to wait before the next poll (0: poll now); the schedule moves on."""
        if self.long:
            return 0
        delay = self.next_ns - clock()
        self.next_ns += self.interval_ns
        return max(0, delay)


@dataclass(eq=False)
class UserState:
    """One simulated person with one browser tab, less the I/O (module docstring)."""

    name: str
    endpoint: Endpoint
    params: RealtimeParams
    on_request: OnRequest
    on_item: OnUserItem
    on_connect: OnConnect
    on_gap: OnUserGap | None = None
    cursor: int = field(default=0, init=False)
    token: str | None = field(default=None, init=False)
    online: bool = field(default=False, init=False)
    stopping: bool = field(default=False, init=False)
    failure: BaseException | None = field(default=None, init=False)
    ws_reconnects: int = field(default=0, init=False)
    #: Times a stream or poll ended because its token expired or was revoked, and the
    #: user signed in again and resumed (not a loss, not a dropped connection).
    ws_poll_auth_closes: int = field(default=0, init=False)
    http: Any = field(default=None, init=False)
    ws: Any = field(default=None, init=False)
    sse: Any = field(default=None, init=False)

    def __post_init__(self) -> None:
        endpoint, on_request = self.endpoint, self.on_request
        classes = self.conn_classes()
        if endpoint.delivery == "push":
            self.ws = classes.ws(
                endpoint.ws_url, endpoint.client, endpoint.timeout_s, on_request, self._item
            )
        else:
            self.http = classes.http(
                endpoint.base_url,
                endpoint.conn_mode == "keep-alive",
                endpoint.timeout_s,
                on_request,
            )
            if endpoint.delivery == "sse":
                self.sse = classes.sse(
                    endpoint.base_url,
                    endpoint.timeout_s,
                    self._item,
                    lambda t0, t1, error: self.on_connect(self.name, t0, t1, error),
                    on_gap=self._gap,
                )

    def conn_classes(self) -> ConnClasses:
        """This driver's connection classes."""
        raise NotImplementedError

    @property
    def reconnects(self) -> int:
        """Times a dropped push connection (WebSocket or event stream) was resumed."""
        return self.ws_reconnects + (self.sse.reconnects if self.sse is not None else 0)

    @property
    def auth_closes(self) -> int:
        """Times the server ended a stream or a held poll because its token ended."""
        return self.ws_poll_auth_closes + (self.sse.auth_closes if self.sse is not None else 0)

    def _ws_dropped(self) -> None:
        """Count why the WebSocket closed while the user meant to be online: its token
        ended (1008: the next connection signs in again) or it was dropped."""
        if self.ws.close_code == CLOSE_POLICY:
            self.ws_poll_auth_closes += 1
            self.token = None
        else:
            self.ws_reconnects += 1

    def _signed_in(self, reply: Any) -> str:
        """Keep the token of a ``signin`` reply for every connection; returns it."""
        self.token = reply["token"]
        if self.http is not None:
            self.http.token = self.token
        if self.sse is not None:
            self.sse.token = self.token
        return self.token

    def _item(self, seq: int, item: Any, received_ns: int, via: str, nbytes: int) -> None:
        # A replay after reconnecting may repeat what was already pushed: the cursor stays.
        self.cursor = max(self.cursor, seq)
        self.on_item(self.name, seq, item, received_ns, via, nbytes)

    def _gap(self, via: str) -> None:
        if self.on_gap is not None:
            self.on_gap(self.name, via)

    def wire_totals(self) -> tuple[int, int]:
        """Bytes sent and received over all this user's connections so far."""
        conn = self.ws if self.ws is not None else self.http
        assert conn is not None
        sent, received = conn.wire_totals()
        if self.sse is not None:
            s, r = self.sse.wire_totals()
            sent, received = sent + s, received + r
        return sent, received
