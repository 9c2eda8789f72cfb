"""One HTTP/3 client connection over QUIC, driven by aioquic's sans-I/O state machines.

::

    conn = await H3Connection.open(target, counter, timeout_s, tally)
    headers = request_headers(content_type=JSON)       # the same fields as HTTP/2's
    reply = await conn.exchange(b"POST", b"/rpc", headers, body, timeout_s)
    reply.status, reply.body, reply.sent_ns, reply.received_ns
    conn.tally.header_bytes_sent, conn.tally.requests  # HEADERS + QPACK stream bytes
    conn.close()

The shape is :mod:`loadgen.lean.h2`'s: an asyncio protocol (here a datagram
protocol on its own UDP socket) feeds the peer's bytes to a state machine
(``aioquic.quic.connection.QuicConnection`` with ``aioquic.h3.connection.H3Connection``
above it) and writes what the machines want sent. HTTP/3 always runs over TLS
1.3 (QUIC's handshake), offering ALPN ``h3``; the certificate is checked
against the CA that :func:`loadgen.tls.configure_client` set. The target's
port is the server's UDP port, which rtbench's servers number like their TCP
port. Every connection is a first visit: no session ticket, no 0-RTT.

Many exchanges run at once, each on its own bidirectional stream; past the
server's stream limit QUIC holds new streams until it raises the limit. Each
reply carries its own stamps: just before the datagrams of its request are
written, and when the datagram that ends its response has been read.

``exchange`` raises :class:`~loadgen.clients.errors.ClientError`:

- ``connect_error``: the handshake failed (certificate, ALPN, refused);
- ``timeout``: no handshake, or no whole reply, within ``timeout_s`` (a
  stream that times out is reset; the connection carries on);
- ``closed``: the connection was closed before any of this stream's response;
- ``truncated``: the stream was reset, or the connection closed, after its
  response began;
- ``malformed``: the peer's packets broke QUIC or HTTP/3 (this client closed
  the connection with an error code): every open stream fails at once.

A QUIC packet that cannot be decrypted or parsed is dropped, as RFC 9000
asks, so garbage from the peer shows up as a ``timeout``, never as a crash.

Bytes count into ``counter`` as UDP payloads (QUIC packets, encrypted), the
equivalent of the TCP payload bytes the TCP clients count; a connection is
counted once it is opened. ``exchange`` and ``open_stream`` may name a
``counter`` of their own, so that several roles sharing a connection each see
their own bytes::

    reply = await conn.exchange(b"GET", b"/inbox?after=0", headers, None, 5.0, counter=polls)

QUIC packets are encrypted and carry many streams, so a stream's wire bytes
are attributed (:mod:`loadgen.lean.quicbytes`): each datagram's UDP payload is
split among the streams whose frames it carried, in proportion to each
stream's frame bytes in it, and what no stream's counter takes (handshake,
ACKs, the control and QPACK streams) counts into the connection's counter.
The counters always add up exactly to the UDP bytes sent and received.

``tally`` counts the header bytes of HTTP/3: each HEADERS frame (its type,
length and QPACK field section) and the QPACK encoder and decoder stream
bytes each way.

Streamed bodies (Server-Sent Events): :meth:`~H3Connection.open_stream`
returns a :class:`ResponseStream` once the response HEADERS are in, with the
interface of :class:`loadgen.lean.h2.ResponseStream`; the body's bytes then go
to ``on_body(data, framing, received_ns)`` as they arrive, where ``framing`` is
the exact HTTP/3 framing read on the stream since the last call: the DATA frame
headers (type and length varints) and any frame of an unknown type.
``stream.done`` is set when the stream ends, is reset or the connection is
lost (``stream.error`` says why, None for a clean end); ``stream.close()``
resets it with H3_REQUEST_CANCELLED (RESET_STREAM and STOP_SENDING) while the
connection carries on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import H3_ALPN, ErrorCode
from aioquic.h3.connection import H3Connection as _H3Machine
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    StreamDataReceived,
    StreamReset,
)

from loadgen.clients.errors import ClientError
from loadgen.lean.connect import Target
from loadgen.lean.h2 import JSON, H2Reply, Headers, request_headers
from loadgen.lean.h2bytes import HeaderTally
from loadgen.lean.http import OnBody
from loadgen.lean.quicbytes import CountingQuic, RoleBytes
from loadgen.tls import client_quic
from loadgen.wire import WireCounter

clock = time.perf_counter_ns

__all__ = ["JSON", "H3Connection", "H3Reply", "Headers", "ResponseStream", "request_headers"]

#: An HTTP/3 reply has the fields of an HTTP/2 one.
H3Reply = H2Reply
ALPN = tuple(H3_ALPN)
#: HTTP/3's "request cancelled" code, for a stream this client gives up on.
CANCELLED = ErrorCode.H3_REQUEST_CANCELLED


class _Machine(_H3Machine):
    """aioquic's HTTP/3 machine, counting header bytes into a tally."""

    def __init__(self, quic: QuicConnection, tally: HeaderTally) -> None:
        super().__init__(quic)
        self.tally = tally
        #: Stream id -> HEADERS frame bytes received, for the streams watched (streamed
        #: bodies, whose framing is what their stream carried besides headers and data).
        self.header_bytes: dict[int, int] = {}

    def _encode_headers(self, stream_id: int, headers: Headers) -> bytes:
        before = self._encoder_bytes_sent
        frame_data: bytes = super()._encode_headers(stream_id, headers)
        # The HEADERS frame's own type (1 byte) and length, as it goes on the stream.
        size = 1 + len(encode_uint_var(len(frame_data))) + len(frame_data)
        self.tally.header_bytes_sent += size + self._encoder_bytes_sent - before
        return frame_data

    def _decode_headers(self, stream_id: int, frame_data: bytes | None) -> Headers:
        before = self._decoder_bytes_sent
        headers: Headers = super()._decode_headers(stream_id, frame_data)
        # None: a block that QPACK held (blocked) is resumed; its size was kept aside.
        length = len(frame_data) if frame_data is not None else self._blocked_size(stream_id)
        size = 1 + len(encode_uint_var(length)) + length
        self.tally.header_bytes_received += size
        if stream_id in self.header_bytes:
            self.header_bytes[stream_id] += size
        self.tally.header_bytes_sent += self._decoder_bytes_sent - before
        return headers

    def _blocked_size(self, stream_id: int) -> int:
        stream = self._stream.get(stream_id)
        return (stream.blocked_frame_size or 0) if stream is not None else 0

    def buffered(self, stream_id: int) -> int:
        """Bytes of a request stream received but not yet parsed (a partial frame)."""
        stream = self._stream.get(stream_id)
        return len(stream.buffer) if stream is not None else 0

    def peer_qpack_bytes(self) -> int:
        """Bytes received so far on the peer's QPACK encoder and decoder streams."""
        return int(self._decoder_bytes_received + self._encoder_bytes_received)


