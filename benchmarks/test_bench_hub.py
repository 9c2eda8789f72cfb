"""The hub: one echo request from bytes in to reply bytes out, as every transport calls it."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from servers import protocol
from servers.hub import Hub

BODY = protocol.encode_request(
    protocol.Request(op="echo", id=1, ts=1, payload=protocol.make_payload(64))
)


def run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (an echo through the hub) without an event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("the coroutine suspended; it needs an event loop")


def test_hub_echo_dispatch(benchmark: Any) -> None:
    hub = Hub()
    reply = benchmark(lambda: run_sync(hub.handle(BODY)))
    assert reply.status == 200


def test_hub_rejects_unknown_op(benchmark: Any) -> None:
    hub = Hub()
    body = protocol.encode_request(protocol.Request(op="nope", id=1, ts=1))
    reply = benchmark(lambda: run_sync(hub.handle(body)))
    assert reply.status == 400
