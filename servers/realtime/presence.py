"""Online/offline state with last-seen, and who is told when it changes.

A user is online while they hold an open push connection (WebSocket), or
for HTTP while their last poll or heartbeat is younger than ``timeout_s``::

    presence = Presence(timeout_s=5.0, notify=deliver)   # deliver(watcher, item)
    presence.watch("bob", ["alice"])   # bob is told of alice's changes
    presence.touch("alice", now_ns)    # an HTTP poll/heartbeat: alice is online
    presence.sweep(now_ns)             # marks HTTP users silent for timeout_s offline

``notify`` receives a dict item
``{"type": "presence", "user", "status", "last_seen", "ts"}`` where ``ts``
is when the change happened on the server's monotonic clock (ns).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Notify = Callable[[str, dict[str, Any]], None]


def _opened(counts: dict[str, int], user: str) -> None:
    """One more open connection (or held poll) of ``user`` in ``counts``."""
    counts[user] = counts.get(user, 0) + 1


def _closed(counts: dict[str, int], user: str) -> int:
    """One fewer open of ``user`` in ``counts``; returns how many are left."""
    left = counts.get(user, 0) - 1
    if left > 0:
        counts[user] = left
        return left
    counts.pop(user, None)
    return 0


class Presence:
    """Tracks online users and fans their changes out to watchers."""

    def __init__(self, timeout_s: float, notify: Notify) -> None:
        if timeout_s <= 0:
            raise ValueError("presence timeout must be > 0")
        self.timeout_ns = int(timeout_s * 1e9)
        self._notify = notify
        self._watchers: dict[str, set[str]] = {}
        self._watching: dict[str, set[str]] = {}
        self._conns: dict[str, int] = {}
        self._holds: dict[str, int] = {}
        self._last_seen: dict[str, int] = {}
        self._online: set[str] = set()
        self.changes = 0

    def watch(self, watcher: str, users: list[str]) -> dict[str, dict[str, Any]]:
        """Subscribe ``watcher`` to ``users``; returns their current status."""
        for user in users:
            self._watchers.setdefault(user, set()).add(watcher)
        self._watching.setdefault(watcher, set()).update(users)
        return {u: self.status(u) for u in users}

    def watched_by(self, watcher: str) -> set[str]:
        """The users ``watcher`` watches."""
        return set(self._watching.get(watcher, ()))

    def status(self, user: str) -> dict[str, Any]:
        """``{"status": "online"|"offline", "last_seen": ns or None}``."""
        return {
            "status": "online" if user in self._online else "offline",
            "last_seen": self._last_seen.get(user),
        }

    def is_online(self, user: str) -> bool:
        return user in self._online

    def _set(self, user: str, online: bool, ts: int) -> None:
        if online == (user in self._online):
            return
        if online:
            self._online.add(user)
        else:
            self._online.discard(user)
        self.changes += 1
        item = {
            "type": "presence",
            "user": user,
            "status": "online" if online else "offline",
            "last_seen": self._last_seen.get(user),
            "ts": ts,
        }
        for watcher in sorted(self._watchers.get(user, ())):
            if watcher != user:
                self._notify(watcher, item)

    def touch(self, user: str, now_ns: int) -> None:
        """An HTTP request by ``user``: last seen now, online if not already."""
        self._last_seen[user] = now_ns
        self._set(user, True, now_ns)

    def connected(self, user: str, now_ns: int) -> None:
        """A push connection of ``user`` opened."""
        _opened(self._conns, user)
        self.touch(user, now_ns)

    def disconnected(self, user: str, now_ns: int) -> None:
        """A push connection of ``user`` closed; offline when it was the last one."""
        if _closed(self._conns, user):
            return
        self._last_seen[user] = now_ns
        self._set(user, False, now_ns)

    def hold(self, user: str, now_ns: int) -> None:
        """A long poll of ``user`` is being held: online for as long as it lasts."""
        _opened(self._holds, user)
        self.touch(user, now_ns)

    def release(self, user: str, now_ns: int) -> None:
        """A held long poll ended (answered or abandoned): the timeout starts now."""
        _closed(self._holds, user)
        self._last_seen[user] = now_ns

    def leave(self, user: str, now_ns: int) -> None:
        """An explicit sign-out: offline now unless a push connection is still open."""
        if self._conns.get(user):
            return
        self._last_seen[user] = now_ns
        self._set(user, False, now_ns)

    def sweep(self, now_ns: int) -> int:
        """Mark offline the users with no push connection silent for the timeout."""
        expired = [
            u
            for u in self._online
            if not self._conns.get(u)
            and not self._holds.get(u)
            and now_ns - self._last_seen.get(u, 0) >= self.timeout_ns
        ]
        for user in sorted(expired):
            # The user went quiet at last_seen; the change is due one timeout later.
            self._set(user, False, self._last_seen[user] + self.timeout_ns)
        return len(expired)
