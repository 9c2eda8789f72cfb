"""A user's HTTP side and event stream over HTTP/2 on the lean client.

:class:`LeanH2HttpConn` and :class:`LeanH2SseConn` are ``HttpConn`` and
``SseConn`` (:mod:`loadgen.realtime.conns`) with only their I/O replaced, as
:mod:`loadgen.realtime.lean_conns` does for HTTP/1.1: measuring, reading
replies and polls, decoding and resuming the event stream are all inherited.
Same constructors::

    http = LeanH2HttpConn(base_url, keep_alive=True, timeout_s=5, on_request=on_request)
    sse = LeanH2SseConn(base_url, timeout_s, on_item, on_connect, on_gap=on_gap)
    sse.share(http)                      # the event stream rides on http's connection
    token = (await http.call("signin", {...}))["token"]; http.token = token
    await sse.connect(token, after=0)

As a browser does with HTTP/2, a user holds ONE connection: actions
(``POST /rpc``), polls (``GET /inbox``, short or held) and, once shared, the
event stream (``GET /events``) are concurrent streams on it. In keep-alive
mode it is kept and reopened when the server closed it (the retry rule of
:class:`~loadgen.lean.reuse.ReusedH2Connection`); in new-connection mode each
action and poll opens its own connection, and the event stream has its own.

Bytes stay apart per role, as with one connection per role over HTTP/1.1:
each stream's frames count into its role's counter (``counters["action"]``,
``counters["poll"]``, the event stream's ``counter``), and the frames of the
connection itself (preface, SETTINGS, PING, connection WINDOW_UPDATE, GOAWAY)
into the actions' counter, the role that opens it first. A new connection
counts wholly into the role that opened it. Over TLS (ALPN ``h2``) the kernel
counts a connection only as a whole (:mod:`loadgen.lean.h2`): each stream's
frames move to its role at their plaintext size, and the handshake and the
records' headers and tags stay with the role that opened the connection, so
the roles still add up to the bytes on the wire.

:attr:`LeanH2HttpConn.tally` counts the header bytes and requests of the user's
connections, the event stream's included once shared.

The HTTP/3 siblings (:mod:`loadgen.realtime.lean_h3_conns`) are these classes
with another link and connection class (:attr:`LeanH2HttpConn.link_class`,
:attr:`LeanH2SseConn.conn_class`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from loadgen.clients.errors import ClientError
from loadgen.lean.connect import Target
from loadgen.lean.h2 import JSON, H2Connection, Headers, ResponseStream, request_headers
from loadgen.lean.h2bytes import HeaderTally
from loadgen.lean.reuse import ReusedH2Connection
from loadgen.realtime.conns import HttpConn, SseConn

__all__ = ["LeanH2HttpConn", "LeanH2SseConn"]


class LeanH2HttpConn(HttpConn):
    """A user's HTTP side over HTTP/2: actions and polls as streams of one connection."""

    #: The kept connection's link: its ``exchange`` takes a per-stream ``counter``.
    link_class: ClassVar[type[ReusedH2Connection]] = ReusedH2Connection

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.link = self.link_class(self.counters["action"], self.keep_alive, self.timeout_s)
        self._signed: tuple[str | None, Headers, Headers] = (None, (), ())

    @property
    def tally(self) -> HeaderTally:
        """Header bytes sent and received, requests and responses, over every connection."""
        return self.link.tally

    def _fields(self, body: bytes | None) -> Headers:
        """The request's header fields: the bearer token, and JSON for a body."""
        token, bare, json = self._signed
        if token != self.token:
            # Built (and checked) once per token, not per request.
            auth = (("Authorization", f"Bearer {self.token}"),) if self.token else ()
            bare = request_headers(headers=auth)
            json = request_headers(content_type=JSON, headers=auth)
            self._signed = (self.token, bare, json)
        if body is None:
            return bare
        return (*json, (b"content-length", b"%d" % len(body)))

    async def _exchange(
        self, role: str, method: str, url: str, body: bytes | None, timeout_s: float
    ) -> tuple[int, bytes]:
        target = Target.parse(url)
        reply = await self.link.exchange(
            target,
            method.encode("ascii"),
            target.path.encode("latin-1"),
            self._fields(body),
            body,
            timeout_s,
            counter=self.counters[role],
        )
        return reply.status, reply.body

    async def close(self) -> None:
        self.link.close()


class LeanH2SseConn(SseConn):
    """A user's Server-Sent Events stream over HTTP/2: ``GET /events`` held open.

    On its own connection until :meth:`share` puts it on a user's HTTP side's.
    """

    #: The stream's own connection (new-connection mode, or not shared): its ``open``
    #: and ``open_stream`` are :class:`~loadgen.lean.h2.H2Connection`'s.
    conn_class: ClassVar[Any] = H2Connection

    _stream: ResponseStream | None = None
    _own: H2Connection | None = None  # the stream's own connection, when it has one
    _link: ReusedH2Connection | None = None

    def share(self, http: LeanH2HttpConn) -> None:
        """Hold the stream on ``http``'s connection (keep-alive; in new-connection mode
        it keeps a connection of its own) and count its header bytes with ``http``'s."""
        self._link = http.link

    async def _open(self) -> None:
        target = Target.parse(self.url)
        headers = request_headers(headers=tuple(self.request_headers().items()))
        link = self._link
        own: H2Connection | None = None
        with self.connecting():
            try:
                if link is not None and link.keep_alive:
                    conn = await link.connection(target)
                    counter = self.counter
                else:
                    tally = link.tally if link is not None else None
                    own = conn = await self.conn_class.open(
                        target, self.counter, self.timeout_s, tally
                    )
                    counter = None  # the whole connection counts into self.counter already
                self.decoder.restart()
                stream = await conn.open_stream(
                    b"GET",
                    target.path.encode("latin-1"),
                    headers,
                    self.feed,
                    self.timeout_s,
                    counter,
                )
                if stream.status != 200:
                    stream.close()
                    raise ClientError(
                        f"http_{stream.status}", f"event stream refused with HTTP {stream.status}"
                    )
                self._stream, self._own, own = stream, own, None
            finally:
                if own is not None:
                    own.close()

    async def _follow(self) -> None:
        if self._stream is not None:
            await self._stream.done.wait()

    def _drop(self) -> None:
        # Only the stream ends (RST_STREAM CANCEL) when it shares the user's connection.
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()
        own, self._own = self._own, None
        if own is not None:
            own.close()

    async def close(self) -> None:
        """End the stream (and its own connection); the server sees the user leave at once."""
        self._drop()
