"""summary.json's per_1000_users block: on real-time cells and their repeats, never on echo."""

from __future__ import annotations

from typing import Any

from loadgen.recorder import encode_histogram, new_histogram
from loadgen.summary import cell_summary

EMPTY_HDR = encode_histogram(new_histogram())


def _part(repeat: int, *, cpu: float | None, before: float | None) -> dict[str, Any]:
    """One successful repeat of a real-time cell, as the orchestrator keeps it."""
    return {
        "cell": "ws",
        "repeat": repeat,
        "spec": {"repeat": repeat},
        "count": 0,
        "errors": 0,
        "window_s": 20.0,
        "max_ns": 0,
        "bytes_sent": 0,
        "bytes_received": 0,
        "hdr_corrected": EMPTY_HDR,
        "hdr_uncorrected": EMPTY_HDR,
        "deliveries": {},
        "delivery_hdr": {"all": EMPTY_HDR},
        "useful_measured": 0,
        "requests_measured": 0,
        "polls_measured": 0,
        "empty_polls_measured": 0,
        "measured_wire_bytes": 600_000,
        "push_bytes_measured": 200_000,
        "stats": {"users": 500},
        "procs": {
            "server_cpu_s": cpu,
            "server_rss_mb": 80.0,
            "server_rss_before_users_mb": before,
        },
    }


def test_realtime_cells_and_their_repeats_carry_the_block() -> None:
    parts = [_part(0, cpu=1.0, before=30.0), _part(1, cpu=3.0, before=None)]
    summary = cell_summary({"cell": "ws", "transport": "ws-aiohttp"}, parts)
    assert summary["per_1000_users"] == {
        "users": 500,
        "server_rss_mb": 100.0,  # 50 MB over 500 users: the one repeat with a baseline
        "server_cpu_ms_per_s": 200.0,  # 4 s over 40 s, over 500 users
        "wire_kb_per_min": 4800.0,  # 1,600 KB over 40 s, over 500 users
        "server_rss_before_users_mb": 30.0,
        "server_rss_with_users_mb": 80.0,
    }
    first, second = (r["per_1000_users"] for r in summary["per_repeat"])
    assert (first["server_cpu_ms_per_s"], second["server_cpu_ms_per_s"]) == (100.0, 300.0)
    assert first["server_rss_mb"] == 100.0
    assert second["server_rss_mb"] is None and second["server_rss_before_users_mb"] is None


def test_echo_cells_have_none() -> None:
    echo = _part(0, cpu=1.0, before=30.0)
    del echo["deliveries"]
    summary = cell_summary({"cell": "e", "transport": "http"}, [echo])
    assert "per_1000_users" not in summary
    assert "per_1000_users" not in summary["per_repeat"][0]
