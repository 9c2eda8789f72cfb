"""Activity tracking: sessions and time on site per user, on the server's clock.

A session starts with a user's first event and lasts while events keep
coming less than ``idle_timeout_s`` apart; time on site is the sum over
sessions of (last event - first event)::

    activity = Activity(idle_timeout_s=30.0)
    activity.record("alice", "page_view", "/home", now_ns)
    activity.report("alice", now_ns)   # {"sessions": 1, "time_on_site_ms": ..., ...}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from servers.protocol import LimitReached


@dataclass(slots=True)
class _Track:
    sessions: int = 0
    closed_ns: int = 0
    start_ns: int = 0
    last_ns: int = 0
    events: int = 0
    pages: dict[str, int] = field(default_factory=dict)


class Activity:
    """Per-user sessions built from activity events."""

    def __init__(self, idle_timeout_s: float, max_pages: int = 1_000) -> None:
        if idle_timeout_s <= 0:
            raise ValueError("idle timeout must be > 0")
        #: Distinct pages counted per user; an event on a further page is refused.
        self.max_pages = max_pages
        self.idle_ns = int(idle_timeout_s * 1e9)
        self._tracks: dict[str, _Track] = {}
        self.events = 0

    def record(self, user: str, event: str, page: str | None, now_ns: int) -> dict[str, Any]:
        """Count one event at ``now_ns``; returns the user's current session.

        Raises LimitReached, counting nothing, for a page beyond ``max_pages`` distinct ones.
        """
        track = self._tracks.setdefault(user, _Track())
        if page and page not in track.pages and len(track.pages) >= self.max_pages:
            raise LimitReached(f"{user!r} already has {self.max_pages} distinct pages")
        if track.sessions == 0 or now_ns - track.last_ns > self.idle_ns:
            if track.sessions:
                track.closed_ns += track.last_ns - track.start_ns
            track.sessions += 1
            track.start_ns = now_ns
        track.last_ns = now_ns
        track.events += 1
        self.events += 1
        if page:
            track.pages[page] = track.pages.get(page, 0) + 1
        return {"session": track.sessions, "session_start": track.start_ns}

    def report(self, user: str, now_ns: int) -> dict[str, Any]:
        """Sessions, events and time on site of ``user`` as of ``now_ns``."""
        track = self._tracks.get(user)
        if track is None:
            return {"sessions": 0, "events": 0, "time_on_site_ms": 0.0, "active": False}
        total = track.closed_ns + (track.last_ns - track.start_ns)
        return {
            "sessions": track.sessions,
            "events": track.events,
            "time_on_site_ms": total / 1e6,
            "session_start": track.start_ns,
            "last_activity": track.last_ns,
            "active": now_ns - track.last_ns <= self.idle_ns,
            "pages": dict(track.pages),
        }
