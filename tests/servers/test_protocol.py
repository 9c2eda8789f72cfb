"""Round trips and error cases of the sans-I/O envelope in ``servers.protocol``."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from servers import protocol
from servers.protocol import (
    ErrorInfo,
    InvalidEnvelope,
    MalformedJSON,
    MessageTooLarge,
    ProtocolError,
    Request,
    Response,
)

INT64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
IDS = st.integers(min_value=0, max_value=(1 << 63) - 1)

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | INT64
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=25,
)

ops = st.text(min_size=1, max_size=20)
requests = st.builds(Request, op=ops, id=IDS, ts=IDS, payload=json_values)
maybe_ids = st.none() | IDS


def responses(
    ok: bool, payload: st.SearchStrategy[Any], **more: Any
) -> st.SearchStrategy[Response]:
    """Responses with ``ok`` and ``payload`` drawn as given, any op, id and ts."""
    return st.builds(
        Response,
        op=st.none() | ops,
        id=maybe_ids,
        ts=maybe_ids,
        ok=st.just(ok),
        payload=payload,
        **more,
    )


ok_responses = responses(True, json_values)
error_responses = responses(
    False,
    st.none(),
    error=st.builds(ErrorInfo, code=st.text(min_size=1, max_size=20), message=st.text()),
)


@given(requests)
def test_request_round_trip(req: Request) -> None:
    data = protocol.encode_request(req)
    assert isinstance(data, bytes)
    assert protocol.decode_request(data) == req
    assert protocol.decode_request(data.decode()) == req
    assert protocol.decode_request(memoryview(data)) == req


@given(ok_responses | error_responses)
def test_response_round_trip(resp: Response) -> None:
    data = protocol.encode_response(resp)
    assert protocol.decode_response(data) == resp


@given(requests)
def test_ok_response_is_byte_stable(req: Request) -> None:
    first = protocol.encode_response(protocol.ok_response(req, req.payload))
    again = protocol.encode_response(protocol.ok_response(req, req.payload))
    assert first == again
    assert list(orjson.loads(first)) == ["op", "id", "ts", "ok", "payload"]


def test_request_without_payload_decodes_to_none() -> None:
    req = protocol.decode_request(b'{"op":"echo","id":1,"ts":2}')
    assert req == Request(op="echo", id=1, ts=2, payload=None)


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"not json", b'{"op": "echo",}', b"\xff\xfe", b"NaN", b"1e400"],
)
def test_not_json_is_malformed(data: bytes) -> None:
    with pytest.raises(MalformedJSON) as info:
        protocol.decode_request(data)
    assert info.value.code == "malformed_json"
    assert info.value.http_status == 400


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"[]", "JSON object"),
        (b'"echo"', "JSON object"),
        (b"42", "JSON object"),
        (b"null", "JSON object"),
        (b'{"id": 1, "ts": 2}', "'op'"),
        (b'{"op": "echo", "ts": 2}', "'id'"),
        (b'{"op": "echo", "id": 1}', "'ts'"),
        (b'{"op": "echo", "id": true, "ts": 2}', "'id'"),
        (b'{"op": "echo", "id": 1, "ts": false}', "'ts'"),
        (b'{"op": "echo", "id": -1, "ts": 2}', "'id'"),
        (b'{"op": "echo", "id": 1, "ts": -5}', "'ts'"),
        (b'{"op": "echo", "id": 1.0, "ts": 2}', "'id'"),
        (b'{"op": "echo", "id": "1", "ts": 2}', "'id'"),
        (b'{"op": "echo", "id": 9223372036854775808, "ts": 2}', "'id'"),
        (b'{"op": "", "id": 1, "ts": 2}', "'op'"),
        (b'{"op": 5, "id": 1, "ts": 2}', "'op'"),
        (b'{"op": "echo", "id": 1, "ts": 2, "extra": 0}', "extra"),
    ],
)
def test_invalid_envelopes(data: bytes, fragment: str) -> None:
    with pytest.raises(InvalidEnvelope) as info:
        protocol.decode_request(data)
    assert fragment in str(info.value)
    assert info.value.code == "invalid_envelope"
    assert info.value.http_status == 400


def test_error_classes() -> None:
    assert issubclass(MalformedJSON, ProtocolError)
    assert issubclass(ProtocolError, ValueError)
    assert protocol.UnknownOp.code == "unknown_op"
    assert MessageTooLarge.code == "too_large"
    assert MessageTooLarge.http_status == 413
    assert protocol.InternalError.http_status == 500


@pytest.mark.parametrize(
    "data",
    [
        b"[]",
        b'{"ok": 1}',
        b'{"ok": false}',
        b'{"ok": false, "error": {"code": 3}}',
        b'{"ok": true, "id": true}',
        b'{"ok": true, "op": 1}',
    ],
)
def test_invalid_responses(data: bytes) -> None:
    with pytest.raises(InvalidEnvelope):
        protocol.decode_response(data)


def test_error_response_without_request() -> None:
    resp = protocol.error_response(MalformedJSON("bad"))
    assert resp == Response(
        op=None, id=None, ts=None, ok=False, error=ErrorInfo("malformed_json", "bad")
    )
    assert orjson.loads(protocol.encode_response(resp)) == {
        "op": None,
        "id": None,
        "ts": None,
        "ok": False,
        "error": {"code": "malformed_json", "message": "bad"},
    }


def test_check_size_boundaries() -> None:
    protocol.check_size(b"x" * 10, 10)
    protocol.check_size(bytearray(10), 10)
    protocol.check_size("é" * 5, 10)
    protocol.check_size(b"", 1)
    with pytest.raises(MessageTooLarge) as info:
        protocol.check_size(b"x" * 11, 10)
    assert str(info.value) == "message of 11 bytes exceeds the limit of 10 bytes"
    with pytest.raises(MessageTooLarge):
        protocol.check_size("é" * 6, 11)
    with pytest.raises(MessageTooLarge):
        protocol.check_size("\ud800" * 4, 11)


def test_check_size_counts_bytes_of_memoryviews() -> None:
    view = memoryview(bytes(16)).cast("I")
    assert len(view) == 4
    protocol.check_size(view, 16)
    with pytest.raises(MessageTooLarge):
        protocol.check_size(view, 15)


@given(st.integers(min_value=0, max_value=100_000))
def test_make_payload_exact_length(size: int) -> None:
    payload = protocol.make_payload(size)
    assert len(payload) == size
    assert len(payload.encode()) == size
    assert payload == protocol.make_payload(size)


def test_make_payload_rejects_negative() -> None:
    with pytest.raises(ValueError):
        protocol.make_payload(-1)
    assert protocol.make_payload(10) == "rtbench-rt"
