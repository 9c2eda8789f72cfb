"""The ratio rows: each rtbench client's figures against the peer's, round by round.

::

    rows = ratio_rows(points, groups)    # one dict per (group, client)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .groups import Group


def _span(values: Sequence[float]) -> list[float] | None:
    return [min(values), max(values)] if values else None


def _ok(point: dict[str, Any]) -> bool:
    return not point.get("failed") and point.get("count", 0) > 0


def ratio_rows(points: Sequence[dict[str, Any]], groups: Sequence[Group]) -> list[dict[str, Any]]:
    """One row per (group, rtbench client): peer and client figures and their ratios.

    Rounds are paired (a client's round r against the peer's round r, run next to it);
    each figure is the [min, max] over paired rounds, None when no round has both.
    ``p50_ratio`` is client p50 / peer p50; ``rate_pct`` is client rate / peer rate in %.
    """
    rows = []
    for group in groups:
        mine = [p for p in points if p["group"] == group.key]
        peer = {p["round"]: p for p in mine if p["contender"] == group.peer and _ok(p)}
        for client in group.clients:
            runs = [p for p in mine if p["contender"] == client]
            if not runs:
                continue
            pairs = [(peer[p["round"]], p) for p in runs if _ok(p) and p["round"] in peer]
            notes = sorted({p["skipped"] for p in runs if p.get("skipped")})
            notes += sorted({f"round {p['round']}: {p['failed']}" for p in runs if p.get("failed")})
            if len(pairs) < len(runs) and not notes:
                notes.append(f"{len(runs) - len(pairs)} round(s) without a {group.peer} figure")

            def span(side: int, key: str, pairs: list = pairs) -> list[float] | None:
                return _span([pair[side][key] for pair in pairs if pair[side].get(key) is not None])

            def ratio(key: str, scale: float = 1.0, pairs: list = pairs) -> list[float] | None:
                values = [scale * c[key] / q[key] for q, c in pairs if c.get(key) and q.get(key)]
                return _span(values)

            rows.append(
                {
                    "group": group.key,
                    "title": group.title,
                    "server": group.server,
                    "connections": group.connections,
                    "peer": group.peer,
                    "client": client,
                    "rounds": len(pairs),
                    "peer_p50_us": span(0, "p50_us"),
                    "client_p50_us": span(1, "p50_us"),
                    "p50_ratio": ratio("p50_us"),
                    "peer_p99_us": span(0, "p99_us"),
                    "client_p99_us": span(1, "p99_us"),
                    "peer_rate": span(0, "rate_per_s"),
                    "client_rate": span(1, "rate_per_s"),
                    "rate_pct": ratio("rate_per_s", 100.0),
                    "peer_server_cpu_pct": span(0, "server_cpu_pct"),
                    "client_server_cpu_pct": span(1, "server_cpu_pct"),
                    "peer_client_cpu_pct": span(0, "client_cpu_pct"),
                    "client_client_cpu_pct": span(1, "client_cpu_pct"),
                    "others_cpu_pct_max": max(
                        (
                            p[k]
                            for pair in pairs
                            for p in pair
                            for k in ("server_core_others_pct", "client_core_others_pct")
                            if p.get(k) is not None
                        ),
                        default=None,
                    ),
                    "note": "; ".join(notes),
                }
            )
    return rows
