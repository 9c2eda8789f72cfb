"""A virtual user: signs in, receives its inbox (polling or push), acts, goes offline.

::

    vu = VirtualUser("u3", cell, hooks)
    await vu.start()                 # sign in, start receiving
    await vu.call("send", {...})     # act (a measured request)
    await vu.go_offline(); await vu.go_online()
    await vu.stop()

Receiving depends on the cell's delivery mode: ``short-poll`` polls
``GET /inbox`` every interval, ``long-poll`` holds ``GET /inbox`` until
something arrives or the timeout passes, ``push`` subscribes its WebSocket
to the inbox and reconnects (resuming after its cursor) if the connection
drops, ``sse`` holds a Server-Sent Events stream (``GET /events``, resumed
with ``Last-Event-ID``) and acts over ``POST /rpc``. Going offline closes the
WebSocket or the event stream (seen at once), or stops polling (seen after
the presence timeout).

Every delivery path reports a gap (the reader fell behind the inbox's
retention, so items it was owed are gone) to ``on_gap(user, via)``: a poll
reply's ``gap``, a ``subscribe_inbox`` reply's ``gap`` when a WebSocket
(re)subscribes, an ``event: gap`` on the event stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from loadgen.clients.errors import ClientError
from loadgen.clients.kinds import LEAN
from loadgen.lean.h2bytes import HeaderTally
from loadgen.realtime.conns import HttpConn, SseConn, WsConn
from loadgen.realtime.lean_conns import LeanHttpConn, LeanSseConn, LeanWsConn
from loadgen.realtime.lean_h2_conns import LeanH2HttpConn, LeanH2SseConn
from loadgen.realtime.lean_h3_conns import LeanH3HttpConn, LeanH3SseConn
from loadgen.realtime.receive import subscribe_gap
from loadgen.realtime.replies import auth_refused
from loadgen.realtime.stage import FAILURES
from loadgen.realtime.user_state import (
    ConnClasses,
    Endpoint,
    OnConnect,
    OnUserGap,
    OnUserItem,
    PollClock,
    UserState,
)
from servers.realtime.credentials import signin_payload

clock = time.perf_counter_ns

__all__ = ["Endpoint", "OnConnect", "OnUserGap", "OnUserItem", "VirtualUser"]


class VirtualUser(UserState):
    """One simulated person with one browser tab, under asyncio."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._busy = asyncio.Lock()
        self._receiver: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        if isinstance(self.sse, LeanH2SseConn):
            # One HTTP/2 or HTTP/3 connection per user, as a browser holds: its event
            # stream is one more stream on the connection its actions use.
            self.sse.share(self.http)

    def conn_classes(self) -> ConnClasses:
        # The lean client's connections have the same shapes as the library ones.
        if self.endpoint.client == LEAN:
            if self.endpoint.http_version == "2":
                return ConnClasses(LeanWsConn, LeanH2HttpConn, LeanH2SseConn)
            if self.endpoint.http_version == "3":
                return ConnClasses(LeanWsConn, LeanH3HttpConn, LeanH3SseConn)
            return ConnClasses(LeanWsConn, LeanHttpConn, LeanSseConn)
        return ConnClasses(WsConn, HttpConn, SseConn)

    def header_tally(self) -> HeaderTally | None:
        """The HTTP/2 or HTTP/3 header bytes and requests of this user's connections (None
        when its connections are HTTP/1.1)."""
        return self.http.tally if isinstance(self.http, LeanH2HttpConn) else None

    async def call(self, op: str, payload: Any) -> Any:
        """One measured operation as this user."""
        # One thing at a time per user: an action never races the tab closing.
        async with self._busy:
            if self.ws is not None:
                return await self.ws.call(op, payload)
            assert self.http is not None
            return await self.http.call(op, payload)

    async def _connect_ws(self) -> None:
        assert self.ws is not None
        t0 = clock()
        try:
            await self.ws.open(self.token)
        except ClientError as exc:
            self.on_connect(self.name, t0, clock(), exc.code)
            raise
        self.on_connect(self.name, t0, clock(), None)
        if self.token is None:
            self._signed_in(await self.ws.call("signin", signin_payload(self.name)))
        reply = await self.ws.call("subscribe_inbox", {"after": self.cursor})
        if subscribe_gap(reply):
            self._gap("push")

    async def start(self) -> None:
        """Sign in and start receiving."""
        self.stopping = False
        if self.ws is not None:
            await self._connect_ws()
        else:
            token = await self._sign_in_http()
            if self.sse is not None:
                self.sse.renew = self._sign_in_http
                await self.sse.connect(token, self.cursor)
        self.online = True
        self._wake.set()
        self._receiver = asyncio.create_task(self._receive())
        self._receiver.add_done_callback(self._check_receiver)

    async def _sign_in_http(self) -> str:
        """Sign in over HTTP (at the start, and again once the token was refused)."""
        assert self.http is not None
        self.http.token = None  # a stale bearer token would have the sign-in refused
        return self._signed_in(await self.http.call("signin", signin_payload(self.name)))

    def _check_receiver(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.failure = task.exception()

    async def _receive(self) -> None:
        if self.ws is not None:
            await self._watch_ws()
        elif self.sse is not None:
            await self.sse.run()
        else:
            await self._poll_loop()

    async def _watch_ws(self) -> None:
        assert self.ws is not None
        while not self.stopping:
            await self.ws.closed.wait()
            if self.ws.failure is not None:
                raise self.ws.failure
            if self.stopping or not self.online:
                await self._wake.wait()
                continue
            # Dropped while meant to be online (closed as a slow consumer, or its token
            # ended): resume, signing in again if need be.
            self._ws_dropped()
            await self.ws.close()
            try:
                await self._connect_ws()
            except FAILURES:
                await asyncio.sleep(0.1)

    async def _poll_loop(self) -> None:
        assert self.http is not None
        timing = PollClock(self.endpoint, self.params)
        while not self.stopping:
            if not self.online:
                await self._wake.wait()
                timing.restart()
                continue
            if not timing.long:
                delay = timing.next_delay_ns()
                if delay > 0:
                    await asyncio.sleep(delay / 1e9)
                if not self.online or self.stopping:
                    continue
            try:
                self.cursor = await self.http.poll(
                    self.cursor, timing.wait_ms, self._item, "poll", self._gap
                )
            except FAILURES as exc:
                if auth_refused(exc):
                    # The poll's token ended (a held one answers 401): sign in, poll on.
                    self.ws_poll_auth_closes += 1
                    with contextlib.suppress(*FAILURES):
                        await self._sign_in_http()
                        continue
                await asyncio.sleep(0.05)

    async def go_offline(self) -> int:
        """Leave: close the WebSocket or stop polling. Returns when (ns)."""
        async with self._busy:
            return await self._go_offline()

    async def _go_offline(self) -> int:
        self.online = False
        self._wake.clear()
        t = clock()
        if self.ws is not None:
            await self.ws.close()
        elif self._receiver is not None:
            # Abandon a held long poll (or close the event stream) the way a closed tab does.
            self._receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._receiver
            if self.sse is not None:
                await self.sse.close()
            assert self.http is not None
            await self.http.close()
            self._receiver = None
        return t

    async def go_online(self) -> int:
        """Come back: reconnect (WebSocket) or resume polling. Returns when (ns)."""
        async with self._busy:
            return await self._go_online()

    async def _go_online(self) -> int:
        t = clock()
        if self.ws is not None:
            await self._connect_ws()
            self.online = True
            self._wake.set()
        else:
            if self.sse is not None and self._receiver is None:
                assert self.token is not None
                await self.sse.connect(self.token, self.cursor)
            self.online = True
            self._wake.set()
            if self._receiver is None:
                self._receiver = asyncio.create_task(self._receive())
                self._receiver.add_done_callback(self._check_receiver)
        return t

    async def stop(self) -> None:
        """Stop receiving and close every connection."""
        self.stopping = True
        self.online = False
        self._wake.set()
        if self._receiver is not None:
            self._receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._receiver
            self._receiver = None
        if self.ws is not None:
            await self.ws.close()
        if self.sse is not None:
            await self.sse.close()
        if self.http is not None:
            await self.http.close()
