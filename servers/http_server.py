"""HTTP/1.1 transport on aiohttp: ``POST /rpc`` carries one envelope each way.

Operations that act as a user need ``Authorization: Bearer TOKEN`` (from the
``signin`` op); a missing or unknown token gets 401, acting as someone else
403. ``GET /inbox?after=SEQ&wait_ms=MS`` is the polling endpoint (the ``poll``
op: a short poll with ``wait_ms=0``, a long poll otherwise); its reply is the
same envelope ``POST /rpc`` would give.

The request body goes to :meth:`Hub.handle`; the reply body is sent with
status ``reply.status`` and ``Content-Type: application/json``. A body larger
than ``max_message_bytes`` gets 413 with a ``too_large`` envelope, one that
does not arrive within ``body_timeout_s`` 408 (``request_timeout``), and a
connection without a complete request for ``keepalive_timeout_s`` (idle, or
still sending headers) is closed::

    await serve(ServerConfig("127.0.0.1", 0), Hub(), on_ready, stop)

``GET /events`` is the Server-Sent Events push channel (``text/event-stream``).
It needs a token (``Authorization: Bearer TOKEN`` or ``?token=TOKEN``; 401
without) and resumes after the ``Last-Event-ID`` header, else ``?after=SEQ``,
else from the start. The stream is a hub :class:`~servers.hub.Session`
subscribed to the user's inbox, so the WebSocket rules hold: one bounded
queue (a slow consumer's stream ends; it resumes with ``Last-Event-ID``), and
the user is online for presence while the stream is open. Each inbox item is
one event carrying the WebSocket's push JSON::

    id: 7
    data: {"op":"push","seq":7,"item":{...}}

A resume that skips items the inbox no longer keeps first sends
``event: gap`` whose data is the ``subscribe_inbox`` reply. With
``ServerConfig.sse_heartbeat_s`` > 0, ``: ping`` comments are sent after that
many seconds without an event (default off). When the server stops, streams
end cleanly (the last chunk is sent). Sends and publishes stay ``POST /rpc``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import orjson
from aiohttp import web

from servers import protocol
from servers.aiohttp_site import serve_app
from servers.common import (
    JSON_CONTENT_TYPE,
    SEND_TIMEOUT,
    OnReady,
    ServerConfig,
)
from servers.hub import Context, Hub, Reply, Session
from servers.realtime.auth import request_token

KIND = "http"
PATH = "/rpc"
INBOX_PATH = "/inbox"
EVENTS_PATH = "/events"
SSE_CONTENT_TYPE = "text/event-stream"
SSE_PING = b": ping\n\n"

#: Close code recorded on a stream's session when the server stops.
_CLOSE_GOING_AWAY = 1001

_STREAMS = web.AppKey("rtbench_sse_sessions", set)

_QUERY_INTS = ("after", "wait_ms", "limit")


def _context(hub: Hub, request: web.Request) -> Context:
    """The caller's context from the Authorization header; raises Unauthorized."""
    return hub.authenticate(request_token(request.headers.get("Authorization"), None))


def poll_request(query: Mapping[str, str]) -> protocol.Request:
    """The ``poll`` request a ``GET /inbox`` query stands for.

    Every value is range-checked like an envelope integer
    (:func:`~servers.protocol.parse_int_text`); a bad one raises InvalidEnvelope.
    """
    payload = {
        name: protocol.parse_int_text(name, query[name]) for name in _QUERY_INTS if name in query
    }
    rid = protocol.parse_int_text("id", query.get("id", "0"))
    ts = protocol.parse_int_text("ts", query.get("ts", "0"))
    return protocol.Request(op="poll", id=rid, ts=ts, payload=payload)


def stream_token(authorization: str | None, query_token: str | None) -> str:
    """The token of a ``GET /events``: the Authorization header, else ``?token=``;
    Unauthorized when there is none or the header is malformed."""
    token = request_token(authorization, query_token)
    if not token:
        raise protocol.Unauthorized(
            "GET /events needs a token: 'Authorization: Bearer TOKEN' or ?token=TOKEN"
        )
    return token


def resume_after(last_event_id: str | None, after: str | None) -> int:
    """Where a stream starts: after ``Last-Event-ID``, else ``?after=``, else 0.

    Raises InvalidEnvelope for a value that is not an integer in the envelope's range.
    """
    text = (last_event_id or "").strip()
    if text:
        return protocol.parse_int_text("Last-Event-ID", text)
    return protocol.parse_int_text("after", "0" if after is None else after)


def sse_gap_event(reply_body: bytes) -> bytes | None:
    """The ``event: gap`` a stream starts with when its ``subscribe_inbox`` reply
    (``reply_body``) reports skipped items, else None."""
    if orjson.loads(reply_body)["payload"]["gap"]:
        return b"event: gap\ndata: %b\n\n" % reply_body
    return None


async def next_sse_chunk(session: Session, heartbeat_s: float) -> bytes | None:
    """What a stream sends next: the session's next message as an event, ``: ping``
    after ``heartbeat_s`` without one (0: never), None once the session has closed."""
    try:
        async with asyncio.timeout(heartbeat_s or None):
            body = await session.next_outgoing()
    except TimeoutError:
        return SSE_PING
    return None if body is None else sse_event(body)


