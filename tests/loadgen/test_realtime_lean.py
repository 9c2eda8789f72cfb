"""The lean client's real-time connections, end to end over every delivery mode.

One ``rtbench run`` per workload (messaging and presence, side by side) with
lean cells for HTTP short polling, long polling on kept-alive and on new
connections, Server-Sent Events, and push on both WebSocket servers. Every
delivery must be accounted for: nothing lost, duplicated or out of order.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from test_realtime_engine import CLI_RUNNER, REPO, WORKLOADS, scenario_toml

from loadgen.schema import SUMMARY_FILE

pytestmark = pytest.mark.timeout(180)

LEAN_CELLS = """
[[cells]]
transport = "http"
client = "lean"
delivery = "short-poll"

[[cells]]
transport = "http"
client = "lean"
delivery = "long-poll"

[[cells]]
transport = "http"
client = "lean"
conn_mode = "new-connection"
delivery = "long-poll"

[[cells]]
transport = "http"
client = "lean"
delivery = "sse"

[[cells]]
transport = "ws-aiohttp"
client = "lean"

[[cells]]
transport = "ws-websockets"
client = "lean"
"""

EXPECTED = {
    "http/lean/keep-alive/short-poll": "short-poll",
    "http/lean/keep-alive/long-poll": "long-poll",
    "http/lean/new-connection/long-poll": "long-poll",
    "http/lean/keep-alive/sse": "sse",
    "ws-aiohttp/lean/persistent": "push",
    "ws-websockets/lean/persistent": "push",
}


@pytest.fixture(scope="module")
def lean_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("lean-runs")
    procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    for workload in ("messaging", "presence"):
        duration_s, realtime = WORKLOADS[workload]
        text = scenario_toml(workload, duration_s, realtime)
        text = text[: text.index("[[cells]]")] + LEAN_CELLS
        path = base / f"{workload}.toml"
        path.write_text(text)
        out = base / f"out-{workload}"
        args = ["run", str(path), "--out", str(out), "--no-report", "--no-progress"]
        procs[workload] = (
            subprocess.Popen(
                [sys.executable, "-c", CLI_RUNNER, *args],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            ),
            out,
        )
    deadline = time.monotonic() + 150
    failures = []
    for workload, (proc, _) in procs.items():
        try:
            output, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        if proc.returncode != 0:
            failures.append(f"{workload}: exit {proc.returncode}\n{output.decode()[-3000:]}")
    assert not failures, "\n".join(failures)
    return {w: out for w, (_, out) in procs.items()}


@pytest.mark.parametrize("workload", ["messaging", "presence"])
def test_lean_cells_deliver_everything_once(lean_runs: dict[str, Path], workload: str) -> None:
    summary = orjson.loads((lean_runs[workload] / SUMMARY_FILE).read_bytes())
    cells = {c["cell"]: c for c in summary["cells"]}
    assert set(cells) == set(EXPECTED)
    for name, cell in cells.items():
        assert cell["status"] == "ok", (name, cell["failures"], cell["errors_by_code"])
        assert cell["client"] == "lean"
        assert cell["delivery"] == EXPECTED[name]
        d = cell["deliveries"]
        assert d["expected"] > 0, (name, d)
        assert d["expected"] == d["delivered"] + d["lost"], (name, d)
        assert (d["lost"], d["duplicated"], d["out_of_order"]) == (0, 0, 0), (name, d)
        assert cell["errors"] == 0, (name, cell["errors_by_code"])
        if workload == "messaging":  # sends are measured requests, with their bytes
            assert cell["bytes_per_request"]["sent"] > 0, name
