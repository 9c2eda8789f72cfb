"""The rtbench endpoints as one plain ASGI 3 application, for any ASGI server.

``POST /rpc``, ``GET /inbox``, ``GET /events`` (SSE) and ``GET /ws`` behave as
in :mod:`servers.http_server` and :mod:`servers.ws_aiohttp`: every request goes
through the same :class:`~servers.hub.Hub`, with the same statuses and bodies,
and the SSE framing comes from the same helpers. ::

    app = make_app(ServerConfig("127.0.0.1", 0), Hub())
    # run ``app`` with uvicorn or hypercorn (servers.asgi_uvicorn, servers.asgi_hypercorn);
    # the lifespan protocol starts and stops the hub.
    await app.started.wait()   # set once the lifespan startup has run
    app.end_connections()      # when stopping: streams end, WebSockets close with 1001

What the ASGI server decides (not the app): WebSocket pings, the 1009 close for a
message over :func:`~servers.common.ws_hard_limit`, compression, keep-alive.
A WebSocket with a bad token is refused with HTTP 401 before the handshake when
the server offers the ``websocket.http.response`` extension, else closed with
1008 before it is accepted (the server answers 403).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from servers import protocol
from servers.common import JSON_CONTENT_TYPE, SEND_TIMEOUT, OnReady, ServerConfig
from servers.http_server import (
    EVENTS_PATH,
    INBOX_PATH,
    SSE_CONTENT_TYPE,
    next_sse_chunk,
    poll_request,
    resume_after,
    sse_gap_event,
    stream_token,
)
from servers.http_server import PATH as RPC_PATH
from servers.hub import Hub, Reply, Session
from servers.realtime.auth import request_token
from servers.ws_aiohttp import PATH as WS_PATH

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Close code of a stream or WebSocket ended because the server stops.
CLOSE_GOING_AWAY = 1001

_TEXT = b"text/plain; charset=utf-8"
_CLOSE = [(b"connection", b"close")]
_NOT_FOUND = b"404: Not Found"
_NOT_ALLOWED = b"405: Method Not Allowed"
# aiohttp's answer to a plain GET on its WebSocket route.
_NO_UPGRADE = b'No WebSocket UPGRADE hdr: None\n Can "Upgrade" only to "WebSocket".'

#: Methods each HTTP path answers (aiohttp's ``add_get`` answers HEAD too).
_METHODS: dict[str, tuple[str, ...]] = {
    RPC_PATH: ("POST",),
    INBOX_PATH: ("GET", "HEAD"),
    EVENTS_PATH: ("GET", "HEAD"),
    WS_PATH: ("GET", "HEAD"),
}

_SSE_HEADERS = [
    (b"content-type", SSE_CONTENT_TYPE.encode()),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # tells nginx-like proxies not to buffer
]


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _query(scope: Scope) -> dict[str, str]:
    """The query string's first value per name, blanks kept (as aiohttp's ``query.get``)."""
    text = bytes(scope.get("query_string", b"")).decode("latin-1")
    query: dict[str, str] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        query.setdefault(name, value)
    return query


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = JSON_CONTENT_TYPE.encode(),
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": body})


async def _reply(send: Send, reply: Reply, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    await _respond(send, reply.status, reply.body, extra=extra)


async def _disconnected(receive: Receive) -> None:
    """Return once the client has gone (``http.disconnect``); other messages are dropped."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _unless_disconnected(work: Coroutine[Any, Any, Reply], receive: Receive) -> Reply | None:
    """``work``'s reply, or None (``work`` cancelled) when the client goes away first.

    aiohttp's ``handler_cancellation``: a long poll nobody waits for any more
    must not keep its user online.
    """
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((task, watch), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        return None  # the client left: nobody to answer
    return task.result()


class RtbenchApp:
    """The ASGI application: ``await app(scope, receive, send)``; see the module docstring."""

    def __init__(self, config: ServerConfig, hub: Hub) -> None:
        self.config = config
        self.hub = hub
        #: Set once the lifespan startup has started the hub.
        self.started = asyncio.Event()
        # Open SSE streams and WebSockets, ended by end_connections().
        self._sessions: set[Session] = set()
        self._ending = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    def end_connections(self) -> None:
        """The server stops: streams send what they have queued and their last chunk,
        WebSockets close with 1001 after their queued messages; new ones are refused."""
        self._ending = True
        for session in list(self._sessions):
            session.request_close(CLOSE_GOING_AWAY, "server shutdown", flush=True)

    # -- lifespan ---------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.hub.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                self.started.set()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.end_connections()
                await self.hub.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- HTTP -------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        allowed = _METHODS.get(path)
        if allowed is None:
            await _respond(send, 404, _NOT_FOUND, _TEXT)
            return
        method = scope["method"]
        if method not in allowed:
            allow = ",".join(allowed).encode()
            await _respond(send, 405, _NOT_ALLOWED, _TEXT, [(b"allow", allow)])
        elif path == RPC_PATH:
            await self._rpc(scope, receive, send)
        elif path == INBOX_PATH:
            await self._inbox(scope, receive, send)
        elif path == EVENTS_PATH:
            await self._events(scope, receive, send)
        else:
            await _respond(send, 400, _NO_UPGRADE, _TEXT)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole request body; None when the client went away.

        Raises MessageTooLarge past ``max_message_bytes`` (without reading the
        rest) and TimeoutError after ``body_timeout_s``.
        """
        limit = self.config.max_message_bytes
        chunks: list[bytes] = []
        size = 0
        async with asyncio.timeout(self.config.body_timeout_s):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise protocol.MessageTooLarge(f"message exceeds the limit of {limit} bytes")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _rpc(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub = self.hub
        limit = self.config.max_message_bytes
        length = _header(scope, b"content-length")
        # The rest of a body too large is never read, so the connection cannot carry
        # another request (h11 servers drop it anyway): say so, or a client reusing it
        # would write into a closed socket.
        if length is not None and length.isdigit() and int(length) > limit:
            reply = hub.reject(protocol.message_too_large(int(length), limit))
            await _reply(send, reply, _CLOSE)
            return
        try:
            body = await self._read_body(receive)
        except protocol.MessageTooLarge as exc:
            await _reply(send, hub.reject(exc), _CLOSE)
            return
        except TimeoutError:
            exc = protocol.RequestTimeout(
                f"the request body did not arrive within {self.config.body_timeout_s} s"
            )
            # Close after the answer, as nginx does, rather than read the slow body on.
            await _reply(send, hub.reject(exc), _CLOSE)
            return
        if body is None:
            return  # the client went away
        try:
            ctx = hub.authenticate(request_token(_header(scope, b"authorization"), None))
        except protocol.Unauthorized as exc:
            await _reply(send, hub.reject(exc))
            return
        reply = await _unless_disconnected(hub.handle(body, ctx), receive)
        if reply is not None:
            await _reply(send, reply)

    async def _inbox(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub = self.hub
        try:
            ctx = hub.authenticate(request_token(_header(scope, b"authorization"), None))
            req = poll_request(_query(scope))
        except protocol.ProtocolError as exc:
            await _reply(send, hub.reject(exc))
            return
        reply = await _unless_disconnected(hub.dispatch(req, ctx), receive)
        if reply is not None:
            await _reply(send, reply)

    async def _events(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub = self.hub
        query = _query(scope)
        try:
            token = stream_token(_header(scope, b"authorization"), query.get("token"))
            after = resume_after(_header(scope, b"last-event-id"), query.get("after"))
            session = hub.open_session(token)
        except protocol.ProtocolError as exc:
            await _reply(send, hub.reject(exc))
            return
        try:
            reply = await session.subscribe(after)
            if reply.status != 200:
                await _reply(send, reply)
                return
            self._sessions.add(session)
            if self._ending:
                session.request_close(CLOSE_GOING_AWAY, "server shutdown", flush=True)
            stream = asyncio.ensure_future(self._stream(send, session, reply))
            watch = asyncio.ensure_future(_disconnected(receive))
            try:
                await asyncio.wait((stream, watch), return_when=asyncio.FIRST_COMPLETED)
            finally:
                watch.cancel()
                stream.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stream
        finally:
            self._sessions.discard(session)
            session.close()

    async def _stream(self, send: Send, session: Session, reply: Reply) -> None:
        """Send the session's pushes as events until it closes, then the last chunk.

        An event that cannot leave within ``SEND_TIMEOUT`` (the client stopped
        reading) counts as a slow consumer and ends the response unfinished,
        which makes the server drop the connection.
        """
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        gap = sse_gap_event(reply.body)
        if gap is not None:
            await send({"type": "http.response.body", "body": gap, "more_body": True})
        heartbeat_s = self.config.sse_heartbeat_s
        try:
            while (data := await next_sse_chunk(session, heartbeat_s)) is not None:
                async with asyncio.timeout(SEND_TIMEOUT):
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            async with asyncio.timeout(SEND_TIMEOUT):
                await send({"type": "http.response.body", "body": b""})
        except TimeoutError:
            session.stalled()
        except OSError:
            return  # the connection is gone

    # -- WebSocket --------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        can_refuse = "websocket.http.response" in scope.get("extensions", {})
        if scope["path"] != WS_PATH:
            await _refuse(send, can_refuse, 404, _NOT_FOUND)
            return
        hub = self.hub
        try:
            token = request_token(_header(scope, b"authorization"), _query(scope).get("token"))
            hub.authenticate(token)
        except protocol.Unauthorized as exc:
            await _refuse(send, can_refuse, 401, f"{exc}\n".encode())
            return
        await send({"type": "websocket.accept"})
        try:
            session = hub.open_session(token)
        except protocol.Unauthorized as exc:
            # The token expired between the check and now.
            await send({"type": "websocket.close", "code": 1008, "reason": str(exc)[:120]})
            return
        self._sessions.add(session)
        if self._ending:
            session.request_close(CLOSE_GOING_AWAY, "server shutdown", flush=True)
        writer = asyncio.ensure_future(_write(send, session))
        reader = asyncio.ensure_future(_read(receive, session))
        try:
            await asyncio.wait((reader, writer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Nothing received after the writer closed reaches the hub (as ws_aiohttp).
            reader.cancel()
            self._sessions.discard(session)
            session.close()
            if session.close_code is not None and not writer.done():
                # The session asked to close as the client left: let the close go out.
                with contextlib.suppress(TimeoutError, OSError):
                    await asyncio.wait_for(asyncio.shield(writer), SEND_TIMEOUT)
            writer.cancel()
            for task in (reader, writer):
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await task


async def _refuse(send: Send, can_refuse: bool, status: int, body: bytes) -> None:
    """Refuse a WebSocket before accepting it: an HTTP answer when the server can
    send one, else a 1008 close (which the server turns into a 403)."""
    if not can_refuse:
        await send({"type": "websocket.close", "code": 1008})
        return
    # hypercorn drops the connection after refusing an upgrade: a client must not reuse it.
    headers = [(b"content-type", _TEXT), (b"content-length", b"%d" % len(body)), *_CLOSE]
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


async def _read(receive: Receive, session: Session) -> None:
    """Hand every received message to the session until the client disconnects."""
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        data = message.get("bytes")
        await session.handle(data if data is not None else message.get("text") or "")


async def _write(send: Send, session: Session) -> None:
    """Send the session's replies and pushes in order as text; close when it asks to.

    A message that cannot leave within ``SEND_TIMEOUT`` (the client stopped
    reading) counts as a slow consumer; the handler then returns without a
    close and the server drops the connection.
    """
    try:
        while (body := await session.next_outgoing()) is not None:
            async with asyncio.timeout(SEND_TIMEOUT):
                await send({"type": "websocket.send", "text": body.decode()})
        async with asyncio.timeout(SEND_TIMEOUT):
            await send(
                {
                    "type": "websocket.close",
                    "code": session.close_code or 1000,
                    "reason": session.close_reason[:120],
                }
            )
    except TimeoutError:
        session.stalled()


def make_app(config: ServerConfig, hub: Hub) -> RtbenchApp:
    """The ASGI application serving every rtbench endpoint through ``hub``."""
    return RtbenchApp(config, hub)


def listening_socket(config: ServerConfig) -> socket.socket:
    """A non-blocking TCP socket bound to ``config.host:config.port`` and listening with
    ``config.backlog``, so the port (also for port 0) is known before the server runs."""
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((config.host, config.port))
        sock.listen(config.backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def run_until_stopped(
    app: RtbenchApp,
    server: Coroutine[Any, Any, None],
    port: int,
    on_ready: OnReady,
    stop: asyncio.Event,
    shut_down: Callable[[], None],
) -> None:
    """Run ``server`` (an ASGI server's serve coroutine for ``app``); call
    ``on_ready(port)`` once the lifespan startup has run; when ``stop`` is set, end
    the app's connections and call ``shut_down()`` (the server's own graceful stop),
    then wait for ``server`` to return."""
    task = asyncio.ensure_future(server)
    try:
        started = asyncio.ensure_future(app.started.wait())
        await asyncio.wait((task, started), return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if task.done():
            task.result()
            raise RuntimeError("the ASGI server returned before its lifespan startup")
        # The socket listens already: connections made now wait in its backlog.
        on_ready(port)
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait((task, stopping), return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not task.done():
            # Before the server's own shutdown: it would otherwise wait on open
            # streams for its whole grace period (uvicorn) or cut them (hypercorn).
            app.end_connections()
            shut_down()
        await task
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
