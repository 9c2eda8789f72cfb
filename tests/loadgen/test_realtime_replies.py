"""Reading a reply envelope: its payload, or what went wrong."""

from __future__ import annotations

import pytest

from loadgen.clients.errors import ClientError
from loadgen.realtime.replies import (
    OpFailed,
    check_echo_reply,
    decode_reply,
    payload_of,
    poll_item_count,
    reply_error,
)

pytestmark = pytest.mark.timeout(10)

OK_POLL = b'{"op":"poll","id":1,"ts":1,"ok":true,"payload":{"items":[{"seq":1,"item":1}]}}'
FAILED = b'{"op":"send","id":2,"ts":1,"ok":false,"error":{"code":"forbidden","message":"no"}}'


def test_a_successful_reply() -> None:
    resp = decode_reply(OK_POLL)
    assert reply_error(resp) is None
    assert poll_item_count("poll", resp) == 1
    assert poll_item_count("send", resp) == 0
    assert payload_of(resp) == {"items": [{"seq": 1, "item": 1}]}


def test_an_error_reply() -> None:
    resp = decode_reply(FAILED)
    assert reply_error(resp) == "error_reply:forbidden"
    assert poll_item_count("poll", resp) == 0
    with pytest.raises(OpFailed) as info:
        payload_of(resp, 403)
    assert (info.value.code, info.value.status) == ("forbidden", 403)
    assert str(info.value) == "forbidden: no"


def test_not_a_reply() -> None:
    with pytest.raises(ClientError) as info:
        decode_reply(b"[1, 2]")
    assert info.value.code.startswith("bad_reply:")


# --- the reply check ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"op":"echo","id":7,"ts":5,"ok":true,"payload":"x"}', None),
        (b'{"op":"echo","id":8,"ts":5,"ok":true,"payload":"x"}', "id_mismatch"),
        (b'{"op":"echo","id":7,"ts":-5,"ok":true}', "bad_reply:invalid_envelope"),
        (b'{"op":"echo","id":7,"ts":true,"ok":true}', "bad_reply:invalid_envelope"),
        (b'{"op":5,"id":7,"ts":5,"ok":true}', "bad_reply:invalid_envelope"),
        (b'{"op":"echo","id":7,"ts":5,"ok":"yes"}', "bad_reply:invalid_envelope"),
        (b'{"op":"echo","id":7,"ok":false,"error":{"code":"boom"}}', "error_reply:boom"),
        (b'{"op":"echo","id":7', "bad_reply:malformed_json"),
        (b"[1,2]", "bad_reply:invalid_envelope"),
    ],
)
def test_check_reply_codes(body: bytes, expected: str | None) -> None:
    assert check_echo_reply(200, body, 7) == expected
    assert check_echo_reply(503, body, 7) == "http_503"
