"""Real-time workloads end to end: ``rtbench run`` on tiny scenarios, and their parameters.

Each workload (messaging, notifications, presence, activity) runs once over
the four delivery cells: HTTP short polling, HTTP long polling, and push on
both WebSocket servers. The four runs go side by side, each ``rtbench run``
invoked through typer's ``CliRunner`` in its own Python process (a run
installs signal handlers, so it cannot share a thread), which keeps the
whole module to roughly the longest run. Only behaviour is checked (counts,
files, keys), never speed.
"""

from __future__ import annotations

import gc
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from cli_runs import run_side_by_side
from pydantic import ValidationError
from realtime_cells import realtime_cell
from serving import running

from loadgen.events import EventHook
from loadgen.realtime.engine import run_realtime
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.tracker import Tracker
from loadgen.scenario import ScenarioError, parse_scenario
from loadgen.schema import (
    DELIVERIES_FILE,
    DELIVERY_SCHEMA,
    STALL_SCHEMA,
    STALLS_FILE,
    SUMMARY_FILE,
)
from servers import gcfreeze

pytestmark = pytest.mark.timeout(180)

MS = 1_000_000

RUN_TIMEOUT_S = 150
LATENCY_KEYS = {"p50", "p90", "p99", "p99.9", "max"}

CELLS = """
[[cells]]
transport = "http"
client = "aiohttp"
delivery = "short-poll"

[[cells]]
transport = "http"
client = "aiohttp"
delivery = "long-poll"

[[cells]]
transport = "ws-aiohttp"
client = "aiohttp"

[[cells]]
transport = "ws-websockets"
client = "websockets"
"""

# Several long-poll timeouts pass empty during each run (300 ms against a few
# items per second), and short polls come every 100 ms.
COMMON = {"poll_interval_ms": 100, "long_poll_timeout_ms": 300, "drain_s": 3}

WORKLOADS: dict[str, tuple[float, dict[str, Any]]] = {
    "messaging": (1.5, {"users": 6, "group_size": 3, "message_rate": 2.0}),
    "notifications": (
        1.5,
        {"users": 6, "group_size": 3, "notification_rate": 10.0, "fanout": 3},
    ),
    "presence": (
        3.0,
        {
            "users": 8,
            "group_size": 4,
            "churn_fraction": 0.5,
            "presence_timeout_s": 0.5,
            "offline_s": 1.6,
            "online_s": 0.8,
        },
    ),
    "activity": (
        1.5,
        {
            "users": 4,
            "group_size": 2,
            "activity_rate": 5.0,
            "idle_timeout_s": 0.5,
            "visit_s": 0.6,
        },
    ),
}

#: Cell name -> delivery mode and how items arrive.
CELL_DELIVERY = {
    "http/aiohttp/keep-alive/short-poll": ("short-poll", "poll"),
    "http/aiohttp/keep-alive/long-poll": ("long-poll", "poll"),
    "ws-aiohttp/aiohttp/persistent": ("push", "push"),
    "ws-websockets/websockets/persistent": ("push", "push"),
}

#: Delivery types each workload must produce.
TYPES = {
    "messaging": {"message"},
    "notifications": {"notification"},
    "presence": {"presence-online", "presence-offline"},
    "activity": set(),
}


def toml_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value)


def scenario_toml(workload: str, duration_s: float, realtime: dict[str, Any]) -> str:
    lines = [
        "[scenario]",
        f'name = "rt-{workload}"',
        f'workload = "{workload}"',
        "repeats = 1",
        f"duration_s = {duration_s}",
        "warmup_s = 0.3",
        "timeout_s = 3",
        'placement = "none"',
        "",
        "[realtime]",
        *(f"{k} = {toml_value(v)}" for k, v in {**realtime, **COMMON}.items()),
    ]
    return "\n".join(lines) + "\n" + CELLS


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run every workload's scenario side by side; workload -> results folder."""
    base = tmp_path_factory.mktemp("realtime-runs")
    scenarios = {
        workload: scenario_toml(workload, duration_s, realtime)
        for workload, (duration_s, realtime) in WORKLOADS.items()
    }
    return run_side_by_side(base, scenarios, RUN_TIMEOUT_S)


def summary_cells(out: Path) -> dict[str, dict[str, Any]]:
    summary = orjson.loads((out / SUMMARY_FILE).read_bytes())
    return {c["cell"]: c for c in summary["cells"]}


