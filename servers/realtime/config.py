"""Server-side settings of the real-time application, checked when made::

    from servers.realtime.config import RealtimeConfig
    config = RealtimeConfig(presence_timeout_s=5.0, max_users=16)   # ValueError if a bound < 1

The memory bounds are what a server refuses past (``limit_reached``, HTTP 429).
"""

from __future__ import annotations

from dataclasses import dataclass

from servers.realtime.auth import DEFAULT_TOKEN_TTL_S

#: Upper bound on a long poll's hold, whatever the client asks for.
MAX_WAIT_MS = 60_000
MAX_PAGE = 1000
NAME_MAX = 64
PAGE_MAX = 256


@dataclass(frozen=True, slots=True)
class RealtimeConfig:
    """Server-side knobs of the real-time application."""

    presence_timeout_s: float = 5.0
    idle_timeout_s: float = 30.0
    inbox_retention: int = 10_000
    max_room_members: int = 1_000
    #: Sign-in: the run's secret (None: $RTBENCH_SIGNIN_SECRET, else a random one),
    #: or ``open_signin`` to let anyone sign in as anyone (demos only).
    signin_secret: str | None = None
    open_signin: bool = False
    token_ttl_s: float = DEFAULT_TOKEN_TTL_S
    #: Memory bounds; a request that would pass one is refused with ``limit_reached``.
    max_users: int = 100_000
    inbox_max_bytes: int = 8 << 20
    inbox_total_bytes: int = 256 << 20
    max_watch: int = 1_000
    max_rooms: int = 10_000
    max_topics: int = 10_000
    max_pages: int = 1_000

    def __post_init__(self) -> None:
        for name in (
            "inbox_retention",
            "max_room_members",
            "max_users",
            "inbox_max_bytes",
            "inbox_total_bytes",
            "max_watch",
            "max_rooms",
            "max_topics",
            "max_pages",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.token_ttl_s <= 0:
            raise ValueError(f"token_ttl_s must be > 0, got {self.token_ttl_s}")
