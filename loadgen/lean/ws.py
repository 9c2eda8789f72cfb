"""One WebSocket client connection as an asyncio Protocol over websockets' sans-I/O core.

::

    conn = await WsConnection.open("ws://127.0.0.1:8080/ws", counter, timeout_s, on_message)
    conn.send_text(b'{"op":"echo",...}')     # one masked text frame, one write
    conn.sent_ns                              # when that write happened
    # each complete message reaches on_message(data, received_ns, wire_bytes);
    # on_close() (optional) is called once when the connection is gone
    await conn.close(timeout_s)              # closing handshake, then the TCP close
    conn.closed (an asyncio.Event), conn.close_code

Framing, masking, fragmentation, pings and the closing handshake are
:class:`websockets.client.ClientProtocol`'s; this class only moves bytes
between it and the socket. No compression, no size limit (the server bounds
messages). A frame the server gets wrong closes the connection (1002) and
sets :attr:`failure` to a ``malformed`` :class:`ClientError`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidHandshake, InvalidMessage, ProtocolError
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import Protocol, State
from websockets.uri import parse_uri

from loadgen.clients.errors import ClientError
from loadgen.lean.connect import ByteCounting, Target, open_connection
from loadgen.wire import WireCounter

clock = time.perf_counter_ns

DATA_OPCODES = frozenset({Opcode.TEXT, Opcode.BINARY, Opcode.CONT})

#: ``on_message(data, received_ns, wire_bytes)``; wire_bytes counts the frames' headers too.
OnMessage = Callable[[bytes, int, int], None]


def frame_bytes(payload: int, masked: bool = False) -> int:
    """A WebSocket frame's bytes for a ``payload`` of that many bytes: its 2-byte header,
    + 2 or 8 for longer payloads, + 4 for a client's mask."""
    head = 2 if payload < 126 else 4 if payload < 65536 else 10
    return payload + head + (4 if masked else 0)


class Messages:
    """Data frames from the server -> whole messages for ``on_message``, with their
    frames' wire bytes (server frames are unmasked)."""

    __slots__ = ("_bytes", "_fragments", "_on_message")

    def __init__(self, on_message: OnMessage) -> None:
        self._on_message = on_message
        self._fragments: list[bytes] = []
        self._bytes = 0

    def frame(self, frame: Frame, now: int) -> None:
        wire = frame_bytes(len(frame.data))
        if frame.fin and not self._fragments:
            self._on_message(frame.data, now, wire)
            return
        self._fragments.append(frame.data)
        self._bytes += wire
        if frame.fin:
            data, self._fragments = b"".join(self._fragments), []
            wire, self._bytes = self._bytes, 0
            self._on_message(data, now, wire)


def failure_of(exc: Exception | None) -> ClientError | None:
    """The ClientError for the websockets parser's exception (None: there is none)."""
    if exc is None:
        return None
    code = "malformed" if isinstance(exc, ProtocolError) else "closed"
    return ClientError(code, f"{type(exc).__name__}: {exc}")


def close_code_of(ws: Protocol) -> int | None:
    """The peer's close code as soon as its close frame is in (the library reports
    ``close_code`` only once the closing handshake is over), else the library's."""
    rcvd = ws.close_rcvd
    return rcvd.code if rcvd is not None else ws.close_code


class ClosesOnce:
    """What a lean WebSocket connection (over HTTP/1.1 or HTTP/2) does once it is over:
    ``close_code`` filled in, ``closed`` set and ``on_close`` called, the first time only."""

    closed: asyncio.Event
    close_code: int | None
    _ws: Protocol
    _on_close: Callable[[], None] | None

    def _mark_closed(self) -> None:
        if self.closed.is_set():
            return
        if self.close_code is None:
            self.close_code = close_code_of(self._ws)
        self.closed.set()
        if self._on_close is not None:
            self._on_close()


