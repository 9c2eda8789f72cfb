"""loadgen.stall_records: part records' stalls as stalls.parquet rows and a summary block."""

from __future__ import annotations

from typing import Any

from loadgen.schema import STALL_SCHEMA
from loadgen.stall_records import stall_table, stalls_block

MS = 1_000_000


def report(*events: tuple[int, float, str], checks: int = 100) -> dict[str, Any]:
    loop = {"checks": checks}
    return {"gc": {}, "loop": loop, "min_event_ms": 5.0, "events": [list(e) for e in events]}


def part(repeat: int, server: dict[str, Any] | None, client: dict[str, Any] | None) -> dict:
    stats: dict[str, Any] = {"measure_started_ns": 1000 * MS, "ended_ns": 5000 * MS}
    if server is not None:
        stats["server_stats"] = {"deliveries": 3, "stalls": server}
    if client is not None:
        stats["stalls"] = client
    spec = {"transport": "ws-aiohttp", "client": "lean", "conn_mode": "persistent"}
    return {"cell": "ws", "repeat": repeat, "spec": {**spec, "delivery": "push"}, "stats": stats}


def test_every_kept_stall_becomes_a_row_of_the_schema() -> None:
    parts = [
        part(0, report((500 * MS, 12.5, "gc2"), (1500 * MS, 60.0, "loop")), report()),
        part(1, None, report((2000 * MS, 7.25, "loop"))),
    ]
    table = stall_table(parts)
    assert table.schema == STALL_SCHEMA
    rows = table.to_pylist()
    assert [(r["repeat"], r["process"], r["kind"]) for r in rows] == [
        (0, "server", "gc2"),
        (0, "server", "loop"),
        (1, "load generator", "loop"),
    ]
    assert [r["duration_ns"] for r in rows] == [12_500_000, 60 * MS, 7_250_000]
    # Before the window's start: warm-up.
    assert [r["warmup"] for r in rows] == [True, False, False]
    assert rows[0]["cell"] == "ws" and rows[0]["delivery"] == "push"


def test_parts_without_stalls_give_an_empty_table_and_block() -> None:
    assert stall_table([part(0, None, None)]).num_rows == 0
    assert stalls_block([part(0, None, None)]) == {}
    assert stalls_block([]) == {}


def test_the_block_keeps_the_window_only_and_counts_long_loop_stalls() -> None:
    server = report(
        (500 * MS, 300.0, "loop"),  # warm-up: left out
        (1500 * MS, 80.0, "gc2"),
        (1500 * MS, 120.0, "loop"),
        (2500 * MS, 40.0, "loop"),
        (6000 * MS, 900.0, "loop"),  # after the window: left out
    )
    block = stalls_block([part(0, server, report((3000 * MS, 55.0, "loop")))])
    assert block == {
        "server_longest_gc_ms": 80.0,
        "server_longest_loop_ms": 120.0,
        "server_long_loop_stalls": 1,
        "server_long_loop_stalled_ms": 120.0,
        "load_generator_longest_gc_ms": 0.0,
        "load_generator_longest_loop_ms": 55.0,
        "load_generator_long_loop_stalls": 1,
        "load_generator_long_loop_stalled_ms": 55.0,
    }


def test_a_server_that_did_not_watch_its_loop_has_no_loop_figures() -> None:
    block = stalls_block([part(0, report((1500 * MS, 30.0, "gc1"), checks=0), report())])
    assert block["server_longest_gc_ms"] == 30.0
    assert block["server_longest_loop_ms"] is None
    assert block["server_long_loop_stalls"] is None
    assert block["load_generator_longest_loop_ms"] == 0.0
