"""A user's connections on the lean client: the shapes of :mod:`loadgen.realtime.conns`.

:class:`LeanHttpConn`, :class:`LeanWsConn` and :class:`LeanSseConn` have the
constructors, methods and callbacks of ``HttpConn``, ``WsConn`` and
``SseConn``, and hand what they receive to the same sans-I/O readers
(:mod:`loadgen.realtime.receive`, :mod:`loadgen.realtime.replies`,
:class:`~loadgen.realtime.sse.SseDecoder`); only the I/O differs: one
:class:`~loadgen.lean.http.HttpConnection` per role (actions, polls, the event
stream) or one :class:`~loadgen.lean.ws.WsConnection`, with requests and
replies timestamped at the socket.

::

    http = LeanHttpConn(base_url, keep_alive=True, timeout_s=5, on_request=on_request)
    token = (await http.call("signin", {...}))["token"]; http.token = token
    cursor = await http.poll(cursor, wait_ms, on_item, "poll", on_gap)
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

from loadgen.clients.errors import ClientError
from loadgen.lean.connect import Target
from loadgen.lean.http import JSON, HttpConnection, request_head, with_body
from loadgen.lean.ws import WsConnection
from loadgen.realtime.conns import OnRequest
from loadgen.realtime.receive import OnGap, OnItem, take_page, take_ws_message, ws_frame_bytes
from loadgen.realtime.replies import decode_reply, payload_of, poll_item_count, reply_error
from loadgen.realtime.sse import SseDecoder
from loadgen.wire import WireCounter
from servers import protocol

clock = time.perf_counter_ns

_ids = itertools.count(1)


def _bearer(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("Authorization", f"Bearer {token}"),) if token else ()


class _Role:
    """One HTTP connection of a user's (actions or polls), reopened when it closes."""

    def __init__(self, keep_alive: bool, timeout_s: float) -> None:
        self.keep_alive = keep_alive
        self.timeout_s = timeout_s
        self.counter = WireCounter()
        self.conn: HttpConnection | None = None

    async def exchange(self, target: Target, request: bytes, timeout_s: float) -> tuple[int, bytes]:
        conn = self.conn
        if conn is None or not conn.is_open:
            if conn is not None:
                conn.close()
            conn = await HttpConnection.open(target, self.counter, self.timeout_s)
            self.conn = conn if self.keep_alive else None
        try:
            return await conn.exchange(request, timeout_s)
        finally:
            if not self.keep_alive:
                conn.close()

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()


