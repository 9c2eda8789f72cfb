"""Per-user inboxes: sequence numbers, cursors, retention gaps, long-poll waits, listeners."""

from __future__ import annotations

import asyncio

import pytest

from servers.realtime.inbox import Inbox, Page

pytestmark = pytest.mark.timeout(10)


def filled(n: int, retention: int = 100) -> Inbox:
    box = Inbox(retention)
    for i in range(1, n + 1):
        box.append(b"i%d" % i)
    return box


def test_sequence_numbers_start_at_one_and_increase() -> None:
    box = Inbox()
    assert box.last_seq == 0
    assert [box.append(b"x") for _ in range(5)] == [1, 2, 3, 4, 5]
    assert box.last_seq == 5
    assert box.first_kept == 1


def test_empty_inbox_reads_empty() -> None:
    box = Inbox()
    assert box.read(0) == Page([], 0, False, 1)
    assert box.first_kept == 1


def test_read_after_cursor_returns_only_newer_items_in_order() -> None:
    box = filled(5)
    assert box.read(0).items == [(i, b"i%d" % i) for i in range(1, 6)]
    page = box.read(2)
    assert page.items == [(3, b"i3"), (4, b"i4"), (5, b"i5")]
    assert page.last == 5
    assert not page.gap
    # At or past the newest item: nothing, and the newest seq to resume from.
    assert box.read(5) == Page([], 5, False, 1)
    assert box.read(9).items == []


def test_read_limit() -> None:
    box = filled(10)
    page = box.read(3, limit=4)
    assert [seq for seq, _ in page.items] == [4, 5, 6, 7]
    assert page.last == 10  # the reader knows there is more
    assert [seq for seq, _ in box.read(7, limit=4).items] == [8, 9, 10]


def test_negative_cursor_is_refused() -> None:
    with pytest.raises(ValueError):
        Inbox().read(-1)


def test_retention_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Inbox(0)


def test_retention_drops_oldest_and_reports_the_gap() -> None:
    box = filled(10, retention=4)
    assert box.dropped == 6
    assert box.first_kept == 7
    # A reader behind the kept items sees the loss: gap=True and where the kept ones start.
    page = box.read(2)
    assert page.gap is True
    assert page.first == 7
    assert [seq for seq, _ in page.items] == [7, 8, 9, 10]
    # A reader exactly at the edge lost nothing.
    edge = box.read(6)
    assert edge.gap is False
    assert [seq for seq, _ in edge.items] == [7, 8, 9, 10]
    # Reading the kept items by index still honours the cursor and limit.
    assert [seq for seq, _ in box.read(8, limit=1).items] == [9]


def test_retention_gap_even_when_caught_up_past_the_drop() -> None:
    box = filled(3, retention=1)
    assert box.read(0).gap is True
    assert box.read(0).first == 3
    assert box.read(3) == Page([], 3, False, 3)


async def test_wait_returns_at_once_when_items_are_there() -> None:
    box = filled(2)
    page = await asyncio.wait_for(box.wait(0, timeout_s=30), 1)
    assert [seq for seq, _ in page.items] == [1, 2]
    assert box.waiting == 0


async def test_wait_returns_on_append() -> None:
    box = filled(1)
    task = asyncio.create_task(box.wait(1, timeout_s=30))
    await asyncio.sleep(0.01)
    assert not task.done()
    assert box.waiting == 1
    box.append(b"new")
    page = await asyncio.wait_for(task, 2)
    assert page.items == [(2, b"new")]
    assert box.waiting == 0


async def test_wait_times_out_empty() -> None:
    box = filled(3)
    page = await asyncio.wait_for(box.wait(3, timeout_s=0.05), 2)
    assert page == Page([], 3, False, 1)
    assert box.waiting == 0


async def test_wait_with_zero_timeout_is_a_read() -> None:
    box = filled(1)
    assert (await box.wait(1, timeout_s=0)).items == []


async def test_several_waiters_all_wake_and_cancel_cleans_up() -> None:
    box = Inbox()
    waiters = [asyncio.create_task(box.wait(0, timeout_s=30)) for _ in range(3)]
    abandoned = asyncio.create_task(box.wait(0, timeout_s=30))
    await asyncio.sleep(0.01)
    assert box.waiting == 4
    abandoned.cancel()
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    assert box.waiting == 3
    box.append(b"a")
    pages = await asyncio.wait_for(asyncio.gather(*waiters), 2)
    assert all(p.items == [(1, b"a")] for p in pages)
    assert box.waiting == 0


def test_subscribe_listeners_called_in_order_on_append() -> None:
    box = Inbox()
    calls: list[tuple[str, int, bytes]] = []

    def first(seq: int, item: bytes) -> None:
        calls.append(("first", seq, item))

    def second(seq: int, item: bytes) -> None:
        calls.append(("second", seq, item))

    box.subscribe(first)
    box.subscribe(second)
    box.append(b"a")
    box.append(b"b")
    assert calls == [
        ("first", 1, b"a"),
        ("second", 1, b"a"),
        ("first", 2, b"b"),
        ("second", 2, b"b"),
    ]
    box.unsubscribe(first)
    box.unsubscribe(first)  # unknown listeners are ignored
    box.append(b"c")
    assert calls[-1] == ("second", 3, b"c")
    assert len(calls) == 5


def test_listener_may_unsubscribe_itself_during_append() -> None:
    box = Inbox()
    seen: list[int] = []

    def once(seq: int, item: bytes) -> None:
        seen.append(seq)
        box.unsubscribe(once)

    def always(seq: int, item: bytes) -> None:
        seen.append(-seq)

    box.subscribe(once)
    box.subscribe(always)
    box.append(b"a")
    box.append(b"b")
    assert seen == [1, -1, -2]


def test_bytes_kept_are_bounded_and_the_loss_is_a_gap() -> None:
    box = Inbox(retention=10_000, max_bytes=10_000)
    for _ in range(500):
        box.append(b"x" * 1_000)
    assert box.nbytes == sum(len(item) for _, item in box.read(0, 10_000).items)
    assert box.nbytes <= 10_000
    assert box.dropped == 500 - 10
    page = box.read(0, 10_000)
    assert page.gap and page.first == 491 and page.items[0][0] == 491


def test_an_item_larger_than_the_byte_bound_is_kept_alone() -> None:
    box = Inbox(max_bytes=100)
    box.append(b"a" * 10)
    box.append(b"b" * 500)
    assert [item for _, item in box.read(0).items] == [b"b" * 500]
    assert box.nbytes == 500
    with pytest.raises(ValueError):
        Inbox(max_bytes=0)
