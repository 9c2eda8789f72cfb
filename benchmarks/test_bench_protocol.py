"""The wire protocol: encode and decode one echo envelope of 64 bytes of payload."""

from __future__ import annotations

from typing import Any

from servers import protocol

PAYLOAD = protocol.make_payload(64)
REQUEST = protocol.Request(op="echo", id=7, ts=123_456_789, payload=PAYLOAD)
REQUEST_BYTES = protocol.encode_request(REQUEST)
RESPONSE = protocol.ok_response(REQUEST, PAYLOAD)
RESPONSE_BYTES = protocol.encode_response(RESPONSE)


def test_encode_request(benchmark: Any) -> None:
    assert benchmark(protocol.encode_request, REQUEST) == REQUEST_BYTES


def test_decode_request(benchmark: Any) -> None:
    assert benchmark(protocol.decode_request, REQUEST_BYTES) == REQUEST


def test_encode_response(benchmark: Any) -> None:
    assert benchmark(protocol.encode_response, RESPONSE) == RESPONSE_BYTES


def test_decode_response(benchmark: Any) -> None:
    assert benchmark(protocol.decode_response, RESPONSE_BYTES).payload == PAYLOAD


def test_encode_push(benchmark: Any) -> None:
    item = b'{"type": "message", "from": "u1", "body": "hello"}'
    assert benchmark(protocol.encode_push, 42, item)
