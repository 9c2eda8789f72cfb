"""Inbox fan-out: appending an item to a user's inbox calls every subscribed listener."""

from __future__ import annotations

from typing import Any

import pytest

from servers.realtime.inbox import Inbox

ITEM = b'{"type": "message", "from": "u1", "to": "room-1", "body": "hello there"}'


@pytest.mark.parametrize("listeners", [1, 10])
def test_inbox_append_with_listeners(benchmark: Any, listeners: int) -> None:
    inbox = Inbox(retention=1_000)
    received: list[int] = []

    def listener(seq: int, item: bytes) -> None:
        received.append(seq)
        if len(received) > 10_000:
            received.clear()

    for _ in range(listeners):
        inbox.subscribe(listener)
    benchmark(inbox.append, ITEM)
    assert inbox.last_seq > 0 and len(inbox._items) <= 1_000


def test_inbox_read_page(benchmark: Any) -> None:
    inbox = Inbox(retention=10_000)
    for _ in range(2_000):
        inbox.append(ITEM)
    page = benchmark(inbox.read, 1_900)
    assert len(page.items) == 100
