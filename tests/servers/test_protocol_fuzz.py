"""Fuzzing the envelope decoders (servers/protocol.py) with hypothesis.

Whatever arrives, a decoder returns a well-formed envelope or raises a
:class:`~servers.protocol.ProtocolError` (which servers turn into a 400 or an error
message); anything else would be a 500 or a dropped connection.
"""

from __future__ import annotations

import contextlib
import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servers import protocol
from servers.protocol import ProtocolError, Push, Request, Response

MAX_ID = (1 << 63) - 1

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 64), max_value=1 << 64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
#: Objects shaped like envelopes: the real keys (and some others) with any values.
envelope_like = st.dictionaries(
    st.sampled_from(["op", "id", "ts", "payload", "ok", "error", "seq", "item", "x"]),
    json_values | st.integers(),
    max_size=7,
)


def _raw(value: object) -> bytes:
    # the stdlib writes what orjson refuses: integers beyond 64 bits, escaped lone surrogates
    return json.dumps(value).encode()


def _check_request(req: Request) -> None:
    assert isinstance(req.op, str) and req.op
    for field in (req.id, req.ts):
        assert isinstance(field, int) and not isinstance(field, bool)
        assert 0 <= field <= MAX_ID


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_a_protocol_error(data: bytes) -> None:
    for decode in (
        protocol.decode_request,
        protocol.decode_response,
        protocol.decode_server_message,
    ):
        with contextlib.suppress(ProtocolError):
            decode(data)


@FUZZ
@given(st.text(max_size=200))
def test_any_text_decodes_or_raises_a_protocol_error(text: str) -> None:
    # str input (a WebSocket text frame) may hold lone surrogates
    with contextlib.suppress(ProtocolError):
        _check_request(protocol.decode_request(text))


@FUZZ
@given(json_values | envelope_like)
def test_any_json_request_is_valid_or_refused(value: object) -> None:
    try:
        req = protocol.decode_request(_raw(value))
    except ProtocolError as exc:
        assert exc.http_status == 400
        return
    _check_request(req)
    assert isinstance(value, dict) and set(value) <= {"op", "id", "ts", "payload"}


@FUZZ
@given(json_values | envelope_like)
def test_any_json_server_message_is_valid_or_refused(value: object) -> None:
    try:
        message = protocol.decode_server_message(_raw(value))
    except ProtocolError:
        return
    if isinstance(message, Push):
        assert isinstance(message.seq, int) and message.seq >= 1
    else:
        assert isinstance(message, Response) and isinstance(message.ok, bool)
        if not message.ok:
            assert message.error is not None and isinstance(message.error.code, str)


@FUZZ
@given(
    op=st.text(min_size=1),
    rid=st.integers(0, MAX_ID),
    ts=st.integers(0, MAX_ID),
    payload=json_values,
)
def test_request_round_trip(op: str, rid: int, ts: int, payload: object) -> None:
    try:
        encoded = protocol.encode_request(Request(op, rid, ts, payload))
    except orjson.JSONEncodeError:
        return  # not JSON (an integer beyond 64 bits, a lone surrogate): never sent
    assert protocol.decode_request(encoded) == Request(op, rid, ts, payload)


@FUZZ
@given(st.integers(1, 64), st.sampled_from(["[", '{"a":']))
def test_deep_nesting_is_refused_or_decoded(depth_hundreds: int, opener: str) -> None:
    depth = depth_hundreds * 100
    closer = "]" if opener == "[" else "}"
    data = '{"op":"echo","id":1,"ts":1,"payload":' + opener * depth + "1" + closer * depth + "}"
    with contextlib.suppress(ProtocolError):
        protocol.decode_request(data.encode())


@pytest.mark.parametrize(
    "data",
    [b"", b"\xff\xfe", b"NaN", b'{"op":"echo","id":1e400,"ts":1}', b'{"op":"echo","id":1,"ts":1,}'],
)
def test_known_bad_inputs(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        protocol.decode_request(data)
