"""The lean client for echo cells: HTTP ``POST /rpc`` and WebSocket ``GET /ws``.

Same interface as the library clients (:mod:`loadgen.clients.base`), plus
:attr:`socket_stamps`: ``(sent_ns, received_ns)`` of the last successful
request, taken at the socket (just before the write; when the parser
completed the reply). For a new-connection request the send time is taken
before the TCP connect, which is part of what that mode costs.
:class:`LeanHttpClient` speaks HTTP/1.1, :class:`LeanH2Client` HTTP/2 and
:class:`LeanH3Client` HTTP/3 (their ``tally`` counts the header bytes of their
requests and replies); :class:`LeanWSClient` opens its WebSocket over HTTP/1.1,
:class:`LeanWSH2Client` over HTTP/2 (RFC 8441).

Bytes count into the :class:`~loadgen.wire.WireCounter` of the enclosing
:func:`~loadgen.wire.counting` block at connect time.
"""

from __future__ import annotations

import asyncio

from loadgen.clients.errors import ClientError
from loadgen.lean.connect import Target
from loadgen.lean.h2 import Headers, request_headers
from loadgen.lean.h2bytes import HeaderTally
from loadgen.lean.http import JSON, request_head, with_body
from loadgen.lean.reuse import ReusedConnection, ReusedH2Connection, ReusedH3Connection
from loadgen.lean.ws import WsConnection
from loadgen.lean.ws_h2 import WsH2Connection
from loadgen.wire import current_counter


class LeanHttpClient:
    """One virtual HTTP connection; ``keep_alive=False`` opens a TCP connection per request."""

    def __init__(self, url: str, keep_alive: bool, timeout_s: float) -> None:
        self.url = url
        self.target = Target.parse(url)
        self.keep_alive = keep_alive
        self.timeout_s = timeout_s
        self._head = request_head("POST", self.target, keep_alive=keep_alive, content_type=JSON)
        self._link = ReusedConnection(None, keep_alive, timeout_s)

    @property
    def socket_stamps(self) -> tuple[int, int]:
        """``(sent_ns, received_ns)`` of the last successful request."""
        return self._link.socket_stamps

    async def connect(self) -> None:
        # Like the library clients, HTTP connects lazily: set-up is paid inside a request.
        self._link.counter = current_counter()

    async def request(self, body: bytes) -> tuple[int, bytes]:
        return await self._link.exchange(self.target, with_body(self._head, body), self.timeout_s)

    async def close(self) -> None:
        self._link.close()


class LeanH2Client:
    """One virtual HTTP/2 connection; ``keep_alive=False`` opens a connection per request."""

    #: The link its requests go over: HTTP/2 here, HTTP/3 in :class:`LeanH3Client`.
    link_type: type[ReusedH2Connection] = ReusedH2Connection

    def __init__(self, url: str, keep_alive: bool, timeout_s: float) -> None:
        self.url = url
        self.target = Target.parse(url)
        self.keep_alive = keep_alive
        self.timeout_s = timeout_s
        self._path = self.target.path.encode("latin-1")
        self._fields = request_headers(content_type=JSON)
        # The header list for the last body length: echo bodies mostly keep theirs.
        self._length = -1
        self._headers: Headers = ()
        self._link = self.link_type(None, keep_alive, timeout_s)

    @property
    def socket_stamps(self) -> tuple[int, int]:
        """``(sent_ns, received_ns)`` of the last successful request."""
        return self._link.socket_stamps

    @property
    def tally(self) -> HeaderTally:
        """Header bytes sent and received, requests and responses, over every connection."""
        return self._link.tally

    async def connect(self) -> None:
        # As LeanHttpClient: set-up is paid inside the first request.
        self._link.counter = current_counter()

    async def request(self, body: bytes) -> tuple[int, bytes]:
        if len(body) != self._length:
            self._length = len(body)
            self._headers = (*self._fields, (b"content-length", b"%d" % self._length))
        reply = await self._link.exchange(
            self.target, b"POST", self._path, self._headers, body, self.timeout_s
        )
        return reply.status, reply.body

    async def close(self) -> None:
        self._link.close()


class LeanH3Client(LeanH2Client):
    """One virtual HTTP/3 connection over QUIC (https:// only); ``keep_alive=False`` opens
    a QUIC connection, with its handshake, per request."""

    link_type = ReusedH3Connection


class LeanWSClient:
    """One WebSocket connection; one request in flight, replies matched in order."""

    #: The WebSocket it opens: over HTTP/1.1 here, over HTTP/2 in :class:`LeanWSH2Client`.
    connection_type: type[WsConnection] | type[WsH2Connection] = WsConnection

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._conn: WsConnection | WsH2Connection | None = None
        self._waiter: asyncio.Future[bytes] | None = None
        self._received_ns = 0
        self.socket_stamps = (0, 0)

    def _on_message(self, data: bytes, received_ns: int, _wire: int) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            self._received_ns = received_ns
            waiter.set_result(data)

    def _timed_out(self, waiter: asyncio.Future[bytes]) -> None:
        if not waiter.done():
            waiter.set_exception(ClientError("timeout", f"no reply within {self.timeout_s}s"))

    async def connect(self) -> None:
        self._conn = await self.connection_type.open(
            self.url, current_counter(), self.timeout_s, self._on_message, self._on_closed
        )

    def _on_closed(self) -> None:
        conn = self._conn
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            failure = conn.failure if conn is not None else None
            code = conn.close_code if conn is not None else None
            waiter.set_exception(failure or ClientError("closed", f"connection closed ({code})"))

    async def request(self, body: bytes) -> tuple[int, bytes]:
        conn = self._conn
        if conn is None or not conn.is_open:
            raise ClientError("closed", "WebSocket is not open")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bytes] = loop.create_future()
        self._waiter = waiter
        timer = loop.call_later(self.timeout_s, self._timed_out, waiter)
        conn.send_text(body)
        try:
            reply = await waiter
        finally:
            timer.cancel()
            self._waiter = None
        self.socket_stamps = (conn.sent_ns, self._received_ns)
        return 200, reply

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close(self.timeout_s)


class LeanWSH2Client(LeanWSClient):
    """One WebSocket over HTTP/2 (RFC 8441 extended CONNECT), on a connection of its own."""

    connection_type = WsH2Connection
