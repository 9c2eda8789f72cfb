"""Count the bytes every client puts on and takes off the wire.

All client libraries used here (aiohttp, httpx through anyio, websockets)
open their sockets with ``loop.create_connection``. :func:`new_event_loop`
returns a loop whose ``create_connection`` wraps the protocol and the
transport so that every byte written or received is added to the
:class:`WireCounter` active in the calling task::

    loop = new_event_loop(use_uvloop=True)
    counter = WireCounter()
    with counting(counter):
        await client.connect()   # connections made here count into counter

The counts are TCP payload bytes: HTTP request/status lines, headers and
bodies, WebSocket frame headers and payloads, and for TLS connections the
TLS records (handshake included). TCP/IP headers are not included.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

_current: ContextVar[WireCounter | None] = ContextVar("rtbench_wire_counter", default=None)


class WireCounter:
    """Running totals of bytes sent and received, and connections opened.

    Plain-text connections are counted byte for byte as the library writes
    and receives. A TLS connection's library only sees plaintext, so its wire
    bytes (records, handshake included) are read from the kernel's TCP_INFO
    counters of its socket instead.
    """

    __slots__ = ("_plain_received", "_plain_sent", "_tls_closed", "_tls_live", "connections")

    def __init__(self) -> None:
        self._plain_sent = 0
        self._plain_received = 0
        # socket -> the last (sent, received) read from it, kept for when it closes.
        self._tls_live: dict[Any, list[int]] = {}
        self._tls_closed = [0, 0]
        self.connections = 0

    def _tls_totals(self) -> tuple[int, int]:
        sent, received = self._tls_closed
        for sock, last in self._tls_live.items():
            now = _tcp_bytes(sock)
            if now is not None:
                last[0], last[1] = now
            sent += last[0]
            received += last[1]
        return sent, received

    @property
    def sent(self) -> int:
        return self._plain_sent + (self._tls_totals()[0] if self._tls_live else self._tls_closed[0])

    @sent.setter
    def sent(self, value: int) -> None:
        # ``counter.sent += n`` from code that counts plain bytes itself.
        self._plain_sent += value - self.sent

    @property
    def received(self) -> int:
        tls = self._tls_totals()[1] if self._tls_live else self._tls_closed[1]
        return self._plain_received + tls

    @received.setter
    def received(self, value: int) -> None:
        self._plain_received += value - self.received

    def snapshot(self) -> tuple[int, int]:
        """``(sent, received)`` now; subtract two snapshots for a delta."""
        if not self._tls_live:
            return (
                self._plain_sent + self._tls_closed[0],
                self._plain_received + self._tls_closed[1],
            )
        tls_sent, tls_received = self._tls_totals()
        return self._plain_sent + tls_sent, self._plain_received + tls_received

    def since(self, before: tuple[int, int]) -> tuple[int, int]:
        """``(sent, received)`` since the snapshot ``before``."""
        after = self.snapshot()
        return after[0] - before[0], after[1] - before[1]

    def add_plain(self, sent: int, received: int) -> None:
        """Add plain-text bytes counted by a protocol that counts its own (the lean client)."""
        self._plain_sent += sent
        self._plain_received += received

    def track_tls(self, sock: Any) -> None:
        """Count ``sock``'s TLS bytes from its TCP_INFO until :meth:`untrack_tls`."""
        self._add_tls(sock)

    def refresh_tls(self, sock: Any) -> None:
        """Read ``sock``'s counters now."""
        self._refresh_tls(sock)

    def untrack_tls(self, sock: Any) -> None:
        """Fold ``sock``'s last counters into the closed total (call before it closes)."""
        self._close_tls(sock)

    def _add_tls(self, sock: Any) -> None:
        self._tls_live[sock] = [0, 0]

    def _refresh_tls(self, sock: Any) -> None:
        last = self._tls_live.get(sock)
        now = _tcp_bytes(sock) if last is not None else None
        if last is not None and now is not None:
            last[0], last[1] = now

    def _close_tls(self, sock: Any) -> None:
        self._refresh_tls(sock)
        last = self._tls_live.pop(sock, None)
        if last is not None:
            self._tls_closed[0] += last[0]
            self._tls_closed[1] += last[1]


#: Offsets of tcpi_bytes_acked and tcpi_bytes_received in Linux's struct tcp_info.
_TCP_INFO_BYTES_OFFSET = 120


def _tcp_bytes(sock: Any) -> tuple[int, int] | None:
    """Bytes acknowledged by the peer and received on ``sock`` (Linux TCP_INFO), or None."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    except (OSError, ValueError, AttributeError):
        return None
    if len(info) < _TCP_INFO_BYTES_OFFSET + 16:
        return None
    acked, received = struct.unpack_from("QQ", info, _TCP_INFO_BYTES_OFFSET)
    # The SYN is acknowledged as one byte of sequence space.
    return max(0, acked - 1), received


@contextlib.contextmanager
def counting(counter: WireCounter) -> Iterator[WireCounter]:
    """Connections created inside this block (in this task) count into ``counter``."""
    token = _current.set(counter)
    try:
        yield counter
    finally:
        _current.reset(token)


def current_counter() -> WireCounter | None:
    """The counter of the enclosing :func:`counting` block in this task, if any."""
    return _current.get()


@contextlib.contextmanager
def uncounted() -> Iterator[None]:
    """Connections created inside this block are not wrapped: their protocol counts itself."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)


