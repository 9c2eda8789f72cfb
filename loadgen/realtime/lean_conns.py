"""A user's connections on the lean client: :mod:`loadgen.realtime.conns` with lean I/O.

:class:`LeanHttpConn`, :class:`LeanWsConn` and :class:`LeanSseConn` are
``HttpConn``, ``WsConn`` and ``SseConn`` with only their I/O replaced: one
:class:`~loadgen.lean.http.HttpConnection` per role (actions, polls, the event
stream) or one :class:`~loadgen.lean.ws.WsConnection`. Measuring, reading
replies, pushes, polls and event streams, reconnecting: all inherited, so
both clients follow the same rules. Same constructors and use::

    http = LeanHttpConn(base_url, keep_alive=True, timeout_s=5, on_request=on_request)
    token = (await http.call("signin", {...}))["token"]; http.token = token
    cursor = await http.poll(cursor, wait_ms, on_item, "poll", on_gap)
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from loadgen.clients.errors import ClientError
from loadgen.lean.connect import Target
from loadgen.lean.http import JSON, HttpConnection, request_head, with_body
from loadgen.lean.reuse import ReusedConnection
from loadgen.lean.ws import WsConnection
from loadgen.realtime.conns import HttpConn, SseConn, WsConn

clock = time.perf_counter_ns


def _bearer(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("Authorization", f"Bearer {token}"),) if token else ()


class LeanHttpConn(HttpConn):
    """A user's HTTP side: actions over one connection, polls over another."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._roles = {
            role: ReusedConnection(counter, self.keep_alive, self.timeout_s)
            for role, counter in self.counters.items()
        }

    async def _exchange(
        self, role: str, method: str, url: str, body: bytes | None, timeout_s: float
    ) -> tuple[int, bytes]:
        target = Target.parse(url)
        headers = _bearer(self.token)
        if body is None:
            request = request_head(method, target, keep_alive=self.keep_alive, headers=headers)
        else:
            head = request_head(
                method, target, keep_alive=self.keep_alive, content_type=JSON, headers=headers
            )
            request = with_body(head, body)
        return await self._roles[role].exchange(target, request, timeout_s)

    async def close(self) -> None:
        for role in self._roles.values():
            role.close()


class LeanWsConn(WsConn):
    """A user's WebSocket: requests, replies and pushes on one connection."""

    _conn: WsConnection | None = None

    async def open(self, token: str | None = None) -> float:
        """Connect (with ``?token=`` when given); returns the set-up time in seconds."""
        url = self.url_for(token)
        self.closed = asyncio.Event()
        self.close_code = None
        t0 = clock()
        conn = await WsConnection.open(url, self.counter, self.timeout_s, self._message, self._lost)
        self._conn = self._ws = conn
        return (clock() - t0) / 1e9

    def _message(self, data: bytes, received_ns: int, _wire: int) -> None:
        try:
            self._dispatch(data, received_ns)
        except Exception as exc:
            # A bug in handling a message must stop the run, not look like a dropped link.
            self.failure = exc
            if self._conn is not None:
                self._conn.close_now()

    def _lost(self) -> None:
        if self._conn is not None:
            self.close_code = self._conn.close_code
        self._gone()

    async def _send(self, body: bytes) -> None:
        if self._conn is None:
            raise ClientError("closed", "WebSocket is not open")
        self._conn.send_text(body)

    async def close(self) -> None:
        conn, self._conn, self._ws = self._conn, None, None
        if conn is not None:
            await conn.close(2.0)
        self.closed.set()


class LeanSseConn(SseConn):
    """A user's Server-Sent Events stream: ``GET /events`` held open, resumed by id."""

    _conn: HttpConnection | None = None

    async def _open(self) -> None:
        target = Target.parse(self.url)
        request = request_head("GET", target, headers=tuple(self.request_headers().items()))
        conn: HttpConnection | None = None
        with self.connecting():
            try:
                conn = await HttpConnection.open(target, self.counter, self.timeout_s)
                self.decoder.restart()
                status = await conn.open_stream(request, self.feed, self.timeout_s)
                if status != 200:
                    raise ClientError(f"http_{status}", f"event stream refused with HTTP {status}")
                self._conn, conn = conn, None
            finally:
                if conn is not None:
                    conn.close()

    async def _follow(self) -> None:
        if self._conn is not None:
            await self._conn.done.wait()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
