"""One HTTP connection kept across requests and reopened when it has closed.

::

    link = ReusedConnection(counter, keep_alive=True, timeout_s=5.0)
    status, body = await link.exchange(target, request, timeout_s)
    link.socket_stamps      # (sent_ns, received_ns) of that exchange
    link.close()

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
"""

from __future__ import annotations

import time

from loadgen.clients.errors import ClientError
from loadgen.lean.connect import Target
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
