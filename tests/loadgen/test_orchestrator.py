"""``rtbench run`` end to end: servers and load generators as subprocesses on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import psutil
import pyarrow.parquet as pq
import pytest
from cli_runs import invoke_run
from scenario_toml import cells_toml
from typer.testing import CliRunner

from loadgen.cli import app
from loadgen.procs import plan_placement
from loadgen.scenario import load_scenario
from loadgen.schema import META_FILE, SAMPLE_SCHEMA, SAMPLES_FILE, SCHEMA_VERSION, SUMMARY_FILE
from servers.fdlimit import FD_HEADROOM

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
HTTP_CELL = "http/aiohttp/keep-alive"
WS_CELL = "ws-websockets/websockets/persistent"
RTBENCH_RUN = [sys.executable, "-m", "loadgen.cli", "run"]
LATENCY_KEYS = ["p50", "p90", "p99", "p99.9", "max"]


def tiny_scenario(repeats: int = 2, max_message_bytes: int = 1 << 20) -> str:
    return f"""\
[scenario]
name = "tiny"
repeats = {repeats}
duration_s = 0.6
warmup_s = 0.2
payload_bytes = 64
timeout_s = 2
placement = "split"
client_loop = "uvloop"

[load]
model = "closed"
connections = 2

[server]
max_message_bytes = {max_message_bytes}

""" + cells_toml("http/aiohttp/keep-alive", "ws-websockets/websockets")


def squash(text: str) -> str:
    return "".join(text.split())


def read_json(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(scenario file, results folder) of one complete tiny run."""
    base = tmp_path_factory.mktemp("run")
    scenario = base / "tiny.toml"
    scenario.write_text(tiny_scenario())
    out = base / "out"
    result = invoke_run(scenario, out)
    assert result.exit_code == 0, result.output
    assert squash(f"results: {out}") in squash(result.output)
    return scenario, out


def test_run_writes_the_three_files(finished_run: tuple[Path, Path]) -> None:
    _, out = finished_run
    for name in (SAMPLES_FILE, SUMMARY_FILE, META_FILE):
        assert (out / name).is_file(), name
    # Part parquet files are merged into samples.parquet and removed.
    assert not list((out / "parts").glob("*.parquet"))
    assert len(list((out / "parts").glob("*.record.json"))) == 4
    assert (out / "logs").is_dir()
    # Each record says how its server ended: stopped by SIGTERM, cleanly.
    for record in (out / "parts").glob("*.record.json"):
        assert read_json(record)["server_exit_code"] == 0, record.name


def test_run_records_the_servers_liveness_settings(finished_run: tuple[Path, Path]) -> None:
    _, out = finished_run
    meta = read_json(out / META_FILE)
    assert meta["scenario"]["server"]["ws_ping_interval_s"] == 20.0
    for record in (out / "parts").glob("*.record.json"):
        liveness = read_json(record)["procs"]["server_liveness"]
        assert liveness == {
            "keepalive_timeout_s": 75.0,
            "body_timeout_s": 60.0,
            "ws_ping_interval_s": 20.0,
        }, record.name


def test_run_records_each_servers_garbage_collector_settings(
    finished_run: tuple[Path, Path],
) -> None:
    _, out = finished_run
    for record in (out / "parts").glob("*.record.json"):
        gc = read_json(record)["procs"]["server_gc"]
        assert set(gc) == {
            "freeze",
            "policy",
            "enabled",
            "threshold",
            "frozen",
            "full_collections",
        }
        assert gc["freeze"] is True and gc["enabled"] is True, record.name
        assert gc["policy"] == "promoted", record.name


def test_run_records_backlogs_and_open_file_limits(finished_run: tuple[Path, Path]) -> None:
    _, out = finished_run
    sizing = read_json(out / META_FILE)["server_sizing"]
    # Two echo connections per cell: the servers' default backlog is enough.
    assert set(sizing["cells"]) == {HTTP_CELL, WS_CELL}
    for cell in sizing["cells"].values():
        assert cell["connections"] == 2
        assert cell["backlog"] == min(128, sizing["somaxconn"] or 128)
    for path in (out / "parts").glob("*.record.json"):
        record = read_json(path)
        procs = record["procs"]
        assert procs["server_backlog"] == sizing["cells"][record["cell"]]["backlog"]
        assert procs["server_fd_limit"]["needed"] == 2 + FD_HEADROOM
        # One load generator, holding its two connections.
        (limit,) = record["fd_limits"]
        assert (limit["share"], limit["connections"]) == (2, 2)
        for each in (procs["server_fd_limit"], limit):
            assert each["soft_after"] is None or each["soft_after"] >= each["needed"]


