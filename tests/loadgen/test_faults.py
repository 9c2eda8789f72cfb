"""Faults injected into a real ``rtbench run``: a stalled server, a killed server, a killed
load generator, a dropped link.

Each run must end complete (or marked incomplete in meta.json), keep every cell that
finished, name the repeat that failed, and keep the delivery ledger of its real-time cells
exact: delivered + lost = expected, and deliveries.parquet holds one non-duplicate row per
delivered item and one duplicate row per duplicate, nothing counted twice.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from running import LOADGEN, RELAY, SERVER, RtbenchRun, rtbench_log, rtbench_run, wait_connected

from loadgen.schema import DELIVERIES_FILE, META_FILE, SAMPLES_FILE, SUMMARY_FILE

pytestmark = pytest.mark.timeout(180)

WARMUP_S = 0.4

ECHO = f"""\
[scenario]
name = "stall"
repeats = 1
duration_s = 3
warmup_s = {WARMUP_S}
timeout_s = 5
placement = "none"

[load]
model = "open"
rate = 200
connections = 4

[[cells]]
transport = "http"
client = "aiohttp"
"""

FIRST, SECOND = "ws-aiohttp/aiohttp/persistent", "http/aiohttp/keep-alive/long-poll"

MESSAGING = f"""\
[scenario]
name = "faults"
workload = "messaging"
repeats = 1
duration_s = 2.5
warmup_s = {WARMUP_S}
timeout_s = 2
placement = "none"

[realtime]
users = 8
group_size = 4
message_rate = 4.0
drain_s = 1

{{network}}

[[cells]]
transport = "ws-aiohttp"
client = "aiohttp"

[[cells]]
transport = "http"
client = "aiohttp"
delivery = "long-poll"
"""

RELAYED = '[network]\nprofiles = [{ name = "d2", rtt_ms = 2 }]\nlink = "userspace"'


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def _midway(run: RtbenchRun) -> None:
    """Return once the first cell's load generator has been measuring for a moment."""
    wait_connected(run.child(LOADGEN))
    time.sleep(WARMUP_S + 0.6)


def _records(out: Path) -> dict[str, dict[str, Any]]:
    return {r["cell"]: r for r in map(_json, sorted((out / "parts").glob("*.record.json")))}


def _check_ledger(out: Path, record: dict[str, Any]) -> None:
    """delivered + lost = expected, and the rows on disk match the counts one to one."""
    counts = record["deliveries"]
    assert counts["delivered"] + counts["lost"] == counts["expected"], counts
    table = pq.read_table(out / DELIVERIES_FILE).to_pandas()
    rows = table[(table["cell"] == record["cell"]) & (table["repeat"] == record["repeat"])]
    assert int((~rows["duplicate"]).sum()) == counts["delivered"], counts
    assert int(rows["duplicate"].sum()) == counts["duplicated"], counts
    assert not rows.duplicated(["item_id", "type", "recipient", "duplicate"]).any()


def _check_run(out: Path, failed_cell: str, kept_cell: str, why: str) -> None:
    """The run ended complete, the faulty repeat is failed and named, the other cell kept."""
    meta, summary = _json(out / META_FILE), _json(out / SUMMARY_FILE)
    assert meta["complete"] is True and summary["complete"] is True
    cells = {c["cell"]: c for c in summary["cells"]}
    assert cells[failed_cell]["failed_repeats"] == [0]
    assert why in cells[failed_cell]["failures"][0], cells[failed_cell]["failures"]
    kept = cells[kept_cell]
    assert kept["repeats_ok"] == 1 and kept["deliveries"]["delivered"] > 0
    samples = pq.read_table(out / SAMPLES_FILE, columns=["cell"]).column("cell").to_pylist()
    assert kept_cell in samples
    records = _records(out)
    _check_ledger(out, records[kept_cell])
    if "deliveries" in records[failed_cell]:
        _check_ledger(out, records[failed_cell])


def test_a_stalled_server_shows_in_the_corrected_latency(tmp_path: Path) -> None:
    with rtbench_run(ECHO, tmp_path) as run:
        _midway(run)
        server = run.child(SERVER)
        server.suspend()  # SIGSTOP
        try:
            time.sleep(1.0)
        finally:
            server.resume()
    assert run.code == 0, rtbench_log(tmp_path)
    cell = _json(run.out / SUMMARY_FILE)["cells"][0]
    corrected, uncorrected = cell["latency_ms"], cell["latency_uncorrected_ms"]
    # A third of the window's requests were due during the 1 s stall: they waited for it.
    assert corrected["p99"] >= 500, cell
    assert corrected["max"] >= 900, cell
    # Measured from their actual send, most of them never saw it (coordinated omission).
    assert uncorrected["p99"] < corrected["p99"] / 2, cell


@pytest.mark.parametrize(
    ("child", "network", "failed_cell", "kept_cell", "why"),
    [
        pytest.param(
            SERVER, "", FIRST, SECOND, "server exited with code -9 during the run", id="server"
        ),
        pytest.param(
            LOADGEN, "", FIRST, SECOND, "load generator exited with code -9", id="load-generator"
        ),
        pytest.param(
            RELAY,
            RELAYED,
            f"{FIRST}~d2",
            f"{SECOND}~d2",
            "link emulator exited with code -9 during the run",
            id="link",
        ),
    ],
)
def test_a_killed_child_fails_its_repeat_only(
    tmp_path: Path, child: str, network: str, failed_cell: str, kept_cell: str, why: str
) -> None:
    with rtbench_run(MESSAGING.format(network=network), tmp_path) as run:
        _midway(run)
        run.child(child).kill()
    assert run.code == 1, rtbench_log(tmp_path)
    _check_run(run.out, failed_cell, kept_cell, why)
