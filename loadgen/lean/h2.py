"""One HTTP/2 client connection as an asyncio Protocol, framed by the sans-I/O ``h2``.

::

    conn = await H2Connection.open(target, counter, timeout_s)
    headers = request_headers(content_type=JSON)       # once; lower-case, checked
    reply = await conn.exchange(b"POST", b"/rpc", headers, body, timeout_s)
    reply.status, reply.body, reply.sent_ns, reply.received_ns
    conn.tally.header_bytes_sent, conn.tally.requests  # HEADERS frame bytes, requests
    conn.close()

Plain TCP speaks HTTP/2 with prior knowledge (h2c); TLS offers ALPN ``h2``
and a server that does not pick it is a ``connect_error``. Many exchanges
run at once, each on its own stream; past the server's
``MAX_CONCURRENT_STREAMS`` (100 until its SETTINGS say otherwise) they wait
for a free stream, in the order they came. Each reply carries its own
socket-boundary stamps: just before the write of that stream's HEADERS, and
when its END_STREAM has been read. Request bodies follow the server's flow
control windows; received data is acknowledged as it is handed over, once per
stream for each read.

``exchange`` raises :class:`~loadgen.clients.errors.ClientError`:

- ``closed``: the connection was closed, or the server's GOAWAY left this
  stream out (its last processed stream is lower), or the server refused the
  stream (RST_STREAM REFUSED_STREAM), before any of its response: the server
  did not act on it;
- ``truncated``: the stream was reset otherwise, or the connection was lost
  after its response began;
- ``malformed``: the server's bytes are not HTTP/2 (every open stream fails
  and the connection closes);
- ``timeout``: no whole reply within ``timeout_s``; only that stream is reset.

An exchange that is cancelled (an abandoned long poll) resets its stream with
CANCEL, and the connection carries on; stream ids are never reused, so a late
reply cannot reach another request.

Bytes count into the connection's ``counter``, except that ``exchange`` and
``open_stream`` may name a ``counter`` of their own: every frame of that
stream (its HEADERS, DATA, WINDOW_UPDATE and RST_STREAM frames, 9-byte frame
headers included) then counts there instead, so that several roles sharing a
connection each see their own bytes, and the connection's counter keeps the
preface and the frames of stream 0 (SETTINGS, PING, WINDOW_UPDATE, GOAWAY)::

    reply = await conn.exchange(b"GET", b"/inbox?after=0", headers, None, 5.0, counter=polls)

The counters always add up to the bytes on the wire. Over TLS the kernel counts
the connection's bytes as a whole (:class:`~loadgen.lean.connect.ByteCounting`):
a stream's frames then move to its ``counter`` at their plaintext size, and the
connection's counter keeps, besides the frames of stream 0, the TLS handshake
and every record's header and tag (TLS 1.3 adds 22 bytes to a record).

Streamed bodies (Server-Sent Events): :meth:`~H2Connection.open_stream`
returns a :class:`ResponseStream` once the response HEADERS are in; each DATA
frame's bytes then go to ``on_body(data, framing, received_ns)``, where
``framing`` is that frame's overhead (its 9-byte header and any padding).
``stream.done`` is set when the stream ends, is reset or the connection is
lost (``stream.error`` says why, None for a clean end); ``stream.close()``
resets it with CANCEL.

Extended CONNECT (RFC 8441, WebSocket over HTTP/2): :meth:`~H2Connection.open_tunnel`
waits for the server's SETTINGS, refuses a server that does not set
``SETTINGS_ENABLE_CONNECT_PROTOCOL`` (a ``connect_error`` saying so), sends
``:method CONNECT`` with ``:protocol`` and returns a :class:`Tunnel` once a 200
reply is in (another status is a ``connect_error`` naming it). Its DATA both ways
carries the tunnelled protocol: ``tunnel.send(data)`` (queued past the windows),
``tunnel.end()`` (END_STREAM); the server's DATA reach ``on_body`` as a streamed
body's do, and ``on_done`` (optional) is called once when the stream is over::

    tunnel = await conn.open_tunnel(b"/ws", b"websocket", headers, on_body, 5.0)
    tunnel.send(frame_bytes)
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, NamedTuple

import h2.connection
import h2.events
from h2.config import H2Configuration
from h2.errors import ErrorCodes
from h2.exceptions import NoAvailableStreamIDError, ProtocolError
from h2.settings import SettingCodes, Settings
from h2.utilities import HeaderValidationFlags, validate_headers

from loadgen.clients.errors import ClientError
from loadgen.lean.connect import ByteCounting, Target, open_connection
from loadgen.lean.h2bytes import PREFACE, FrameError, FrameScan, HeaderTally
from loadgen.lean.hpackmemo import KEPT, MemoDecoder, MemoEncoder
from loadgen.lean.http import JSON, OnBody
from loadgen.wire import WireCounter

clock = time.perf_counter_ns

__all__ = [
    "JSON",
    "H2Connection",
    "H2Reply",
    "Headers",
    "ResponseStream",
    "Tunnel",
    "request_headers",
]

ALPN = ("h2",)
#: Regular (not pseudo) request header fields: lower-case names, as h2 sends them.
Headers = tuple[tuple[bytes, bytes], ...]
#: Streams open at once until the server's SETTINGS say how many it takes: the 100 that
#: RFC 9113 (section 5.1.2) recommends servers allow at least.
STREAMS_BEFORE_SETTINGS = 100
#: Largest frame accepted: the SETTINGS_MAX_FRAME_SIZE default, which this client keeps.
MAX_FRAME = 16384
#: Retired streams whose counters are kept for frames that arrive after them (the rest
#: of a reply to a cancelled stream, a late WINDOW_UPDATE): a few, not every stream ever.
LATE_STREAMS = 64
#: Header fields HTTP/2 forbids (RFC 9113 section 8.2.2).
CONNECTION_FIELDS = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"}
)

_CONFIG = H2Configuration(
    client_side=True,
    header_encoding=None,
    # Request headers are checked once, when request_headers() builds them; h2's own
    # per-request checks cost about 14 us of the ~100 us h2 spends on an echo exchange.
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
    # The server's header fields go through h2's own checks (validate_headers) here, once
    # for each distinct list (H2Connection._valid), not on every response. Inbound
    # normalisation only joins a request's split cookie fields, which a client never gets.
    validate_inbound_headers=False,
    normalize_inbound_headers=False,
)
#: How h2 checks a response's header fields, an informational response's and trailers'.
_RESPONSE = HeaderValidationFlags(
    is_client=True, is_trailer=False, is_response_header=True, is_push_promise=False
)
_TRAILERS = HeaderValidationFlags(
    is_client=True, is_trailer=True, is_response_header=False, is_push_promise=False
)


class H2Reply(NamedTuple):
    """A whole reply and the socket-boundary stamps of its stream."""

    status: int
    body: bytes
    sent_ns: int
    received_ns: int


def request_headers(
    *, content_type: bytes | None = None, headers: Iterable[tuple[str, str]] = ()
) -> Headers:
    """The regular header fields of a request, checked once and lower-cased.

    ValueError for a line break or NUL, or a field HTTP/2 forbids (``Connection``...).
    """
    fields: list[tuple[bytes, bytes]] = []
    if content_type is not None:
        fields.append((b"content-type", content_type))
    for name, value in headers:
        lower = name.lower()
        if any(c in name + value for c in "\r\n\0") or not lower or lower.startswith(":"):
            raise ValueError(f"header {name!r} has a line break, a NUL or a bad name")
        if lower in CONNECTION_FIELDS:
            raise ValueError(f"header {name!r} is not allowed in HTTP/2")
        fields.append((lower.encode("latin-1"), value.encode("latin-1")))
    return tuple(fields)


class _Machine(h2.connection.H2Connection):
    """h2's client state machine, which keeps reading after a GOAWAY.

    h2 closes its state on a GOAWAY and refuses every later frame, but the
    server still owes the responses of the streams up to the GOAWAY's last
    stream id (RFC 9113 section 6.8). Its HPACK encoder and decoder remember the
    blocks that leave their tables unchanged (:mod:`loadgen.lean.hpackmemo`).
    """

    def __init__(self, config: H2Configuration) -> None:
        super().__init__(config=config)
        decoder = MemoDecoder(self.decoder.max_header_list_size)
        decoder.max_allowed_table_size = self.decoder.max_allowed_table_size
        self.encoder, self.decoder = MemoEncoder(), decoder

    def _receive_goaway_frame(self, frame: Any) -> Any:
        state = self.state_machine.state
        result = super()._receive_goaway_frame(frame)
        self.state_machine.state = state
        return result


class _Stream:
    """One request's stream, from the moment it is asked for."""

    __slots__ = (
        "began",
        "body",
        "counter",
        "holds_slot",
        "id",
        "on_body",
        "queued",
        "sent_ns",
        "status",
        "timer",
        "waiter",
        "wake",
    )

    def __init__(
        self,
        waiter: asyncio.Future[Any],
        on_body: OnBody | None = None,
        counter: WireCounter | None = None,
    ) -> None:
        self.waiter = waiter
        self.on_body = on_body
        self.counter = counter  # where this stream's frames count; None: the connection's
        self.body: list[bytes] = []
        self.id = 0
        self.status = 0
        self.sent_ns = 0
        self.began = False  # the response HEADERS are in
        self.queued = False  # waiting for a free stream
        self.holds_slot = False  # counted against MAX_CONCURRENT_STREAMS
        self.timer: asyncio.TimerHandle | None = None
        self.wake: asyncio.Future[None] | None = None  # a slot or a window opened