def sse_event(body: bytes) -> bytes:
    """One SSE event for a session's outgoing message: ``id: SEQ`` for a push."""
    seq = protocol.push_seq(body)
    if seq is None:
        return b"data: %b\n\n" % body
    return b"id: %d\ndata: %b\n\n" % (seq, body)


async def _stream(
    resp: web.StreamResponse, session: Session, heartbeat_s: float, request: web.Request
) -> None:
    """Write the session's pushes as events until it closes; end the stream cleanly.

    An event that cannot leave within ``SEND_TIMEOUT`` (the client stopped
    reading) aborts the connection and counts as a slow consumer.
    """
    try:
        while (data := await next_sse_chunk(session, heartbeat_s)) is not None:
            async with asyncio.timeout(SEND_TIMEOUT):
                await resp.write(data)
        async with asyncio.timeout(SEND_TIMEOUT):
            await resp.write_eof()
    except ConnectionError:
        return
    except TimeoutError:
        session.stalled()
        if request.transport is not None:
            request.transport.abort()


def make_app(config: ServerConfig, hub: Hub) -> web.Application:
    """The aiohttp application answering ``POST /rpc`` through ``hub``."""
    limit = config.max_message_bytes
    app = web.Application(client_max_size=limit)

    async def rpc(request: web.Request) -> web.Response:
        reply: Reply
        length = request.content_length
        if length is not None and length > limit:
            reply = hub.reject(protocol.message_too_large(length, limit))
        else:
            try:
                async with asyncio.timeout(config.body_timeout_s):
                    body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                reply = hub.reject(
                    protocol.MessageTooLarge(f"message exceeds the limit of {limit} bytes")
                )
            except TimeoutError:
                reply = hub.reject(
                    protocol.RequestTimeout(
                        f"the request body did not arrive within {config.body_timeout_s} s"
                    )
                )
                resp = web.Response(
                    body=reply.body, status=reply.status, content_type=JSON_CONTENT_TYPE
                )
                resp.force_close()
                await resp.prepare(request)
                await resp.write_eof()
                # Close now, as nginx does: aiohttp would otherwise keep reading the
                # slow body for its lingering time.
                if request.transport is not None:
                    request.transport.close()
                return resp
            else:
                try:
                    ctx = _context(hub, request)
                except protocol.Unauthorized as exc:
                    reply = hub.reject(exc)
                else:
                    reply = await hub.handle(body, ctx)
        return web.Response(body=reply.body, status=reply.status, content_type=JSON_CONTENT_TYPE)

    async def inbox(request: web.Request) -> web.Response:
        try:
            ctx = _context(hub, request)
            req = poll_request(request.rel_url.query)
        except protocol.ProtocolError as exc:
            reply = hub.reject(exc)
        else:
            reply = await hub.dispatch(req, ctx)
        return web.Response(body=reply.body, status=reply.status, content_type=JSON_CONTENT_TYPE)

    app[_STREAMS] = set()

    async def events(request: web.Request) -> web.StreamResponse:
        try:
            token = stream_token(
                request.headers.get("Authorization"), request.rel_url.query.get("token")
            )
            after = resume_after(
                request.headers.get("Last-Event-ID"), request.rel_url.query.get("after")
            )
            session = hub.open_session(token)
        except protocol.ProtocolError as exc:
            reply = hub.reject(exc)
            return web.Response(
                body=reply.body, status=reply.status, content_type=JSON_CONTENT_TYPE
            )
        streams: set[Session] = app[_STREAMS]
        try:
            reply = await session.subscribe(after)
            if reply.status != 200:
                return web.Response(
                    body=reply.body, status=reply.status, content_type=JSON_CONTENT_TYPE
                )
            resp = web.StreamResponse(
                headers={
                    "Content-Type": SSE_CONTENT_TYPE,
                    "Cache-Control": "no-cache",
                    "X-Accel-Buffering": "no",  # tells nginx-like proxies not to buffer
                }
            )
            streams.add(session)
            try:
                await resp.prepare(request)
                gap = sse_gap_event(reply.body)
                if gap is not None:
                    await resp.write(gap)
            except ConnectionError:
                return resp  # the client went away
            await _stream(resp, session, config.sse_heartbeat_s, request)
            return resp
        finally:
            streams.discard(session)
            session.close()

    async def end_streams(app: web.Application) -> None:
        # Each stream sends what it has queued, then its last chunk.
        for session in list(app[_STREAMS]):
            session.request_close(_CLOSE_GOING_AWAY, "server shutdown", flush=True)

    app.router.add_post(PATH, rpc)
    app.router.add_get(INBOX_PATH, inbox)
    app.router.add_get(EVENTS_PATH, events)
    app.on_shutdown.append(end_streams)
    return app


async def serve(config: ServerConfig, hub: Hub, on_ready: OnReady, stop: asyncio.Event) -> None:
    """Serve ``POST /rpc`` on ``config.host:config.port`` until ``stop`` is set."""
    # A client that gives up on a long poll ends it on the server too, so the
    # user is not kept online by a request nobody waits for.
    await serve_app(make_app(config, hub), config, hub, on_ready, stop, handler_cancellation=True)
