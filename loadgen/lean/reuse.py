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

from loadgen.clients.errors import ClientError
from loadgen.lean.connect import Target
from loadgen.lean.h2 import H2Connection, H2Reply, Headers
from loadgen.lean.h2bytes import HeaderTally
from loadgen.lean.http import HttpConnection
from loadgen.wire import WireCounter

clock = time.perf_counter_ns


class ReusedConnection:
    """A role's HTTP connection (see the module docstring); bytes count into ``counter``."""

    def __init__(self, counter: WireCounter | None, keep_alive: bool, timeout_s: float) -> None:
        self.counter = counter
        self.keep_alive = keep_alive
        self.timeout_s = timeout_s
        self.conn: HttpConnection | None = None
        self.socket_stamps = (0, 0)

    async def exchange(self, target: Target, request: bytes, timeout_s: float) -> tuple[int, bytes]:
        """Send ``request`` to ``target`` and return the status and body of its reply."""
        conn = self.conn
        if conn is not None and conn.is_open:
            started = clock()
            try:
                return await self._on(conn, 0, request, timeout_s)
            except ClientError as exc:
                # "closed": no byte of reply came back, the server's idle close racing this
                # request. Anything later may have been acted on, so it stands.
                if exc.code != "closed":
                    raise
        else:
            started = clock()
        return await self._on(await self._connect(target, conn), started, request, timeout_s)

    async def _connect(self, target: Target, stale: HttpConnection | None) -> HttpConnection:
        if stale is not None:
            stale.close()
        self.conn = None
        conn = await HttpConnection.open(target, self.counter, self.timeout_s)
        self.conn = conn if self.keep_alive else None
        return conn

    async def _on(
        self, conn: HttpConnection, started: int, request: bytes, timeout_s: float
    ) -> tuple[int, bytes]:
        """One exchange on ``conn``; ``started`` (0: its own send) stamps the request's start."""
        try:
            status, reply = await conn.exchange(request, timeout_s)
        finally:
            if not self.keep_alive:
                conn.close()
        self.socket_stamps = (started or conn.sent_ns, conn.received_ns)
        return status, reply

    def close(self) -> None:
        """Close the kept connection, if any (the next exchange connects again)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()


class ReusedH2Connection:
    """A role's HTTP/2 connection (see the module docstring); bytes count into ``counter``."""

    def __init__(self, counter: WireCounter | None, keep_alive: bool, timeout_s: float) -> None:
        self.counter = counter
        self.keep_alive = keep_alive
        self.timeout_s = timeout_s
        self.conn: H2Connection | None = None
        self.tally = HeaderTally()
        self.socket_stamps = (0, 0)
        self._opening = asyncio.Lock()

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
        conn = self.conn
        started = clock()
        if conn is not None and conn.is_open:
            try:
                return await self._on(conn, 0, method, path, headers, body, timeout_s, counter)
            except ClientError as exc:
                # "closed": the server did not act on this stream (its idle GOAWAY or
                # close racing the request). Anything later may have been, so it stands.
                if exc.code != "closed":
                    raise
        conn = await self._connect(target, conn, counter)
        return await self._on(conn, started, method, path, headers, body, timeout_s, counter)

    async def connection(self, target: Target) -> H2Connection:
        """The kept connection to ``target``, opened (or reopened, if the server closed
        it) when need be; keep-alive mode only. Raises as :meth:`H2Connection.open`."""
        if not self.keep_alive:
            raise ValueError("a new-connection link keeps no connection to share")
        conn = self.conn
        if conn is not None and conn.is_open:
            return conn
        return await self._connect(target, conn, None)

    async def _connect(
        self, target: Target, stale: H2Connection | None, counter: WireCounter | None
    ) -> H2Connection:
        if not self.keep_alive:
            own = self.counter if counter is None else counter
            return await H2Connection.open(target, own, self.timeout_s, self.tally)
        async with self._opening:
            conn = self.conn
            if conn is not None and conn is not stale and conn.is_open:
                return conn  # another exchange reopened it meanwhile
            if conn is not None and not conn.streams:
                conn.close()  # one still finishing its streams closes itself after them
            self.conn = None
            self.conn = await H2Connection.open(target, self.counter, self.timeout_s, self.tally)
            return self.conn

    async def _on(
        self,
        conn: H2Connection,
        started: int,
        method: bytes,
        path: bytes,
        headers: Headers,
        body: bytes | None,
        timeout_s: float,
        counter: WireCounter | None,
    ) -> H2Reply:
        """One exchange on ``conn``; ``started`` (0: its own send) stamps the request's start."""
        # A new connection counts wholly into its counter already; a kept one per stream.
        stream_counter = counter if self.keep_alive else None
        try:
            reply = await conn.exchange(method, path, headers, body, timeout_s, stream_counter)
        finally:
            if not self.keep_alive:
                conn.close()
        if started:
            reply = reply._replace(sent_ns=started)
        self.socket_stamps = (reply.sent_ns, reply.received_ns)
        return reply

    def close(self) -> None:
        """Close the kept connection, if any (the next exchange connects again)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()