class LeanHttpConn:
    """A user's HTTP side: actions over one connection, polls over another."""

    def __init__(
        self, base_url: str, keep_alive: bool, timeout_s: float, on_request: OnRequest
    ) -> None:
        self.base = Target.parse(base_url.rstrip("/") + "/")
        self.keep_alive = keep_alive
        self.timeout_s = timeout_s
        self.on_request = on_request
        self.token: str | None = None
        self._roles = {"action": _Role(keep_alive, timeout_s), "poll": _Role(keep_alive, timeout_s)}
        self.counters = {role: r.counter for role, r in self._roles.items()}
        self._rpc = self.base.with_path("/rpc")
        self._heads: dict[str | None, bytes] = {}

    def _rpc_head(self) -> bytes:
        head = self._heads.get(self.token)
        if head is None:
            head = self._heads[self.token] = request_head(
                "POST",
                self._rpc,
                keep_alive=self.keep_alive,
                content_type=JSON,
                headers=_bearer(self.token),
            )
        return head

    async def _measured(
        self, op: str, role: str, target: Target, request: bytes, timeout_s: float
    ) -> protocol.Response:
        counter = self._roles[role].counter
        before = counter.snapshot()
        sent = clock()
        error: str | None = None
        items = 0
        try:
            _status, data = await self._roles[role].exchange(target, request, timeout_s)
            resp = decode_reply(data)
            error = reply_error(resp)
            items = poll_item_count(op, resp)
            payload_of(resp, _status)
            return resp
        except ClientError as exc:
            error = error or exc.code
            raise
        except asyncio.CancelledError:
            # Abandoned by the user (a tab closing on a held long poll): not recorded.
            error = "abandoned"
            raise
        finally:
            if error != "abandoned":
                after = counter.snapshot()
                self.on_request(
                    op, sent, clock(), after[0] - before[0], after[1] - before[1], error, items
                )

    async def call(self, op: str, payload: Any) -> Any:
        """One operation over ``POST /rpc``; returns the reply payload."""
        body = protocol.encode_request(
            protocol.Request(op=op, id=next(_ids), ts=clock(), payload=payload)
        )
        request = with_body(self._rpc_head(), body)
        resp = await self._measured(op, "action", self._rpc, request, self.timeout_s)
        return resp.payload

    async def poll(
        self, after: int, wait_ms: int, on_item: OnItem, via: str, on_gap: OnGap | None = None
    ) -> int:
        """``GET /inbox``: items to ``on_item``, a gap to ``on_gap``; returns the new cursor."""
        target = self.base.with_path(f"/inbox?after={after}&wait_ms={wait_ms}")
        request = request_head(
            "GET", target, keep_alive=self.keep_alive, headers=_bearer(self.token)
        )
        counter = self._roles["poll"].counter
        before = counter.received
        resp = await self._measured(
            "poll", "poll", target, request, self.timeout_s + wait_ms / 1000.0
        )
        nbytes = counter.received - before
        return take_page(resp.payload, after, nbytes, clock(), via, on_item, on_gap)

    async def close(self) -> None:
        for role in self._roles.values():
            role.close()

    def wire_totals(self) -> tuple[int, int]:
        """Bytes sent and received over both connections so far."""
        return (
            sum(c.sent for c in self.counters.values()),
            sum(c.received for c in self.counters.values()),
        )


class LeanWsConn:
    """A user's WebSocket: requests, replies and pushes on one connection."""

    def __init__(
        self,
        ws_url: str,
        client: str,
        timeout_s: float,
        on_request: OnRequest,
        on_item: OnItem,
    ) -> None:
        self.ws_url = ws_url
        self.client = client
        self.timeout_s = timeout_s
        self.on_request = on_request
        self.on_item = on_item
        self.counter = WireCounter()
        self._pending: dict[int, asyncio.Future[tuple[protocol.Response, int]]] = {}
        self._conn: WsConnection | None = None
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.failure: BaseException | None = None

    async def open(self, token: str | None = None) -> float:
        """Connect (with ``?token=`` when given); returns the set-up time in seconds."""
        url = self.ws_url + (f"?token={token}" if token else "")
        self.closed = asyncio.Event()
        self.close_code = None
        t0 = clock()
        self._conn = await WsConnection.open(
            url, self.counter, self.timeout_s, self._message, self._lost
        )
        return (clock() - t0) / 1e9

    def _message(self, data: bytes, received_ns: int, wire: int) -> None:
        try:
            message = take_ws_message(data, received_ns, self.on_item)
        except Exception as exc:
            # A bug in handling a message must stop the run, not look like a dropped link.
            self.failure = exc
            if self._conn is not None:
                self._conn.close_now()
            return
        if message is None:
            return
        fut = self._pending.pop(message.id or 0, None)
        if fut is not None and not fut.done():
            fut.set_result((message, len(data)))

    def _lost(self) -> None:
        conn = self._conn
        self.close_code = conn.close_code if conn is not None else None
        self.closed.set()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ClientError("closed", "connection closed"))
        self._pending.clear()

    async def call(self, op: str, payload: Any) -> Any:
        """Send one request and wait for its reply; returns the reply payload."""
        conn = self._conn
        if conn is None or self.closed.is_set():
            raise ClientError("closed", "WebSocket is not open")
        rid = next(_ids)
        body = protocol.encode_request(protocol.Request(op=op, id=rid, ts=clock(), payload=payload))
        fut: asyncio.Future[tuple[protocol.Response, int]] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[rid] = fut
        error: str | None = None
        received_len = 0
        sent = clock()
        try:
            conn.send_text(body)
            sent = conn.sent_ns
            async with asyncio.timeout(self.timeout_s):
                resp, received_len = await fut
            error = reply_error(resp)
            return payload_of(resp)
        except TimeoutError:
            error = "timeout"
            raise ClientError("timeout", f"no reply within {self.timeout_s}s") from None
        except ClientError as exc:
            error = error or exc.code
            raise
        finally:
            self._pending.pop(rid, None)
            self.on_request(
                op,
                sent,
                clock(),
                ws_frame_bytes(len(body), True),
                ws_frame_bytes(received_len, False) if received_len else 0,
                error,
                0,
            )

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close(2.0)
        self.closed.set()

    def wire_totals(self) -> tuple[int, int]:
        return self.counter.sent, self.counter.received


