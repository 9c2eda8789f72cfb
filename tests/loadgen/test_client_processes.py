"""``client_processes``: one cell's load over several pinned load-generator processes."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from cli_runs import run_toml
from scenario_toml import open_load, part_table, toml_text
from typer.testing import CliRunner

from loadgen.cellspec import CellRun
from loadgen.cli import app
from loadgen.environment import available_cpus
from loadgen.pacer import split_rate
from loadgen.procs import plan_placement
from loadgen.scenario import ScenarioError, parse_scenario
from loadgen.schema import DELIVERIES_FILE, META_FILE, SAMPLES_FILE, SUMMARY_FILE
from loadgen.shares import id_counter, my_connections, my_groups, process_specs

SPEC = CellRun(
    cell="c", transport="http", client="aiohttp", conn_mode="keep-alive", base_url="http://x"
)


def test_process_specs_share_the_budget_and_number_the_processes() -> None:
    spec = SPEC.__class__(**(SPEC.to_dict() | {"connections": 5, "max_requests": 11}))
    specs = process_specs(spec, 3)
    assert [s.process_index for s in specs] == [0, 1, 2]
    assert {s.processes for s in specs} == {3}
    assert sum(s.max_requests for s in specs) == 11
    assert process_specs(spec, 1) == [spec.__class__(**(spec.to_dict() | {"processes": 1}))]
    with pytest.raises(ValueError, match="processes must be >= 1"):
        process_specs(spec, 0)


def test_connections_are_dealt_out_once_and_keep_the_cells_schedule() -> None:
    spec = SPEC.__class__(**(SPEC.to_dict() | {"connections": 7, "rate": 700.0}))
    shares = [list(my_connections(s)) for s in process_specs(spec, 3)]
    assert sorted(itertools.chain(*shares)) == list(range(7))
    assert all(shares)
    # Each connection keeps its slot of the cell's schedule, so together the processes
    # send at the cell's rate: the union of their intended times is evenly spaced.
    pacers = split_rate(700.0, 7)
    due = sorted(pacers[c].intended_ns(k) for share in shares for c in share for k in range(10))
    gaps = {b - a for a, b in itertools.pairwise(due)}
    assert max(gaps) - min(gaps) <= 1  # rounding to whole ns


def test_groups_and_ids_are_disjoint_across_processes() -> None:
    specs = process_specs(SPEC, 2)
    assert my_groups(5, specs[0]) == [0, 2, 4]
    assert my_groups(5, specs[1]) == [1, 3]
    ids = [set(itertools.islice(id_counter(s), 100)) for s in specs]
    assert not ids[0] & ids[1]
    assert min(ids[0] | ids[1]) >= 1
    assert list(itertools.islice(id_counter(SPEC), 3)) == [1, 2, 3]


def test_process_cpus_avoid_the_server_and_wrap_round() -> None:
    assert plan_placement("split", [0, 1]).client_process_cpus(2) == [[1], [1]]
    four = plan_placement("split", [0, 1, 2, 3])
    assert four.client_process_cpus(2) == [[1], [2]]
    assert four.client_process_cpus(4) == [[1], [2], [3], [1]]
    assert four.client_process_cpus(1) == [four.client_cpus]
    assert plan_placement("same", [0, 1]).client_process_cpus(2) == [[0], [0]]
    assert plan_placement("none", [0, 1]).client_process_cpus(2) == [None, None]


def _scenario(extra: str = "", load: str = "connections = 4") -> dict[str, Any]:
    import tomllib

    return tomllib.loads(
        f"""
