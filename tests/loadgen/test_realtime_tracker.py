"""Delivery accounting: expected, delivered, lost, duplicated, out of order, unexpected."""

from __future__ import annotations

import pytest

from loadgen.realtime.tracker import Delivery, Tracker

pytestmark = pytest.mark.timeout(10)

WARMUP_END = 1_000


def counts(t: Tracker) -> dict[str, int]:
    return t.counts()


def test_nothing_expected() -> None:
    t = Tracker(WARMUP_END)
    assert counts(t) == {
        "expected": 0,
        "delivered": 0,
        "lost": 0,
        "duplicated": 0,
        "out_of_order": 0,
        "unexpected": 0,
        "gaps": 0,
    }
    t.expect(("message", 1), 5_000, [])  # no recipients: nothing owed
    assert t.outstanding() == 0


def test_expected_delivered_lost_and_the_row() -> None:
    t = Tracker(WARMUP_END)
    t.expect(("message", 7), 5_000, ["bob", "carol"], sender="alice", item_id=7)
    assert t.outstanding() == 2
    row = t.received("bob", 1, ("message", 7), 5_400, "push", nbytes=90)
    assert row == Delivery(
        type="message",
        item_id=7,
        sender="alice",
        recipient="bob",
        seq=1,
        origin_ns=5_000,
        received_ns=5_400,
        latency_ns=400,
        via="push",
        duplicate=False,
        out_of_order=False,
        warmup=False,
        deferred=False,
        bytes=90,
    )
    c = counts(t)
    assert (c["expected"], c["delivered"], c["lost"]) == (2, 1, 1)
    assert t.outstanding() == 1
    t.received("carol", 1, ("message", 7), 5_900, "poll")
    c = counts(t)
    assert (c["expected"], c["delivered"], c["lost"]) == (2, 2, 0)
    assert [r.recipient for r in t.rows] == ["bob", "carol"]


def test_duplicate_is_counted_not_delivered_twice() -> None:
    t = Tracker(WARMUP_END)
    t.expect(("message", 1), 5_000, ["bob"])
    t.received("bob", 1, ("message", 1), 5_100, "push")
    row = t.received("bob", 2, ("message", 1), 5_200, "push")
    assert row is not None and row.duplicate is True
    c = counts(t)
    assert (c["delivered"], c["duplicated"], c["lost"], c["out_of_order"]) == (1, 1, 0, 0)


def test_a_replayed_seq_is_a_duplicate_and_out_of_order() -> None:
    t = Tracker(WARMUP_END)
    t.expect(("message", 1), 5_000, ["bob"])
    t.received("bob", 1, ("message", 1), 5_100, "push")
    row = t.received("bob", 1, ("message", 1), 5_200, "push")
    assert row is not None and row.duplicate and row.out_of_order
    assert counts(t)["duplicated"] == 1


def test_out_of_order_per_recipient() -> None:
    t = Tracker(WARMUP_END)
    for mid in (1, 2, 3):
        t.expect(("message", mid), 5_000, ["bob", "carol"])
    t.received("bob", 1, ("message", 1), 6_000, "poll")
    row = t.received("bob", 3, ("message", 3), 6_000, "poll")  # skipped seq 2
    assert row is not None and row.out_of_order
    late = t.received("bob", 2, ("message", 2), 6_000, "poll")  # and it comes late
    assert late is not None and late.out_of_order
    # Carol's sequence is her own: in order.
    for mid in (1, 2, 3):
        assert not t.received("carol", mid, ("message", mid), 6_000, "poll").out_of_order
    c = counts(t)
    assert (c["out_of_order"], c["delivered"], c["lost"]) == (2, 6, 0)


def test_unexpected_items() -> None:
    t = Tracker(WARMUP_END)
    t.expect(("message", 1), 5_000, ["bob"])
    assert t.received("bob", 1, None, 6_000, "push") is None  # unknown kind
    assert t.received("bob", 2, ("message", 99), 6_000, "push") is None  # never expected
    assert t.received("dave", 1, ("message", 1), 6_000, "push") is None  # not a recipient
    c = counts(t)
    assert (c["unexpected"], c["delivered"], c["lost"], c["out_of_order"]) == (3, 0, 1, 0)
    assert t.rows == []


def test_cancel_removes_what_was_owed() -> None:
    t = Tracker(WARMUP_END)
    t.expect(("message", 1), 5_000, ["bob", "carol"])
    t.expect(("message", 2), 5_000, ["bob"])
    t.received("bob", 1, ("message", 1), 6_000, "push")
    t.cancel(("message", 1))  # the send failed after all
    t.cancel(("message", 1))  # twice: no-op
    t.cancel(("message", 42))  # unknown: no-op
    assert t.cancelled == 1
    c = counts(t)
    assert (c["expected"], c["delivered"], c["lost"]) == (1, 0, 1)
    # A late arrival for a cancelled key is unexpected, not delivered.
    assert t.received("carol", 1, ("message", 1), 6_000, "push") is None
    assert counts(t)["unexpected"] == 1
    t.received("bob", 2, ("message", 2), 6_000, "push")
    assert counts(t)["lost"] == 0


