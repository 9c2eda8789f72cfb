"""One HTTP connection kept across requests and reopened when it has closed.

::

    link = ReusedConnection(counter, keep_alive=True, timeout_s=5.0)
    status, body = await link.exchange(target, request, timeout_s)
    link.socket_stamps      # (sent_ns, received_ns) of that exchange
    link.close()

    link = ReusedH2Connection(counter, keep_alive=True, timeout_s=5.0)   # HTTP/2
    reply = await link.exchange(target, b"POST", b"/rpc", headers, body, timeout_s)
    reply.status, reply.body, reply.sent_ns, reply.received_ns
    link.tally              # header bytes of every connection it opened
    link = ReusedH3Connection(counter, keep_alive=True, timeout_s=5.0)   # HTTP/3, QUIC
    await link.exchange(target, b"GET", path, headers, None, timeout_s, counter=polls)
    conn = await link.connection(target)   # the kept connection, for a streamed response

The first request, every request in new-connection mode (``keep_alive=False``)
and the first one after the server closed a kept-alive connection connect
first, as a browser does, and that set-up is charged to the request: its
send stamp is taken before the TCP connect. A kept connection that the
server closed while idle (its keep-alive timeout) and that fails with no
byte of reply is tried once more on a new connection, as browsers and HTTP
client libraries do; the retry's set-up is charged to the request, from the
first attempt's send. Connect failures raise as
:meth:`~loadgen.lean.http.HttpConnection.open` does, exchange failures as
:meth:`~loadgen.lean.http.HttpConnection.exchange` does.

:class:`ReusedH2Connection` follows the same rules for HTTP/2
(:class:`~loadgen.lean.h2.H2Connection`): there, set-up is the TCP connect
(and TLS handshake), the preface and the SETTINGS; closing a new-connection
request's connection sends GOAWAY. Its kept connection carries any number of
concurrent exchanges, and one reopening serves all those waiting for it. An
exchange's ``counter`` is where its bytes count instead of the link's
``counter``: on the kept connection its stream's frames (the connection's own
frames stay with the link's counter), on a new connection that whole
connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from loadgen.clients.errors import ClientError
from loadgen.lean.connect import Target
from loadgen.lean.h2 import H2Connection, H2Reply, Headers
from loadgen.lean.h2bytes import HeaderTally
from loadgen.lean.h3 import H3Connection
from loadgen.lean.http import HttpConnection
from loadgen.wire import WireCounter

clock = time.perf_counter_ns


class _Connection(Protocol):
    """What a link needs of its connections."""

    @property
    def is_open(self) -> bool: ...

    def close(self) -> None: ...


class _Multiplexed(_Connection, Protocol):
    """A connection that carries concurrent exchanges, one per stream."""

    @property
    def streams(self) -> int: ...


C = TypeVar("C", bound=_Connection)
M = TypeVar("M", bound=_Multiplexed)
R = TypeVar("R")


class ReusedLink(Generic[C, R]):
    """A connection of type ``C`` kept across exchanges that each return an ``R``, with
    the module docstring's rules; bytes count into ``counter``.

    A connection type is a subclass (of :class:`MultiplexedLink` when the connection
    carries concurrent streams) that says how to connect (:meth:`_open`) and how to
    stamp a reply (:meth:`_stamp`), and gives ``exchange`` that protocol's arguments::

        async def exchange(self, target: Target, request: bytes, timeout_s: float) -> R:
            return await self._request(target, lambda conn: conn.exchange(request, timeout_s))
    """

    def __init__(self, counter: WireCounter | None, keep_alive: bool, timeout_s: float) -> None:
        self.counter = counter
        self.keep_alive = keep_alive
        self.timeout_s = timeout_s
        self.conn: C | None = None
        self.socket_stamps = (0, 0)

    async def _open(self, target: Target, counter: WireCounter | None) -> C:
        """A new connection to ``target`` whose bytes count into ``counter``; raises as
        that connection's ``open`` does."""
        raise NotImplementedError

    def _stamp(self, conn: C, started: int, reply: R) -> R:
        """Set :attr:`socket_stamps` for ``reply``, just had on ``conn``, and return it as
        the caller gets it; ``started`` (0: its own send) stamps the request's start."""
        raise NotImplementedError

    async def _request(
        self,
        target: Target,
        send: Callable[[C], Awaitable[R]],
        counter: WireCounter | None = None,
    ) -> R:
        """``send(conn)`` on the kept connection, else on a new one; a new connection
        (new-connection mode) counts into ``counter`` when given, not the link's."""
        conn = self.conn
        started = clock()
        if conn is not None and conn.is_open:
            try:
                return await self._on(conn, 0, send)
            except ClientError as exc:
                # "closed": the server did not act on the request (its idle close racing
                # it). Anything later may have been acted on, so it stands.
                if exc.code != "closed":
                    raise
        conn = await self._connect(target, conn, counter)
        return await self._on(conn, started, send)

    async def _connect(self, target: Target, stale: C | None, counter: WireCounter | None) -> C:
        if not self.keep_alive:
            return await self._open(target, self.counter if counter is None else counter)
        return await self._reopen(target, stale)

    async def _reopen(self, target: Target, stale: C | None) -> C:
        """Open the connection to keep in place of ``stale`` (None: there was none)."""
        if stale is not None:
            stale.close()
        self.conn = None
        self.conn = await self._open(target, self.counter)
        return self.conn

    async def _on(self, conn: C, started: int, send: Callable[[C], Awaitable[R]]) -> R:
        """One exchange on ``conn``; ``started`` (0: its own send) stamps the request's start."""
        try:
            reply = await send(conn)
        finally:
            if not self.keep_alive:
                conn.close()
        return self._stamp(conn, started, reply)

    def close(self) -> None:
        """Close the kept connection, if any (the next exchange connects again)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()


class MultiplexedLink(ReusedLink[M, R]):
    """A :class:`ReusedLink` whose kept connection carries any number of concurrent
    exchanges: one reopening serves all those waiting for it, and :meth:`connection`
    shares the connection (for a streamed response)."""

    def __init__(self, counter: WireCounter | None, keep_alive: bool, timeout_s: float) -> None:
        super().__init__(counter, keep_alive, timeout_s)
        self._opening = asyncio.Lock()

    async def connection(self, target: Target) -> M:
        """The kept connection to ``target``, opened (or reopened, if the server closed
        it) when need be; keep-alive mode only. Raises as the connection's ``open``."""
        if not self.keep_alive:
            raise ValueError("a new-connection link keeps no connection to share")
        conn = self.conn
        if conn is not None and conn.is_open:
            return conn
        return await self._reopen(target, conn)

    async def _reopen(self, target: Target, stale: M | None) -> M:
        """Open the connection to keep in place of ``stale``, once for all the exchanges
        that found it closed."""
        async with self._opening:
            conn = self.conn
            if conn is not None and conn is not stale and conn.is_open:
                return conn  # another exchange reopened it meanwhile
            if conn is not None and not conn.streams:
                conn.close()  # one still finishing its streams closes itself after them
            self.conn = None
            self.conn = await self._open(target, self.counter)
            return self.conn