def test_samples_parquet(finished_run: tuple[Path, Path]) -> None:
    _, out = finished_run
    table = pq.read_table(out / SAMPLES_FILE)
    assert table.schema.remove_metadata().equals(SAMPLE_SCHEMA)
    rows = table.to_pylist()
    assert rows

    # Parts appear in run order: cells interleaved within each repeat (A B A B).
    order: list[tuple[int, str]] = []
    for row in rows:
        key = (row["repeat"], row["cell"])
        if not order or order[-1] != key:
            order.append(key)
    assert order == [(0, HTTP_CELL), (0, WS_CELL), (1, HTTP_CELL), (1, WS_CELL)]

    for repeat, cell in order:
        part = [r for r in rows if (r["repeat"], r["cell"]) == (repeat, cell)]
        requests = [r for r in part if r["kind"] == "request"]
        warm = [r for r in requests if r["warmup"]]
        measured = [r for r in requests if not r["warmup"]]
        assert warm and measured, (repeat, cell)
        # Warm-up is the start of the part: every warm-up request was due before any measured one.
        assert max(r["intended_ns"] for r in warm) < min(r["intended_ns"] for r in measured)
        assert all(r["ok"] and r["error"] is None for r in part)
        assert all(r["bytes_sent"] > 0 and r["bytes_received"] > 0 for r in requests)
        connects = [r for r in part if r["kind"] == "connect"]
        if cell == WS_CELL:
            assert sorted(r["conn"] for r in connects) == [0, 1]
        else:
            assert connects == []


def test_summary_json(finished_run: tuple[Path, Path]) -> None:
    _, out = finished_run
    summary = read_json(out / SUMMARY_FILE)
    assert summary["schema"] == SCHEMA_VERSION
    assert summary["complete"] is True
    assert summary["scenario"] == "tiny"
    assert summary["run_id"] == out.name
    cells = {c["cell"]: c for c in summary["cells"]}
    assert list(cells) == [HTTP_CELL, WS_CELL]

    rows = pq.read_table(out / SAMPLES_FILE).to_pylist()
    for name, cell in cells.items():
        assert cell["status"] == "ok", cell["failures"]
        assert cell["errors"] == 0
        assert cell["repeats"] == cell["repeats_ok"] == 2
        assert cell["count"] > 0
        measured = [
            r for r in rows if r["cell"] == name and r["kind"] == "request" and not r["warmup"]
        ]
        assert cell["count"] == len(measured)
        assert cell["throughput_rps"] > 0
        assert cell["duration_s"] > 0
        latency = cell["latency_ms"]
        assert list(latency) == LATENCY_KEYS
        values = [latency[k] for k in LATENCY_KEYS]
        assert all(v is not None and v > 0 for v in values)
        assert values == sorted(values)
        top_ms = max(r["latency_ns"] for r in measured) / 1e6
        assert latency["max"] == pytest.approx(top_ms, abs=1e-4)  # rounded to 4 decimals
        assert list(cell["latency_uncorrected_ms"]) == LATENCY_KEYS
        for side in ("server", "client"):
            assert cell["cpu_s_per_request"][side] is not None
            assert cell["cpu_s_per_request"][side] > 0
        bpr = cell["bytes_per_request"]
        assert bpr["sent"] == pytest.approx(sum(r["bytes_sent"] for r in measured) / len(measured))
        assert bpr["received"] == pytest.approx(
            sum(r["bytes_received"] for r in measured) / len(measured)
        )
        # Every repeat's server reported its counters when it stopped: nothing refused.
        assert (cell["limit_refusals"], cell["unknown_recipients"]) == (0, 0)
        assert cell["server_counters_missing"] == []
        per_repeat = cell["per_repeat"]
        assert len(per_repeat) == 2
        assert [p["repeat"] for p in per_repeat] == [0, 1]
        assert sum(p["count"] for p in per_repeat) == cell["count"]
        for p in per_repeat:
            assert p["throughput_rps"] > 0
            assert list(p["latency_ms"]) == LATENCY_KEYS
            assert (p["limit_refusals"], p["unknown_recipients"]) == (0, 0)
    # WebSocket frames carry a few bytes of overhead; HTTP carries a request line and headers.
    assert (
        cells[WS_CELL]["bytes_per_request"]["sent"] < cells[HTTP_CELL]["bytes_per_request"]["sent"]
    )


