"""The sans-I/O core of a WebSocket call: ids, reply matching, error replies, reports."""

from __future__ import annotations

from typing import Any

import pytest

from loadgen.realtime.calls import Calls, request_body
from loadgen.realtime.receive import ws_frame_bytes
from loadgen.realtime.replies import OpFailed
from servers import protocol


def _reply(rid: int, ok: bool = True) -> bytes:
    if ok:
        return protocol.encode_response(protocol.Response(op="x", id=rid, ts=1, ok=True, payload=7))
    error = protocol.ErrorInfo(code="nope", message="no")
    return protocol.encode_response(protocol.Response(op="x", id=rid, ts=1, ok=False, error=error))


def test_request_bodies_get_new_ids() -> None:
    first, second = request_body("x", {}), request_body("x", {})
    assert second[0] > first[0]
    assert protocol.decode_request(first[2]).id == first[0]


def test_a_reply_reaches_its_waiter_and_a_push_goes_on() -> None:
    calls: Calls[str] = Calls()
    call = calls.start("x", {"a": 1}, "waiter")
    items: list[Any] = []
    push = protocol.encode_push(3, b'{"b":2}')
    assert calls.take(push, 5, lambda *a: items.append(a)) is None
    assert items and items[0][:2] == (3, {"b": 2})
    data = _reply(call.rid)
    matched = calls.take(data, 6, lambda *a: None)
    assert matched is not None and matched[0] == "waiter"
    assert call.answer(matched[1]) == 7
    rows: list[tuple[Any, ...]] = []
    calls.finish(call, lambda *a: rows.append(a))
    (row,) = rows
    assert row[0] == "x" and row[3] == ws_frame_bytes(len(call.body), True)
    assert row[4] == ws_frame_bytes(len(data), False) and row[5] is None
    assert calls.take(data, 7, lambda *a: None) is None  # answered once only


def test_an_error_reply_raises_and_keeps_its_code() -> None:
    calls: Calls[str] = Calls()
    call = calls.start("x", None, "w")
    matched = calls.take(_reply(call.rid, ok=False), 1, lambda *a: None)
    assert matched is not None
    with pytest.raises(OpFailed):
        call.answer(matched[1])
    call.fail("closed")
    assert call.error == "error_reply:nope"


def test_drain_hands_back_every_waiter_once() -> None:
    calls: Calls[str] = Calls()
    calls.start("x", None, "a")
    calls.start("x", None, "b")
    assert sorted(calls.drain()) == ["a", "b"]
    assert calls.drain() == []
    rows: list[tuple[Any, ...]] = []
    call = calls.start("x", None, "c")
    call.fail("timeout")
    calls.finish(call, lambda *a: rows.append(a))
    assert rows[0][4] == 0 and rows[0][5] == "timeout"
    assert calls.drain() == []
