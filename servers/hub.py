"""The transport-agnostic core: application logic lives here, transports translate.

A transport hands the raw bytes of one request to :meth:`Hub.handle` and
sends back ``reply.body``; an HTTP transport also uses ``reply.status``::

    hub = Hub(max_message_bytes=65536)
    reply = await hub.handle(body)

The reply body for a given request is the same whichever transport carried
it, which is what makes the transports comparable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from servers import protocol
from servers.protocol import ProtocolError, Request

Handler = Callable[[Request], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Reply:
    """What a transport sends back: an HTTP-style status and the encoded envelope."""

    status: int
    body: bytes


class Hub:
    """Dispatches decoded requests to operations and encodes their replies."""

    def __init__(self, max_message_bytes: int = protocol.DEFAULT_MAX_MESSAGE_BYTES) -> None:
        if max_message_bytes <= 0:
            raise ValueError("max_message_bytes must be positive")
        self.max_message_bytes = max_message_bytes
        self._ops: dict[str, Handler] = {"echo": self._echo}
        self.requests = 0
        self.errors = 0

    @property
    def ops(self) -> tuple[str, ...]:
        """Names of the operations this hub implements."""
        return tuple(self._ops)

    def register(self, op: str, handler: Handler) -> None:
        """Add an operation; later scenarios extend the hub this way."""
        if op in self._ops:
            raise ValueError(f"operation {op!r} is already registered")
        self._ops[op] = handler

    async def handle(self, data: bytes | bytearray | memoryview | str) -> Reply:
        """Decode, dispatch and encode one request. Never raises for bad input."""
        self.requests += 1
        req: Request | None = None
        try:
            protocol.check_size(data, self.max_message_bytes)
            req = protocol.decode_request(data)
            handler = self._ops.get(req.op)
            if handler is None:
                raise protocol.UnknownOp(
                    f"unknown op {req.op!r}; known: {', '.join(sorted(self._ops))}"
                )
            payload = await handler(req)
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

    async def _echo(self, req: Request) -> Any:
        return req.payload
