"""What each connected user costs the server and the wire: ``summary.json``'s
``per_1000_users`` block of a real-time cell (no I/O)::

    block = per_1000_users(
        users=1000, rss_with_mb=180.0, rss_before_mb=40.0,
        server_cpu_s=3.0, window_s=30.0, wire_bytes=6_000_000,
    )
    block["server_rss_mb"]        # 140.0 MB per 1,000 users
    block["server_cpu_ms_per_s"]  # 100.0 ms of server CPU per second per 1,000 users
    block["wire_kb_per_min"]      # 12000.0 KB (1,000 bytes) per minute per 1,000 users

    block = cell_per_1000_users(parts)    # a cell's repeats pooled (their part records)
    block = cell_per_1000_users([part])   # one repeat

Every figure is None when an input it needs is missing (or the users or the window
are zero).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: Figures are given per this many connected users.
PER_USERS = 1000

#: Keys of the block, in order.
BLOCK_KEYS: tuple[str, ...] = (
    "users",
    "server_rss_mb",
    "server_cpu_ms_per_s",
    "wire_kb_per_min",
    "server_rss_before_users_mb",
    "server_rss_with_users_mb",
)


def per_1000_users(
    *,
    users: int | None,
    rss_with_mb: float | None,
    rss_before_mb: float | None,
    server_cpu_s: float | None,
    window_s: float | None,
    wire_bytes: int | None,
) -> dict[str, Any]:
    """The ``per_1000_users`` block: server memory above its before-users baseline, server
    CPU per second of the measured window and wire bytes (both ways) per minute, each per
    1,000 connected users; with ``users`` and both RSS readings as given."""
    scale = users / PER_USERS if users else None
    window = window_s if window_s else None
    rss = None
    if scale is not None and rss_with_mb is not None and rss_before_mb is not None:
        rss = _round((rss_with_mb - rss_before_mb) / scale)
    cpu = None
    if scale is not None and window is not None and server_cpu_s is not None:
        cpu = _round(server_cpu_s * 1000 / window / scale)
    wire = None
    if scale is not None and window is not None and wire_bytes is not None:
        wire = _round(wire_bytes / 1000 / (window / 60) / scale)
    return {
        "users": users,
        "server_rss_mb": rss,
        "server_cpu_ms_per_s": cpu,
        "wire_kb_per_min": wire,
        "server_rss_before_users_mb": rss_before_mb,
        "server_rss_with_users_mb": rss_with_mb,
    }


def cell_per_1000_users(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The block of a cell's successful repeats pooled: CPU and bytes summed over their
    windows (None when any repeat lacks them), RSS readings and users averaged over the
    repeats that have them (each repeat runs its own server)."""
    procs = [p.get("procs") or {} for p in parts]
    rss_pairs = [
        (q["server_rss_mb"], q["server_rss_before_users_mb"])
        for q in procs
        if q.get("server_rss_mb") is not None and q.get("server_rss_before_users_mb") is not None
    ]
    users = _mean([(p.get("stats") or {}).get("users") for p in parts])
    with_users = _mean([w for w, _ in rss_pairs])
    before = _mean([b for _, b in rss_pairs])
    return per_1000_users(
        users=None if users is None else round(users),
        rss_with_mb=None if with_users is None else round(with_users, 2),
        rss_before_mb=None if before is None else round(before, 2),
        server_cpu_s=_total([q.get("server_cpu_s") for q in procs]),
        window_s=_total([p.get("window_s") for p in parts]),
        wire_bytes=_total(
            [
                p["measured_wire_bytes"] + p.get("push_bytes_measured", 0)
                if "measured_wire_bytes" in p
                else None
                for p in parts
            ]
        ),
    )


def _total(values: Sequence[float | None]) -> Any:
    """The sum, or None when there are no values or any is missing."""
    if not values or any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None)


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _round(value: float) -> float:
    return round(value, 4)
