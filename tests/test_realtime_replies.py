"""Reading a reply envelope: its payload, or what went wrong."""

from __future__ import annotations

import pytest

from loadgen.clients.errors import ClientError
from loadgen.realtime.replies import (
    OpFailed,
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