@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_every_cell_ran_and_lost_nothing(runs: dict[str, Path], workload: str) -> None:
    cells = summary_cells(runs[workload])
    assert set(cells) == set(CELL_DELIVERY)
    for name, cell in cells.items():
        assert cell["status"] == "ok", (name, cell["failures"], cell["errors_by_code"])
        assert cell["workload"] == workload
        assert cell["delivery"] == CELL_DELIVERY[name][0]
        d = cell["deliveries"]
        assert d["expected"] == d["delivered"] + d["lost"], (name, d)
        assert d["lost"] == 0, (name, d)
        assert d["duplicated"] == 0, (name, d)
        assert d["out_of_order"] == 0, (name, d)
        assert d["gaps"] == 0, (name, d)  # within the retention nobody skips an item
        assert cell["late_steps"] >= 0 and cell["max_late_ms"] >= 0.0  # counted, never negative
        if workload != "activity":
            assert d["expected"] > 0, (name, d)
        assert set(cell["delivery_latency_ms"]) == LATENCY_KEYS
        assert set(cell["delivery_latency_by_type_ms"]) == TYPES[workload], name
        for block in cell["delivery_latency_by_type_ms"].values():
            assert all(block[k] is not None for k in LATENCY_KEYS), (name, block)
        if TYPES[workload]:
            latency = cell["delivery_latency_ms"]
            assert all(latency[k] is not None and latency[k] >= 0 for k in LATENCY_KEYS)
            assert latency["p50"] <= latency["p99"]
        assert cell["slow_consumer_closes"] == 0


@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_deliveries_parquet_one_row_per_delivery(runs: dict[str, Path], workload: str) -> None:
    out = runs[workload]
    cells = summary_cells(out)
    path = out / DELIVERIES_FILE
    assert path.is_file()
    table = pq.read_table(path)
    assert table.schema.names == DELIVERY_SCHEMA.names
    assert table.schema.equals(DELIVERY_SCHEMA)
    rows = table.to_pylist()
    for name, cell in cells.items():
        mine = [r for r in rows if r["cell"] == name]
        d = cell["deliveries"]
        assert len(mine) == d["delivered"] + d["duplicated"], name
        delivery, via = CELL_DELIVERY[name]
        for r in mine:
            assert r["delivery"] == delivery and r["via"] == via
            assert r["latency_ns"] == r["received_ns"] - r["origin_ns"]
            assert r["type"] in TYPES[workload]
            assert not r["duplicate"] and not r["out_of_order"]
        # One row per (item, recipient).
        keys = [(r["type"], r["item_id"], r["sender"], r["recipient"]) for r in mine]
        assert len(keys) == len(set(keys)), name
        # Each recipient's rows have distinct inbox sequence numbers.
        seqs = [(r["recipient"], r["seq"]) for r in mine]
        assert len(seqs) == len(set(seqs)), name


@pytest.mark.parametrize("workload", ["messaging"])
def test_stalls_parquet_and_the_summary_block(runs: dict[str, Path], workload: str) -> None:
    out = runs[workload]
    table = pq.read_table(out / STALLS_FILE)
    assert table.schema.equals(STALL_SCHEMA)
    cells = summary_cells(out)
    assert set(table.column("cell").to_pylist()) <= set(cells)
    assert set(table.column("process").to_pylist()) <= {"server", "load generator"}
    for name, cell in cells.items():
        block = cell["stalls"]
        # Both processes were watched, whether or not anything stalled them; the server
        # times its collections only (its loop with RTBENCH_LOOP_WATCH=1).
        assert block["load_generator_longest_loop_ms"] is not None, name
        assert block["server_longest_gc_ms"] is not None, name
        assert block["server_longest_loop_ms"] is None, name
    records = [orjson.loads(p.read_bytes()) for p in (out / "parts").glob("*.record.json")]
    for record in records:
        assert record["stats"]["stalls"]["loop"]["checks"] > 0
        assert record["stats"]["server_stats"]["stalls"]["loop"]["checks"] == 0
        assert record["stats"]["server_stats"]["stalls"]["gc"]["collections"][0] > 0
        assert record["procs"]["server_loop_watch"] is False


def test_presence_cells_measure_both_changes(runs: dict[str, Path]) -> None:
    for name, cell in summary_cells(runs["presence"]).items():
        by_type = cell["delivery_latency_by_type_ms"]
        assert {"presence-online", "presence-offline"} <= set(by_type), name
        assert by_type["presence-offline"]["p50"] is not None
        assert by_type["presence-online"]["p50"] is not None


def test_activity_cells_report_time_on_site(runs: dict[str, Path]) -> None:
    for name, cell in summary_cells(runs["activity"]).items():
        activity = cell["activity"]
        assert activity is not None, name
        assert activity["users"] > 0
        assert activity["server_ms"] > 0 and activity["client_ms"] > 0
        assert activity["max_abs_diff_ms"] >= activity["mean_abs_diff_ms"] >= 0


def test_polling_cells_count_polls(runs: dict[str, Path]) -> None:
    for workload, out in runs.items():
        for name, cell in summary_cells(out).items():
            if CELL_DELIVERY[name][1] == "poll":
                assert cell["polls"] > 0, (workload, name)
                assert cell["empty_polls"] <= cell["polls"]
            else:
                assert cell["polls"] == 0, (workload, name)


# -- parameters -------------------------------------------------------------------------


def test_params_defaults_are_valid() -> None:
    params = RealtimeParams()
    assert params.users >= params.group_size
    assert params.churners_per_group == 0