[scenario]
name = "s"
client_processes = 3
{extra}
[load]
{load}
[[cells]]
transport = "http"
client = "aiohttp"
"""
    )


def test_scenario_validates_client_processes() -> None:
    assert parse_scenario(_scenario()).scenario.client_processes == 3
    with pytest.raises(ScenarioError, match="needs at least 3 \\[load\\] connections"):
        parse_scenario(_scenario(load="connections = 2"), "x.toml")
    data = _scenario()
    data["scenario"]["client_processes"] = 0
    with pytest.raises(ScenarioError, match=r"scenario\.client_processes"):
        parse_scenario(data)
    data = _scenario()
    data["scenario"]["workload"] = "messaging"
    data["realtime"] = {"users": 8, "group_size": 4, "message_rate": 1.0}
    data["cells"][0]["delivery"] = "long-poll"
    with pytest.raises(ScenarioError, match="each process runs whole groups"):
        parse_scenario(data)


TWO_PROCESSES = toml_text(
    {
        "scenario": {
            "name": "two",
            "repeats": 1,
            "duration_s": 0.8,
            "warmup_s": 0.2,
            "timeout_s": 2,
            "client_processes": 2,
        },
        "parts": [
            part_table("echo", "ws-aiohttp/aiohttp", load=open_load(300, connections=4)),
            part_table(
                "notify",
                "ws-aiohttp/aiohttp",
                workload="notifications",
                realtime={
                    "users": 8,
                    "group_size": 4,
                    "message_rate": 1.0,
                    "notification_rate": 20,
                    "fanout": 4,
                    "drain_s": 1,
                },
            ),
        ],
    }
)


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("procs")
    result, out = run_toml(base, "two", TWO_PROCESSES)
    assert result.exit_code == 0, result.output
    return out


def _records(out: Path) -> dict[str, dict[str, Any]]:
    return {
        r["cell"]: r
        for r in (orjson.loads(p.read_bytes()) for p in (out / "parts").glob("*.record.json"))
    }


@pytest.mark.timeout(180)
def test_merged_counts_are_the_sum_of_the_processes(two_process_run: Path) -> None:
    out = two_process_run
    records = _records(out)
    assert sorted(records) == [
        "echo:ws-aiohttp/aiohttp/persistent",
        "notify:ws-aiohttp/aiohttp/persistent",
    ]
    summary = {c["cell"]: c for c in orjson.loads((out / SUMMARY_FILE).read_bytes())["cells"]}
    samples = pq.read_table(out / SAMPLES_FILE).to_pylist()
    for cell, record in records.items():
        own = record["process_parts"]
        assert [p["index"] for p in own] == [0, 1]
        assert all(p["count"] > 0 for p in own)
        assert record["count"] == sum(p["count"] for p in own)
        assert record["errors"] == sum(p["errors"] for p in own)
        # Each process raised its open-files limit for its own half of the cell.
        halves = [2, 2] if cell.startswith("echo") else [4, 4]
        assert [f["share"] for f in record["fd_limits"]] == halves
        assert summary[cell]["count"] == record["count"]
        each = record["procs"]["client_processes"]
        assert record["procs"]["client_cpu_s"] == pytest.approx(sum(p["cpu_s"] for p in each))
        rows = [r for r in samples if r["cell"] == cell]
        assert rows
    echo = "echo:ws-aiohttp/aiohttp/persistent"
    rows = [r for r in samples if r["cell"] == echo and r["kind"] == "request" and not r["warmup"]]
    assert len(rows) == records[echo]["count"]
    # Connections 0 and 2 ran in process 0, 1 and 3 in process 1: both wrote samples,
    # and every connection opened once, under its own number.
    assert {r["conn"] for r in rows} == {0, 1, 2, 3}
    connects = [r["conn"] for r in samples if r["cell"] == echo and r["kind"] == "connect"]
    assert sorted(connects) == [0, 1, 2, 3]


@pytest.mark.timeout(180)
def test_realtime_processes_account_for_their_own_groups(two_process_run: Path) -> None:
    out = two_process_run
    cell = "notify:ws-aiohttp/aiohttp/persistent"
    record = _records(out)[cell]
    deliveries = [d for d in pq.read_table(out / DELIVERIES_FILE).to_pylist() if d["cell"] == cell]
    # Each process's publisher reached only its own groups' users (u0-u3, u4-u7).
    for tag, users in (
        ("p0-", {f"u{i}" for i in range(4)}),
        ("p1-", {f"u{i}" for i in range(4, 8)}),
    ):
        mine = {d["recipient"] for d in deliveries if d["sender"].startswith(tag)}
        assert mine and mine <= users
    counts = record["deliveries"]
    assert counts["expected"] > 0
    assert counts["delivered"] == len([d for d in deliveries if not d["duplicate"]])
    assert record["stats"]["users"] == 8
    ids = [d["item_id"] for d in deliveries if d["type"] == "notification"]
    senders_of = {}
    for d in deliveries:
        if d["type"] == "notification":
            senders_of.setdefault(d["item_id"], set()).add(d["sender"])
    # Item ids are unique across the processes.
    assert ids and all(len(s) == 1 for s in senders_of.values())


@pytest.mark.timeout(180)
def test_meta_records_each_process_pinning(two_process_run: Path) -> None:
    meta = orjson.loads((two_process_run / META_FILE).read_bytes())
    pinned = meta["pinning"]["client_processes"]
    assert set(pinned) == {
        "echo:ws-aiohttp/aiohttp/persistent",
        "notify:ws-aiohttp/aiohttp/persistent",
    }
    cpus = available_cpus()
    for each in pinned.values():
        assert len(each) == 2
        if len(cpus) >= 2:
            assert all(c and meta["pinning"]["server_cpus"][0] not in c for c in each)


def test_locust_engine_refuses_client_processes(tmp_path: Path) -> None:
    scenario = tmp_path / "two.toml"
    scenario.write_text(TWO_PROCESSES)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["run", str(scenario), "--engine", "locust", "--out", str(out), "--no-progress"]
    )
    assert result.exit_code == 2
    assert "client_processes applies to the asyncio engine" in result.output
    assert not out.exists()


def test_a_process_that_dies_before_the_start_fails_the_repeat_at_once(tmp_path: Path) -> None:
    """The others wait at the start barrier; the repeat fails with the dead one's reason
    instead of waiting for the deadline, and every process is stopped."""
    import sys
    import time

    from loadgen.procs import _spawn
    from loadgen.run.stop import StopRequest
    from loadgen.run.watch import watch_workers

    waits = 'import time; print(\'{"event": "ready"}\', flush=True); time.sleep(60)'
    dies = "import sys; sys.stderr.write('set-up broke\\n'); sys.exit(3)"
    logs = [tmp_path / "p0.log", tmp_path / "p1.log"]
    server = _spawn(
        "server", [sys.executable, "-c", "import time; time.sleep(60)"], None, tmp_path / "s.log"
    )
    workers = [
        _spawn("p0", [sys.executable, "-c", waits], None, logs[0]),
        _spawn("p1", [sys.executable, "-c", dies], None, logs[1]),
    ]
    spec = SPEC.__class__(**(SPEC.to_dict() | {"duration_s": 30.0, "warmup_s": 30.0}))
    try:
        t0 = time.monotonic()
        part = watch_workers(
            server, workers, spec, tmp_path / "x", logs, tmp_path, StopRequest(), lambda _: None
        )
        assert time.monotonic() - t0 < 20  # well before the 90 s deadline
        # The waiting process was stopped by the watch, not by this test's clean-up.
        assert workers[0].proc.poll() is not None
    finally:
        for child in (server, *workers):
            child.proc.kill()
            child.proc.wait()
    assert part["failed"].startswith("load generator 2 of 2 exited with code 3 before the start")
    assert "set-up broke" in part["failed"]
