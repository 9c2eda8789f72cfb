"""Time on site: the server's figure per user against the client's own record of its visits.

::

    client_ms = visits_ms([[t0, t1], [t2, t3]])      # the visits a user made, in ms
    report = time_on_site_report([(server_ms, client_ms), ...])
    # {"users", "server_ms", "client_ms", "mean_diff_ms", "mean_abs_diff_ms", "max_abs_diff_ms"}
"""

from __future__ import annotations

from typing import Any


def visits_ms(visits: list[list[int]]) -> float:
    """Total length in ms of visits given as ``[first_ns, last_ns]`` pairs."""
    return sum(b - a for a, b in visits) / 1e6


def time_on_site_report(pairs: list[tuple[float, float]]) -> dict[str, Any]:
    """Totals and differences over ``(server_ms, client_ms)`` per user; {} when there are none."""
    if not pairs:
        return {}
    diffs = [server - client for server, client in pairs]
    abs_diffs = sorted(abs(d) for d in diffs)
    return {
        "users": len(diffs),
        "server_ms": round(sum(server for server, _ in pairs), 3),
        "client_ms": round(sum(client for _, client in pairs), 3),
        "mean_diff_ms": round(sum(diffs) / len(diffs), 3),
        "mean_abs_diff_ms": round(sum(abs_diffs) / len(abs_diffs), 3),
        "max_abs_diff_ms": round(abs_diffs[-1], 3),
    }
