"""The transport-agnostic core: application logic lives here, transports translate.

A transport hands the raw bytes of one request to :meth:`Hub.handle` and
sends back ``reply.body``; an HTTP transport also uses ``reply.status``::

    hub = Hub(max_message_bytes=65536)
    reply = await hub.handle(body)                      # anonymous (echo, signin)
    reply = await hub.handle(body, Context(user="alice"))  # HTTP with a valid token

A push transport (WebSocket, SSE) opens one :class:`Session` per connection and
sends whatever :meth:`Session.next_outgoing` yields: replies and pushed inbox
items, in order, through a bounded queue::

    session = hub.open_session(token)       # raises Unauthorized for a bad token
    await session.handle(message)           # queues the reply (and any pushes)
    body = await session.next_outgoing()    # None once the session must close
    session.close()                         # always, when the connection ends

The reply body for a given request is the same whichever transport carried
it, which is what makes the transports comparable. The real-time application
(:mod:`servers.realtime.ops`) lives on every hub as ``hub.realtime``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from servers import protocol
from servers.context import Context, Handler
from servers.gcfreeze import Settler
from servers.protocol import ProtocolError, Request
from servers.realtime.config import RealtimeConfig
from servers.realtime.inbox import Inbox
from servers.realtime.ops import Realtime
from servers.realtime.payload import is_int64
from servers.stalls import Stalls, server_watches_loop

#: Default bound of a push connection's outgoing queue, in messages.
DEFAULT_SEND_QUEUE = 1_000

#: WebSocket close codes a session asks its transport to use.
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013

#: Longest time between two sweeps for expired tokens (and silent users), in seconds.
TOKEN_SWEEP_S = 1.0


@dataclass(frozen=True, slots=True)
class Reply:
    """What a transport sends back: an HTTP-style status and the encoded envelope."""

    status: int
    body: bytes


class Hub:
    """Dispatches decoded requests to operations and encodes their replies."""

    def __init__(
        self,
        max_message_bytes: int = protocol.DEFAULT_MAX_MESSAGE_BYTES,
        realtime: RealtimeConfig | None = None,
        send_queue: int = DEFAULT_SEND_QUEUE,
        echo_delay_s: float = 0.0,
        watch_loop: bool | None = None,
    ) -> None:
        if max_message_bytes <= 0:
            raise ValueError("max_message_bytes must be positive")
        if echo_delay_s < 0:
            raise ValueError("echo_delay_s must be >= 0")
        #: Test-only slowdown added to every echo (``--delay-ms``), to validate a CI gate.
        self.echo_delay_s = echo_delay_s
        if send_queue < 1:
            raise ValueError("send_queue must be >= 1")
        self.max_message_bytes = max_message_bytes
        self.send_queue = send_queue
        self._ops: dict[str, Handler] = {"echo": self._echo}
        self._needs_user: set[str] = set()
        self.requests = 0
        self.errors = 0
        self.realtime = Realtime(realtime)
        for op, handler, auth in self.realtime.operations():
            self.register(op, handler, auth=auth)
        # The record of what stopped this process (collections, late loop turns)
        # answers with the counters, so a run can lay them over its latencies.
        self._ops["stats"] = self._stats
        self.stalls = Stalls()
        #: Whether :meth:`start` times late loop turns besides collections (default:
        #: ``RTBENCH_LOOP_WATCH=1``; each check costs CPU this server's figures would carry).
        self.watch_loop = server_watches_loop() if watch_loop is None else watch_loop
        self._watcher: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        # Thousands of connections' objects would otherwise be rescanned by every full
        # collection, a pause of hundreds of ms for every delivery in flight.
        self.gc = Settler()

    @property
    def ops(self) -> tuple[str, ...]:
        """Names of the operations this hub implements."""
        return tuple(self._ops)

    def register(self, op: str, handler: Handler, auth: bool = False) -> None:
        """Add an operation; ``auth=True`` answers 401 unless a user is signed in."""
        if op in self._ops:
            raise ValueError(f"operation {op!r} is already registered")
        self._ops[op] = handler
        if auth:
            self._needs_user.add(op)

    def authenticate(self, token: str | None) -> Context:
        """A context for a bearer token (None: anonymous); raises Unauthorized if invalid."""
        if token is None:
            return Context()
        user = self.realtime.auth.user_for(token, time.perf_counter_ns())
        if user is None:
            raise protocol.Unauthorized(
                "the bearer token is not valid (unknown, expired or revoked); sign in again"
            )
        return Context(user=user, token=token)

    async def start(self) -> None:
        """Start background work (the presence sweeper, timing collections and, with
        ``watch_loop``, late loop turns); transports call this once."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever())
        self.stalls.install()
        if self._watcher is None and self.watch_loop:
            self._watcher = asyncio.create_task(self.stalls.watch_loop())

    async def stop(self) -> None:
        """Stop background work."""
        self.stalls.uninstall()
        for task in (self._sweeper, self._watcher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._sweeper = self._watcher = None

    async def _sweep_forever(self) -> None:
        # At most a second: streams end within a second of their token's expiry.
        period = min(TOKEN_SWEEP_S, max(0.05, self.realtime.config.presence_timeout_s / 10))
        while True:
            await asyncio.sleep(period)
            self.realtime.sweep()
            self.gc.settle()

    async def _stats(self, req: Request, ctx: Context) -> Any:
        # ``stalls_since_ns`` (this machine's perf_counter_ns) keeps only later stalls. It
        # is a filter, not an argument: anything but a signed 64-bit integer is ignored.
        since = req.payload.get("stalls_since_ns") if isinstance(req.payload, dict) else None
        counters = await self.realtime.op_stats(req, ctx)
        since = since if is_int64(since) else None
        return {**counters, "stalls": self.stalls.report(since)}

    def open_session(self, token: str | None = None) -> Session:
        """A push connection's session; raises Unauthorized for an invalid token."""
        user = self.authenticate(token).user
        session = Session(self, Context())
        if user is not None:
            session.bind(user, token or "")
        return session

    async def handle(
        self, data: bytes | bytearray | memoryview | str, ctx: Context | None = None
    ) -> Reply:
        """Decode, dispatch and encode one request. Never raises for bad input."""
        self.requests += 1
        req: Request | None = None
        ctx = ctx if ctx is not None else Context()
        try:
            protocol.check_size(data, self.max_message_bytes)
            req = protocol.decode_request(data)
            return await self._dispatch(req, ctx)
        except ProtocolError as exc:
            return self._error(exc, req)

    async def dispatch(self, req: Request, ctx: Context | None = None) -> Reply:
        """Run an already-decoded request (e.g. built from an HTTP GET's query)."""
        self.requests += 1
        try:
            return await self._dispatch(req, ctx if ctx is not None else Context())
        except ProtocolError as exc:
            return self._error(exc, req)

    async def _dispatch(self, req: Request, ctx: Context) -> Reply:
        try:
            handler = self._ops.get(req.op)
            if handler is None:
                raise protocol.UnknownOp(
                    f"unknown op {req.op!r}; known: {', '.join(sorted(self._ops))}"
                )
            if req.op in self._needs_user:
                if ctx.user is None:
                    raise protocol.Unauthorized(f"op {req.op!r} needs a signed-in user")
                if ctx.session is not None and ctx.token is not None:
                    # A push connection lives longer than one request: its token may
                    # have expired, or been revoked by ``bye`` elsewhere, since it opened.
                    now = time.perf_counter_ns()
                    if self.realtime.auth.user_for(ctx.token, now) != ctx.user:
                        ctx.session.unbind()
                        raise protocol.Unauthorized(
                            "the connection's token expired or was revoked; sign in again"
                        )
                elif ctx.session is None:
                    # A request over HTTP is a sign of life for presence.
                    self.realtime.presence.touch(ctx.user, time.perf_counter_ns())
                # Every operation that acts as a user refuses to act as another.
                self.realtime.check_self(req.payload, ctx)
            payload = await handler(req, ctx)
        except ProtocolError as exc:
            return self._error(exc, req)
        except Exception as exc:
            where = f"op {req.op!r}" if req is not None else "request"
            return self._error(protocol.InternalError(f"{where} failed: {exc!r}"), req)
        try:
            body = protocol.encode_response(protocol.ok_response(req, payload))
        except TypeError as exc:
            # orjson decodes deeper nesting than it encodes, so an echoed client
            # payload can fail here; anything else a handler returns is its bug.
            error: ProtocolError
            if payload is req.payload:
                error = protocol.InvalidEnvelope(f"payload cannot be encoded in a reply: {exc}")
            else:
                error = protocol.InternalError(
                    f"op {req.op!r} returned an unencodable reply: {exc}"
                )
            return self._error(error, req)
        return Reply(200, body)

    def reject(self, exc: ProtocolError) -> Reply:
        """Encode an error found by a transport before the hub saw the bytes."""
        self.requests += 1
        return self._error(exc, None)

    def _error(self, exc: ProtocolError, req: Request | None) -> Reply:
        self.errors += 1
        return Reply(exc.http_status, protocol.encode_response(protocol.error_response(exc, req)))

    async def _echo(self, req: Request, ctx: Context) -> Any:
        if self.echo_delay_s:
            await asyncio.sleep(self.echo_delay_s)
        return req.payload


class Session:
    """One push connection: its user, its inbox subscription and its outgoing queue.

    Replies and pushes share one queue of at most ``hub.send_queue`` messages,
    so they leave in order. A consumer too slow to drain it is not allowed to
    stall others: the session closes (``close_code`` 1013) and is counted in
    ``stats.slow_consumer_closes``; its items stay in the inbox for a resume.

    A resume (``subscribe_inbox`` after a cursor) replays the backlog from the
    inbox as the queue drains, never more than half the queue at a time, so a
    backlog longer than the queue can be caught up with; new items wait in the
    inbox until the replay reaches them, then are pushed as they come.
    """

    def __init__(self, hub: Hub, ctx: Context) -> None:
        self.hub = hub
        self.ctx = ctx
        ctx.session = self
        self._out: asyncio.Queue[bytes | None] = asyncio.Queue(hub.send_queue)
        self._box: Inbox | None = None
        # While catching up: items after this seq are still to be queued, read from
        # the inbox as the queue drains. None once pushes are live.
        self._replay_after: int | None = None
        # The replay waits until the reply to subscribe_inbox is queued.
        self._replay_held = False
        self.close_code: int | None = None
        self.close_reason = ""
        self._closed = False
        # Stops watching the bound token (see bind).
        self._unwatch: Callable[[], None] = _nothing

    @property
    def user(self) -> str | None:
        return self.ctx.user

    def bind(self, user: str, token: str) -> None:
        """Attach the connection to ``user`` (sign-in or a token at the handshake); it
        closes (1008) when that token expires or is revoked."""
        if self.ctx.user == user:
            self._watch(token)
            self.ctx.token = token
            return
        self.unbind()
        self.ctx.user = user
        self.ctx.token = token
        self._watch(token)
        self.hub.realtime.presence.connected(user, time.perf_counter_ns())

    def _watch(self, token: str) -> None:
        self._unwatch()
        self._unwatch = self.hub.realtime.auth.watch(token, self._token_ended)

    def _token_ended(self, reason: str) -> None:
        # What is still queued is dropped: nothing leaves under a dead token. The items
        # stay in the inbox, for the resume after the client signs in again.
        self.request_close(CLOSE_POLICY, f"token {reason}; sign in again")

    def unbind(self) -> None:
        """Detach the connection from its user (``bye``, or a token no longer valid)."""
        self._unwatch()
        self._unwatch = _nothing
        user = self.ctx.user
        if user is None:
            return
        self._unfollow()
        self.ctx.user = None
        self.ctx.token = None
        self.hub.realtime.presence.disconnected(user, time.perf_counter_ns())

    async def handle(self, data: bytes | bytearray | memoryview | str) -> None:
        """Run one received message and queue its reply, then any replayed pushes."""
        reply = await self.hub.handle(data, self.ctx)
        self._enqueue(reply.body)
        if reply.status == 403:
            # The error envelope still leaves, then the connection closes.
            self.request_close(CLOSE_POLICY, "forbidden", flush=True)
            return
        if self._replay_held:
            self._replay_held = False
            self._refill()

    def follow(self, box: Inbox, after: int) -> None:
        """Replay ``box`` after ``after``, then push every later item (after the current reply).

        Items the inbox no longer keeps are skipped: the reply reports them as a gap.
        """
        self._unfollow()
        self._box = box
        self._replay_after = max(after, box.first_kept - 1)
        self._replay_held = True
        box.subscribe(self._on_item)

    async def subscribe(self, after: int) -> Reply:
        """Run ``subscribe_inbox`` after ``after`` for a push-only transport (SSE).

        The reply is returned rather than queued (the stream carries pushes only),
        and the replay starts at once.
        """
        req = protocol.Request(op="subscribe_inbox", id=0, ts=0, payload={"after": after})
        reply = await self.hub.dispatch(req, self.ctx)
        if self._replay_held:
            self._replay_held = False
            self._refill()
        return reply

    def _on_item(self, seq: int, item: bytes) -> None:
        if self._replay_after is None:
            self._push(seq, item)
        # Otherwise the replay has not caught up yet: it reads this item from the inbox.

    def _refill(self) -> None:
        """Queue replayed items, up to half the queue; go live once caught up."""
        box = self._box
        if box is None or self._replay_after is None or self._replay_held:
            return
        if self._replay_after >= box.last_seq:
            self._replay_after = None
            return
        room = max(1, self._out.maxsize // 2) - self._out.qsize()
        if room <= 0:
            return
        page = box.read(self._replay_after, limit=room)
        if page.gap:
            # The inbox dropped items this connection had not sent yet.
            self.hub.realtime.counters["slow_consumer_closes"] += 1
            self.request_close(CLOSE_TRY_AGAIN, "slow consumer: fell behind the inbox")
            return
        for seq, item in page.items:
            self._out.put_nowait(protocol.encode_push(seq, item))
            self._replay_after = seq
        if self._replay_after >= box.last_seq:
            self._replay_after = None

    def _push(self, seq: int, item: bytes) -> None:
        self._enqueue(protocol.encode_push(seq, item))

    def _enqueue(self, body: bytes) -> None:
        if self.close_code is not None:
            return
        try:
            self._out.put_nowait(body)
        except asyncio.QueueFull:
            self.hub.realtime.counters["slow_consumer_closes"] += 1
            self.request_close(CLOSE_TRY_AGAIN, "slow consumer: send queue full")

    def stalled(self) -> None:
        """The transport gave up sending to this client: count it as a slow consumer."""
        if self.close_code is None:
            self.hub.realtime.counters["slow_consumer_closes"] += 1
            self.close_code = CLOSE_TRY_AGAIN
            self.close_reason = "slow consumer: send timed out"

    def request_close(self, code: int, reason: str, flush: bool = False) -> None:
        """Ask the transport to close with ``code``.

        Pending messages are dropped, unless ``flush``: then they are sent first.
        """
        if self.close_code is not None:
            return
        self.close_code = code
        self.close_reason = reason
        self._unfollow()
        if not flush:
            while not self._out.empty():
                self._out.get_nowait()
        if self._out.empty():
            self._out.put_nowait(None)  # wakes a writer waiting for the next message

    async def next_outgoing(self) -> bytes | None:
        """The next message to send, or None when the connection must close."""
        if self.close_code is not None and self._out.empty():
            return None
        self._refill()
        return await self._out.get()

    def _unfollow(self) -> None:
        if self._box is not None:
            self._box.unsubscribe(self._on_item)
            self._box = None
        self._replay_after = None
        self._replay_held = False

    def close(self) -> None:
        """The connection ended: stop following the inbox, update presence."""
        if self._closed:
            return
        self._closed = True
        self.unbind()
        self._unfollow()


def _nothing() -> None:
    return None
