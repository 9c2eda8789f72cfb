"""The rtbench wire protocol: one JSON envelope, no I/O.

Servers and load generators both import this module, so every transport
carries exactly the same bytes for the same request.

Request envelope::

    {"op": "echo", "id": 7, "ts": 123456789, "payload": ...}

Response envelope (success)::

    {"op": "echo", "id": 7, "ts": 123456789, "ok": true, "payload": ...}

Response envelope (error)::

    {"op": "echo", "id": 7, "ts": 123456789, "ok": false,
     "error": {"code": "unknown_op", "message": "..."}}

Call :func:`decode_request` on received bytes (it raises a
:class:`ProtocolError` subclass naming the problem) and
:func:`encode_response` on the reply. ``ts`` is the client's monotonic
clock in nanoseconds; servers echo it untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

PROTOCOL_VERSION = 1

#: Default upper bound on a request body or WebSocket message, in bytes.
DEFAULT_MAX_MESSAGE_BYTES = 1 << 20

#: Largest id or timestamp an envelope may carry (a signed 64-bit integer).
MAX_ID = (1 << 63) - 1
_MAX_ID = MAX_ID


class ProtocolError(ValueError):
    """Base class of every decoding or validation failure.

    ``code`` is the short machine-readable name put on the wire and
    ``http_status`` the status an HTTP transport answers with.
    """

    code = "protocol_error"
    http_status = 400


class MalformedJSON(ProtocolError):
    """The bytes are not a JSON document."""

    code = "malformed_json"


class InvalidEnvelope(ProtocolError):
    """The JSON is valid but is not a well-formed envelope."""

    code = "invalid_envelope"


class UnknownOp(ProtocolError):
    """The envelope names an operation the hub does not implement."""

    code = "unknown_op"


class MessageTooLarge(ProtocolError):
    """The body or message is larger than the configured limit."""

    code = "too_large"
    http_status = 413


class Unauthorized(ProtocolError):
    """No valid bearer token for an operation that acts as a user."""

    code = "unauthorized"
    http_status = 401


class Forbidden(ProtocolError):
    """The caller may not do this (e.g. act as another user or read their inbox).

    WebSocket transports close the connection with 1008 (policy violation).
    """

    code = "forbidden"
    http_status = 403


class UnknownUser(ProtocolError):
    """The request names a user who never signed in on this server."""

    code = "unknown_user"
    http_status = 404


class LimitReached(ProtocolError):
    """A server bound (users, inbox bytes, watched names, rooms...) would be exceeded.

    Nothing of the request was applied; the server counts every refusal in ``stats``.
    """

    code = "limit_reached"
    http_status = 429


class RequestTimeout(ProtocolError):
    """The request body did not arrive in time; the connection is closed."""

    code = "request_timeout"
    http_status = 408


class InternalError(ProtocolError):
    """An operation failed for a reason other than the request's content."""

    code = "internal_error"
    http_status = 500


