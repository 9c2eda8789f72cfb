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
bodies, WebSocket frame headers and payloads. TCP/IP headers are not
included.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

_current: ContextVar[WireCounter | None] = ContextVar("rtbench_wire_counter", default=None)


class WireCounter:
    """Running totals of bytes sent and received, and connections opened."""

    __slots__ = ("connections", "received", "sent")

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0
        self.connections = 0

    def snapshot(self) -> tuple[int, int]:
        """``(sent, received)`` now; subtract two snapshots for a delta."""
        return self.sent, self.received


@contextlib.contextmanager
def counting(counter: WireCounter) -> Iterator[WireCounter]:
    """Connections created inside this block (in this task) count into ``counter``."""
    token = _current.set(counter)
    try:
        yield counter
    finally:
        _current.reset(token)


class _CountingTransport:
    """Delegates to a real transport, counting what is written."""

    __slots__ = ("_counter", "_transport")

    def __init__(self, transport: asyncio.BaseTransport, counter: WireCounter) -> None:
        self._transport = transport
        self._counter = counter

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._counter.sent += memoryview(data).nbytes
        self._transport.write(data)  # type: ignore[attr-defined]

    def writelines(self, list_of_data: Any) -> None:
        chunks = list(list_of_data)
        self._counter.sent += sum(memoryview(c).nbytes for c in chunks)
        self._transport.writelines(chunks)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _CountingProtocol(asyncio.Protocol):
    """Sits between the loop and the library's protocol, counting what arrives."""

    def __init__(self, inner: asyncio.BaseProtocol, counter: WireCounter) -> None:
        self._inner = inner
        self._counter = counter
        self.transport: _CountingTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._counter.connections += 1
        self.transport = _CountingTransport(transport, self._counter)
        self._inner.connection_made(self.transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self._counter.received += len(data)
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

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
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
            return _CountingProtocol(proto, counter)

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
