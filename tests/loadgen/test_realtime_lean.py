"""The lean client's real-time connections, end to end over every delivery mode.

One ``rtbench run`` per workload (messaging and presence, side by side) with
lean cells for HTTP short polling, long polling on kept-alive and on new
connections, Server-Sent Events, and push on both WebSocket servers. Every
delivery must be accounted for: nothing lost, duplicated or out of order.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from cli_runs import run_side_by_side
from test_realtime_engine import WORKLOADS, scenario_toml

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
    scenarios = {}
    for workload in ("messaging", "presence"):
        duration_s, realtime = WORKLOADS[workload]
        text = scenario_toml(workload, duration_s, realtime)
        scenarios[workload] = text[: text.index("[[cells]]")] + LEAN_CELLS
    return run_side_by_side(base, scenarios, 150)


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
