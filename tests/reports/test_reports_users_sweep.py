"""Users sweeps in the reports: the table of the largest user count under the objective,
the charts against connected users and their place in report.html, from synthetic
results folders (tests/reports_fixtures.py) and one small real run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_runs import run_side_by_side
from reports_fixtures import make_realtime_run_dir, users_sweep_cells
from scenario_toml import cell_table, toml_text

import reports
from reports import charts
from reports.costs import cost_table
from reports.html import render_report
from reports.pairs import matched_pairs
from reports.sweeps import DEFAULT_SWEEP_SLO_P99_MS
from reports.users_sweeps import users_sweep_cells as sweep_cells_of
from reports.users_sweeps import users_sweep_rows, users_sweep_table

WS = "ws-aiohttp/aiohttp/persistent"
LONG_POLL = "http/aiohttp/keep-alive/long-poll"

SCALES = {
    # delivery p99 about 0.96 ms x scale: long polling passes 5 ms at 20 and 40 users only
    LONG_POLL: (1, 2, 8),
    # push stays under 5 ms at every count
    f"{WS}/push": (1, 1, 2),
}


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory: pytest.TempPathFactory) -> reports.Run:
    folder = make_realtime_run_dir(
        tmp_path_factory.mktemp("users-sweep"),
        users_sweep_cells(SCALES),
        run_id="20261207-010000-users-sweep",
        scenario_name="users-sweep-quick",
        meta_overrides={"scenario": {"realtime": {"users": [20, 40, 80], "message_rate": 1.0}}},
    )
    return reports.load(folder)


def test_the_table_finds_the_largest_count_under_the_objective(sweep_run: reports.Run) -> None:
    sweeps = users_sweep_table(sweep_run.cells).set_index("sweep_group")
    poll, push = sweeps.loc[LONG_POLL], sweeps.loc[WS]
    assert poll["max_users"] == 40 and poll["first_failing_users"] == 80
    assert poll["failure"].startswith("delivery p99 ") and poll["slo_source"] == "scenario"
    assert poll["users"] == [20, 40, 80] and poll["delivery"] == "long-poll"
    assert push["max_users"] == 80 and np.isnan(push["first_failing_users"])
    assert push["failure"] == "" and push["delivery_p99_at_max_ms"] < 5.0


def test_lost_deliveries_fail_a_count_and_the_default_objective_applies(tmp_path: Path) -> None:
    cells = users_sweep_cells({LONG_POLL: (1, 1, 1)}, slo_p99_ms=None, lost={(LONG_POLL, 40): 3})
    run = reports.load(make_realtime_run_dir(tmp_path, cells))
    s = users_sweep_table(run.cells).iloc[0]
    assert s["slo_source"] == "default" and s["slo_p99_ms"] == DEFAULT_SWEEP_SLO_P99_MS
    assert s["max_users"] == 20 and s["first_failing_users"] == 40
    assert s["failure"] == "6 deliveries lost"  # 3 per repeat, 2 repeats
    assert users_sweep_table(run.cells, default_slo_ms=0.01)["max_users"].isna().all()


def test_rows_state_the_largest_count(sweep_run: reports.Run) -> None:
    rows = {r["group"]: r for r in users_sweep_rows(users_sweep_table(sweep_run.cells), False)}
    assert rows[LONG_POLL]["max_users"] == "40 users"
    assert rows[LONG_POLL]["stop"].startswith("80 users: delivery p99 ")
    assert rows[WS]["stop"] == "every count passed" and rows[WS]["users"] == "20, 40, 80"


def test_a_run_without_a_users_sweep_has_none(tmp_path: Path) -> None:
    run = reports.load(make_realtime_run_dir(tmp_path))
    assert sweep_cells_of(run.cells).empty and users_sweep_table(run.cells).empty
    assert "Users sweeps" not in render_report(run)
    assert "against connected users" not in render_report(run)


def test_cells_pair_at_each_count_and_cost_per_their_own_users(sweep_run: reports.Run) -> None:
    pairs = matched_pairs(sweep_run)
    assert pairs["load"].tolist() == [f"{n} users, 1 msg/s each" for n in (20, 40, 80)]
    assert (
        pairs["http_cell"].str.split("@").str[1] == pairs["ws_cell"].str.split("@").str[1]
    ).all()
    costs = cost_table(sweep_run.cells, {sweep_run.run_id: sweep_run.meta}).set_index("cell")
    assert costs.loc[f"{WS}@80u", "connections"] == 80


@pytest.mark.parametrize("metric", list(charts.USERS_SWEEP_METRICS))
def test_each_chart_draws_a_line_per_cell_against_users(
    sweep_run: reports.Run, metric: str
) -> None:
    fig = charts.users_sweep_chart(sweep_run.cells, metric)
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    assert set(lines) == {WS, LONG_POLL}
    assert list(lines[WS].get_xdata()) == [20, 40, 80]
    if metric == "rss_mb_server":
        assert list(lines[WS].get_ydata()) == pytest.approx([40.2, 40.4, 40.8])
    if metric == "cpu_util_server":
        assert list(lines[LONG_POLL].get_ydata()) == pytest.approx([0.02, 0.04, 0.08])
    assert fig.axes[0].get_xlabel() == "Connected users"


def test_the_p99_chart_draws_the_objective_and_rings_the_largest_count(
    sweep_run: reports.Run,
) -> None:
    sweeps = users_sweep_table(sweep_run.cells)
    fig = charts.users_sweep_chart(sweep_run.cells, "delivery_p99_ms", sweeps)
    ax = fig.axes[0]
    # One dashed objective line for the two cells that share it.
    objective = [ln for ln in ax.get_lines() if list(ln.get_xdata()) == [0, 1]]
    assert [ln.get_ydata()[0] for ln in objective] == [5.0]
    rings = [c.get_offsets()[0][0] for c in ax.collections]
    assert sorted(rings) == [40, 80]
    empty = charts.users_sweep_chart(sweep_run.cells.iloc[0:0], "rss_mb_server")
    assert [t.get_text() for t in empty.axes[0].texts] == ["no users sweep in this run"]


def test_report_html_has_the_table_and_the_three_charts(sweep_run: reports.Run) -> None:
    html = render_report(sweep_run)
    assert "Users sweeps: the largest user count with delivery p99 under the objective" in html
    for title in (
        "Server memory against connected users",
        "Server CPU against connected users",
        "Delivery p99 against connected users",
    ):
        assert f'alt="{title}"' in html
    assert "40 users" in html and "every count passed" in html


#: A tiny real users sweep: push and long polling at 4 and 8 users.
TINY_USERS_SWEEP_TOML = toml_text(
    {
        "scenario": {
            "name": "tiny-users-sweep",
            "workload": "messaging",
            "repeats": 1,
            "duration_s": 1,
            "warmup_s": 0.2,
            "timeout_s": 5,
            "placement": "none",
        },
        "load": {"sweep_slo_p99_ms": 1000},
        "realtime": {
            "users": [4, 8],
            "group_size": 4,
            "message_rate": 2.0,
            "long_poll_timeout_ms": 2000,
            "drain_s": 0.5,
        },
        "cells": [
            cell_table("ws-aiohttp/aiohttp"),
            cell_table("http/aiohttp", delivery="long-poll"),
        ],
    }
)


@pytest.mark.e2e
def test_e2e_a_real_users_sweep_reports_each_count(tmp_path: Path) -> None:
    (out,) = run_side_by_side(tmp_path, {"usweep": TINY_USERS_SWEEP_TOML}, timeout_s=150).values()
    run = reports.load(out)
    cells = run.cells.set_index("cell")
    assert set(cells.index) == {f"{c}@{n}u" for c in (WS, LONG_POLL) for n in (4, 8)}
    assert cells.loc[f"{WS}@8u", "users"] == 8
    assert (cells["rss_mb_server"] > 0).all() and (cells["cpu_util_server"] > 0).all()
    sweeps = users_sweep_table(run.cells)
    assert set(sweeps["sweep_group"]) == {WS, LONG_POLL}
    assert (sweeps["users"].map(tuple) == (4, 8)).all()
    assert "Delivery p99 against connected users" in render_report(run)
