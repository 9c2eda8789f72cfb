"""The transport-agnostic dispatcher in ``servers.hub``."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from servers import protocol
from servers.hub import Context, Hub, Reply
from servers.protocol import Request


def _request(op: str = "echo", payload: Any = None, rid: int = 7, ts: int = 99) -> bytes:
    return protocol.encode_request(Request(op=op, id=rid, ts=ts, payload=payload))


async def test_echo_returns_payload_and_envelope() -> None:
    hub = Hub()
    reply = await hub.handle(_request(payload={"a": [1, 2.5, None, True, "x"]}))
    assert reply.status == 200
    assert orjson.loads(reply.body) == {
        "op": "echo",
        "id": 7,
        "ts": 99,
        "ok": True,
        "payload": {"a": [1, 2.5, None, True, "x"]},
    }
    assert hub.requests == 1
    assert hub.errors == 0


async def test_echo_accepts_str_and_memoryview() -> None:
    hub = Hub()
    data = _request(payload="hello")
    expected = (await hub.handle(data)).body
    assert (await hub.handle(data.decode())).body == expected
    assert (await hub.handle(memoryview(data))).body == expected
    assert (await hub.handle(bytearray(data))).body == expected


async def test_unknown_op() -> None:
    hub = Hub()
    reply = await hub.handle(_request(op="nope"))
    assert reply.status == 400
    body = orjson.loads(reply.body)
    assert body["ok"] is False
    assert body["error"]["code"] == "unknown_op"
    assert (body["op"], body["id"], body["ts"]) == ("nope", 7, 99)
    assert hub.errors == 1


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"{not json", "malformed_json"),
        (b"", "malformed_json"),
        (b"[1, 2]", "invalid_envelope"),
        (b'{"op": "echo", "id": true, "ts": 1}', "invalid_envelope"),
        (b'{"op": "echo", "id": 1, "ts": 1, "x": 1}', "invalid_envelope"),
    ],
)
async def test_malformed_gives_400(data: bytes, code: str) -> None:
    hub = Hub()
    reply = await hub.handle(data)
    assert reply.status == 400
    body = orjson.loads(reply.body)
    assert body["ok"] is False
    assert body["error"]["code"] == code
    assert body["id"] is None


async def test_too_large_gives_413() -> None:
    hub = Hub(max_message_bytes=64)
    exact = _request(payload="")
    exact = _request(payload=protocol.make_payload(64 - len(exact)))
    assert len(exact) == 64
    assert (await hub.handle(exact)).status == 200
    reply = await hub.handle(exact + b" ")
    assert reply.status == 413
    body = orjson.loads(reply.body)
    assert body["error"] == {
        "code": "too_large",
        "message": "message of 65 bytes exceeds the limit of 64 bytes",
    }


def test_reject_matches_hub_check() -> None:
    hub = Hub(max_message_bytes=10)
    reply = hub.reject(protocol.message_too_large(11, 10))
    assert reply == Reply(
        413,
        b'{"op":null,"id":null,"ts":null,"ok":false,'
        b'"error":{"code":"too_large",'
        b'"message":"message of 11 bytes exceeds the limit of 10 bytes"}}',
    )
    assert (hub.requests, hub.errors) == (1, 1)


async def test_replies_are_byte_stable() -> None:
    first = await Hub().handle(_request(payload={"b": 1, "a": [3.25, "z"]}))
    second = await Hub().handle(_request(payload={"b": 1, "a": [3.25, "z"]}))
    assert first == second
    assert first.body == (
        b'{"op":"echo","id":7,"ts":99,"ok":true,"payload":{"b":1,"a":[3.25,"z"]}}'
    )
    bad = [await Hub().handle(b"{oops") for _ in range(2)]
    assert bad[0] == bad[1]


async def test_register_and_duplicate() -> None:
    hub = Hub()

    async def double(req: Request, ctx: Context) -> Any:
        return req.payload * 2

    hub.register("double", double)
    assert hub.ops[0] == "echo"
    assert hub.ops[-1] == "double"
    reply = await hub.handle(_request(op="double", payload=21))
    assert orjson.loads(reply.body)["payload"] == 42
    with pytest.raises(ValueError):
        hub.register("double", double)
    with pytest.raises(ValueError):
        hub.register("echo", double)


async def test_failing_handler_gives_500_not_exception() -> None:
    hub = Hub()

    async def boom(req: Request, ctx: Context) -> Any:
        raise RuntimeError("kaput")

    async def unencodable(req: Request, ctx: Context) -> Any:
        return object()

    hub.register("boom", boom)
    hub.register("weird", unencodable)
    reply = await hub.handle(_request(op="boom"))
    assert reply.status == 500
    assert orjson.loads(reply.body)["error"]["code"] == "internal_error"
    reply = await hub.handle(_request(op="weird"))
    assert reply.status == 500
    assert orjson.loads(reply.body)["error"]["code"] == "internal_error"


async def test_deeply_nested_payload_does_not_raise() -> None:
    hub = Hub()
    depth = 300
    data = b'{"op":"echo","id":1,"ts":2,"payload":' + b"[" * depth + b"]" * depth + b"}"
    reply = await hub.handle(data)
    assert reply.status == 400
    body = orjson.loads(reply.body)
    assert body["error"]["code"] == "invalid_envelope"
    assert body["id"] == 1


def test_hub_rejects_bad_limit() -> None:
    with pytest.raises(ValueError):
        Hub(max_message_bytes=0)
