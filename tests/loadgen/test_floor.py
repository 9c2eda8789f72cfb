"""The harness floor: a raw-TCP echo server and a closed-loop client, as processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from loadgen.floor import measure_floor, parse_ready
from loadgen.procs import plan_placement

pytestmark = pytest.mark.timeout(60)


def test_parse_ready_reads_only_the_floor_line() -> None:
    assert parse_ready('RTBENCH-FLOOR-READY {"port": 5, "pid": 1}') == {"port": 5, "pid": 1}
    assert parse_ready('RTBENCH-READY {"port": 5}') is None
    assert parse_ready('RTBENCH-FLOOR-READY {"pid": 1}') is None


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_measure_floor_reports_percentiles_and_pinning(tmp_path: Path, loop: str) -> None:
    placement = plan_placement("split")
    floor = measure_floor(
        placement.server_cpus,
        placement.client_cpus,
        200,
        tmp_path,
        loop=loop,
        duration_s=0.3,
        warmup_s=0.05,
    )
    assert "error" not in floor, floor
    assert floor["payload_bytes"] == 200
    assert floor["count"] > 0
    assert 0 < floor["min_ns"] <= floor["p50_ns"] <= floor["p99_ns"] <= floor["max_ns"]
    assert floor["server_cpus"] == placement.server_cpus
    assert floor["client_cpus"] == placement.client_cpus
    assert floor["loop"] == loop


def test_zero_byte_payloads_still_round_trip_one_byte(tmp_path: Path) -> None:
    floor = measure_floor(None, None, 0, tmp_path, duration_s=0.2, warmup_s=0.0)
    assert floor["payload_bytes"] == 1
    assert floor["count"] > 0


def test_client_against_a_closed_port_fails_with_a_message() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loadgen.floor", "measure", "--port", "1", "--duration-s", "0.1"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert b"floor:" in done.stderr