class ResponseStream(_Stream):
    """A streamed response (see the module docstring): ``status``, ``done``, ``error``;
    ``on_done`` (when set) is called once, as ``done`` is set."""

    __slots__ = ("_conn", "done", "error", "on_done")

    def __init__(
        self,
        conn: H2Connection,
        waiter: asyncio.Future[Any],
        on_body: OnBody,
        counter: WireCounter | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(waiter, on_body, counter)
        self._conn = conn
        self.done = asyncio.Event()
        self.error: ClientError | None = None
        self.on_done = on_done

    def _finish(self, error: ClientError | None) -> None:
        """The stream is over: ``error`` says why (None: a clean end); once only."""
        if self.done.is_set():
            return
        self.error = error
        self.done.set()
        if self.on_done is not None:
            self.on_done()

    def close(self) -> None:
        """Reset the stream with CANCEL (idempotent); the connection stays open."""
        self._conn._retire(self)
        self._finish(None)


class Tunnel(ResponseStream):
    """An extended CONNECT stream (see the module docstring): DATA both ways."""

    __slots__ = ("end_sent", "ended", "pending")

    def __init__(
        self,
        conn: H2Connection,
        waiter: asyncio.Future[Any],
        on_body: OnBody,
        counter: WireCounter | None = None,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(conn, waiter, on_body, counter, on_done)
        #: What the windows have not let out yet, sent as they open.
        self.pending: list[memoryview] = []
        #: END_STREAM is asked for (it may wait behind ``pending``), and is sent.
        self.ended = False
        self.end_sent = False

    @property
    def is_open(self) -> bool:
        """True while this side may still send."""
        return not self.ended and not self.done.is_set() and self._conn._usable_for(self)

    def send(self, data: bytes) -> None:
        """Send ``data`` in DATA frames, as much as the windows allow now, the rest as they
        open; ClientError ``closed`` when the stream or connection is over."""
        if not self.is_open:
            raise ClientError("closed", "the tunnel is closed")
        self._conn._tunnel_send(self, memoryview(data), False)

    def end(self) -> None:
        """End this side of the stream (END_STREAM), after what is pending; idempotent."""
        if self.ended or self.done.is_set():
            return
        self._conn._tunnel_send(self, memoryview(b""), True)


class H2Connection(asyncio.Protocol):
    """One HTTP/2 connection; see the module docstring."""

    #: The receive window advertised for each stream and the connection, as h2load's
    #: default (2**30 - 1), so that the server never waits for this client.
    window = 2**30 - 1

    def __init__(self, counter: WireCounter | None, target: Target, tally: HeaderTally) -> None:
        self._bytes = ByteCounting(counter, target.tls)
        self._counter = counter  # the connection's: where streams' own bytes move from
        self._target = target
        self.tally = tally
        self._h2 = _Machine(config=_CONFIG)
        self._scan_in = FrameScan(limit=MAX_FRAME)
        self._scan_out = FrameScan(skip=len(PREFACE), sent=True)
        # Stream id -> its own counter; the scans use it from the first such stream on.
        self._owners: dict[int, WireCounter] = {}
        self._late: collections.deque[int] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._streams: dict[int, _Stream] = {}
        self._queue: collections.deque[_Stream] = collections.deque()
        self._blocked: list[asyncio.Future[None]] = []
        self._pseudo: dict[tuple[bytes, bytes], Headers] = {}
        self._active = 0
        self._max_streams = STREAMS_BEFORE_SETTINGS
        self._usable = True  # new streams may start
        self._dead = False  # nothing more is sent
        self._receiving = False
        self._refusal: str | None = None
        #: The server's first SETTINGS are in (or the connection is gone).
        self._peer_settings = asyncio.Event()
        self._failure: ClientError | None = None  # why the connection broke, if it did
        self._tunnels_waiting: list[Tunnel] = []  # tunnels with data behind the windows
        self._broken = False  # the server's bytes were not HTTP/2
        # Header field lists (with how they were checked) that passed h2's checks.
        self._valid: set[tuple[Any, ...]] = set()
        # Stream id -> DATA bytes read in this data_received, acknowledged at its end.
        self._unacked: dict[int, int] = {}
        self._handlers: dict[type, Callable[[Any, int], None]] = {
            h2.events.DataReceived: self._data,
            h2.events.ResponseReceived: self._response,
            h2.events.InformationalResponseReceived: self._informational,
            h2.events.TrailersReceived: self._trailers,
            h2.events.StreamEnded: self._ended,
            h2.events.StreamReset: self._reset,
            h2.events.WindowUpdated: self._window,
            h2.events.RemoteSettingsChanged: self._settings,
            h2.events.ConnectionTerminated: self._goaway,
        }

    @classmethod
    async def open(
        cls,
        target: Target,
        counter: WireCounter | None,
        timeout_s: float,
        tally: HeaderTally | None = None,
    ) -> H2Connection:
        """Connect to ``target``; raises ClientError ``connect_error``/``timeout``.

        Header bytes count into ``tally`` (a new one by default), which may be
        shared by several connections.
        """
        tally = HeaderTally() if tally is None else tally
        _, conn = await open_connection(
            target, lambda: cls(counter, target, tally), timeout_s, alpn=ALPN
        )
        if conn._refusal is not None:
            conn.close()
            raise ClientError("connect_error", conn._refusal)
        return conn

    # -- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._bytes.made(transport)
        if self._target.tls:
            ssl_object = transport.get_extra_info("ssl_object")
            chosen = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
            if chosen != "h2":
                self._refusal = (
                    f"{self._target.authority}: the server did not agree to h2 via ALPN "
                    f"(it chose {chosen!r})"
                )
                self._usable = False
                self._dead = True
                return
        h2c = self._h2
        h2c.local_settings = Settings(
            client=True,
            initial_values={
                SettingCodes.ENABLE_PUSH: 0,
                SettingCodes.INITIAL_WINDOW_SIZE: self.window,
                SettingCodes.MAX_HEADER_LIST_SIZE: h2c.DEFAULT_MAX_HEADER_LIST_SIZE,
            },
        )
        h2c.initiate_connection()
        if self.window > h2c.inbound_flow_control_window:
            h2c.increment_flow_control_window(self.window - h2c.inbound_flow_control_window)
        self._flush()

    def data_received(self, data: bytes) -> None:
        self._bytes.read(len(data))
        if self._dead:
            return
        try:
            self.tally.header_bytes_received += self._scan_in.feed(data)
            events = self._h2.receive_data(data)
        except FrameError as exc:
            self._h2.close_connection(ErrorCodes.PROTOCOL_ERROR)
            self._malformed(str(exc))
            return
        except ProtocolError as exc:
            self._malformed(f"{type(exc).__name__}: {exc}")
            return
        now = clock()
        handlers = self._handlers
        self._receiving = True
        try:
            for event in events:
                handler = handlers.get(type(event))
                if handler is not None:
                    handler(event, now)
                    if self._broken:
                        return
            unacked = self._unacked
            if unacked:
                # One acknowledgement per stream for all the DATA of this read.
                h2c = self._h2
                for sid, size in unacked.items():
                    h2c.acknowledge_received_data(size, sid)
                unacked.clear()
        finally:
            self._receiving = False
        self._flush()

    def eof_received(self) -> bool | None:
        self._bytes.refresh()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._bytes.lost()
        self._usable = False
        self._dead = True
        self._peer_settings.set()
        self._fail_all(None)

    # -- h2 events ----------------------------------------------------------------------

    def _data(self, event: h2.events.DataReceived, now: int) -> None:
        sid = event.stream_id
        size = event.flow_controlled_length
        if size:
            unacked = self._unacked
            unacked[sid] = unacked.get(sid, 0) + size
        stream = self._streams.get(sid)
        if stream is None:
            return
        data = event.data
        if stream.on_body is None:
            stream.body.append(data)
        else:
            stream.on_body(data, 9 + size - len(data), now)

    def _checked(self, headers: list[Any], flags: HeaderValidationFlags) -> bool:
        """Whether the server's ``headers`` pass h2's checks (RFC 9113 section 8.2),
        run once for each distinct list; when not, the connection fails as malformed,
        as when h2 runs them itself."""
        key = (flags, *headers)
        valid = self._valid
        if key in valid:
            return True
        try:
            collections.deque(validate_headers(headers, flags), maxlen=0)
        except ProtocolError as exc:
            self._h2.close_connection(ErrorCodes.PROTOCOL_ERROR)
            self._malformed(f"{type(exc).__name__}: {exc}")
            return False
        if len(valid) >= KEPT:
            valid.clear()
        valid.add(key)
        return True

    def _informational(self, event: h2.events.InformationalResponseReceived, _now: int) -> None:
        self._checked(event.headers, _RESPONSE)

    def _trailers(self, event: h2.events.TrailersReceived, _now: int) -> None:
        self._checked(event.headers, _TRAILERS)

    def _response(self, event: h2.events.ResponseReceived, _now: int) -> None:
        if not self._checked(event.headers, _RESPONSE):
            return
        self.tally.responses += 1
        stream = self._streams.get(event.stream_id)
        if stream is None:
            return
        for name, value in event.headers:
            if name == b":status":
                stream.status = int(value)
                break
        stream.began = True
        if stream.on_body is not None:
            # A stream's timeout covers its HEADERS only: the body may flow for hours.
            if stream.timer is not None:
                stream.timer.cancel()
                stream.timer = None
            if not stream.waiter.done():
                stream.waiter.set_result(stream)

    def _ended(self, event: h2.events.StreamEnded, now: int) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is None:
            return
        if stream.on_body is None:
            if not stream.waiter.done():
                stream.waiter.set_result(
                    H2Reply(stream.status, b"".join(stream.body), stream.sent_ns, now)
                )
        elif isinstance(stream, ResponseStream):
            if isinstance(stream, Tunnel) and not stream.end_sent:
                # The server's side is over: end ours too rather than reset the stream.
                stream.pending.clear()
                self._tunnel_send(stream, memoryview(b""), True)
            stream._finish(None)
        self._retire(stream)

    def _reset(self, event: h2.events.StreamReset, _now: int) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is None:
            return
        code = event.error_code
        name = code.name if isinstance(code, ErrorCodes) else str(code)
        if not event.remote_reset:
            # h2 reset it: the server broke the protocol on this stream.
            error = ClientError("malformed", f"the server's frames broke stream rules ({name})")
        elif not stream.began and code == ErrorCodes.REFUSED_STREAM:
            error = ClientError("closed", "the server refused the stream (REFUSED_STREAM)")
        else:
            where = "inside" if stream.began else "before"
            error = ClientError("truncated", f"stream reset by the server ({name}) {where} a reply")
        self._fail_stream(stream, error)

    def _window(self, _event: h2.events.WindowUpdated, _now: int) -> None:
        self._wake_blocked()
        if self._tunnels_waiting:
            waiting, self._tunnels_waiting = self._tunnels_waiting, []
            for tunnel in waiting:
                self._tunnel_send(tunnel, memoryview(b""), tunnel.ended)

    def _settings(self, _event: h2.events.RemoteSettingsChanged, _now: int) -> None:
        self._peer_settings.set()
        most = self._h2.remote_settings.max_concurrent_streams
        self._max_streams = most
        if most == 0:
            # No new streams at all: a stopping server says so before its GOAWAY.
            self._drain(None, "the server takes no new streams (MAX_CONCURRENT_STREAMS 0)")
        self._hand_over()
        self._wake_blocked()

    def _goaway(self, event: h2.events.ConnectionTerminated, _now: int) -> None:
        last = event.last_stream_id or 0
        self._drain(last, f"the server is going away (GOAWAY, last stream {last})")

    def _drain(self, last: int | None, note: str) -> None:
        """Start no more streams; fail those the server will not process (ids past
        ``last``) and the waiting ones; close once the others are done."""
        self._usable = False
        for stream in list(self._queue):
            self._fail_stream(stream, ClientError("closed", note))
        if last is not None:
            for sid, stream in list(self._streams.items()):
                if sid > last:
                    self._fail_stream(stream, ClientError("closed", note))
        if not self._streams and not self._dead:
            self.close()

    def _malformed(self, detail: str) -> None:
        self._usable = False
        self._broken = True
        self._flush()  # h2's GOAWAY (PROTOCOL_ERROR)
        self._dead = True
        self._failure = ClientError("malformed", f"not HTTP/2: {detail}")
        self._peer_settings.set()
        self._fail_all(self._failure)
        self._close_transport()

    # -- streams ------------------------------------------------------------------------

    def _fail_stream(self, stream: _Stream, error: ClientError) -> None:
        if not stream.waiter.done():
            stream.waiter.set_exception(error)
        if isinstance(stream, ResponseStream):
            stream._finish(error)
        self._retire(stream)

    def _fail_all(self, malformed: ClientError | None) -> None:
        for stream in list(self._queue):
            self._fail_stream(stream, ClientError("closed", "connection closed before the send"))
        for stream in list(self._streams.values()):
            if malformed is not None:
                error = malformed
            elif stream.began:
                error = ClientError("truncated", "connection closed inside the response")
            else:
                error = ClientError("closed", "connection closed before a response")
            self._fail_stream(stream, error)
        self._wake_blocked()

    def _retire(self, stream: _Stream) -> None:
        """Forget ``stream``, resetting it if it is still open; idempotent."""
        if stream.timer is not None:
            stream.timer.cancel()
            stream.timer = None
        if stream.wake is not None and not stream.wake.done():
            stream.wake.set_result(None)  # its task looks at the waiter next
        if stream.queued:
            stream.queued = False
            self._queue.remove(stream)
            return
        if not stream.holds_slot:
            return
        stream.holds_slot = False
        sid = stream.id
        if sid:
            del self._streams[sid]
            if not self._dead:
                state = self._h2.streams.get(sid)
                if state is not None and not state.closed:
                    self._h2.reset_stream(sid, ErrorCodes.CANCEL)
                    if not self._receiving:
                        self._flush()
            if sid in self._owners:
                self._late.append(sid)
                if len(self._late) > LATE_STREAMS:
                    del self._owners[self._late.popleft()]
        self._active -= 1
        self._hand_over()
        if not self._usable and not self._streams and not self._dead:
            self.close()

    def _hand_over(self) -> None:
        queue = self._queue
        while queue and self._usable and self._active < self._max_streams:
            stream = queue.popleft()
            stream.queued = False
            stream.holds_slot = True
            self._active += 1
            if stream.wake is not None and not stream.wake.done():
                stream.wake.set_result(None)

    def _wake_blocked(self) -> None:
        blocked, self._blocked = self._blocked, []
        for wake in blocked:
            if not wake.done():
                wake.set_result(None)

    def _timed_out(self, stream: _Stream, timeout_s: float) -> None:
        stream.timer = None
        self._fail_stream(stream, ClientError("timeout", f"no reply within {timeout_s}s"))

    async def _wait_for_slot(self, stream: _Stream) -> None:
        """Wait for a free stream, after those that asked first."""
        stream.wake = self._loop.create_future()
        stream.queued = True
        self._queue.append(stream)
        try:
            await stream.wake
        finally:
            stream.wake = None

    def _start(
        self,
        stream: _Stream,
        method: bytes,
        path: bytes,
        headers: Headers,
        body: bytes | None,
        protocol: bytes | None = None,
    ) -> memoryview | None:
        """Send HEADERS and as much of ``body`` as the windows allow; return what is left.
        With ``protocol`` the HEADERS are an extended CONNECT's, and the stream stays open."""
        if not self._usable:
            raise ClientError("closed", "connection is closed")
        h2c = self._h2
        try:
            sid = h2c.get_next_available_stream_id()
        except NoAvailableStreamIDError:
            self._usable = False
            raise ClientError("closed", "the connection has used up its stream ids") from None
        pseudo = self._pseudo.get((method, path))
        if pseudo is None:
            pseudo = self._pseudo[method, path] = (
                (b":method", method),
                (b":scheme", b"https" if self._target.tls else b"http"),
                (b":authority", self._target.authority.encode("latin-1")),
                (b":path", path),
            )
        if protocol is not None:
            pseudo = (pseudo[0], (b":protocol", protocol), *pseudo[1:])
        stream.id = sid
        self._streams[sid] = stream
        counter = stream.counter
        if counter is not None and counter is not self._counter:
            self._owners[sid] = counter
            if self._scan_out.owners is None:
                for scan in (self._scan_out, self._scan_in):
                    scan.owners, scan.source = self._owners, self._counter
        rest: memoryview | None = None
        try:
            if protocol is not None:
                h2c.send_headers(sid, pseudo + headers)
            elif not body:
                h2c.send_headers(sid, pseudo + headers, end_stream=True)
            else:
                h2c.send_headers(sid, pseudo + headers)
                rest = self._send_body(sid, memoryview(body))
        except ProtocolError as exc:
            self._usable = False
            raise ClientError("closed", f"cannot send on this connection: {exc}") from None
        self.tally.requests += 1
        stream.sent_ns = clock()
        self._flush()
        return rest

    def _send_body(self, sid: int, body: memoryview) -> memoryview | None:
        """Queue the part of ``body`` that the windows allow; None once all of it is."""
        h2c = self._h2
        while body:
            size = min(h2c.local_flow_control_window(sid), h2c.max_outbound_frame_size)
            if size >= len(body):
                h2c.send_data(sid, body, end_stream=True)
                return None
            if size <= 0:
                return body
            h2c.send_data(sid, body[:size])
            body = body[size:]
        return None

    async def _send_rest(self, stream: _Stream, rest: memoryview) -> None:
        """Send the rest of a body as the server opens its windows."""
        left: memoryview | None = rest
        while left is not None:
            wake: asyncio.Future[None] = self._loop.create_future()
            stream.wake = wake
            self._blocked.append(wake)
            try:
                await wake
            finally:
                stream.wake = None
            if stream.waiter.done() or stream.id not in self._streams or self._dead:
                return
            try:
                left = self._send_body(stream.id, left)
            except ProtocolError as exc:
                self._fail_stream(stream, ClientError("truncated", f"cannot send the body: {exc}"))
                return
            self._flush()

    def _abandon(self, stream: _Stream) -> None:
        """The caller has gone (failed, timed out, cancelled): free the stream."""
        waiter = stream.waiter
        if not waiter.done():
            waiter.cancel()
        elif not waiter.cancelled():
            waiter.exception()  # retrieved: it is what the caller raised, or gave up on
        self._retire(stream)

    # -- API ----------------------------------------------------------------------------

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
        bytes count into ``counter`` when given (see the module docstring)."""
        if not self._usable:
            raise ClientError("closed", "connection is closed")
        stream = _Stream(self._loop.create_future(), None, counter)
        try:
            pending = self._begin(stream, method, path, headers, body, timeout_s)
            if pending is not None:
                await pending
            reply: H2Reply = await stream.waiter
            return reply
        except BaseException:
            self._abandon(stream)
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
        in. The stream's bytes count into ``counter`` when given."""
        if not self._usable:
            raise ClientError("closed", "connection is closed")
        stream = ResponseStream(self, self._loop.create_future(), on_body, counter)
        try:
            pending = self._begin(stream, method, path, headers, None, timeout_s)
            if pending is not None:
                await pending
            await stream.waiter
            return stream
        except BaseException:
            self._abandon(stream)
            stream._finish(None)
            raise

    async def open_tunnel(
        self,
        path: bytes,
        protocol: bytes,
        headers: Headers,
        on_body: OnBody,
        timeout_s: float,
        on_done: Callable[[], None] | None = None,
    ) -> Tunnel:
        """Open an extended CONNECT stream for ``protocol`` (RFC 8441) and return it once the
        server has answered 200 (see the module docstring); ClientError ``connect_error``
        when the server does not offer extended CONNECT or refuses this one, ``closed``,
        ``malformed`` or ``timeout`` as for an exchange."""
        authority = self._target.authority
        try:
            async with asyncio.timeout(timeout_s):
                await self._peer_settings.wait()
        except TimeoutError:
            raise ClientError(
                "timeout", f"{authority}: no SETTINGS from the server within {timeout_s}s"
            ) from None
        if self._failure is not None:
            raise self._failure
        if not self._usable:
            raise ClientError("closed", "connection is closed")
        if self._h2.remote_settings.enable_connect_protocol != 1:
            raise ClientError(
                "connect_error",
                f"{authority}: the server's SETTINGS do not enable extended CONNECT "
                "(SETTINGS_ENABLE_CONNECT_PROTOCOL), so it takes no "
                f"{protocol.decode('latin-1')} over HTTP/2",
            )
        tunnel = Tunnel(self, self._loop.create_future(), on_body, None, on_done)
        try:
            pending = self._begin(tunnel, b"CONNECT", path, headers, None, timeout_s, protocol)
            if pending is not None:
                await pending
            await tunnel.waiter
        except BaseException:
            self._abandon(tunnel)
            tunnel._finish(None)
            raise
        if tunnel.status != 200:
            status = tunnel.status
            tunnel.on_done = None
            tunnel.close()
            raise ClientError(
                "connect_error",
                f"HTTP {status}: {authority} refused the extended CONNECT for "
                f"{protocol.decode('latin-1')}",
            )
        return tunnel

    def _usable_for(self, tunnel: Tunnel) -> bool:
        """True while ``tunnel`` may still send on this connection."""
        return not self._dead and tunnel.id in self._streams

    def _tunnel_send(self, tunnel: Tunnel, data: memoryview, end: bool) -> None:
        """Queue ``data`` on ``tunnel`` (then END_STREAM if ``end``), sending what the
        windows allow; the rest waits for a WINDOW_UPDATE."""
        if data:
            tunnel.pending.append(data)
        tunnel.ended = tunnel.ended or end
        if self._dead or tunnel.id not in self._streams or tunnel.end_sent:
            tunnel.pending.clear()
            return
        h2c = self._h2
        sid = tunnel.id
        pending = tunnel.pending
        try:
            while pending:
                chunk = pending[0]
                size = min(h2c.local_flow_control_window(sid), h2c.max_outbound_frame_size)
                if size <= 0:
                    break
                if size >= len(chunk):
                    pending.pop(0)
                    last = tunnel.ended and not pending
                    h2c.send_data(sid, chunk, end_stream=last)
                    tunnel.end_sent = last
                else:
                    h2c.send_data(sid, chunk[:size])
                    pending[0] = chunk[size:]
            if pending:
                if tunnel not in self._tunnels_waiting:
                    self._tunnels_waiting.append(tunnel)
            elif tunnel.ended and not tunnel.end_sent:
                h2c.end_stream(sid)
                tunnel.end_sent = True
        except ProtocolError as exc:
            tunnel.pending.clear()
            tunnel.end_sent = True
            self._fail_stream(tunnel, ClientError("truncated", f"cannot send: {exc}"))
            return
        if not self._receiving:
            self._flush()

    def _begin(
        self,
        stream: _Stream,
        method: bytes,
        path: bytes,
        headers: Headers,
        body: bytes | None,
        timeout_s: float,
        protocol: bytes | None = None,
    ) -> Coroutine[Any, Any, None] | None:
        """Arm ``stream``'s timeout, take a free stream (after those that asked first) and
        send the request, its body as the windows open.

        None when all of it is sent now; else what the caller awaits first (a free
        stream, the windows). The caller then awaits ``stream.waiter``, where a failure
        or timeout meanwhile lands, and abandons ``stream`` if either raises (closed,
        cancelled)."""
        stream.timer = self._loop.call_later(timeout_s, self._timed_out, stream, timeout_s)
        if self._active < self._max_streams and not self._queue:
            self._active += 1
            stream.holds_slot = True
            rest = self._start(stream, method, path, headers, body, protocol)
            return None if rest is None else self._send_rest(stream, rest)
        return self._begin_later(stream, method, path, headers, body, protocol)

    async def _begin_later(
        self,
        stream: _Stream,
        method: bytes,
        path: bytes,
        headers: Headers,
        body: bytes | None,
        protocol: bytes | None = None,
    ) -> None:
        """:meth:`_begin` once a stream is free."""
        await self._wait_for_slot(stream)
        if not stream.waiter.done():
            rest = self._start(stream, method, path, headers, body, protocol)
            if rest is not None:
                await self._send_rest(stream, rest)

    @property
    def is_open(self) -> bool:
        """True while new streams may start on this connection."""
        return self._usable and self._transport is not None and not self._transport.is_closing()

    @property
    def streams(self) -> int:
        """Streams in flight or waiting for a free one."""
        return len(self._streams) + len(self._queue)

    def _flush(self) -> None:
        transport = self._transport
        data = self._h2.data_to_send()
        if data and transport is not None and not transport.is_closing():
            self.tally.header_bytes_sent += self._scan_out.feed(data)
            transport.write(data)
            self._bytes.wrote(len(data))

    def _close_transport(self) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            self._bytes.refresh()
            transport.close()

    def close(self) -> None:
        """Send GOAWAY and close the connection (idempotent); open streams fail."""
        self._usable = False
        if not self._dead:
            self._dead = True
            self._h2.close_connection()
            self._flush()
        self._close_transport()