def test_meta_json(finished_run: tuple[Path, Path]) -> None:
    scenario, out = finished_run
    meta = read_json(out / META_FILE)
    assert meta["schema"] == SCHEMA_VERSION
    assert meta["complete"] is True
    assert meta["run_id"] == out.name
    assert meta["started_at"] and meta["ended_at"]
    assert meta["scenario_file"] == str(scenario)
    assert meta["scenario"] == load_scenario(scenario).as_dict()
    assert meta["pinning"] == plan_placement("split").as_dict() | {
        # One load-generator process per cell, on the client CPU.
        "client_processes": {
            cell: [plan_placement("split").client_cpus] for cell in (HTTP_CELL, WS_CELL)
        }
    }
    env = meta["environment"]
    assert isinstance(env["cpu_model"], str) and env["cpu_model"]
    for package in ("websockets", "aiohttp", "httpx", "uvloop", "hdrhistogram"):
        assert env["packages"][package], package
    assert env["python"]
    assert meta["loops"] == ["uvloop"]


def test_pinning_applied_to_children(finished_run: tuple[Path, Path]) -> None:
    _, out = finished_run
    placement = plan_placement("split")
    for record in sorted((out / "parts").glob("*.record.json")):
        procs = read_json(record)["procs"]
        if placement.server_cpus is not None:
            assert procs["server_cpus"] == placement.server_cpus
            assert procs["client_cpus"] == placement.client_cpus


