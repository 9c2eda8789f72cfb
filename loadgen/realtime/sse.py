"""Server-Sent Events without I/O: the stream format, and the pushes it carries.

Both engines read ``GET /events`` their own way (aiohttp, a gevent socket) and
hand each piece of the body here::

    decoder = SseDecoder(on_item, on_gap)     # once per user stream
    decoder.restart()                         # at each (re)connection
    decoder.feed(data, framing, received_ns)  # each piece read, as it arrives
    decoder.last_id, decoder.events, decoder.gaps, decoder.retry_ms

:class:`SseParser` alone turns bytes into :class:`SseEvent` objects;
:func:`chunk_framing` is what HTTP/1.1 chunked encoding adds around a chunk.
:class:`SseStream` is a user's stream less its I/O (where it resumes, how long it
waits before reconnecting, what it counted), which each driver's ``SseConn`` extends.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from loadgen.clients.errors import ClientError
from loadgen.realtime.receive import OnGap, OnItem
from loadgen.realtime.replies import auth_refused
from loadgen.wire import WireCounter
from servers import protocol

clock = time.perf_counter_ns

_EOL = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event: its type, data (lines joined by LF) and last event id.

    ``nbytes`` is what the stream carried for it since the previous event: its
    own lines, any comments or empty blocks before it, and the transfer
    framing the reader reported (HTTP chunk headers).
    """

    type: str
    data: bytes
    id: str
    nbytes: int


class SseParser:
    """Incremental ``text/event-stream`` parser (the WHATWG event stream format).

    ``feed(chunk)`` returns the events completed by ``chunk``; a partial line
    waits for the next chunk. Lines end with CRLF, LF or CR; comments (``:``)
    are skipped; ``retry:`` sets :attr:`retry_ms`; ``id:`` sets :attr:`last_id`.
    """

    def __init__(self, last_id: str = "") -> None:
        self._buf = bytearray()
        self._data: list[bytes] = []
        self._type = ""
        self._pending = 0
        self._started = False
        self.last_id = last_id
        self.retry_ms: int | None = None

    def feed(self, chunk: bytes, framing: int = 0) -> list[SseEvent]:
        """Parse ``chunk``; ``framing`` is transfer overhead to charge to the next event."""
        self._pending += framing
        buf = self._buf
        buf += chunk
        if not self._started and (len(buf) >= len(_BOM) or not _BOM.startswith(buf)):
            self._started = True
            if buf.startswith(_BOM):
                del buf[: len(_BOM)]
                self._pending += len(_BOM)
        if not self._started:
            return []  # perhaps the start of a byte order mark: wait for the rest
        events: list[SseEvent] = []
        pos = 0
        while (m := _EOL.search(buf, pos)) is not None:
            if m.group() == b"\r" and m.end() == len(buf):
                break  # a CR at the end may be the first half of CRLF
            line = bytes(buf[pos : m.start()])
            self._pending += m.end() - pos
            pos = m.end()
            event = self._line(line)
            if event is not None:
                events.append(event)
        del buf[:pos]
        return events

    def _line(self, line: bytes) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(b":"):
            return None
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._type = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self.last_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        if not self._data:
            self._type = ""
            return None
        event = SseEvent(
            self._type or "message", b"\n".join(self._data), self.last_id, self._pending
        )
        self._data = []
        self._type = ""
        self._pending = 0
        return event


def chunk_framing(size: int) -> int:
    """Bytes HTTP/1.1 chunked encoding adds around a chunk of ``size`` bytes."""
    return len(f"{size:x}") + 4


