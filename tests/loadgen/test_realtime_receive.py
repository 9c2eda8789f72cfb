"""What reaches an inbox reader: poll pages, WebSocket frames, subscribe replies, gaps."""

from __future__ import annotations

from typing import Any

import pytest

from loadgen.realtime.receive import subscribe_gap, take_page, take_ws_message, ws_frame_bytes
from servers import protocol

pytestmark = pytest.mark.timeout(10)


class Seen:
    """What on_item and on_gap were called with."""

    def __init__(self) -> None:
        self.items: list[tuple[int, Any, int, str, int]] = []
        self.gaps: list[str] = []

    def item(self, seq: int, item: Any, received_ns: int, via: str, nbytes: int) -> None:
        self.items.append((seq, item, received_ns, via, nbytes))


def page(seqs: list[int], gap: bool = False) -> dict[str, Any]:
    items = [{"seq": s, "item": {"mid": s}} for s in seqs]
    return {"items": items, "last": max(seqs, default=0), "gap": gap, "first": 1}


def test_take_page_hands_on_items_sharing_the_bytes_and_moves_the_cursor() -> None:
    seen = Seen()
    cursor = take_page(page([4, 5, 6]), 3, 301, 77, "poll", seen.item, seen.gaps.append)
    assert cursor == 6
    assert seen.items == [(s, {"mid": s}, 77, "poll", 100) for s in (4, 5, 6)]
    assert seen.gaps == []


def test_take_page_reports_a_gap_and_keeps_the_cursor_when_empty() -> None:
    seen = Seen()
    assert take_page(page([9], gap=True), 2, 50, 1, "poll", seen.item, seen.gaps.append) == 9
    assert seen.gaps == ["poll"]
    assert take_page(page([]), 9, 50, 1, "poll", seen.item, seen.gaps.append) == 9
    assert take_page(None, 9, 50, 1, "poll", seen.item) == 9  # not a page: nothing
    assert take_page(page([10], gap=True), 9, 50, 1, "poll", seen.item) == 10  # no on_gap
    assert len(seen.items) == 2 and seen.gaps == ["poll"]


def test_subscribe_gap() -> None:
    assert subscribe_gap({"last": 9, "gap": True, "first": 5}) is True
    assert subscribe_gap({"last": 9, "gap": False, "first": 1}) is False
    assert subscribe_gap(None) is False


def test_take_ws_message_hands_on_pushes_and_returns_replies() -> None:
    seen = Seen()
    push = protocol.encode_push(7, b'{"type":"message","mid":1}')
    assert take_ws_message(push, 55, seen.item) is None
    assert seen.items == [(7, {"type": "message", "mid": 1}, 55, "push", len(push) + 2)]
    reply = b'{"op":"send","id":3,"ts":1,"ok":true,"payload":{}}'
    resp = take_ws_message(reply, 56, seen.item)
    assert resp is not None and resp.id == 3 and resp.ok
    assert take_ws_message(b"not json", 57, seen.item) is None
    assert len(seen.items) == 1


@pytest.mark.parametrize(
    ("length", "masked", "total"),
    [
        (0, False, 2),
        (125, False, 127),
        (126, True, 134),
        (65535, False, 65539),
        (65536, True, 65550),
    ],
)
def test_ws_frame_bytes(length: int, masked: bool, total: int) -> None:
    assert ws_frame_bytes(length, masked) == total