def test_bad_key_exits_2_and_runs_nothing(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.toml"
    scenario.write_text(tiny_scenario().replace("repeats = 2", "repeats = 2\nrepeets = 3"))
    out = tmp_path / "out"
    result = invoke_run(scenario, out)
    assert result.exit_code == 2
    assert squash("scenario.repeets: unknown key") in squash(result.output)
    assert squash(str(scenario)) in squash(result.output)
    assert not out.exists()


def test_existing_non_empty_out_exits_2(tmp_path: Path) -> None:
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(tiny_scenario())
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    result = invoke_run(scenario, out)
    assert result.exit_code == 2
    assert squash("exists and is not empty") in squash(result.output)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "precious"


def _descendants(pid: int) -> dict[int, float]:
    """pid -> create_time of every live descendant of ``pid``."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return {}
    found = {}
    for child in children:
        with contextlib.suppress(psutil.Error):
            found[child.pid] = child.create_time()
    return found


def _still_running(pid: int, created: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_sigterm_leaves_partial_results_and_exits_130(tmp_path: Path) -> None:
    scenario = tmp_path / "long.toml"
    # A distinctive server argument, so leftover servers of this test could be told apart.
    scenario.write_text(tiny_scenario(repeats=8, max_message_bytes=random.randint(70_000, 900_000)))
    out = tmp_path / "out"
    log = (tmp_path / "rtbench.log").open("wb")
    proc = subprocess.Popen(
        [*RTBENCH_RUN, str(scenario), "--out", str(out), "--no-report", "--no-progress"],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    seen: dict[int, float] = {}
    try:
        deadline = time.monotonic() + 60
        while not list((out / "parts").glob("*.record.json")):
            assert proc.poll() is None, "rtbench exited before the first repeat finished"
            assert time.monotonic() < deadline, "no repeat finished within 60 s"
            seen.update(_descendants(proc.pid))
            time.sleep(0.02)
        seen.update(_descendants(proc.pid))
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    output = (tmp_path / "rtbench.log").read_text(errors="replace")
    assert code == 130, output
    assert "interrupted" in output

    meta = read_json(out / META_FILE)
    assert meta["complete"] is False
    assert meta["ended_at"]
    summary = read_json(out / SUMMARY_FILE)
    assert summary["complete"] is False

    records = [read_json(p) for p in sorted((out / "parts").glob("*.record.json"))]
    finished = [r for r in records if "failed" not in r]
    assert 1 <= len(finished) < 16
    assert all(r["index"] == i for i, r in enumerate(records)), "parts are the first ones"
    summarised = {(c["cell"], p["repeat"]) for c in summary["cells"] for p in c["per_repeat"]}
    assert summarised == {(r["cell"], r["repeat"]) for r in finished}
    for cell in summary["cells"]:
        assert cell["count"] == sum(p["count"] for p in cell["per_repeat"])

    # samples.parquet holds exactly the finished repeats.
    rows = pq.read_table(out / SAMPLES_FILE).to_pylist()
    assert {(r["cell"], r["repeat"]) for r in rows} == summarised

    # No server or load generator outlives the run.
    time.sleep(0.2)
    leftovers = [pid for pid, created in seen.items() if _still_running(pid, created)]
    for pid in leftovers:  # clean up what this test started before failing
        os.kill(pid, signal.SIGKILL)
    assert leftovers == [], "child processes left running after SIGTERM"


def test_sigterm_while_starting_a_child_stops_the_run_and_the_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SIGTERM while subprocess.Popen runs must neither lose the new child (an exception
    # there drops the Popen object) nor be lost itself (Python swallows exceptions
    # raised in os.fork() hooks). Emulate it by calling the handler from start_worker
    # and swallowing what it raises, as such a hook would.
    from loadgen import orchestrator
    from loadgen.run import repeat

    real_start_worker = repeat.start_worker
    started: list[Any] = []

    def start_worker_then_lose_a_sigterm(*args: Any, **kwargs: Any) -> Any:
        child = real_start_worker(*args, **kwargs)
        started.append(child)
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        with contextlib.suppress(KeyboardInterrupt):
            handler(signal.SIGTERM, None)
        return child

    monkeypatch.setattr(repeat, "start_worker", start_worker_then_lose_a_sigterm)
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(tiny_scenario(repeats=3))
    spec = load_scenario(scenario)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    result = orchestrator.run_scenario(spec, scenario, tmp_path / "out", show_progress=False)
    assert result.complete is False
    assert len(started) == 1, "no repeat may start after the signal"
    assert started[0].proc.poll() is not None, "the load generator was stopped"
    assert read_json(tmp_path / "out" / META_FILE)["complete"] is False
    assert read_json(tmp_path / "out" / SUMMARY_FILE)["cells"] == []
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers, "handlers restored"


def test_meta_records_the_harness_floor(finished_run: tuple[Path, Path]) -> None:
    _, out = finished_run
    floors = read_json(out / META_FILE)["harness_floor"]
    # One payload size among the echo cells: one floor, measured on loopback before them.
    assert [f["payload_bytes"] for f in floors] == [64]
    floor = floors[0]
    assert "error" not in floor, floor
    assert floor["count"] > 0
    assert 0 < floor["min_ns"] <= floor["p50_ns"] <= floor["p99_ns"] <= floor["max_ns"]
    placement = plan_placement("split")
    assert floor["server_cpus"] == placement.server_cpus
    assert floor["client_cpus"] == placement.client_cpus
    assert floor["loop"] == "uvloop"


SMALL_SERVER = """\
[scenario]
name = "small-server"
workload = "messaging"
repeats = 1
duration_s = 0.5
warmup_s = 0.2
timeout_s = 2
placement = "split"

[server]
max_users = 6

[realtime]
users = 8
group_size = 4
message_rate = 1.0
drain_s = 0.5
""" + cells_toml("ws-aiohttp/aiohttp")


def test_a_server_too_small_for_its_users_has_its_refusals_reported(tmp_path: Path) -> None:
    scenario = tmp_path / "small.toml"
    scenario.write_text(SMALL_SERVER)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(scenario), "--out", str(out), "--no-progress"])
    assert result.exit_code == 1, result.output  # the repeat failed: users could not sign in
    (cell,) = read_json(out / SUMMARY_FILE)["cells"]
    assert cell["limit_refusals"] == 2  # the two users past max_users
    assert cell["unknown_recipients"] == 0
    assert "server refusals:" in result.output and "2 limit_refusals" in result.output
    html = (out / "report.html").read_text()
    assert "the server refused 2 requests at its limits in cell ws-aiohttp" in html
