"""Activity: sessions split by the idle timeout, time on site summed over sessions."""

from __future__ import annotations

import pytest

from servers.realtime.activity import Activity

pytestmark = pytest.mark.timeout(10)

MS = 1_000_000  # ns per ms


def test_idle_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Activity(0)


def test_unknown_user_report() -> None:
    assert Activity(1.0).report("nobody", 0) == {
        "sessions": 0,
        "events": 0,
        "time_on_site_ms": 0.0,
        "active": False,
    }


def test_events_closer_than_the_timeout_are_one_session() -> None:
    act = Activity(idle_timeout_s=1.0)
    assert act.record("alice", "page_view", "/a", 100 * MS) == {
        "session": 1,
        "session_start": 100 * MS,
    }
    act.record("alice", "page_view", "/b", 600 * MS)
    assert act.record("alice", "click", None, 1600 * MS) == {
        "session": 1,
        "session_start": 100 * MS,
    }  # exactly the timeout apart: same session
    report = act.report("alice", 1700 * MS)
    assert report["sessions"] == 1
    assert report["events"] == 3
    assert report["time_on_site_ms"] == pytest.approx(1500.0)
    assert report["session_start"] == 100 * MS
    assert report["last_activity"] == 1600 * MS
    assert report["active"] is True
    assert report["pages"] == {"/a": 1, "/b": 1}


def test_gap_longer_than_the_timeout_starts_a_new_session_and_times_sum() -> None:
    act = Activity(idle_timeout_s=0.5)
    for t in (0, 200, 400):  # session 1: 400 ms
        act.record("alice", "page_view", "/home", t * MS)
    for t in (1000, 1300):  # 600 ms later: session 2, 300 ms
        act.record("alice", "page_view", "/home", t * MS)
    assert act.record("alice", "page_view", "/x", 5000 * MS)["session"] == 3  # 0 ms
    report = act.report("alice", 5100 * MS)
    assert report["sessions"] == 3
    assert report["events"] == 6
    assert report["time_on_site_ms"] == pytest.approx(400.0 + 300.0 + 0.0)
    assert report["session_start"] == 5000 * MS
    assert report["pages"] == {"/home": 5, "/x": 1}


def test_active_flag_follows_the_idle_timeout() -> None:
    act = Activity(idle_timeout_s=1.0)
    act.record("alice", "page_view", None, 0)
    assert act.report("alice", 1000 * MS)["active"] is True
    assert act.report("alice", 1001 * MS)["active"] is False
    assert act.report("alice", 1001 * MS)["pages"] == {}


def test_users_are_tracked_separately_and_events_counted() -> None:
    act = Activity(idle_timeout_s=1.0)
    act.record("alice", "page_view", "/a", 0)
    act.record("bob", "page_view", "/a", 0)
    act.record("alice", "page_view", "/a", 300 * MS)
    assert act.report("alice", 0)["time_on_site_ms"] == pytest.approx(300.0)
    assert act.report("bob", 0)["time_on_site_ms"] == 0.0
    assert act.events == 3