class ReusedConnection(ReusedLink[HttpConnection, tuple[int, bytes]]):
    """A role's HTTP connection (see the module docstring); bytes count into ``counter``."""

    async def exchange(self, target: Target, request: bytes, timeout_s: float) -> tuple[int, bytes]:
        """Send ``request`` to ``target`` and return the status and body of its reply."""
        return await self._request(target, lambda conn: conn.exchange(request, timeout_s))

    async def _open(self, target: Target, counter: WireCounter | None) -> HttpConnection:
        return await HttpConnection.open(target, counter, self.timeout_s)

    def _stamp(
        self, conn: HttpConnection, started: int, reply: tuple[int, bytes]
    ) -> tuple[int, bytes]:
        self.socket_stamps = (started or conn.sent_ns, conn.received_ns)
        return reply


class ReusedH2Connection(MultiplexedLink[H2Connection, H2Reply]):
    """A role's HTTP/2 connection (see the module docstring); bytes count into ``counter``."""

    def __init__(self, counter: WireCounter | None, keep_alive: bool, timeout_s: float) -> None:
        super().__init__(counter, keep_alive, timeout_s)
        self.tally = HeaderTally()

    async def exchange(
        self,
        target: Target,
        method: bytes,
        path: bytes,
        headers: Headers,
        body: bytes | None,
        timeout_s: float,
        counter: WireCounter | None = None,
    ) -> H2Reply:
        """Send one request to ``target``; its reply, stamped from the request's start.

        Its bytes count into ``counter`` when given (see the module docstring).
        """
        # A new connection counts wholly into its counter already; a kept one per stream.
        own = counter if self.keep_alive else None
        return await self._request(
            target,
            lambda conn: conn.exchange(method, path, headers, body, timeout_s, own),
            counter,
        )

    async def _open(self, target: Target, counter: WireCounter | None) -> H2Connection:
        return await H2Connection.open(target, counter, self.timeout_s, self.tally)

    def _stamp(self, conn: H2Connection, started: int, reply: H2Reply) -> H2Reply:
        if started:
            reply = reply._replace(sent_ns=started)
        self.socket_stamps = (reply.sent_ns, reply.received_ns)
        return reply


class ReusedH3Connection(ReusedH2Connection):
    """A role's HTTP/3 connection over QUIC, by the same rules as HTTP/2: set-up is the
    QUIC handshake (TLS 1.3 inside it), and closing a new-connection request's
    connection sends CONNECTION_CLOSE. On the kept connection an exchange's ``counter``
    takes its stream's attributed share of the datagrams (:mod:`loadgen.lean.quicbytes`),
    the connection's own datagrams staying with the link's counter."""

    async def _open(self, target: Target, counter: WireCounter | None) -> H3Connection:  # type: ignore[override]
        return await H3Connection.open(target, counter, self.timeout_s, self.tally)
