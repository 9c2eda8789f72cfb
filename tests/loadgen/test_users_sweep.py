"""Users sweeps: a [realtime] users list runs every cell at each count, and bad lists are
refused naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from loadgen.cli import app
from loadgen.run.cell import cell_identity
from loadgen.scenario import ScenarioError, load_scenario, parse_scenario
from loadgen.users_sweep import users_id

REPO = Path(__file__).resolve().parents[2]

WS = "ws-aiohttp/aiohttp/persistent"
LONG_POLL = "http/aiohttp/keep-alive/long-poll"


def scenario_data(users: Any, **realtime: Any) -> dict[str, Any]:
    """A two-cell messaging scenario with ``[realtime] users = users``."""
    return {
        "scenario": {"name": "sweep", "workload": "messaging", "duration_s": 1.0},
        "realtime": {"users": users, "group_size": 4, "message_rate": 1.0, **realtime},
        "cells": [
            {"transport": "ws-aiohttp", "client": "aiohttp"},
            {"transport": "http", "client": "aiohttp", "delivery": "long-poll"},
        ],
    }


# --- bad lists -------------------------------------------------------------------------


BAD_LISTS = [
    pytest.param([], {}, {}, "an empty list sweeps nothing", id="empty"),
    pytest.param([40, 20], {}, {}, "user counts must rise, but 20 comes after 40", id="unsorted"),
    pytest.param([20, 40, 40], {}, {}, "40 is given twice", id="duplicate"),
    pytest.param([2, 8], {}, {}, "2 is below group_size = 4", id="below-group-size"),
    pytest.param([8, 16], {"group_size": 10}, {}, "8 is below group_size = 10", id="below-group"),
    pytest.param([20, 1.5], {}, {}, "every user count must be a whole number", id="not-whole"),
    pytest.param([20, True], {}, {}, "every user count must be a whole number", id="a-bool"),
    pytest.param([20, 30_000], {}, {}, "30000: Input should be less than", id="above-bound"),
    pytest.param(
        [8, 40],
        {},
        {"client_processes": 3},
        "8 users in groups of 4 make 2 group(s), fewer than client_processes = 3",
        id="fewer-groups-than-processes",
    ),
    pytest.param(list(range(4, 60)), {}, {}, "at most 50 user counts", id="too-many"),
]


@pytest.mark.parametrize(("users", "realtime", "settings", "message"), BAD_LISTS)
def test_a_bad_users_list_is_refused_naming_the_key(
    users: list[Any], realtime: dict[str, Any], settings: dict[str, Any], message: str
) -> None:
    data = scenario_data(users, **realtime)
    data["scenario"].update(settings)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, "sweep.toml")
    text = str(info.value)
    assert text.startswith("sweep.toml: invalid scenario"), text
    assert "[realtime] users: " in text, text
    assert message in text, text


def test_users_sweep_is_not_a_key_of_a_file() -> None:
    data = scenario_data(24)
    data["users_sweep"] = [8, 16]
    with pytest.raises(ScenarioError, match="unknown key 'users_sweep'"):
        parse_scenario(data)


def test_the_sweep_objective_needs_a_sweep() -> None:
    data = {**scenario_data(24), "load": {"sweep_slo_p99_ms": 50.0}}
    with pytest.raises(ScenarioError, match="'sweep_slo_p99_ms' applies to a sweep only"):
        parse_scenario(data)
    data["realtime"]["users"] = [8, 16]
    assert parse_scenario(data).load.sweep_slo_p99_ms == 50.0


# --- run_cells ---------------------------------------------------------------------------


def test_each_cell_runs_once_per_count_rising() -> None:
    spec = parse_scenario(scenario_data([20, 40, 80]))
    cells = spec.run_cells()
    assert [c.id for c in cells] == [
        users_id(cell, n) for n in (20, 40, 80) for cell in (WS, LONG_POLL)
    ]
    assert [c.id for c in cells][:2] == [f"{WS}@20u", f"{LONG_POLL}@20u"]
    assert [c.sweep_group for c in cells] == [WS, LONG_POLL] * 3
    assert [c.settings.realtime.users for c in cells] == [20, 20, 40, 40, 80, 80]
    # Each step runs as a plain scenario: no sweep left in it.
    assert all(c.settings.users_sweep is None for c in cells)


def test_summary_identity_records_users_and_group() -> None:
    spec = parse_scenario({**scenario_data([20, 40]), "load": {"sweep_slo_p99_ms": 30.0}})
    row = cell_identity(spec.run_cells()[3])
    assert row["cell"] == f"{LONG_POLL}@40u"
    assert (row["users"], row["sweep_group"], row["slo_p99_ms"]) == (40, LONG_POLL, 30.0)
    assert row["target_rate"] is None


def test_a_single_count_keeps_todays_ids() -> None:
    spec = parse_scenario(scenario_data(24))
    cells = spec.run_cells()
    assert [c.id for c in cells] == [WS, LONG_POLL]
    assert [c.sweep_group for c in cells] == [None, None]
    assert all(c.settings is spec for c in cells)
    assert cell_identity(cells[0])["users"] == 24
    assert "users_sweep" not in spec.as_dict()


def test_link_profiles_follow_the_count() -> None:
    data = {**scenario_data([8, 16]), "network": {"profiles": ["lan", "wan"]}}
    cells = parse_scenario(data).run_cells()
    assert [c.id for c in cells][:3] == [f"{WS}@8u~lan", f"{LONG_POLL}@8u~lan", f"{WS}@16u~lan"]
    assert cells[-1].id == f"{LONG_POLL}@16u~wan"
    assert cells[-1].sweep_group == f"{LONG_POLL}~wan"


def test_meta_keeps_the_list_and_the_estimate_counts_every_step() -> None:
    spec = parse_scenario(scenario_data([8, 16, 32], drain_s=1.0))
    assert spec.as_dict()["realtime"]["users"] == [8, 16, 32]
    # 3 counts x 2 cells x (1 s measured + 1 s warm-up by default + 1 s drain) x 3 repeats.
    assert spec.estimated_seconds() == pytest.approx(3 * 2 * 3.0 * 3)


def test_the_shipped_users_sweep_loads() -> None:
    spec = load_scenario(REPO / "scenarios" / "users-sweep-quick.toml")
    assert spec.users_sweep == [20, 40, 80]
    assert len(spec.run_cells()) == 6


# --- rtbench sweep --users -----------------------------------------------------------------


def test_sweep_needs_rates_or_users() -> None:
    path = str(REPO / "scenarios" / "users-sweep-quick.toml")
    for args in ([], ["--rates", "100", "--users", "20"]):
        result = CliRunner().invoke(app, ["sweep", path, *args])
        assert result.exit_code == 2
        assert "give one of --rates (a rate sweep) or --users (a users sweep)" in result.output


def test_sweep_users_refuses_a_bad_list_naming_the_key() -> None:
    path = str(REPO / "scenarios" / "users-sweep-quick.toml")
    result = CliRunner().invoke(app, ["sweep", path, "--users", "80,40"])
    assert result.exit_code == 2
    assert "[realtime] users:" in result.output
    result = CliRunner().invoke(app, ["sweep", path, "--users", "20,many"])
    assert result.exit_code == 2
    assert "--users must be numbers separated by commas" in result.output


def test_sweep_users_runs_the_scenario_as_a_users_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[Any] = []
    monkeypatch.setattr("loadgen.cli._execute", lambda spec, *_args, **_kw: ran.append(spec))
    path = str(REPO / "scenarios" / "messaging-quick.toml")
    args = ["sweep", path, "--users", "8,16", "--slo-p99-ms", "25"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (spec,) = ran
    assert spec.users_sweep == [8, 16]
    assert spec.load.sweep_slo_p99_ms == 25.0
    assert {c.id.rsplit("@", 1)[1] for c in spec.run_cells()} == {"8u", "16u"}
