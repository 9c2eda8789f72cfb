"""Requests and their replies on one WebSocket, without I/O: both drivers share it.

A driver (asyncio or gevent) only sends, receives and waits; what a call is
(its id, its envelope, which reply answers it, what it reports) is here::

    calls: Calls[Future] = Calls()
    call = calls.start(op, payload, waiter)   # waiter: the driver's future/AsyncResult
    send(call.body)
    ...                                       # the reader, per message received:
    matched = calls.take(data, received_ns, on_item)   # a push goes to on_item
    if matched: matched[0].set(matched[1])    # (reply, bytes) to the waiting call
    ...
    payload = call.answer(reply)              # raises OpFailed for an error envelope
    call.fail("timeout")                      # or: what went wrong, if nothing did before
    calls.finish(call, on_request)            # always: reported, no longer waiting
    for waiter in calls.drain(): ...          # the connection closed: fail each one

:func:`request_body` is the envelope of one request, for HTTP calls too.
"""

from __future__ import annotations

import itertools
import time
from typing import Any, Generic, TypeVar

from loadgen.realtime.receive import OnItem, take_ws_message, ws_frame_bytes
from loadgen.realtime.replies import payload_of, reply_error
from loadgen.realtime.user_state import OnRequest
from servers import protocol

clock = time.perf_counter_ns

W = TypeVar("W")
Reply = tuple[protocol.Response, int]

_ids = itertools.count(1)


def request_body(op: str, payload: Any) -> tuple[int, int, bytes]:
    """A new request's id, send time (ns) and encoded envelope."""
    rid = next(_ids)
    sent = clock()
    body = protocol.encode_request(protocol.Request(op=op, id=rid, ts=sent, payload=payload))
    return rid, sent, body


class Call:
    """One request on a WebSocket: what it sent, what came back, and its error code."""

    def __init__(self, op: str, payload: Any) -> None:
        self.op = op
        self.rid, self.sent, self.body = request_body(op, payload)
        self.error: str | None = None
        self.received_len = 0

    def answer(self, reply: Reply) -> Any:
        """The payload of ``reply`` (the envelope and its frame's size); raises OpFailed."""
        resp, self.received_len = reply
        self.error = reply_error(resp)
        return payload_of(resp)

    def fail(self, code: str) -> None:
        """The call failed with ``code``, unless an error reply already named its error."""
        self.error = self.error or code

    def report(self, on_request: OnRequest) -> None:
        """Report the call as one request: its frames' bytes on the wire, its error."""
        received = ws_frame_bytes(self.received_len, False) if self.received_len else 0
        sent_bytes = ws_frame_bytes(len(self.body), True)
        on_request(self.op, self.sent, clock(), sent_bytes, received, self.error, 0)


class Calls(Generic[W]):
    """The calls waiting on one WebSocket, each with its driver's waiter ``W``."""

    def __init__(self) -> None:
        self._waiting: dict[int, W] = {}

    def start(self, op: str, payload: Any, waiter: W) -> Call:
        """A new call, waiting on ``waiter`` until its reply is taken or it finishes."""
        call = Call(op, payload)
        self._waiting[call.rid] = waiter
        return call

    def take(self, data: bytes, received_ns: int, on_item: OnItem) -> tuple[W, Reply] | None:
        """A received message: a push goes to ``on_item``; a reply returns its call's waiter."""
        message = take_ws_message(data, received_ns, on_item)
        if message is None:
            return None
        waiter = self._waiting.pop(message.id or 0, None)
        if waiter is None:
            return None
        return waiter, (message, len(data))

    def finish(self, call: Call, on_request: OnRequest) -> None:
        """The call is over (answered or not): it waits no more and is reported."""
        self._waiting.pop(call.rid, None)
        call.report(on_request)

    def drain(self) -> list[W]:
        """Every waiter still waiting, and none after: the connection has closed."""
        waiters = list(self._waiting.values())
        self._waiting.clear()
        return waiters
