"""Presence: online/offline for push connections, HTTP touches and the sweep, watchers."""

from __future__ import annotations

from typing import Any

import pytest

from servers.realtime.presence import Presence

pytestmark = pytest.mark.timeout(10)

S = 1_000_000_000  # ns per second
TIMEOUT_S = 2.0


class Recorder:
    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, watcher: str, item: dict[str, Any]) -> None:
        self.items.append((watcher, item))

    def changes(self, watcher: str | None = None) -> list[tuple[str, str]]:
        return [
            (item["user"], item["status"])
            for w, item in self.items
            if watcher is None or w == watcher
        ]


@pytest.fixture
def notes() -> Recorder:
    return Recorder()


@pytest.fixture
def presence(notes: Recorder) -> Presence:
    p = Presence(TIMEOUT_S, notes)
    p.watch("bob", ["alice", "carol"])
    return p


def test_timeout_must_be_positive(notes: Recorder) -> None:
    with pytest.raises(ValueError):
        Presence(0, notes)


def test_unknown_user_is_offline_without_last_seen(presence: Presence) -> None:
    assert presence.status("nobody") == {"status": "offline", "last_seen": None}
    assert not presence.is_online("nobody")


def test_push_connection_online_until_last_one_closes(presence: Presence, notes: Recorder) -> None:
    presence.connected("alice", 10 * S)
    assert presence.is_online("alice")
    presence.connected("alice", 11 * S)  # a second tab: no new change
    presence.disconnected("alice", 12 * S)
    assert presence.is_online("alice")  # one connection left
    assert notes.changes("bob") == [("alice", "online")]
    presence.disconnected("alice", 13 * S)
    assert not presence.is_online("alice")
    assert notes.changes("bob") == [("alice", "online"), ("alice", "offline")]
    assert presence.status("alice") == {"status": "offline", "last_seen": 13 * S}
    assert presence.changes == 2


def test_push_connection_is_not_swept(presence: Presence, notes: Recorder) -> None:
    presence.connected("alice", 0)
    assert presence.sweep(100 * S) == 0
    assert presence.is_online("alice")


def test_change_items_carry_status_last_seen_and_time(presence: Presence, notes: Recorder) -> None:
    presence.connected("alice", 5 * S)
    presence.disconnected("alice", 7 * S)
    (w1, online), (w2, offline) = notes.items
    assert w1 == w2 == "bob"
    assert online == {
        "type": "presence",
        "user": "alice",
        "status": "online",
        "last_seen": 5 * S,
        "ts": 5 * S,
    }
    assert offline == {
        "type": "presence",
        "user": "alice",
        "status": "offline",
        "last_seen": 7 * S,
        "ts": 7 * S,
    }


def test_http_touch_then_sweep_after_timeout(presence: Presence, notes: Recorder) -> None:
    presence.touch("carol", 1 * S)
    assert presence.is_online("carol")
    presence.touch("carol", 2 * S)  # still online: no second change
    assert presence.sweep(2 * S + int(TIMEOUT_S * S) - 1) == 0
    assert presence.is_online("carol")
    assert presence.sweep(2 * S + int(TIMEOUT_S * S)) == 1
    assert not presence.is_online("carol")
    assert notes.changes("bob") == [("carol", "online"), ("carol", "offline")]
    # The change is dated when it became due: last seen plus the timeout.
    assert notes.items[-1][1]["ts"] == 2 * S + int(TIMEOUT_S * S)
    assert presence.status("carol") == {"status": "offline", "last_seen": 2 * S}
    assert presence.sweep(100 * S) == 0  # already offline


def test_held_long_poll_keeps_online_then_release_starts_the_timeout(
    presence: Presence, notes: Recorder
) -> None:
    presence.hold("carol", 1 * S)
    assert presence.is_online("carol")
    # However long the poll is held, the sweep leaves the user online.
    assert presence.sweep(60 * S) == 0
    assert presence.is_online("carol")
    presence.release("carol", 61 * S)
    assert presence.status("carol")["last_seen"] == 61 * S
    assert presence.sweep(62 * S) == 0
    assert presence.sweep(61 * S + int(TIMEOUT_S * S)) == 1
    assert notes.changes("bob") == [("carol", "online"), ("carol", "offline")]


def test_overlapping_holds(presence: Presence) -> None:
    presence.hold("carol", 0)
    presence.hold("carol", 1 * S)
    presence.release("carol", 2 * S)
    assert presence.sweep(30 * S) == 0  # one poll still held
    presence.release("carol", 31 * S)
    assert presence.sweep(31 * S + int(TIMEOUT_S * S)) == 1


def test_watchers_notified_in_order_and_user_not_told_of_own_changes(notes: Recorder) -> None:
    presence = Presence(TIMEOUT_S, notes)
    presence.watch("zed", ["alice"])
    presence.watch("bob", ["alice"])
    presence.watch("alice", ["alice", "bob"])  # alice watches herself too
    presence.connected("alice", S)
    assert [w for w, _ in notes.items] == ["bob", "zed"]
    presence.connected("bob", S)
    assert notes.items[-1][0] == "alice"
    assert notes.changes("alice") == [("bob", "online")]


def test_watch_returns_current_status(presence: Presence) -> None:
    presence.connected("alice", 3 * S)
    status = presence.watch("dave", ["alice", "carol"])
    assert status == {
        "alice": {"status": "online", "last_seen": 3 * S},
        "carol": {"status": "offline", "last_seen": None},
    }


def test_unwatched_changes_notify_nobody(presence: Presence, notes: Recorder) -> None:
    presence.connected("erin", S)
    presence.disconnected("erin", 2 * S)
    assert notes.items == []
    assert presence.changes == 2


def test_leave_goes_offline_unless_a_push_connection_is_open(
    presence: Presence, notes: Recorder
) -> None:
    presence.touch("carol", S)
    presence.leave("carol", 2 * S)
    assert presence.status("carol") == {"status": "offline", "last_seen": 2 * S}
    presence.connected("alice", S)
    presence.leave("alice", 2 * S)
    assert presence.is_online("alice")
    assert notes.changes("bob") == [("carol", "online"), ("carol", "offline"), ("alice", "online")]


def test_last_seen_tracks_latest_activity(presence: Presence) -> None:
    presence.touch("carol", 1 * S)
    presence.touch("carol", 4 * S)
    assert presence.status("carol")["last_seen"] == 4 * S
    presence.connected("alice", 5 * S)
    presence.disconnected("alice", 9 * S)
    assert presence.status("alice")["last_seen"] == 9 * S
    # Back online: the online item carries the new last_seen.
    presence.connected("alice", 12 * S)
    assert presence.status("alice") == {"status": "online", "last_seen": 12 * S}
