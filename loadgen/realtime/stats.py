"""Counters of one real-time repeat besides samples and deliveries (no I/O).

::

    stats = RealtimeStats(users=40)
    stats.count_request("poll", None, 0)   # one request a user made (an empty poll)
    stats.count_action("send", ok=True)    # one action a behaviour took
    stats.count_lateness(late_ns)          # a scheduled step reached late_ns after it was due
    stats.count_headers(user_tally)        # a user's HTTP/2 header bytes (None: not HTTP/2)

Both drivers (asyncio and gevent) fill one per process; the part record carries it
as ``stats``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadgen.lean.h2bytes import HeaderTally

#: A behaviour this far behind its schedule no longer offers the configured load.
LATE_NS = 100_000_000


@dataclass(slots=True)
class RealtimeStats:
    """Counters of one repeat besides samples and deliveries."""

    users: int = 0
    setup_s: float = 0.0
    measure_started_ns: int = 0
    ended_ns: int = 0
    drained_ns: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    action_errors: dict[str, int] = field(default_factory=dict)
    reconnects: int = 0
    #: Streams and held polls the server ended because their token did (then resumed).
    auth_closes: int = 0
    wire_sent: int = 0
    wire_received: int = 0
    requests: int = 0
    polls: int = 0
    empty_polls: int = 0
    activity: dict[str, Any] = field(default_factory=dict)
    server_stats: dict[str, Any] = field(default_factory=dict)
    #: Scheduled steps that came due more than LATE_NS before their behaviour got to them.
    late_steps: int = 0
    max_late_ms: float = 0.0
    #: The collector's settings once set up (:func:`servers.gcfreeze.describe`).
    gc: dict[str, Any] = field(default_factory=dict)
    #: This process's collections and late loop turns (:meth:`servers.stalls.Stalls.report`).
    stalls: dict[str, Any] = field(default_factory=dict)
    #: HTTP/2 cells: HEADERS (+CONTINUATION) frame bytes each way, over the whole run
    #: (set-up and warm-up included), and the requests and responses they framed.
    http2_header_bytes_sent: int = 0
    http2_header_bytes_received: int = 0
    http2_requests: int = 0
    http2_responses: int = 0

    def count_lateness(self, late_ns: int) -> None:
        """A behaviour reached a step ``late_ns`` after it was due."""
        if late_ns > LATE_NS:
            self.late_steps += 1
            self.max_late_ms = max(self.max_late_ms, late_ns / 1e6)

    def count_headers(self, tally: HeaderTally | None) -> None:
        """Add one user's HTTP/2 header tally (nothing for None: not an HTTP/2 user)."""
        if tally is None:
            return
        self.http2_header_bytes_sent += tally.header_bytes_sent
        self.http2_header_bytes_received += tally.header_bytes_received
        self.http2_requests += tally.requests
        self.http2_responses += tally.responses

    def count_request(self, op: str, error: str | None, items: int) -> None:
        """One request finished; a poll that succeeded with no items is empty."""
        self.requests += 1
        if op == "poll":
            self.polls += 1
            if error is None and items == 0:
                self.empty_polls += 1

    def count_action(self, op: str, ok: bool) -> None:
        """A behaviour's action (send, publish, activity) succeeded or failed."""
        self.actions[op] = self.actions.get(op, 0) + 1
        if not ok:
            self.action_errors[op] = self.action_errors.get(op, 0) + 1