class _CountingTransport:
    """Delegates to a real transport, counting what is written."""

    __slots__ = ("_counter", "_on_close", "_transport")

    def __init__(
        self,
        transport: asyncio.BaseTransport,
        counter: WireCounter | None,
        on_close: Any = None,
    ) -> None:
        self._transport = transport
        # None for TLS connections: their bytes come from the socket's TCP_INFO,
        # read one last time (on_close) before the socket goes away.
        self._counter = counter
        self._on_close = on_close

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._counter is not None:
            self._counter._plain_sent += memoryview(data).nbytes
        self._transport.write(data)  # type: ignore[attr-defined]

    def writelines(self, list_of_data: Any) -> None:
        chunks = list(list_of_data)
        if self._counter is not None:
            self._counter._plain_sent += sum(memoryview(c).nbytes for c in chunks)
        self._transport.writelines(chunks)  # type: ignore[attr-defined]

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()
        self._transport.close()

    def abort(self) -> None:
        if self._on_close is not None:
            self._on_close()
        self._transport.abort()  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _CountingProtocol(asyncio.Protocol):
    """Sits between the loop and the library's protocol, counting what arrives."""

    def __init__(self, inner: asyncio.BaseProtocol, counter: WireCounter, tls: bool) -> None:
        self._inner = inner
        self._counter = counter
        self._tls = tls
        self._sock: Any = None
        self.transport: _CountingTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._counter.connections += 1
        if self._tls:
            # Above TLS only plaintext is visible: count this socket's real bytes.
            sock = transport.get_extra_info("socket")
            if sock is not None:
                self._sock = sock
                self._counter._add_tls(sock)
        self.transport = _CountingTransport(
            transport, None if self._tls else self._counter, self._refresh if self._tls else None
        )
        self._inner.connection_made(self.transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        if not self._tls:
            self._counter._plain_received += len(data)
        inner = self._inner
        if isinstance(inner, asyncio.BufferedProtocol):
            view = memoryview(data)
            while view:
                buf = memoryview(inner.get_buffer(len(view)))
                n = min(len(buf), len(view))
                buf[:n] = view[:n]
                inner.buffer_updated(n)
                view = view[n:]
        else:
            inner.data_received(data)  # type: ignore[attr-defined]

    def _refresh(self) -> None:
        if self._sock is not None:
            self._counter._refresh_tls(self._sock)

    def eof_received(self) -> bool | None:
        self._refresh()
        return self._inner.eof_received()  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._sock is not None:
            self._counter._close_tls(self._sock)
            self._sock = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class _CountingMixin:
    async def create_connection(  # type: ignore[override]
        self, protocol_factory: Any, *args: Any, **kwargs: Any
    ) -> tuple[Any, Any]:
        counter = _current.get()
        if counter is None:
            return await super().create_connection(protocol_factory, *args, **kwargs)  # type: ignore[misc]
        inner: list[asyncio.BaseProtocol] = []

        def factory() -> _CountingProtocol:
            proto = protocol_factory()
            inner.append(proto)
            return _CountingProtocol(proto, counter, bool(kwargs.get("ssl")))

        _, wrapper = await super().create_connection(factory, *args, **kwargs)  # type: ignore[misc]
        return wrapper.transport, inner[0]


class CountingSelectorLoop(_CountingMixin, asyncio.SelectorEventLoop):
    """The stdlib event loop with byte counting."""


def new_event_loop(use_uvloop: bool = True) -> asyncio.AbstractEventLoop:
    """A counting event loop: uvloop's when asked for and installed, else the stdlib's.

    ``loop.rtbench_loop`` names which one it is (``"uvloop"`` or ``"asyncio"``).
    """
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:

            class CountingUVLoop(_CountingMixin, uvloop.Loop):  # type: ignore[misc]
                rtbench_loop = "uvloop"

            return CountingUVLoop()
    loop = CountingSelectorLoop()
    loop.rtbench_loop = "asyncio"  # type: ignore[attr-defined]
    return loop


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``"uvloop"`` or ``"asyncio"`` for a loop made by :func:`new_event_loop`."""
    return getattr(loop, "rtbench_loop", type(loop).__module__.split(".")[0])


#: How long closing a loop waits for its cancelled tasks to unwind.
CLOSE_GRACE_S = 5.0


def close_loop(loop: asyncio.AbstractEventLoop, grace_s: float = CLOSE_GRACE_S) -> int:
    """Cancel the tasks still pending on ``loop``, let them unwind, then close it.

    ``finally: close_loop(loop)`` after ``loop.run_until_complete(...)``. Returns how many
    tasks were left. A run that failed midway leaves a task per connection; closed as
    they are, each would print a "Task was destroyed but it is pending" warning, and
    thousands of those would bury the one line that says what failed.
    """
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        gathered = asyncio.gather(*pending, return_exceptions=True)
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.wait_for(gathered, grace_s))
    with contextlib.suppress(Exception):
        loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    return len(pending)