class LeanSseConn:
    """A user's Server-Sent Events stream: ``GET /events`` held open, resumed by id.

    Same use and behaviour as :class:`loadgen.realtime.conns.SseConn`.
    """

    def __init__(
        self,
        base_url: str,
        timeout_s: float,
        on_item: OnItem,
        on_connect: Callable[[int, int, str | None], None] | None = None,
        retry_s: float = 0.0,
        on_gap: OnGap | None = None,
    ) -> None:
        self.target = Target.parse(base_url.rstrip("/") + "/events")
        self.timeout_s = timeout_s
        self.on_connect = on_connect
        self.retry_s = retry_s
        self.counter = WireCounter()
        self.token: str | None = None
        self.decoder = SseDecoder(on_item, on_gap)
        self.reconnects = 0
        self._conn: HttpConnection | None = None

    @property
    def last_id(self) -> int:
        """The newest push's seq: where the next connection resumes."""
        return self.decoder.last_id

    async def connect(self, token: str, after: int = 0) -> None:
        """Open the stream after ``after``; returns once the server has answered."""
        self.token = token
        self.decoder.restart(after)
        await self._open()

    def _body(self, data: bytes, framing: int, received_ns: int) -> None:
        self.decoder.feed(data, framing, received_ns)
        if self.decoder.retry_ms is not None:
            self.retry_s = self.decoder.retry_ms / 1000.0

    async def _open(self) -> None:
        headers = [("Accept", "text/event-stream"), *_bearer(self.token)]
        if self.last_id:
            headers.append(("Last-Event-ID", str(self.last_id)))
        request = request_head("GET", self.target, headers=tuple(headers))
        t0 = clock()
        error: str | None = None
        conn: HttpConnection | None = None
        try:
            conn = await HttpConnection.open(self.target, self.counter, self.timeout_s)
            self.decoder.restart()
            status = await conn.open_stream(request, self._body, self.timeout_s)
            if status != 200:
                error = f"http_{status}"
                raise ClientError(error, f"event stream refused with HTTP {status}")
            self._conn, conn = conn, None
        except ClientError as exc:
            error = error or exc.code
            raise
        finally:
            if conn is not None:
                conn.close()
            if self.on_connect is not None:
                self.on_connect(t0, clock(), error)

    async def run(self) -> None:
        """Read events until cancelled, reconnecting after drops (see ``SseConn``)."""
        try:
            while True:
                if self._conn is not None:
                    await self._conn.done.wait()
                    self._drop()
                self.reconnects += 1
                await asyncio.sleep(self.retry_s)
                while True:
                    try:
                        await self._open()
                        break
                    except ClientError as exc:
                        if exc.code.startswith("http_4"):
                            raise
                        await asyncio.sleep(max(self.retry_s, 0.1))
        finally:
            self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def close(self) -> None:
        """Close the stream's connection (the server sees the user leave at once)."""
        self._drop()

    def wire_totals(self) -> tuple[int, int]:
        return self.counter.sent, self.counter.received
