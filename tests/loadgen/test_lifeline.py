"""Children of a run exit when rtbench is killed with SIGKILL (no orphaned servers)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from running import LOADGEN, RELAY, SERVER, gone, rtbench_run, wait_connected

from loadgen import lifeline

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not lifeline.supported(), reason="needs Linux prctl"),
]

PARENT = """\
import subprocess, sys, time
from loadgen.lifeline import child_setup
child = subprocess.Popen(["sleep", "60"], preexec_fn=child_setup(), start_new_session=True)
print(child.pid, flush=True)
time.sleep(60)
"""


def test_a_tied_child_dies_with_its_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert gone([child], timeout_s=0.2) == [child]  # alive while its parent is
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert gone([child]) == []
    finally:
        parent.kill()
        parent.wait()


SCENARIO = """\
[scenario]
name = "orphans"
repeats = 1
duration_s = 30
warmup_s = 0
timeout_s = 2
placement = "none"

[load]
model = "open"
rate = 50
connections = 2

[network]
profiles = [{ name = "d2", rtt_ms = 2 }]
link = "userspace"

[[cells]]
transport = "http"
client = "aiohttp"
"""


def test_sigkilled_rtbench_takes_server_relay_and_load_generator_along(tmp_path: Path) -> None:
    with rtbench_run(SCENARIO, tmp_path) as run:
        loadgen = run.child(LOADGEN)
        wait_connected(loadgen)
        pids = [run.child(SERVER).pid, run.child(RELAY).pid, loadgen.pid]
        os.kill(run.proc.pid, signal.SIGKILL)
        run.proc.wait()
        assert gone(pids) == []
    # What the killed run left says so: meta.json is written first, as incomplete.
    assert json.loads((run.out / "meta.json").read_text())["complete"] is False