def test_params_churners_per_group() -> None:
    assert RealtimeParams(group_size=4, churn_fraction=0.5).churners_per_group == 2
    assert RealtimeParams(group_size=3, churn_fraction=0.5).churners_per_group == 2


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"users": 3, "group_size": 4}, "group_size cannot exceed users"),
        (
            {"churn_fraction": 0.5, "presence_timeout_s": 2.0, "offline_s": 3.0},
            "offline_s must exceed presence_timeout_s + 1 s",
        ),
        (
            {"activity_rate": 1.0, "idle_timeout_s": 0.5},
            "activity_rate * idle_timeout_s must be >= 1",
        ),
        ({"users": 1}, "greater than or equal to 2"),
        ({"send_queue": 0}, "greater than or equal to 1"),
        ({"message_rate": "fast"}, "valid number"),
        ({"unknown_key": 1}, "Extra inputs are not permitted"),
    ],
)
def test_params_validation_errors(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        RealtimeParams(**fields)


def test_params_consistency_checks_only_apply_when_used() -> None:
    # No churn: the presence timing is not checked; no activity: nor is the idle timeout.
    RealtimeParams(churn_fraction=0.0, presence_timeout_s=5.0, offline_s=1.0)
    RealtimeParams(activity_rate=0.0, idle_timeout_s=0.1)
    RealtimeParams(churn_fraction=0.5, presence_timeout_s=0.5, offline_s=1.6)
    RealtimeParams(activity_rate=5.0, idle_timeout_s=0.5)


def _scenario(
    workload: str, cells: str, realtime: str | None = "users = 4\nmessage_rate = 1.0"
) -> dict[str, Any]:
    import tomllib

    text = f'[scenario]\nname = "x"\nworkload = "{workload}"\n'
    if realtime is not None:
        text += f"[realtime]\n{realtime}\n"
    return tomllib.loads(text + cells)


def test_scenario_delivery_defaults_and_checks() -> None:
    ws = '[[cells]]\ntransport = "ws-websockets"\nclient = "websockets"\n'
    http = '[[cells]]\ntransport = "http"\nclient = "aiohttp"\n'
    scenario = parse_scenario(_scenario("messaging", ws))
    assert scenario.cells[0].delivery == "push"
    assert scenario.cells[0].delivery_mode == "push"
    with pytest.raises(ScenarioError, match="short-poll"):
        parse_scenario(_scenario("messaging", http))
    with pytest.raises(ScenarioError, match="push"):
        parse_scenario(_scenario("messaging", ws + 'delivery = "long-poll"\n'))
    with pytest.raises(ScenarioError, match="needs a \\[realtime\\] table"):
        parse_scenario(_scenario("presence", ws, realtime=None))
    with pytest.raises(ScenarioError, match="real-time workloads only"):
        parse_scenario(_scenario("echo", http + 'delivery = "long-poll"\n', realtime=None))
    with pytest.raises(ScenarioError, match="offline_s"):
        parse_scenario(
            _scenario(
                "presence",
                ws,
                "churn_fraction = 0.5\npresence_timeout_s = 1.0\noffline_s = 1.5",
            )
        )
    long_poll = parse_scenario(_scenario("messaging", http + 'delivery = "long-poll"\n'))
    assert long_poll.cells[0].id == "http/aiohttp/keep-alive/long-poll"


# -- set-up -------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "delivery"), [("ws-aiohttp", "push"), ("http", "long-poll")])
async def test_set_up_signs_users_in_no_faster_than_connect_rate(kind: str, delivery: str) -> None:
    # 8 users at 40 a second: the last may start 7 / 40 s after the first, not before.
    params = RealtimeParams(users=8, group_size=4, message_rate=1.0, connect_rate=40.0, drain_s=0.5)
    signins: list[int] = []
    hook = EventHook()
    hook.add_listener(lambda s: signins.append(s.sent_ns) if s.kind == "signin" else None)
    async with running(kind) as server:
        spec = realtime_cell(kind, delivery, server.base_url, duration_s=0.2, warmup_s=0.0)
        stats = await run_realtime(spec, params, hook, Tracker(0))
    assert stats.users == 8 and len(signins) == 8
    # Slots are 25 ms apart; the event loop's clock may wake a sleeper up to 1 ms early.
    assert max(signins) - min(signins) >= 7 * 25 * MS - 7 * MS


@pytest.mark.parametrize(("env", "frozen"), [("1", True), ("0", False)])
async def test_set_up_ends_by_freezing_the_collector_and_records_it(
    monkeypatch: pytest.MonkeyPatch, env: str, frozen: bool
) -> None:
    # The users' objects, made during set-up, are frozen before the window (unless
    # RTBENCH_GC_FREEZE=0), and the setting reaches the part record's stats.
    monkeypatch.setenv(gcfreeze.ENV, env)
    gc.unfreeze()
    params = RealtimeParams(users=4, group_size=4, message_rate=1.0, drain_s=0.5)
    try:
        async with running("ws-aiohttp") as server:
            spec = realtime_cell("ws-aiohttp", "push", server.base_url, duration_s=0.2)
            stats = await run_realtime(spec, params, EventHook(), Tracker(0))
    finally:
        gc.unfreeze()
    assert stats.gc["freeze"] is frozen
    assert (stats.gc["frozen"] > 0) is frozen
    assert asdict(stats)["gc"] == stats.gc
