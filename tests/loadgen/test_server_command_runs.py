"""Cells on a server that ``server_command`` starts: the node reference server through a
whole ``rtbench run``, every delivery mode, with the same ledger as rtbench's own."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import orjson
import pytest
from cli_runs import REPO, start_run, wait_runs

from loadgen.procs import ProcessFailed, start_server, stop_process
from loadgen.schema import SUMMARY_FILE

NODE_DIR = REPO / "servers" / "node"

needs_node = [
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
    pytest.mark.skipif(
        not (NODE_DIR / "node_modules" / "ws").is_dir(),
        reason="the node server's dependencies are missing: run make node-deps",
    ),
]

NODE_CELLS = """\
[scenario]
name = "node-cells"
repeats = 1
duration_s = 1.5
warmup_s = 0.3

[[parts]]
name = "echo"
workload = "echo"

[parts.load]
model = "open"
rate = 100
connections = 2

[[parts.cells]]
transport = "http"
client = "lean"
server_command = ["node", "servers/node/server.js"]

[[parts.cells]]
transport = "ws"
client = "lean"
server_command = ["node", "servers/node/server.js"]
server_name = "nodejs"

[[parts]]
name = "messaging"
workload = "messaging"

[parts.realtime]
users = 8
group_size = 4
message_rate = 2.0
poll_interval_ms = 200
long_poll_timeout_ms = 2000
drain_s = 2

[[parts.cells]]
transport = "http"
client = "lean"
delivery = "short-poll"
server_command = ["node", "servers/node/server.js"]

[[parts.cells]]
transport = "http"
client = "lean"
delivery = "long-poll"
server_command = ["node", "servers/node/server.js"]

[[parts.cells]]
transport = "http"
client = "aiohttp"
delivery = "sse"
server_command = ["node", "servers/node/server.js"]

[[parts.cells]]
transport = "ws"
client = "aiohttp"
server_command = ["node", "servers/node/server.js"]
"""


@pytest.mark.e2e
@needs_node[0]
@needs_node[1]
def test_node_cells_run_every_delivery_mode_and_lose_nothing(tmp_path: Path) -> None:
    scenario = tmp_path / "node.toml"
    scenario.write_text(NODE_CELLS)
    out = tmp_path / "out"
    wait_runs({"node": start_run(scenario, out)}, 240)
    cells = {c["cell"]: c for c in orjson.loads((out / SUMMARY_FILE).read_bytes())["cells"]}
    assert set(cells) == {
        "echo:http@node/lean/keep-alive",
        "echo:ws@nodejs/lean/persistent",
        "messaging:http@node/lean/keep-alive/short-poll",
        "messaging:http@node/lean/keep-alive/long-poll",
        "messaging:http@node/aiohttp/keep-alive/sse",
        "messaging:ws@node/aiohttp/persistent",
    }
    for name, cell in cells.items():
        assert "failed" not in cell, (name, cell.get("failed"))
        assert cell["server"] in ("node", "nodejs")
        if cell["workload"] == "echo":
            continue
        counts = cell["deliveries"]
        assert counts["expected"] > 0, name
        assert counts["lost"] == 0 and counts["delivered"] == counts["expected"], name
        assert counts["duplicated"] == 0 and counts["out_of_order"] == 0, name


def test_a_server_command_that_cannot_start_is_named(tmp_path: Path) -> None:
    with pytest.raises(ProcessFailed, match="cannot start 'no-such-server-rtbench'"):
        start_server(
            "http", None, tmp_path / "server.log", 1 << 20, command=["no-such-server-rtbench"]
        )


def test_a_server_command_gets_rtbench_s_options(tmp_path: Path) -> None:
    # A stand-in server: prints its arguments in the ready line, then waits to be stopped.
    script = tmp_path / "srv.py"
    script.write_text(
        "import json, sys, time\n"
        "print('RTBENCH-READY ' + json.dumps({'kind': 'x', 'port': 1, 'argv': sys.argv[1:]}),"
        " flush=True)\n"
        "time.sleep(30)\n"
    )
    child = start_server(
        "http",
        None,
        tmp_path / "server.log",
        4096,
        extra_args=["--max-users", "5"],
        command=[sys.executable, str(script)],
    )
    try:
        argv = child.info["argv"]
    finally:
        stop_process(child)
    assert argv == [
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--max-message-bytes",
        "4096",
        "--max-users",
        "5",
    ]