class _Stream:
    """One request's stream: its waiter, timer, reply so far and stamps."""

    __slots__ = (
        "body",
        "counter",
        "fed",
        "framed",
        "id",
        "on_body",
        "payload",
        "sent_ns",
        "status",
        "timer",
        "waiter",
    )

    def __init__(
        self,
        waiter: asyncio.Future[Any],
        on_body: OnBody | None = None,
        counter: WireCounter | None = None,
    ) -> None:
        self.waiter = waiter
        self.on_body = on_body
        self.counter = counter  # where this stream's share counts; None: the connection's
        self.id = -1
        self.status = 0  # 0 until the response HEADERS are in
        self.body: list[bytes] = []
        self.sent_ns = 0
        self.timer: asyncio.TimerHandle | None = None
        # A streamed body's stream bytes received, DATA payload seen and framing reported.
        self.fed = self.payload = self.framed = 0


class ResponseStream(_Stream):
    """A streamed response (see the module docstring): ``status``, ``done``, ``error``."""

    __slots__ = ("_conn", "done", "error")

    def __init__(
        self,
        conn: H3Connection,
        waiter: asyncio.Future[Any],
        on_body: OnBody,
        counter: WireCounter | None = None,
    ) -> None:
        super().__init__(waiter, on_body, counter)
        self._conn = conn
        self.done = asyncio.Event()
        self.error: ClientError | None = None

    def close(self) -> None:
        """Reset the stream with H3_REQUEST_CANCELLED (idempotent); the connection stays."""
        self._conn._give_up(self)
        self.done.set()


