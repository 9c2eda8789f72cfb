"""HTTP/1.1 transport on aiohttp: ``POST /rpc`` carries one envelope each way.

Operations that act as a user need ``Authorization: Bearer TOKEN`` (from the
``signin`` op); a missing or unknown token gets 401, acting as someone else
403. ``GET /inbox?after=SEQ&wait_ms=MS`` is the polling endpoint (the ``poll``
op: a short poll with ``wait_ms=0``, a long poll otherwise); its reply is the
same envelope ``POST /rpc`` would give.

The request body goes to :meth:`Hub.handle`; the reply body is sent with
status ``reply.status`` and ``Content-Type: application/json``. A body larger
than ``max_message_bytes`` gets 413 with a ``too_large`` envelope::

    await serve(ServerConfig("127.0.0.1", 0), Hub(), on_ready, stop)
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from servers import protocol
from servers.common import JSON_CONTENT_TYPE, SHUTDOWN_TIMEOUT, OnReady, ServerConfig
from servers.hub import Context, Hub, Reply
from servers.realtime.auth import bearer_token

KIND = "http"
PATH = "/rpc"
INBOX_PATH = "/inbox"

_QUERY_INTS = ("after", "wait_ms", "limit")


def _context(hub: Hub, request: web.Request) -> Context:
    """The caller's context from the Authorization header; raises Unauthorized."""
    header = request.headers.get("Authorization")
    token = bearer_token(header)
    if header is not None and token is None:
        raise protocol.Unauthorized("Authorization must be 'Bearer TOKEN'")
    return hub.authenticate(token)


def _poll_request(request: web.Request) -> protocol.Request:
    """The ``poll`` request a ``GET /inbox`` query stands for."""
    query = request.rel_url.query
    payload: dict[str, int] = {}
    for name in _QUERY_INTS:
        if name in query:
            try:
                payload[name] = int(query[name])
            except ValueError:
                raise protocol.InvalidEnvelope(
                    f"query parameter {name!r} must be an integer"
                ) from None
    try:
        rid = int(query.get("id", "0"))
        ts = int(query.get("ts", "0"))
    except ValueError:
        raise protocol.InvalidEnvelope("query parameters 'id' and 'ts' must be integers") from None
    return protocol.Request(op="poll", id=rid, ts=ts, payload=payload)


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
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                reply = hub.reject(
                    protocol.MessageTooLarge(f"message exceeds the limit of {limit} bytes")
                )
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
            req = _poll_request(request)
        except protocol.ProtocolError as exc:
            reply = hub.reject(exc)
        else:
            reply = await hub.dispatch(req, ctx)
        return web.Response(body=reply.body, status=reply.status, content_type=JSON_CONTENT_TYPE)

    app.router.add_post(PATH, rpc)
    app.router.add_get(INBOX_PATH, inbox)
    return app


async def serve(config: ServerConfig, hub: Hub, on_ready: OnReady, stop: asyncio.Event) -> None:
    """Serve ``POST /rpc`` on ``config.host:config.port`` until ``stop`` is set."""
    runner = web.AppRunner(
        make_app(config, hub),
        access_log=None,
        handle_signals=False,
        # A client that gives up on a long poll ends it on the server too, so the
        # user is not kept online by a request nobody waits for.
        handler_cancellation=True,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    await runner.setup()
    await hub.start()
    try:
        site = web.TCPSite(runner, config.host, config.port, ssl_context=config.ssl_context())
        await site.start()
        on_ready(runner.addresses[0][1])
        await stop.wait()
    finally:
        await runner.cleanup()
        await hub.stop()
