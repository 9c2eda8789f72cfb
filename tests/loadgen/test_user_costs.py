"""The per_1000_users arithmetic: per 1,000 connected users, null when an input is missing."""

from __future__ import annotations

from typing import Any

import pytest

from loadgen.user_costs import BLOCK_KEYS, cell_per_1000_users, per_1000_users

FULL: dict[str, Any] = {
    "users": 2000,
    "rss_with_mb": 140.0,
    "rss_before_mb": 40.0,
    "server_cpu_s": 6.0,
    "window_s": 30.0,
    "wire_bytes": 3_000_000,
}

#: (what changes from FULL, the figures expected: rss, cpu, wire)
CASES: list[tuple[str, dict[str, Any], tuple[float | None, float | None, float | None]]] = [
    # 100 MB above the baseline over 2k users; 200 ms/s over 2k; 6,000 KB/min over 2k.
    ("all inputs", {}, (50.0, 100.0, 3000.0)),
    ("1,000 users is the unit", {"users": 1000}, (100.0, 200.0, 6000.0)),
    ("10,000 users", {"users": 10_000}, (10.0, 20.0, 600.0)),
    ("no users known", {"users": None}, (None, None, None)),
    ("zero users", {"users": 0}, (None, None, None)),
    ("no RSS with users", {"rss_with_mb": None}, (None, 100.0, 3000.0)),
    ("no RSS before users", {"rss_before_mb": None}, (None, 100.0, 3000.0)),
    ("no server CPU", {"server_cpu_s": None}, (50.0, None, 3000.0)),
    ("no window", {"window_s": None}, (50.0, None, None)),
    ("empty window", {"window_s": 0.0}, (50.0, None, None)),
    ("no wire bytes", {"wire_bytes": None}, (50.0, 100.0, None)),
    ("nothing on the wire", {"wire_bytes": 0}, (50.0, 100.0, 0.0)),
    ("no growth", {"rss_with_mb": 40.0}, (0.0, 100.0, 3000.0)),
]


@pytest.mark.parametrize(("change", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_per_1000_users(
    change: dict[str, Any], expected: tuple[float | None, float | None, float | None]
) -> None:
    inputs = FULL | change
    block = per_1000_users(**inputs)
    assert list(block) == list(BLOCK_KEYS)
    assert (block["server_rss_mb"], block["server_cpu_ms_per_s"], block["wire_kb_per_min"]) == (
        expected
    )
    assert block["users"] == inputs["users"]
    assert block["server_rss_before_users_mb"] == inputs["rss_before_mb"]
    assert block["server_rss_with_users_mb"] == inputs["rss_with_mb"]


def _part(
    users: int | None = 1000,
    *,
    rss: float | None = 90.0,
    before: float | None = 30.0,
    cpu: float | None = 2.0,
    window: float = 10.0,
    wire: int | None = 400_000,
) -> dict[str, Any]:
    part: dict[str, Any] = {
        "window_s": window,
        "stats": {} if users is None else {"users": users},
        "procs": {"server_rss_mb": rss, "server_rss_before_users_mb": before, "server_cpu_s": cpu},
    }
    if wire is not None:
        part |= {"measured_wire_bytes": wire // 2, "push_bytes_measured": wire - wire // 2}
    return part


def test_one_repeat_reads_its_part_record() -> None:
    block = cell_per_1000_users([_part()])
    assert block == {
        "users": 1000,
        "server_rss_mb": 60.0,
        "server_cpu_ms_per_s": 200.0,
        "wire_kb_per_min": 2400.0,  # 400 KB in 10 s
        "server_rss_before_users_mb": 30.0,
        "server_rss_with_users_mb": 90.0,
    }


def test_repeats_pool_cpu_and_bytes_and_average_memory() -> None:
    block = cell_per_1000_users(
        [_part(rss=90.0, before=30.0, cpu=2.0), _part(rss=110.0, before=30.0, cpu=4.0)]
    )
    assert block["server_rss_with_users_mb"] == 100.0
    assert block["server_rss_mb"] == 70.0
    assert block["server_cpu_ms_per_s"] == 300.0  # 6 s over 20 s
    assert block["wire_kb_per_min"] == 2400.0


def test_a_repeat_without_the_baseline_leaves_memory_to_the_others() -> None:
    block = cell_per_1000_users([_part(before=None, rss=500.0), _part()])
    assert block["server_rss_mb"] == 60.0


def test_missing_inputs_give_nulls() -> None:
    # Part records written before the baseline was sampled have no such key.
    old = _part(wire=None)
    del old["procs"]["server_rss_before_users_mb"]
    block = cell_per_1000_users([old, _part(cpu=None)])
    assert block["server_rss_mb"] == 60.0  # the second repeat has both readings
    assert block["server_cpu_ms_per_s"] is None
    assert block["wire_kb_per_min"] is None
    assert cell_per_1000_users([_part(users=None)])["users"] is None
    assert cell_per_1000_users([])["server_rss_mb"] is None
