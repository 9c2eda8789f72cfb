"""Child processes: CPU time read precisely from schedstat, with psutil as the fallback;
the link emulator started through the link package's own command and ready line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadgen.link.command import relay_command
from loadgen.link.profiles import resolve_profile
from loadgen.procs import (
    final_counters,
    schedstat_seconds,
    start_link,
    start_process,
    stop_process,
)
from loadgen.run.watch import FD_NEAR_LIMIT, fd_exhaustion, saturation

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux /proc")


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_schedstat_counts_cpu_time_with_sub_tick_resolution() -> None:
    before = schedstat_seconds(os.getpid())
    if before is None:
        pytest.skip("this kernel exposes no schedstat")
    _busy(0.003)  # less than one 10 ms clock tick
    # A running task's total is brought up to date when it leaves the CPU (or at a
    # tick): sleep once so the read sees the busy loop whatever the machine's load.
    time.sleep(0.002)
    after = schedstat_seconds(os.getpid())
    assert after is not None
    # A 3 ms busy loop shows up, though it is below psutil's 10 ms tick.
    assert 0.001 < after - before < 1.0


def test_schedstat_sums_every_thread_of_a_child() -> None:
    # Each of two threads burns 0.2 s of its own CPU time, then stays alive.
    script = (
        "import threading, time\n"
        "ready = threading.Barrier(3)\n"
        "def spin():\n"
        "    while time.thread_time() < 0.2: pass\n"
        "    ready.wait(); time.sleep(30)\n"
        "for _ in range(2): threading.Thread(target=spin, daemon=True).start()\n"
        "ready.wait(); print('spun', flush=True); time.sleep(30)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "spun\n"
        used = schedstat_seconds(child.pid)
        if used is None:
            pytest.skip("this kernel exposes no schedstat")
        assert used >= 0.39
    finally:
        child.kill()
        child.wait()


def test_gone_process_reads_none() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert schedstat_seconds(child.pid) is None


def test_start_process_pins_the_program_and_reads_its_lines(tmp_path: Path) -> None:
    cpu = sorted(os.sched_getaffinity(0))[-1]
    script = "import os, sys; print(sorted(os.sched_getaffinity(0))); sys.stderr.write('oops')"
    child = start_process("probe", [sys.executable, "-c", script], [cpu], tmp_path / "probe.log")
    lines = []
    while (line := child.lines.get(timeout=10)) is not None:
        lines.append(line)
    assert child.proc.wait(timeout=10) == 0
    assert lines == [str([cpu])]
    assert child.cpus == [cpu]
    assert (tmp_path / "probe.log").read_text() == "oops"


@pytest.mark.parametrize(
    ("printed", "counters"),
    [
        # The last stats line counts; other lines are not counters.
        (
            ['RTBENCH-STATS {"limit_refusals": 1}', "x", 'RTBENCH-STATS {"limit_refusals": 2}'],
            {"limit_refusals": 2},
        ),
        (["RTBENCH-READY {}", "RTBENCH-STATS {"], None),  # malformed: unknown, not zero
        ([], None),  # killed before it could say anything
    ],
)
def test_final_counters_reads_the_last_stats_line(
    tmp_path: Path, printed: list[str], counters: dict[str, int] | None
) -> None:
    script = f"for line in {printed!r}: print(line)"
    child = start_process("server", [sys.executable, "-c", script], None, tmp_path / "s.log")
    assert child.proc.wait(timeout=10) == 0
    assert final_counters(child, timeout_s=10) == counters


def test_start_link_runs_the_relay_command_and_reads_its_ready_line(tmp_path: Path) -> None:
    profile = resolve_profile("lan")
    with socket.create_server(("127.0.0.1", 0)) as target:
        port = target.getsockname()[1]
        child = start_link(profile, port, None, tmp_path / "link.log")
        try:
            assert child.proc.args == relay_command(profile, port)
            assert child.info["profile"] == profile.as_dict()
            assert child.info["target"] == f"127.0.0.1:{port}"
            assert child.info["pid"] == child.proc.pid
            # It listens where its ready line says.
            socket.create_connection(("127.0.0.1", child.info["port"]), timeout=5).close()
        finally:
            assert stop_process(child) == 0


def test_open_files_are_read_with_their_limit_and_named_when_near_it(tmp_path: Path) -> None:
    script = "import time; time.sleep(30)"
    child = start_process("probe", [sys.executable, "-c", script], None, tmp_path / "p.log")
    try:
        fds = child.sample_fds()
        assert fds is not None and fds >= 3
        assert child.peak_fds == fds
        assert child.fd_soft_limit is None or child.fd_soft_limit >= fds
        assert fd_exhaustion(child, []) == ""  # far from its limit
        child.fd_soft_limit = fds + FD_NEAR_LIMIT
        note = fd_exhaustion(child, [])
        assert f"probe held {fds} open files of its limit {fds + FD_NEAR_LIMIT}" in note
        assert "keepalive_timeout_s" in note
    finally:
        stop_process(child)


def test_recent_cpu_is_a_share_of_one_core_and_a_busy_process_is_named(tmp_path: Path) -> None:
    script = "import time; time.sleep(30)"
    server = start_process("server", [sys.executable, "-c", script], None, tmp_path / "s.log")
    worker = start_process("probe", [sys.executable, "-c", script], None, tmp_path / "p.log")
    try:
        assert saturation(server, [worker]) == ""  # nothing read yet
        server.sample_cpu()
        time.sleep(0.3)
        server.sample_cpu()
        share = server.recent_cpu_share()
        assert share is not None and 0.0 <= share < 0.5  # asleep
        # readings as (monotonic s, CPU s): 9.7 CPU seconds in 10 s, then 5 in 10
        server.cpu_readings.clear()
        server.cpu_readings.extend([(100.0, 1.0), (105.0, 6.0), (110.0, 10.7)])
        worker.cpu_readings.extend([(100.0, 2.0), (110.0, 7.0)])
        assert server.recent_cpu_share() == pytest.approx(0.97)
        note = saturation(server, [worker])
        assert "over the last 10 s" in note
        assert "server 97%, probe 50%" in note
        assert "(server saturated:" in note
        assert "probe saturated" not in note
    finally:
        stop_process(server)
        stop_process(worker)
