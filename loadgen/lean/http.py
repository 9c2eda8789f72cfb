"""One HTTP/1.1 client connection as an asyncio Protocol, parsed by httptools.

::

    head = request_head("POST", target, keep_alive=True, content_type=JSON)
    conn = await HttpConnection.open(target, counter, timeout_s)
    status, body = await conn.exchange(head + b"%d\\r\\n\\r\\n" % len(body) + body, timeout_s)
    conn.sent_ns, conn.received_ns          # socket-boundary timestamps of that exchange
    conn.close()

One request is in flight at a time. ``exchange`` raises
:class:`~loadgen.clients.errors.ClientError`: ``closed`` when the connection
was closed before a reply began, ``truncated`` when it was closed inside one,
``malformed`` when the reply is not HTTP/1.1, ``timeout``. After a reply that
does not keep the connection alive, :attr:`reusable` is False.

Streamed bodies (Server-Sent Events): :meth:`open_stream` returns once the
response head has arrived; each later read hands its body bytes to
``on_body(data, framing, received_ns)``, where ``framing`` is the chunked
transfer overhead the read carried. :attr:`done` is set when the stream
ends or the connection is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httptools

from loadgen.clients.errors import ClientError
from loadgen.lean.connect import ByteCounting, Target, open_connection
from loadgen.wire import WireCounter

clock = time.perf_counter_ns

JSON = b"application/json"
OnBody = Callable[[bytes, int, int], None]


def request_head(
    method: str,
    target: Target,
    *,
    keep_alive: bool = True,
    content_type: bytes | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """A request head, up to and including ``Content-Length: `` when ``content_type`` is set.

    With a content type, append the length, ``\\r\\n\\r\\n`` and the body; without
    one the head is complete.
    """
    lines = [f"{method} {target.path} HTTP/1.1", f"Host: {target.authority}"]
    if not keep_alive:
        lines.append("Connection: close")
    for name, value in headers:
        if "\r" in name + value or "\n" in name + value:
            raise ValueError(f"header {name!r} contains a line break")
        lines.append(f"{name}: {value}")
    head = "\r\n".join(lines).encode("latin-1") + b"\r\n"
    if content_type is None:
        return head + b"\r\n"
    return head + b"Content-Type: " + content_type + b"\r\nContent-Length: "


def with_body(head: bytes, body: bytes) -> bytes:
    """``head`` from :func:`request_head` (with a content type) completed with ``body``."""
    return b"%b%d\r\n\r\n%b" % (head, len(body), body)


class HttpConnection(asyncio.Protocol):
    """One HTTP/1.1 connection; see the module docstring."""

    def __init__(self, counter: WireCounter | None, tls: bool) -> None:
        self._bytes = ByteCounting(counter, tls)
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._body: list[bytes] = []
        self._in_message = False
        self._on_body: OnBody | None = None
        self._stream_framing = 0
        self._stream_pieces: list[bytes] = []
        self._chunk_size = 0
        self.status = 0
        self.reusable = True
        self.sent_ns = 0
        self.received_ns = 0
        self.done = asyncio.Event()

    @classmethod
    async def open(
        cls, target: Target, counter: WireCounter | None, timeout_s: float
    ) -> HttpConnection:
        """Connect to ``target``; raises ClientError ``connect_error``/``timeout``."""
        _, conn = await open_connection(target, lambda: cls(counter, target.tls), timeout_s)
        return conn

    # -- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._bytes.made(transport)

    def data_received(self, data: bytes) -> None:
        self._bytes.read(len(data))
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ClientError("malformed", "unexpected protocol upgrade"))
        except httptools.HttpParserError as exc:
            self._fail(ClientError("malformed", f"not an HTTP/1.1 response: {exc}"))
        if self._on_body is not None and (self._stream_pieces or self._stream_framing):
            pieces, self._stream_pieces = self._stream_pieces, []
            framing, self._stream_framing = self._stream_framing, 0
            self._on_body(b"".join(pieces), framing, clock())

    def eof_received(self) -> bool | None:
        self._bytes.refresh()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._bytes.lost()
        self.reusable = False
        if self._in_message:
            self._fail(ClientError("truncated", "connection closed inside the response"))
        else:
            self._fail(ClientError("closed", "connection closed before a response"))
        self.done.set()

    # -- httptools callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_message = True
        self._body = []

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if self._on_body is not None and self._waiter is not None and not self._waiter.done():
            # A stream: the caller goes on once the head is in; the body follows.
            self._waiter.set_result((self.status, b""))

    def on_body(self, body: bytes) -> None:
        if self._on_body is not None:
            self._stream_pieces.append(body)
            self._chunk_size += len(body)
        else:
            self._body.append(body)

    def on_chunk_header(self) -> None:
        self._chunk_size = 0

    def on_chunk_complete(self) -> None:
        if self._on_body is not None:
            # Chunk-size line and the CRLF after the data (sse.chunk_framing's rule).
            self._stream_framing += len(f"{self._chunk_size:x}") + 4

    def on_message_complete(self) -> None:
        self.received_ns = clock()
        self._in_message = False
        if not self._parser.should_keep_alive():
            self.reusable = False
        if self._on_body is not None:
            self.done.set()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self.status, b"".join(self._body)))
        self._body = []

    # -- API --------------------------------------------------------------------------

    def _fail(self, error: ClientError) -> None:
        self.reusable = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    async def exchange(self, request: bytes, timeout_s: float) -> tuple[int, bytes]:
        """Write ``request`` (head and body) and wait for the whole response."""
        return await self._send(request, timeout_s)

    async def open_stream(self, request: bytes, on_body: OnBody, timeout_s: float) -> int:
        """Write ``request`` and return the status once the head is in (see module docstring)."""
        self._on_body = on_body
        status, _ = await self._send(request, timeout_s)
        return status

    async def _send(self, request: bytes, timeout_s: float) -> tuple[int, bytes]:
        transport = self._transport
        if transport is None or transport.is_closing() or not self.reusable:
            raise ClientError("closed", "connection is closed")
        if self._waiter is not None:
            raise RuntimeError("one request at a time per connection")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        self._waiter = waiter
        # A bare timer handle: asyncio.timeout() costs several times more per request.
        timer = loop.call_later(timeout_s, self._timed_out, waiter, timeout_s)
        self.sent_ns = clock()
        transport.write(request)
        self._bytes.wrote(len(request))
        try:
            return await waiter
        except BaseException:
            # Failed, timed out or abandoned (a cancelled long poll): a late reply
            # must never be read as the answer to a next request.
            self.close()
            raise
        finally:
            timer.cancel()
            if self._waiter is waiter:
                self._waiter = None

    def _timed_out(self, waiter: asyncio.Future[tuple[int, bytes]], timeout_s: float) -> None:
        if self._waiter is waiter:
            self._fail(ClientError("timeout", f"no reply within {timeout_s}s"))

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing() and self.reusable

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.reusable = False
        if self._transport is not None and not self._transport.is_closing():
            self._bytes.refresh()
            self._transport.close()
