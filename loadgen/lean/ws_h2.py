"""One WebSocket over HTTP/2 (RFC 8441): an extended CONNECT stream on its own connection.

::

    conn = await WsH2Connection.open("ws://127.0.0.1:8080/ws", counter, timeout_s, on_message)
    conn.send_text(b'{"op":"echo",...}')     # one masked text frame in DATA, one write
    conn.sent_ns                              # when that write happened
    # each complete message reaches on_message(data, received_ns, wire_bytes);
    # on_close() (optional) is called once when the WebSocket is gone
    await conn.close(timeout_s)              # closing handshake, END_STREAM, GOAWAY
    conn.closed (an asyncio.Event), conn.close_code, conn.tally

The same interface as :class:`~loadgen.lean.ws.WsConnection`. The HTTP/2 connection
is :class:`~loadgen.lean.h2.H2Connection` (h2c with prior knowledge on ``ws://``, ALPN
``h2`` on ``wss://``), the stream its :meth:`~loadgen.lean.h2.H2Connection.open_tunnel`
(``:method CONNECT``, ``:protocol websocket``, ``sec-websocket-version: 13``; no key,
no ``Upgrade``: RFC 8441 section 5). Inside the stream's DATA the frames are ordinary
masked client frames, framed and parsed by websockets' sans-I/O
:class:`~websockets.protocol.Protocol`, opened (the handshake was the CONNECT); the
end of the TCP stream in RFC 6455 is the END_STREAM of this one.

Errors (:class:`~loadgen.clients.errors.ClientError`) from :meth:`WsH2Connection.open`:
``connect_error`` when the server's SETTINGS do not enable extended CONNECT, when it
answers the CONNECT with another status than 200 (the message names it) or the TLS
server does not pick h2; ``malformed`` when its bytes are not HTTP/2; ``timeout``.
Once open, a frame the server gets wrong inside DATA closes the WebSocket (1002) and
sets :attr:`~WsH2Connection.failure` to a ``malformed`` error, as do HTTP/2 frames it
gets wrong; a stream reset, a GOAWAY leaving the stream out or a cut connection set it
to the HTTP/2 layer's ``truncated`` or ``closed``.

Bytes count into ``counter`` as every lean connection's do (all of them: preface,
SETTINGS, HEADERS, DATA). :attr:`WsH2Connection.tally` counts the HEADERS bytes of the
CONNECT and its reply (:class:`~loadgen.lean.h2bytes.HeaderTally`), and
:attr:`WsH2Connection.framing_sent` / :attr:`~WsH2Connection.framing_received` the
framing around messages' payloads: WebSocket frame headers (masks included) and the
9-byte headers (and padding) of the DATA frames that carried them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from websockets.frames import Frame
from websockets.protocol import Protocol, Side, State

from loadgen.clients.errors import ClientError
from loadgen.lean.connect import Target
from loadgen.lean.h2 import H2Connection, Headers, Tunnel
from loadgen.lean.h2bytes import HeaderTally
from loadgen.lean.ws import DATA_OPCODES, ClosesOnce, Messages, OnMessage, failure_of
from loadgen.wire import WireCounter

clock = time.perf_counter_ns

__all__ = ["CONNECT_HEADERS", "PROTOCOL", "WsH2Connection"]

#: The ``:protocol`` of the extended CONNECT.
PROTOCOL = b"websocket"
#: Its regular header fields (RFC 8441 section 5: the version, no key).
CONNECT_HEADERS: Headers = ((b"sec-websocket-version", b"13"),)
#: The 9-byte header of each DATA frame.
DATA_FRAME_HEADER = 9


class WsH2Connection(ClosesOnce):
    """One WebSocket over HTTP/2; see the module docstring."""

    def __init__(
        self,
        conn: H2Connection,
        on_message: OnMessage,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._conn = conn
        self._ws = Protocol(Side.CLIENT, state=State.OPEN, max_size=None)
        self._messages = Messages(self._message)
        self._on_message = on_message
        self._on_close = on_close
        self._tunnel: Tunnel | None = None
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.failure: ClientError | None = None
        self.sent_ns = 0
        #: Framing bytes around payloads: WebSocket frame headers and DATA frame headers.
        self.framing_sent = 0
        self.framing_received = 0

    @classmethod
    async def open(
        cls,
        url: str,
        counter: WireCounter | None,
        timeout_s: float,
        on_message: OnMessage,
        on_close: Callable[[], None] | None = None,
    ) -> WsH2Connection:
        """Connect, then open the WebSocket's stream; raises ClientError (module docstring)."""
        target = Target.parse(url)
        conn = await H2Connection.open(target, counter, timeout_s)
        ws = cls(conn, on_message, on_close)
        path = target.path.encode("latin-1")
        try:
            ws._tunnel = await conn.open_tunnel(
                path, PROTOCOL, CONNECT_HEADERS, ws._body, timeout_s, ws._tunnel_done
            )
        except BaseException:
            conn.close()
            raise
        return ws

    @property
    def tally(self) -> HeaderTally:
        """HEADERS bytes of the CONNECT and its reply."""
        return self._conn.tally

    # -- the stream ---------------------------------------------------------------------

    def _body(self, data: bytes, framing: int, now: int) -> None:
        self.framing_received += framing
        ws = self._ws
        ws.receive_data(data)
        data_only = True
        for event in ws.events_received():
            if type(event) is Frame and event.opcode in DATA_OPCODES:
                self._messages.frame(event, now)
            else:
                data_only = False
        if data_only and ws.state is State.OPEN and ws.parser_exc is None:
            return
        self._flush()
        if ws.state is State.CLOSED or ws.close_expected():
            self._finish()

    def _message(self, data: bytes, now: int, wire: int) -> None:
        self.framing_received += wire - len(data)
        self._on_message(data, now, wire)

    def _tunnel_done(self) -> None:
        tunnel = self._tunnel
        if not self.closed.is_set():
            error = tunnel.error if tunnel is not None else None
            if error is not None and self.failure is None:
                self.failure = error
            self._ws.receive_eof()
            if self.failure is None and self._ws.close_rcvd is None:
                self.failure = ClientError("closed", "the server ended the WebSocket's stream")
        self._finish()

    def _flush(self) -> None:
        tunnel = self._tunnel
        for chunk in self._ws.data_to_send():
            if tunnel is None:
                continue
            if chunk:
                self._write(tunnel, chunk)
            else:
                tunnel.end()
        if self.failure is None:
            self.failure = failure_of(self._ws.parser_exc)

    def _write(self, tunnel: Tunnel, chunk: bytes) -> None:
        if tunnel.is_open:
            tunnel.send(chunk)
            # The DATA frame's header; a chunk is one frame unless the windows cut it.
            self.framing_sent += DATA_FRAME_HEADER

    def _finish(self) -> None:
        """The WebSocket is over: end the stream and the connection."""
        tunnel = self._tunnel
        if tunnel is not None:
            tunnel.end()
        self._conn.close()
        self._mark_closed()

    # -- API --------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        tunnel = self._tunnel
        return self._ws.state is State.OPEN and tunnel is not None and tunnel.is_open

    def send_text(self, data: bytes) -> int:
        """Send one text message; returns its WebSocket frame bytes. ClientError ``closed``
        if the WebSocket is shut."""
        tunnel = self._tunnel
        if tunnel is None or not self.is_open:
            raise ClientError("closed", "WebSocket is not open")
        ws = self._ws
        ws.send_text(data)
        total = 0
        self.sent_ns = clock()
        for chunk in ws.data_to_send():
            tunnel.send(chunk)
            total += len(chunk)
        self.framing_sent += total - len(data) + DATA_FRAME_HEADER
        return total

    def close_now(self) -> None:
        """Drop the connection without a closing handshake."""
        self._conn.close()
        self._finish()

    async def close(self, timeout_s: float = 2.0) -> None:
        """Closing handshake (1000), waiting up to ``timeout_s``, then END_STREAM and the
        connection's close."""
        if self.is_open:
            self._ws.send_close(1000)
            self._flush()
            try:
                async with asyncio.timeout(timeout_s):
                    await self.closed.wait()
            except TimeoutError:
                pass
        self.close_now()