class SseDecoder:
    """The pushes and gap reports of one user's event stream, across its reconnections.

    Each push (a ``message`` event carrying the WebSocket's push JSON) reaches
    ``on_item(seq, item, received_ns, "sse", nbytes)``; an ``event: gap`` (the
    server skipped items its inbox no longer keeps) reaches ``on_gap("sse")``.
    :attr:`last_id` is the newest push's seq (where a reconnection resumes),
    :attr:`retry_ms` the server's last ``retry:``, if any.
    """

    def __init__(self, on_item: OnItem, on_gap: OnGap | None = None, last_id: int = 0) -> None:
        self.on_item = on_item
        self.on_gap = on_gap
        self.last_id = last_id
        self.events = 0
        self.gaps = 0
        self.retry_ms: int | None = None
        self._parser = SseParser(str(last_id))

    def restart(self, last_id: int | None = None) -> None:
        """A new connection: forget any partial event; resume after ``last_id`` if given."""
        if last_id is not None:
            self.last_id = last_id
        self._parser = SseParser(str(self.last_id))

    def feed(self, data: bytes, framing: int, received_ns: int) -> None:
        """Hand on what ``data`` completes; ``framing`` as in :meth:`SseParser.feed`."""
        parser = self._parser
        for event in parser.feed(data, framing):
            if event.type == "gap":
                self.gaps += 1
                if self.on_gap is not None:
                    self.on_gap("sse")
                continue
            if event.type != "message":
                continue
            try:
                message = protocol.decode_server_message(event.data)
            except protocol.ProtocolError:
                continue
            if isinstance(message, protocol.Push):
                self.events += 1
                self.last_id = max(self.last_id, message.seq)
                self.on_item(message.seq, message.item, received_ns, "sse", event.nbytes)
        if parser.retry_ms is not None:
            self.retry_ms = parser.retry_ms


class SseStream:
    """A user's event stream (``GET /events``) less its I/O; each driver's ``SseConn`` adds it.

    ::

        stream.start(token, after=cursor)        # before the first connection
        headers = stream.request_headers()       # each (re)connection, Last-Event-ID included
        with stream.connecting(): ...            # each connection attempt, told to on_connect
        stream.feed(data, framing, received_ns)  # each piece of the body
        time.sleep(stream.retry_after(exc))      # a connection failed: wait, or raise a 4xx

    ``on_connect(t0, t1, error)`` hears of each connection; ``reconnects`` counts
    resumptions after a drop; ``retry_s`` follows the server's ``retry:``.
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
        self.url = base_url.rstrip("/") + "/events"
        self.timeout_s = timeout_s
        self.on_connect = on_connect
        self.retry_s = retry_s
        self.counter = WireCounter()
        self.token: str | None = None
        self.decoder = SseDecoder(on_item, on_gap)
        self.reconnects = 0
        #: Resumptions after the server ended the stream because its token did.
        self.auth_closes = 0
        #: The user's sign-in again, returning the new token (awaitable under asyncio);
        #: None: a refused token is raised like any refusal.
        self.renew: Callable[[], Any] | None = None

    @property
    def last_id(self) -> int:
        """The newest push's seq: where the next connection resumes."""
        return self.decoder.last_id

    def start(self, token: str, after: int = 0) -> None:
        """Before the first connection: sign-in ``token``, resume after ``after``."""
        self.token = token
        self.decoder.restart(after)

    def request_headers(self) -> dict[str, str]:
        """The headers of a (re)connection: the token, and where to resume."""
        headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {self.token}"}
        if self.last_id:
            headers["Last-Event-ID"] = str(self.last_id)
        return headers

    @contextlib.contextmanager
    def connecting(self) -> Iterator[None]:
        """One connection attempt, told to ``on_connect`` when the block ends.

        A :class:`ClientError` raised in the block is the attempt's error (its code).
        """
        t0 = clock()
        error: str | None = None
        try:
            yield
        except ClientError as exc:
            error = exc.code
            raise
        finally:
            if self.on_connect is not None:
                self.on_connect(t0, clock(), error)

    def feed(self, data: bytes, framing: int, received_ns: int) -> None:
        """One piece of the body as it arrived (``framing``: transfer bytes to charge)."""
        self.decoder.feed(data, framing, received_ns)
        if self.decoder.retry_ms is not None:
            self.retry_s = self.decoder.retry_ms / 1000.0

    def retry_after(self, exc: ClientError) -> float:
        """How long to wait after connecting failed with ``exc``; a refusal (4xx) is raised."""
        if exc.code.startswith("http_4"):
            raise exc
        return max(self.retry_s, 0.1)

    def renews_after(self, exc: ClientError, renewed: bool) -> bool:
        """Whether a failed (re)connection should sign in again and retry at once: its
        token was refused (:func:`~loadgen.realtime.replies.auth_refused`), there is a
        :attr:`renew`, and the token was not just renewed (then it is raised)."""
        return self.renew is not None and not renewed and auth_refused(exc)

    def resumed(self, renewed: bool) -> None:
        """A dropped stream is open again: an auth close if its token had to be renewed,
        else a reconnection."""
        if renewed:
            self.auth_closes += 1
        else:
            self.reconnects += 1

    def wire_totals(self) -> tuple[int, int]:
        """Bytes sent and received over the stream's connections so far."""
        return self.counter.sent, self.counter.received
