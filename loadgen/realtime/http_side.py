"""A user's HTTP side less its I/O; each driver's ``HttpConn`` adds it.

::

    side.token = token                            # after sign-in: sent as a bearer token
    headers = side.headers()                      # each request
    body = side.action_body(op, payload)          # POST /rpc
    path, timeout_s = side.poll_target(after, wait_ms)
    before = side.poll_received()                 # then the measured GET path
    cursor = side.take_poll(resp, after, before, via, on_item, on_gap)
    side.wire_totals()                            # both connections' bytes

Actions and polls are counted apart (``counters["action"]``, ``counters["poll"]``):
each has its connection, as a browser holds a long poll on a second one. Over HTTP/2
(:mod:`loadgen.realtime.lean_h2_conns`) they are streams of one connection, each
stream still counted with its role.
"""

from __future__ import annotations

import time
from typing import Any

from loadgen.realtime.calls import request_body
from loadgen.realtime.receive import OnGap, OnItem, take_page
from loadgen.realtime.user_state import OnRequest
from loadgen.wire import WireCounter
from servers import protocol

clock = time.perf_counter_ns


class HttpSide:
    """What both drivers' HTTP sides hold: counters, token, request and poll shapes."""

    def __init__(self, keep_alive: bool, timeout_s: float, on_request: OnRequest) -> None:
        self.keep_alive = keep_alive
        self.timeout_s = timeout_s
        self.on_request = on_request
        self.token: str | None = None
        self.counters = {"action": WireCounter(), "poll": WireCounter()}

    def headers(self) -> dict[str, str]:
        """A request's headers: JSON, and the bearer token once signed in."""
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    @staticmethod
    def action_body(op: str, payload: Any) -> bytes:
        """The ``POST /rpc`` body of one operation."""
        return request_body(op, payload)[2]

    def poll_target(self, after: int, wait_ms: int) -> tuple[str, float]:
        """A poll's path and timeout: the request timeout plus the time it may be held."""
        return f"/inbox?after={after}&wait_ms={wait_ms}", self.timeout_s + wait_ms / 1000.0

    def poll_received(self) -> int:
        """Bytes received on the poll connection so far (read before a poll)."""
        return self.counters["poll"].received

    def take_poll(
        self,
        resp: protocol.Response,
        after: int,
        before: int,
        via: str,
        on_item: OnItem,
        on_gap: OnGap | None,
    ) -> int:
        """Hand a poll reply's items on (sharing its bytes since ``before``); the new cursor."""
        nbytes = self.counters["poll"].received - before
        return take_page(resp.payload, after, nbytes, clock(), via, on_item, on_gap)

    def wire_totals(self) -> tuple[int, int]:
        """Bytes sent and received over both connections so far."""
        return (
            sum(c.sent for c in self.counters.values()),
            sum(c.received for c in self.counters.values()),
        )