class WsConnection(ClosesOnce, asyncio.Protocol):
    """One WebSocket connection; see the module docstring."""

    def __init__(
        self,
        url: str,
        counter: WireCounter | None,
        on_message: OnMessage,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._ws = ClientProtocol(parse_uri(url), max_size=None)
        self._bytes = ByteCounting(counter, url.startswith("wss://"))
        self._on_close = on_close
        self._transport: asyncio.Transport | None = None
        self._handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._messages = Messages(on_message)
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.failure: ClientError | None = None
        self.sent_ns = 0

    @classmethod
    async def open(
        cls,
        url: str,
        counter: WireCounter | None,
        timeout_s: float,
        on_message: OnMessage,
        on_close: Callable[[], None] | None = None,
    ) -> WsConnection:
        """Connect and complete the opening handshake; raises ClientError ``connect_error``."""
        target = Target.parse(url)
        transport, conn = await open_connection(
            target, lambda: cls(url, counter, on_message, on_close), timeout_s
        )
        try:
            async with asyncio.timeout(timeout_s):
                await conn._handshake
        except TimeoutError:
            transport.abort()
            raise ClientError("timeout", f"no handshake reply within {timeout_s}s") from None
        except ClientError:
            transport.abort()
            raise
        return conn

    # -- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._bytes.made(transport)
        request = self._ws.connect()
        if "User-Agent" in request.headers:
            del request.headers["User-Agent"]
        self._ws.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = clock()
        self._bytes.read(len(data))
        ws = self._ws
        ws.receive_data(data)
        data_only = True
        for event in ws.events_received():
            if type(event) is Frame and event.opcode in DATA_OPCODES:
                self._messages.frame(event, now)
            else:
                data_only = False
                if isinstance(event, Response):
                    self._handshake_done()
        if data_only and ws.state is State.OPEN and ws.parser_exc is None:
            return  # data frames call for no answer: nothing to write, nothing to close
        self._flush()
        if ws.state is State.CLOSED or ws.close_expected():
            self._finish()

    def eof_received(self) -> bool | None:
        self._bytes.refresh()
        self._ws.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._bytes.lost()
        if not self._handshake.done():
            self._handshake.set_exception(
                ClientError("connect_error", "connection closed during the handshake")
            )
        self._transport = None
        self._mark_closed()

    # -- sans-I/O glue ------------------------------------------------------------------

    def _handshake_done(self) -> None:
        if self._handshake.done():
            return
        error = self._ws.handshake_exc
        if error is None:
            self._handshake.set_result(None)
            return
        detail = f"{type(error).__name__}: {error}"
        if isinstance(error, InvalidHandshake | InvalidMessage):
            status = getattr(getattr(error, "response", None), "status_code", None)
            if status is not None:
                detail = f"HTTP {status} {detail}"
        self._handshake.set_exception(ClientError("connect_error", detail))

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        for chunk in self._ws.data_to_send():
            if chunk:
                transport.write(chunk)
                self._bytes.wrote(len(chunk))
            elif transport.can_write_eof():
                transport.write_eof()
        if self.failure is None:
            self.failure = failure_of(self._ws.parser_exc)

    def _finish(self) -> None:
        # The closing handshake is over (or failed): close TCP from our side.
        if self._transport is not None and not self._transport.is_closing():
            self._bytes.refresh()
            self._transport.close()
        self._mark_closed()

    # -- API --------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._ws.state is State.OPEN and self._transport is not None

    def send_text(self, data: bytes) -> int:
        """Send one text message; returns its bytes on the wire. ClientError ``closed`` if shut."""
        if not self.is_open:
            raise ClientError("closed", "WebSocket is not open")
        ws = self._ws
        ws.send_text(data)
        total = 0
        transport = self._transport
        assert transport is not None
        self.sent_ns = clock()
        for chunk in ws.data_to_send():
            transport.write(chunk)
            total += len(chunk)
        self._bytes.wrote(total)
        return total

    def close_now(self) -> None:
        """Drop the connection without a closing handshake."""
        if self._transport is not None:
            self._bytes.refresh()
            self._transport.abort()
        self._mark_closed()

    async def close(self, timeout_s: float = 2.0) -> None:
        """Closing handshake (1000), waiting up to ``timeout_s``, then the TCP close."""
        if self.is_open:
            self._ws.send_close(1000)
            self._flush()
            try:
                async with asyncio.timeout(timeout_s):
                    await self.closed.wait()
            except TimeoutError:
                pass
        self.close_now()