@dataclass(frozen=True, slots=True)
class Request:
    """A decoded request envelope."""

    op: str
    id: int
    ts: int
    payload: Any = None


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """The ``error`` member of a failed response."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Response:
    """A decoded response envelope; exactly one of payload/error is meaningful."""

    op: str | None
    id: int | None
    ts: int | None
    ok: bool
    payload: Any = None
    error: ErrorInfo | None = field(default=None)


def _check_int(name: str, value: Any) -> int:
    # bool is a subclass of int; a JSON true is not a valid id or timestamp.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidEnvelope(f"field {name!r} must be an integer, got {type(value).__name__}")
    if not 0 <= value <= _MAX_ID:
        raise InvalidEnvelope(f"field {name!r} out of range: {value}")
    return value


#: Most digits an integer given as text may have: 2**63 - 1 has 19.
_MAX_ID_DIGITS = len(str(_MAX_ID))


def parse_int_text(name: str, text: str) -> int:
    """An envelope integer given as text (an HTTP query value or header), checked like one.

    Only ASCII digits, 0 to 2**63 - 1 (the range of ``id`` and ``ts``); anything
    else raises :class:`InvalidEnvelope` naming ``name`` (without echoing a huge value).
    """
    if not (0 < len(text) <= _MAX_ID_DIGITS and text.isascii() and text.isdigit()):
        shown = text if len(text) <= 24 else f"{text[:20]}... ({len(text)} characters)"
        raise InvalidEnvelope(f"{name!r} must be an integer from 0 to {_MAX_ID}, got {shown!r}")
    return _check_int(name, int(text))


def _loads(data: bytes | bytearray | memoryview | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSON(f"body is not valid JSON: {exc}") from None


def check_size(data: bytes | bytearray | memoryview | str, limit: int) -> None:
    """Raise :class:`MessageTooLarge` when ``data`` exceeds ``limit`` bytes."""
    if isinstance(data, str):
        size = len(data.encode("utf-8", "surrogatepass"))
    else:
        size = memoryview(data).nbytes
    if size > limit:
        raise message_too_large(size, limit)


def message_too_large(size: int, limit: int) -> MessageTooLarge:
    """The :class:`MessageTooLarge` that :func:`check_size` raises for ``size`` bytes."""
    return MessageTooLarge(f"message of {size} bytes exceeds the limit of {limit} bytes")


def encode_request(req: Request) -> bytes:
    """Serialise a request envelope to compact JSON bytes."""
    return orjson.dumps({"op": req.op, "id": req.id, "ts": req.ts, "payload": req.payload})


def decode_request(data: bytes | bytearray | memoryview | str) -> Request:
    """Parse and validate a request envelope.

    Raises :class:`MalformedJSON` or :class:`InvalidEnvelope`.
    """
    obj = _loads(data)
    if not isinstance(obj, dict):
        raise InvalidEnvelope(f"envelope must be a JSON object, got {type(obj).__name__}")
    unknown = set(obj) - {"op", "id", "ts", "payload"}
    if unknown:
        raise InvalidEnvelope(f"unknown envelope field(s): {', '.join(sorted(unknown))}")
    for name in ("op", "id", "ts"):
        if name not in obj:
            raise InvalidEnvelope(f"missing envelope field {name!r}")
    op = obj["op"]
    if not isinstance(op, str) or not op:
        raise InvalidEnvelope("field 'op' must be a non-empty string")
    return Request(
        op=op,
        id=_check_int("id", obj["id"]),
        ts=_check_int("ts", obj["ts"]),
        payload=obj.get("payload"),
    )


def encode_response(resp: Response) -> bytes:
    """Serialise a response envelope; key order is fixed so bytes are stable."""
    if resp.ok:
        return orjson.dumps(
            {"op": resp.op, "id": resp.id, "ts": resp.ts, "ok": True, "payload": resp.payload}
        )
    assert resp.error is not None, "an error response needs error info"
    return orjson.dumps(
        {
            "op": resp.op,
            "id": resp.id,
            "ts": resp.ts,
            "ok": False,
            "error": {"code": resp.error.code, "message": resp.error.message},
        }
    )


def decode_response(data: bytes | bytearray | memoryview | str) -> Response:
    """Parse and validate a response envelope (used by load generators)."""
    obj = _loads(data)
    if not isinstance(obj, dict):
        raise InvalidEnvelope(f"envelope must be a JSON object, got {type(obj).__name__}")
    ok = obj.get("ok")
    if not isinstance(ok, bool):
        raise InvalidEnvelope("field 'ok' must be a boolean")
    op = obj.get("op")
    if op is not None and not isinstance(op, str):
        raise InvalidEnvelope("field 'op' must be a string or null")
    rid = obj.get("id")
    ts = obj.get("ts")
    rid = None if rid is None else _check_int("id", rid)
    ts = None if ts is None else _check_int("ts", ts)
    if ok:
        return Response(op=op, id=rid, ts=ts, ok=True, payload=obj.get("payload"))
    err = obj.get("error")
    if not isinstance(err, dict) or not isinstance(err.get("code"), str):
        raise InvalidEnvelope("failed response needs an 'error' object with a string 'code'")
    return Response(
        op=op,
        id=rid,
        ts=ts,
        ok=False,
        error=ErrorInfo(code=err["code"], message=str(err.get("message", ""))),
    )


def ok_response(req: Request, payload: Any) -> Response:
    """Build the success response to ``req``."""
    return Response(op=req.op, id=req.id, ts=req.ts, ok=True, payload=payload)


def error_response(exc: ProtocolError, req: Request | None = None) -> Response:
    """Build the error response for ``exc``; ``req`` when the envelope was readable."""
    return Response(
        op=req.op if req else None,
        id=req.id if req else None,
        ts=req.ts if req else None,
        ok=False,
        error=ErrorInfo(code=exc.code, message=str(exc)),
    )


def make_payload(size: int) -> str:
    """A deterministic ASCII payload of exactly ``size`` characters."""
    if size < 0:
        raise ValueError("payload size must be >= 0")
    unit = "rtbench-"
    return (unit * (size // len(unit) + 1))[:size]


@dataclass(frozen=True, slots=True)
class Push:
    """A server-initiated delivery on a push connection: inbox item ``seq``."""

    seq: int
    item: Any


def encode_push(seq: int, item: bytes) -> bytes:
    """``{"op": "push", "seq": N, "item": ITEM}`` around an already-encoded item."""
    return b'{"op":"push","seq":%d,"item":%b}' % (seq, item)


_PUSH_PREFIX = b'{"op":"push","seq":'


def push_seq(body: bytes) -> int | None:
    """The ``seq`` of a body made by :func:`encode_push`, or None for any other message."""
    if not body.startswith(_PUSH_PREFIX):
        return None
    end = body.find(b",", len(_PUSH_PREFIX))
    digits = body[len(_PUSH_PREFIX) : end]
    return int(digits) if end > 0 and digits.isdigit() else None


def decode_server_message(data: bytes | bytearray | memoryview | str) -> Response | Push:
    """Decode what a push connection receives: a reply envelope or a :class:`Push`."""
    obj = _loads(data)
    if isinstance(obj, dict) and obj.get("op") == "push" and "ok" not in obj:
        seq = obj.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise InvalidEnvelope("push needs a positive integer 'seq'")
        if "item" not in obj:
            raise InvalidEnvelope("push needs an 'item'")
        return Push(seq=seq, item=obj["item"])
    return decode_response(data)