def test_cancel_takes_back_the_rows_of_what_arrived() -> None:
    """A send whose reply was lost, though bob got it (twice): its rows go with its counts,
    so deliveries.parquet never holds a row the counts do not."""
    t = Tracker(WARMUP_END)
    t.expect(("message", 1), 5_000, ["bob", "carol"], "alice", 1)
    t.expect(("message", 2), 5_000, ["bob"], "alice", 2)
    t.received("bob", 1, ("message", 1), 6_000, "push")
    t.received("bob", 1, ("message", 1), 6_500, "poll")
    t.received("bob", 2, ("message", 2), 7_000, "push")
    t.cancel(("message", 1))
    c = counts(t)
    assert (c["expected"], c["delivered"], c["duplicated"]) == (1, 1, 0)
    assert [(r.item_id, r.duplicate) for r in t.rows] == [(2, False)]


def test_deferred_and_warmup_flags() -> None:
    t = Tracker(WARMUP_END)
    t.expect(("message", 1), WARMUP_END - 1, ["bob"])
    t.expect(("notification", 2), WARMUP_END, ["bob", "carol"], deferred=["carol"])
    early = t.received("bob", 1, ("message", 1), 2_000, "push")
    assert early is not None and early.warmup and not early.deferred
    on_time = t.received("bob", 2, ("notification", 2), 2_000, "push")
    assert on_time is not None and not on_time.warmup and not on_time.deferred
    assert on_time.type == "notification"
    away = t.received("carol", 1, ("notification", 2), 9_000, "poll")
    assert away is not None and away.deferred and away.latency_ns == 9_000 - WARMUP_END


def test_presence_changes_matched_in_the_order_caused() -> None:
    t = Tracker(WARMUP_END)
    off1 = ("presence", "alice", "offline", 1)
    on2 = ("presence", "alice", "online", 2)
    off3 = ("presence", "alice", "offline", 3)
    t.expect(off1, 2_000, ["bob", "carol"], sender="alice", item_id=1)
    t.expect(on2, 3_000, ["bob", "carol"], sender="alice", item_id=2)
    t.expect(off3, 4_000, ["bob"], sender="alice", item_id=3)
    # Bob sees the first offline: matched to the oldest one owed to him.
    key = t.presence_key("bob", "alice", "offline")
    assert key == off1
    row = t.received("bob", 1, key, 2_500, "push")
    assert row is not None
    assert (row.type, row.item_id, row.sender, row.latency_ns) == (
        "presence-offline",
        1,
        "alice",
        500,
    )
    key = t.presence_key("bob", "alice", "online")
    assert key == on2
    assert t.received("bob", 2, key, 3_100, "push").type == "presence-online"
    assert t.presence_key("bob", "alice", "offline") == off3
    t.received("bob", 3, off3, 4_100, "push")
    # Nothing more owed to bob; carol's are her own.
    assert t.presence_key("bob", "alice", "offline") is None
    assert t.presence_key("bob", "zed", "online") is None
    assert t.presence_key("carol", "alice", "offline") == off1
    assert counts(t)["lost"] == 2  # carol's two
    # A change nobody expected (e.g. the final reconnect) has no key: unexpected.
    assert t.received("bob", 4, t.presence_key("bob", "alice", "online"), 5_000, "push") is None
    assert counts(t)["unexpected"] == 1


def test_presence_key_skips_cancelled_changes() -> None:
    t = Tracker(WARMUP_END)
    on1 = ("presence", "alice", "online", 1)
    on3 = ("presence", "alice", "online", 3)
    t.expect(on1, 2_000, ["bob"])
    t.expect(on3, 4_000, ["bob"])
    t.cancel(on1)  # going online failed
    assert t.presence_key("bob", "alice", "online") == on3


def test_key_of_an_inbox_item() -> None:
    t = Tracker(WARMUP_END)
    assert t.key_of("bob", {"type": "message", "mid": 3}) == ("message", 3)
    assert t.key_of("bob", {"type": "notification", "nid": 4}) == ("notification", 4)
    assert t.key_of("bob", {"type": "other"}) is None
    assert t.key_of("bob", "not a dict") is None
    # Presence changes are matched to what is owed, oldest first.
    assert t.key_of("bob", {"type": "presence", "user": "ann", "status": "offline"}) is None
    t.expect(("presence", "ann", "offline", 1), 5_000, ["bob"], "ann", 1)
    t.expect(("presence", "ann", "offline", 3), 6_000, ["bob"], "ann", 3)
    item = {"type": "presence", "user": "ann", "status": "offline"}
    assert t.key_of("bob", item) == ("presence", "ann", "offline", 1)
    assert t.key_of("bob", item) == ("presence", "ann", "offline", 3)


def test_gaps_are_counted_by_reader_and_leave_the_skipped_items_owed() -> None:
    t = Tracker(WARMUP_END)
    t.expect(("message", 1), 5_000, ["bob", "carol"])
    t.gap("bob", "poll")
    t.gap("carol", "push")
    t.gap("bob", "poll")
    assert counts(t)["gaps"] == 3
    assert t.gaps_by_via == {"poll": 2, "push": 1}
    assert t.gapped == {"bob", "carol"}
    assert counts(t)["lost"] == 2  # a gap does not settle what was owed
