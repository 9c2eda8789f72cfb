"""A virtual user under gevent: the locust engine's twin of :mod:`loadgen.realtime.users`.

Same state and semantics (:class:`~loadgen.realtime.user_state.UserState`: what is
recorded, when a user counts as offline); only the I/O loops are gevent's::

    vu = VirtualUser("w0u3", endpoint, params, on_request, on_item, on_connect, on_gap)
    vu.start()                      # sign in, start receiving (poll loop or push reader)
    vu.call("send", {...})          # one measured operation
    vu.go_offline(); vu.go_online()
    vu.stop()
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import gevent
from gevent.event import Event
from gevent.lock import Semaphore

from loadgen.clients.errors import ClientError
from loadgen.locust_engine.conns import HttpConn, SseConn, WsConn
from loadgen.realtime.receive import subscribe_gap
from loadgen.realtime.replies import auth_refused
from loadgen.realtime.stage import FAILURES
from loadgen.realtime.user_state import ConnClasses, PollClock, UserState
from servers.realtime.credentials import signin_payload

clock = time.perf_counter_ns


class VirtualUser(UserState):
    """One simulated person with one browser tab, under gevent."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._busy = Semaphore()
        self._receiver: gevent.Greenlet | None = None
        self._wake = Event()

    def conn_classes(self) -> ConnClasses:
        return ConnClasses(WsConn, HttpConn, SseConn)

    def call(self, op: str, payload: Any) -> Any:
        """One measured operation as this user; one thing at a time."""
        with self._busy:
            if self.ws is not None:
                return self.ws.call(op, payload)
            assert self.http is not None
            return self.http.call(op, payload)

    def _connect_ws(self) -> None:
        assert self.ws is not None
        t0 = clock()
        try:
            self.ws.open(self.token)
        except ClientError as exc:
            self.on_connect(self.name, t0, clock(), exc.code)
            raise
        self.on_connect(self.name, t0, clock(), None)
        if self.token is None:
            self._signed_in(self.ws.call("signin", signin_payload(self.name)))
        if subscribe_gap(self.ws.call("subscribe_inbox", {"after": self.cursor})):
            self._gap("push")

    def start(self) -> None:
        """Sign in and start receiving."""
        self.stopping = False
        if self.ws is not None:
            self._connect_ws()
        else:
            token = self._sign_in_http()
            if self.sse is not None:
                self.sse.renew = self._sign_in_http
                self.sse.connect(token, self.cursor)
        self.online = True
        self._wake.set()
        self._spawn_receiver()

    def _sign_in_http(self) -> str:
        """Sign in over HTTP (at the start, and again once the token was refused)."""
        assert self.http is not None
        self.http.token = None  # a stale bearer token would have the sign-in refused
        return self._signed_in(self.http.call("signin", signin_payload(self.name)))

    def _spawn_receiver(self) -> None:
        self._receiver = gevent.spawn(self._receive)
        self._receiver.link_exception(self._check_receiver)

    def _check_receiver(self, greenlet: gevent.Greenlet) -> None:
        if not isinstance(greenlet.exception, gevent.GreenletExit):
            self.failure = greenlet.exception

    def _receive(self) -> None:
        if self.ws is not None:
            self._watch_ws()
        elif self.sse is not None:
            self.sse.run()
        else:
            self._poll_loop()

    def _watch_ws(self) -> None:
        assert self.ws is not None
        while not self.stopping:
            self.ws.closed.wait()
            if self.ws.failure is not None:
                raise self.ws.failure
            if self.stopping or not self.online:
                self._wake.wait()
                continue
            # Dropped while meant to be online (closed as a slow consumer, or its token
            # ended): resume, signing in again if need be.
            self._ws_dropped()
            self.ws.close()
            try:
                self._connect_ws()
            except FAILURES:
                gevent.sleep(0.1)

    def _poll_loop(self) -> None:
        assert self.http is not None
        timing = PollClock(self.endpoint, self.params)
        while not self.stopping:
            if not self.online:
                self._wake.wait()
                timing.restart()
                continue
            if not timing.long:
                delay = timing.next_delay_ns()
                if delay > 0:
                    gevent.sleep(delay / 1e9)
                if not self.online or self.stopping:
                    continue
            try:
                self.cursor = self.http.poll(
                    self.cursor, timing.wait_ms, self._item, "poll", self._gap
                )
            except FAILURES as exc:
                if auth_refused(exc):
                    # The poll's token ended (a held one answers 401): sign in, poll on.
                    self.ws_poll_auth_closes += 1
                    with contextlib.suppress(*FAILURES):
                        self._sign_in_http()
                        continue
                gevent.sleep(0.05)

    def go_offline(self) -> int:
        """Leave: close the WebSocket or stop polling. Returns when (ns)."""
        with self._busy:
            self.online = False
            self._wake.clear()
            t = clock()
            if self.ws is not None:
                self.ws.close()
            elif self._receiver is not None:
                # Abandon a held long poll (or close the event stream) as a closed tab does.
                self._receiver.kill(block=True, timeout=2.0)
                if self.sse is not None:
                    self.sse.close()
                assert self.http is not None
                self.http.close()
                self._receiver = None
            return t

    def go_online(self) -> int:
        """Come back: reconnect (WebSocket) or resume polling. Returns when (ns)."""
        with self._busy:
            t = clock()
            if self.ws is not None:
                self._connect_ws()
                self.online = True
                self._wake.set()
            else:
                if self.sse is not None and self._receiver is None:
                    assert self.token is not None
                    self.sse.connect(self.token, self.cursor)
                self.online = True
                self._wake.set()
                if self._receiver is None:
                    self._spawn_receiver()
            return t

    def stop(self) -> None:
        """Stop receiving and close every connection."""
        self.stopping = True
        self.online = False
        self._wake.set()
        if self._receiver is not None:
            self._receiver.kill(block=True, timeout=2.0)
            self._receiver = None
        if self.ws is not None:
            self.ws.close()
        if self.sse is not None:
            self.sse.close()
        if self.http is not None:
            self.http.close()
