"""Reading a reply envelope, without I/O: its payload, or what went wrong.

::

    resp = decode_reply(data)            # ClientError("bad_reply:...") if it is not one
    error = reply_error(resp)            # None, or "error_reply:CODE" for the samples
    items = poll_item_count(op, resp)    # items a poll reply carried
    payload = payload_of(resp, status)   # or raise OpFailed(code, message, status)
    auth_refused(exc)                    # the token ended: sign in again
    check_echo_reply(status, body, req_id)  # None for a good echo, else the row's error

    # One measured HTTP request, reported to on_request when it ends (either driver):
    with measured("send", counter, on_request, asyncio.CancelledError) as m:
        return m.reply(status, data)     # the reply envelope; raises as payload_of does
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from loadgen.clients.errors import ClientError
from loadgen.wire import WireCounter
from servers import protocol

clock = time.perf_counter_ns


class OpFailed(Exception):
    """The server answered with an error envelope; ``code`` is its error code."""

    def __init__(self, code: str, message: str = "", status: int = 200) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.status = status


def auth_refused(exc: BaseException) -> bool:
    """Whether a poll, an action or a stream connection was refused because its token
    is no longer valid (expired or revoked): the user signs in again."""
    if isinstance(exc, OpFailed):
        return exc.code == "unauthorized"
    return isinstance(exc, ClientError) and exc.code == "http_401"


def decode_reply(data: bytes) -> protocol.Response:
    """The reply envelope in ``data``; raises ClientError ``bad_reply:CODE`` if it is not one."""
    try:
        return protocol.decode_response(data)
    except protocol.ProtocolError as exc:
        raise ClientError(f"bad_reply:{exc.code}", str(exc)) from None


def reply_error(resp: protocol.Response) -> str | None:
    """The sample's error code of ``resp``: None when it succeeded."""
    if resp.ok:
        return None
    return f"error_reply:{resp.error.code if resp.error else 'unknown'}"


def poll_item_count(op: str, resp: protocol.Response) -> int:
    """How many inbox items a successful ``poll`` reply carried (0 for other ops)."""
    if op != "poll" or not resp.ok or not isinstance(resp.payload, dict):
        return 0
    return len(resp.payload.get("items", ()))


def payload_of(resp: protocol.Response, status: int = 200) -> Any:
    """The payload of a successful reply; raises :class:`OpFailed` for an error envelope."""
    if resp.ok:
        return resp.payload
    err = resp.error
    raise OpFailed(err.code if err else "error", err.message if err else "", status)


def check_echo_reply(status: int, body: bytes, req_id: int) -> str | None:
    """None when the reply is a successful echo of request ``req_id``, else an error code."""
    if status != 200:
        return f"http_{status}"
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        obj = None
    # The common case checked in place (the full decoder builds objects per reply);
    # anything else goes through the decoder, which names what is wrong.
    if (
        type(obj) is dict
        and obj.get("ok") is True
        and obj.get("id") == req_id
        and type(obj.get("op")) is str
        and type(obj.get("ts")) is int
        and 0 <= obj["ts"] <= protocol.MAX_ID
    ):
        return None
    try:
        resp = protocol.decode_response(body)
    except protocol.ProtocolError as exc:
        return f"bad_reply:{exc.code}"
    if not resp.ok:
        return f"error_reply:{resp.error.code if resp.error else 'unknown'}"
    if resp.id != req_id:
        return "id_mismatch"
    return None


class Measured:
    """One request being measured: its bytes (from ``counter``), times, error and items."""

    def __init__(self, op: str, counter: WireCounter) -> None:
        self.op = op
        self.counter = counter
        self.before = counter.snapshot()
        self.sent = clock()
        self.error: str | None = None
        self.items = 0

    def reply(self, status: int, data: bytes) -> protocol.Response:
        """Read the reply ``data`` (HTTP ``status``); raises as :func:`payload_of` does."""
        resp = decode_reply(data)
        self.error = reply_error(resp)
        self.items = poll_item_count(self.op, resp)
        payload_of(resp, status)
        return resp


@contextlib.contextmanager
def measured(
    op: str,
    counter: WireCounter,
    on_request: Callable[[str, int, int, int, int, str | None, int], None],
    abandoned: type[BaseException],
) -> Iterator[Measured]:
    """Measure one request and report it to ``on_request`` when the block ends.

    A ClientError's code is the request's error; ``abandoned`` (the driver's
    cancellation: a tab closing on a held long poll) is neither success nor
    failure, so such a request is not reported.
    """
    m = Measured(op, counter)
    try:
        yield m
    except ClientError as exc:
        m.error = m.error or exc.code
        raise
    except abandoned:
        m.error = "abandoned"
        raise
    finally:
        if m.error != "abandoned":
            after = counter.snapshot()
            sent, received = after[0] - m.before[0], after[1] - m.before[1]
            on_request(op, m.sent, clock(), sent, received, m.error, m.items)