class H3Connection(asyncio.DatagramProtocol):
    """One HTTP/3 connection; see the module docstring."""

    def __init__(self, counter: WireCounter | None, target: Target, tally: HeaderTally) -> None:
        self._counter = counter
        self._target = target
        self.tally = tally
        self._loop = asyncio.get_running_loop()
        config = client_quic(ALPN, server_name=target.host)
        self._quic = CountingQuic(configuration=config)
        self._roles = RoleBytes(counter)
        self._h3 = _Machine(self._quic, tally)
        self._peer_qpack = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._streams: dict[int, _Stream] = {}
        self._handshake: asyncio.Future[None] = self._loop.create_future()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closing_self = False  # close() was called: a termination is not an error
        self._ended: ClientError | None = None  # why the connection ended, once it has
        self._handlers: dict[type, Callable[[Any, int], None]] = {
            HeadersReceived: self._headers,
            DataReceived: self._data,
        }

    @classmethod
    async def open(
        cls,
        target: Target,
        counter: WireCounter | None,
        timeout_s: float,
        tally: HeaderTally | None = None,
    ) -> H3Connection:
        """Open a UDP socket to ``target`` and complete the QUIC handshake within ``timeout_s``."""
        if not target.tls:
            raise ClientError("connect_error", "HTTP/3 runs over QUIC, which is always TLS")
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_datagram_endpoint(
                lambda: cls(counter, target, tally or HeaderTally()),
                remote_addr=(target.host, target.port),
            )
        except OSError as exc:
            raise ClientError("connect_error", f"{type(exc).__name__}: {exc}") from None
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(conn._handshake)
        except TimeoutError:
            conn._abort()
            raise ClientError(
                "timeout", f"QUIC handshake with {target.authority} took over {timeout_s}s"
            ) from None
        except BaseException:
            conn._abort()
            raise
        return conn

    # -- datagram protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        if self._counter is not None:
            self._counter.connections += 1
        self._quic.connect((self._target.host, self._target.port), now=self._loop.time())
        self._transmit()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        now_ns = clock()
        quic = self._quic
        quic.receive_datagram(data, addr, now=self._loop.time())
        # Counted before any reply it completes is handed over.
        self._roles.received(len(data), quic.received_streams)
        self._process(now_ns)
        self._transmit()

    def error_received(self, exc: Exception) -> None:
        # An ICMP error (nothing listening on that UDP port) ends the connection at once.
        self._end(ClientError("connect_error", f"{type(exc).__name__}: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(ClientError("closed", "connection is closed"))

    # -- events ---------------------------------------------------------------------------

    def _process(self, now_ns: int) -> None:
        quic, handlers = self._quic, self._handlers
        while (event := quic.next_event()) is not None:
            if isinstance(event, HandshakeCompleted):
                self._handshake_done(event)
            elif isinstance(event, ConnectionTerminated):
                self._terminated(event)
            elif isinstance(event, StreamReset):
                self._reset(event.stream_id)
            h3_events = self._h3.handle_event(event)
            if isinstance(event, StreamDataReceived):
                self._fed(event, h3_events)
            for h3_event in h3_events:
                handler = handlers.get(type(h3_event))
                if handler is not None:
                    handler(h3_event, now_ns)
        peer = self._h3.peer_qpack_bytes()
        if peer != self._peer_qpack:
            self.tally.header_bytes_received += peer - self._peer_qpack
            self._peer_qpack = peer
        # aioquic reports a connection it closes only after its draining period (three
        # probe timeouts); the streams must fail now, so the close is read as it begins.
        closing = self._quic._close_event
        if closing is not None and self._ended is None:
            self._terminated(closing)

    def _fed(self, event: StreamDataReceived, h3_events: list[H3Event]) -> None:
        """Note what a streamed body's stream received, before its DATA is handed over."""
        stream = self._streams.get(event.stream_id)
        if stream is None or stream.on_body is None:
            return
        stream.fed += len(event.data)
        sid = stream.id
        for h3_event in h3_events:
            if isinstance(h3_event, DataReceived) and h3_event.stream_id == sid:
                stream.payload += len(h3_event.data)

    def _handshake_done(self, event: HandshakeCompleted) -> None:
        if event.alpn_protocol not in ALPN:
            self._quic.close(error_code=ErrorCode.H3_GENERAL_PROTOCOL_ERROR)
            self._end(ClientError("connect_error", f"server chose ALPN {event.alpn_protocol!r}"))
        elif not self._handshake.done():
            self._handshake.set_result(None)

    def _terminated(self, event: ConnectionTerminated) -> None:
        if self._closing_self:
            error = ClientError("closed", "connection is closed")
        elif not self._handshake.done():
            error = ClientError(
                "connect_error", f"QUIC handshake failed: {event.reason_phrase or event.error_code}"
            )
        elif event.error_code and not self._peer_closed():
            error = ClientError(
                "malformed",
                f"bad HTTP/3 or QUIC from the server (error {event.error_code:#x}: "
                f"{event.reason_phrase or 'no reason'})",
            )
        else:
            error = ClientError("closed", f"server closed the connection ({event.error_code:#x})")
        self._end(error)

    def _peer_closed(self) -> bool:
        # The peer's CONNECTION_CLOSE puts QUIC in its draining state; a close of our
        # own (a protocol error found here) in its closing state.
        return self._quic._state.name == "DRAINING"

    def _headers(self, event: HeadersReceived, now_ns: int) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is None:
            return
        if stream.status == 0:
            self.tally.responses += 1
            status = dict(event.headers).get(b":status", b"")
            if not status.isdigit():
                self._fail(stream, ClientError("malformed", f"bad :status {status!r}"))
                return
            stream.status = int(status)
            if stream.on_body is not None:
                # A streamed body's timeout covers its HEADERS only: it may flow for hours.
                if stream.timer is not None:
                    stream.timer.cancel()
                    stream.timer = None
                if not stream.waiter.done():
                    stream.waiter.set_result(stream)
        if event.stream_ended:
            self._complete(stream, now_ns)

    def _data(self, event: DataReceived, now_ns: int) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is None:
            return
        data = event.data
        on_body = stream.on_body
        if on_body is not None:
            framing = self._framing(stream)
            if data or framing:
                on_body(data, framing, now_ns)
        elif data:
            stream.body.append(data)
        if event.stream_ended:
            self._complete(stream, now_ns)

    def _framing(self, stream: _Stream) -> int:
        """The framing a streamed body's stream has carried since the last report: the
        bytes parsed on it that were neither HEADERS frames nor DATA payload."""
        h3 = self._h3
        sid = stream.id
        parsed = stream.fed - h3.buffered(sid)
        framing = parsed - stream.payload - h3.header_bytes.get(sid, 0) - stream.framed
        if framing <= 0:
            return 0
        stream.framed += framing
        return framing

    def _complete(self, stream: _Stream, now_ns: int) -> None:
        self._forget(stream)
        if isinstance(stream, ResponseStream):
            stream.done.set()
        elif not stream.waiter.done():
            body = b"".join(stream.body)
            stream.waiter.set_result(H2Reply(stream.status, body, stream.sent_ns, now_ns))

    def _reset(self, stream_id: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            code = "truncated" if stream.status else "closed"
            self._fail(stream, ClientError(code, "the server reset the stream"))

    def _fail(self, stream: _Stream, error: ClientError) -> None:
        self._forget(stream)
        if not stream.waiter.done():
            stream.waiter.set_exception(error)
        if isinstance(stream, ResponseStream) and not stream.done.is_set():
            stream.error = error
            stream.done.set()

    def _forget(self, stream: _Stream) -> None:
        if self._streams.pop(stream.id, None) is not None:
            self._roles.retire(stream.id)
            self._h3.header_bytes.pop(stream.id, None)
        if stream.timer is not None:
            stream.timer.cancel()
            stream.timer = None

    def _end(self, error: ClientError) -> None:
        """The connection is over: fail the handshake and every open stream with ``error``."""
        if self._ended is not None:
            return
        self._ended = error
        if not self._handshake.done():
            self._handshake.set_exception(error)
            self._handshake.exception()  # retrieved: open() raises it, or gave up
        for stream in list(self._streams.values()):
            began = stream.status and error.code == "closed"
            self._fail(stream, ClientError("truncated", error.detail) if began else error)
        self._close_transport()

    # -- sending and timers -----------------------------------------------------------------

    def _transmit(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        quic = self._quic
        datagrams = quic.datagrams_to_send(now=self._loop.time())
        for data, _addr in datagrams:
            transport.sendto(data)
        if datagrams:
            self._roles.sent([len(data) for data, _ in datagrams], quic.sent_streams)
        self._arm_timer()

    def _arm_timer(self) -> None:
        at = self._quic.get_timer()
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            self._timer = self._loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._quic.handle_timer(now=self._loop.time())
        self._process(clock())
        self._transmit()

    def _timed_out(self, stream: _Stream, timeout_s: float) -> None:
        stream.timer = None
        self._cancel(stream)
        self._fail(stream, ClientError("timeout", f"no reply within {timeout_s}s"))

    def _cancel(self, stream: _Stream) -> None:
        """Reset a stream this client gives up on; the connection carries on."""
        if stream.id in self._streams and self._ended is None:
            try:
                self._quic.reset_stream(stream.id, CANCELLED)
                self._quic.stop_stream(stream.id, CANCELLED)
            except ValueError:
                pass  # already finished sending: the stop alone is enough, or nothing is
            self._transmit()

    # -- API --------------------------------------------------------------------------------

    async def exchange(
        self,
        method: bytes,
        path: bytes,
        headers: Headers,
        body: bytes | None,
        timeout_s: float,
        counter: WireCounter | None = None,
    ) -> H2Reply:
        """Send one request on a new stream and wait for its whole reply; the stream's
        share of the bytes counts into ``counter`` when given (see the module docstring).
        """
        stream = _Stream(self._loop.create_future(), None, counter)
        self._begin(stream, method, path, headers, body, timeout_s)
        try:
            reply: H2Reply = await stream.waiter
            return reply
        except BaseException:
            self._give_up(stream)
            raise

    async def open_stream(
        self,
        method: bytes,
        path: bytes,
        headers: Headers,
        on_body: OnBody,
        timeout_s: float,
        counter: WireCounter | None = None,
    ) -> ResponseStream:
        """Send a request without a body; return its stream once the response HEADERS are
        in (within ``timeout_s``, raising as ``exchange``). The stream's share of the bytes
        counts into ``counter`` when given."""
        stream = ResponseStream(self, self._loop.create_future(), on_body, counter)
        self._begin(stream, method, path, headers, None, timeout_s)
        try:
            await stream.waiter
            return stream
        except BaseException:
            self._give_up(stream)
            stream.done.set()
            raise

    def _begin(
        self,
        stream: _Stream,
        method: bytes,
        path: bytes,
        headers: Headers,
        body: bytes | None,
        timeout_s: float,
    ) -> None:
        """Send the request on a new stream and arm its timeout; its outcome lands in
        ``stream.waiter``."""
        if self._ended is not None or self._closing_self:
            raise ClientError("closed", "connection is closed")
        sid = self._quic.get_next_available_stream_id()
        stream.id = sid
        self._streams[sid] = stream
        self._roles.own(sid, stream.counter)
        if stream.on_body is not None:
            self._h3.header_bytes[sid] = 0  # watched: its framing is told apart
        stream.timer = self._loop.call_later(timeout_s, self._timed_out, stream, timeout_s)
        authority = self._target.authority.encode("latin-1")
        pseudo = ((b":method", method), (b":scheme", b"https"), (b":authority", authority))
        self.tally.requests += 1
        self._h3.send_headers(sid, [*pseudo, (b":path", path), *headers], end_stream=not body)
        if body:
            self._h3.send_data(sid, body, end_stream=True)
        stream.sent_ns = clock()
        self._transmit()

    def _give_up(self, stream: _Stream) -> None:
        """The caller has gone (cancelled, closed the stream): reset it if still open."""
        if stream.id in self._streams:
            if not stream.waiter.done():
                stream.waiter.cancel()
            self._cancel(stream)
            self._forget(stream)
        elif stream.waiter.done() and not stream.waiter.cancelled():
            stream.waiter.exception()  # retrieved: what the caller raised, or gave up on

    @property
    def is_open(self) -> bool:
        """True while new streams may start on this connection."""
        return self._ended is None and not self._closing_self and self._handshake.done()

    @property
    def streams(self) -> int:
        """Streams in flight."""
        return len(self._streams)

    def _close_transport(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()

    def _abort(self) -> None:
        self._closing_self = True
        self._end(ClientError("closed", "connection is closed"))

    def close(self) -> None:
        """Send CONNECTION_CLOSE and close the socket (idempotent); open streams fail."""
        if self._ended is None and not self._closing_self:
            self._closing_self = True
            self._quic.close(error_code=ErrorCode.H3_NO_ERROR)
            self._transmit()
            self._end(ClientError("closed", "connection is closed"))
