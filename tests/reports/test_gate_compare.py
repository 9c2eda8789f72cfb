"""``rtbench compare``: synthetic runs with known answers, the errors that exit 2, one real pair.

The synthetic runs (:mod:`gate_runs`) are results folders drawn with a fixed seed, so
every expected verdict is known in advance: a 30 % p99 regression, a 2 % wobble, a
throughput drop seen only through per-repeat figures, and so on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_runs import invoke_run
from gate_runs import (
    ENVIRONMENT,
    HTTP,
    RT,
    SCENARIO,
    WS,
    cli,
    latencies,
    make_run,
    rows_of,
    squash,
    two_runs,
)

from loadgen.run.cell import server_args
from loadgen.scenario import parse_scenario
from reports.gate.compare import compare_runs
from reports.gate.errors import EXIT_ERROR, EXIT_OK, EXIT_REGRESSION
from reports.gate.limits import parse_specs
from reports.gate.metrics import METRICS
from reports.gate.result import INSUFFICIENT, REGRESSION
from reports.gate.runs import load_run
from servers.__main__ import build_parser
from servers.hub import Hub

# --- comparisons with known answers --------------------------------------------------------


def test_clear_30_percent_p99_regression_exits_1(tmp_path: Path) -> None:
    base, cur = two_runs(
        tmp_path,
        {HTTP: {"latency": latencies(1)}, WS: {"latency": latencies(3)}},
        {HTTP: {"latency": latencies(2, scale=1.3)}, WS: {"latency": latencies(4)}},
    )
    result = cli(str(base), str(cur), "--max-regression", "p99:+15%")
    assert result.exit_code == EXIT_REGRESSION, result.output
    rows = {r["cell"]: r for r in rows_of(cur)}
    assert rows[HTTP]["status"] == REGRESSION
    assert rows[HTTP]["ci_low"] > 0.15
    assert rows[HTTP]["method"] == "samples"
    assert rows[WS]["status"] != REGRESSION
    assert "regression" in result.output
    md = (cur / "compare.md").read_text()
    assert "**regression**" in md and HTTP in md and "p99:+15%" in md


def test_noisy_2_percent_change_passes(tmp_path: Path) -> None:
    base, cur = two_runs(
        tmp_path,
        {HTTP: {"latency": latencies(1, wobble=0.03), "throughput": [400, 396, 404]}},
        {
            HTTP: {
                "latency": latencies(2, scale=1.02, wobble=0.03),
                "throughput": [392, 398, 390],
            }
        },
    )
    for extra in ([], ["-r", "p99:+15%", "-r", "p50:+10%", "-r", "throughput:-5%"]):
        result = cli(str(base), str(cur), *extra)
        assert result.exit_code == EXIT_OK, result.output
        assert all(r["status"] != REGRESSION for r in rows_of(cur))
    assert json.loads((cur / "compare.json").read_text())["exit_code"] == 0


def test_throughput_drop_from_per_repeat_figures(tmp_path: Path) -> None:
    base, cur = two_runs(
        tmp_path,
        {HTTP: {"latency": latencies(1), "throughput": [1000, 1010, 990, 1005]}},
        {HTTP: {"latency": latencies(2), "throughput": [700, 690, 712, 705]}},
    )
    result = cli(str(base), str(cur), "-r", "throughput:-10%")
    assert result.exit_code == EXIT_REGRESSION, result.output
    (row,) = rows_of(cur)
    assert row["method"] == "repeats"
    assert row["change"] == pytest.approx(-0.3, abs=0.01)
    assert row["ci_high"] < -0.10


def test_cpu_regression_and_unclear_limit(tmp_path: Path) -> None:
    base, cur = two_runs(
        tmp_path,
        {HTTP: {"latency": latencies(1), "cpu": [1.0e-4, 1.1e-4, 0.9e-4]}},
        {HTTP: {"latency": latencies(2), "cpu": [1.5e-4, 1.6e-4, 1.55e-4]}},
    )
    result = cli(str(base), str(cur), "-r", "cpu_server:+20%")
    assert result.exit_code == EXIT_REGRESSION
    # A limit inside the interval is "unclear", which does not fail.
    result = cli(str(base), str(cur), "-r", "cpu_server:+50%")
    assert result.exit_code == EXIT_OK, result.output
    assert rows_of(cur)[0]["status"] in ("unclear", "ok")


def test_few_repeats_without_samples(tmp_path: Path) -> None:
    """Fewer than 3 repeats: no interval; fails only when every pairing is beyond the limit."""
    base, cur = two_runs(
        tmp_path,
        {HTTP: {"latency": latencies(1, repeats=2), "throughput": [400, 410]}},
        {HTTP: {"latency": latencies(2, repeats=2), "throughput": [380, 395]}},
        samples=False,
    )
    result = cli(str(base), str(cur), "-r", "throughput:-15%", "-r", "p50:+20%")
    assert result.exit_code == EXIT_OK, result.output
    rows = {r["metric"]: r for r in rows_of(cur)}
    assert rows["throughput"]["status"] == INSUFFICIENT
    assert rows["throughput"]["method"] == "range"
    assert rows["p50"]["method"] == "range"  # no samples.parquet: per-repeat p50s
    assert "insufficient repeats" in result.output

    slow = make_run(
        tmp_path / "slow",
        {HTTP: {"latency": latencies(2, repeats=2), "throughput": [200, 210]}},
        samples=False,
    )
    result = cli(str(base), str(slow), "-r", "throughput:-15%")
    assert result.exit_code == EXIT_REGRESSION, result.output


def test_single_repeat_point_beyond_limit_fails(tmp_path: Path) -> None:
    base, cur = two_runs(
        tmp_path,
        {HTTP: {"latency": latencies(1, repeats=1), "throughput": [400]}},
        {HTTP: {"latency": latencies(2, repeats=1), "throughput": [390]}},
        samples=False,
    )
    assert cli(str(base), str(cur), "-r", "throughput:-15%").exit_code == EXIT_OK
    assert rows_of(cur)[0]["method"] == "single"
    slow = make_run(
        tmp_path / "slow", {HTTP: {"latency": latencies(2, repeats=1), "throughput": [100]}}
    )
    assert cli(str(base), str(slow), "-r", "throughput:-15%").exit_code == EXIT_REGRESSION


def test_lost_is_an_absolute_count(tmp_path: Path) -> None:
    base, cur = two_runs(
        tmp_path,
        {RT: {"latency": latencies(1), "lost": 0}, HTTP: {"latency": latencies(3)}},
        {RT: {"latency": latencies(2), "lost": 2}, HTTP: {"latency": latencies(4)}},
    )
    result = cli(str(base), str(cur))  # defaults include lost:0
    assert result.exit_code == EXIT_REGRESSION, result.output
    lost = [r for r in rows_of(cur) if r["metric"] == "lost"]
    assert [(r["cell"], r["current"], r["status"]) for r in lost] == [(RT, 2, REGRESSION)]
    assert cli(str(base), str(cur), "-r", "lost:2").exit_code == EXIT_OK
    # Delivery latency is bootstrapped from per-repeat figures when there is no deliveries file.
    result = cli(str(base), str(cur), "-r", "delivery_p99:+30%")
    assert result.exit_code == EXIT_OK, result.output
    assert rows_of(cur)[0]["method"] == "repeats"


def test_cell_scoped_limit_overrides_global(tmp_path: Path) -> None:
    base, cur = two_runs(
        tmp_path,
        {HTTP: {"latency": latencies(1)}, WS: {"latency": latencies(3)}},
        {HTTP: {"latency": latencies(2, scale=1.3)}, WS: {"latency": latencies(4, scale=1.3)}},
    )
    result = cli(str(base), str(cur), "-r", "p50:+50%", "-r", f"p50@{WS}:+10%")
    assert result.exit_code == EXIT_REGRESSION
    status = {r["cell"]: r["status"] for r in rows_of(cur)}
    assert status[WS] == REGRESSION and status[HTTP] != REGRESSION
    # --cell restricts the comparison.
    result = cli(str(base), str(cur), "-r", "p50:+10%", "--cell", HTTP)
    assert {r["cell"] for r in rows_of(cur)} == {HTTP}


# --- errors: exit 2, never a silent pass ---------------------------------------------------


def test_misspelled_metric_exits_2(tmp_path: Path) -> None:
    base, cur = two_runs(
        tmp_path, {HTTP: {"latency": latencies(1)}}, {HTTP: {"latency": latencies(2)}}
    )
    result = cli(str(base), str(cur), "--max-regression", "p99_ms:+15%")
    assert result.exit_code == EXIT_ERROR
    assert "unknown metric" in result.output and "p99" in result.output
    # compare.md says why, for the CI job summary.
    assert "unknown metric" in (cur / "compare.md").read_text()
    assert json.loads((cur / "compare.json").read_text())["exit_code"] == EXIT_ERROR


def test_unknown_cell_exits_2(tmp_path: Path) -> None:
    base, cur = two_runs(
        tmp_path, {HTTP: {"latency": latencies(1)}}, {HTTP: {"latency": latencies(2)}}
    )
    result = cli(str(base), str(cur), "-r", "p99@http/aiohttp/keepalive:+15%")
    assert result.exit_code == EXIT_ERROR
    assert squash("is not in the baseline") in squash(result.output)
    assert cli(str(base), str(cur), "--cell", "nope").exit_code == EXIT_ERROR


def test_metric_that_applies_to_no_cell_exits_2(tmp_path: Path) -> None:
    base, cur = two_runs(
        tmp_path, {HTTP: {"latency": latencies(1)}}, {HTTP: {"latency": latencies(2)}}
    )
    result = cli(str(base), str(cur), "-r", "delivery_p99:+20%")
    assert result.exit_code == EXIT_ERROR
    assert "real-time cells only" in result.output
    # The default lost:0 is skipped on echo cells, not an error.
    assert cli(str(base), str(cur)).exit_code == EXIT_OK


@pytest.mark.parametrize(("base_schema", "cur_schema"), [(1, 2), (2, 1), (3, 3)])
def test_schema_mismatch_exits_2(tmp_path: Path, base_schema: int, cur_schema: int) -> None:
    base, cur = two_runs(
        tmp_path,
        {HTTP: {"latency": latencies(1)}},
        {HTTP: {"latency": latencies(2)}},
        base_kwargs={"schema": base_schema},
        cur_kwargs={"schema": cur_schema},
    )
    result = cli(str(base), str(cur))
    assert result.exit_code == EXIT_ERROR
    assert "schema" in result.output


@pytest.mark.parametrize(
    ("what", "env", "scenario"),
    [
        ("CPU model", {"cpu_model": "Other CPU"}, None),
        ("CPU count", {"cpu_count": 64}, None),
        ("Python version", {"python": "3.12.1"}, None),
        ("scenario [load]", {}, {"load": {"model": "open", "connections": 4, "rate": 800.0}}),
        (
            "scenario client_processes",
            {},
            {"scenario": SCENARIO["scenario"] | {"client_processes": 2}},
        ),
    ],
)
def test_environment_mismatch_exits_2_unless_allowed(
    tmp_path: Path, what: str, env: dict[str, Any], scenario: dict[str, Any] | None
) -> None:
    base, cur = two_runs(
        tmp_path,
        {HTTP: {"latency": latencies(1)}},
        {HTTP: {"latency": latencies(2)}},
        cur_kwargs={
            "environment": ENVIRONMENT | env,
            "scenario": SCENARIO | (scenario or {}),
        },
    )
    result = cli(str(base), str(cur))
    assert result.exit_code == EXIT_ERROR, result.output
    assert what in result.output and "--allow-env-mismatch" in result.output
    doc = json.loads((cur / "compare.json").read_text())
    assert doc["mismatches"][0]["what"] == what
    result = cli(str(base), str(cur), "--allow-env-mismatch")
    assert result.exit_code == EXIT_OK, result.output
    assert what in result.output  # still reported


def test_a_parts_settings_must_match(tmp_path: Path) -> None:
    part = {"scenario": {"workload": "messaging"}, "load": {}, "realtime": {"users": 24}}
    changed = part | {"realtime": {"users": 48}}
    base, cur = two_runs(
        tmp_path,
        {HTTP: {"latency": latencies(1)}},
        {HTTP: {"latency": latencies(2)}},
        base_kwargs={"parts": {"messaging": part}},
        cur_kwargs={"parts": {"messaging": changed}},
    )
    result = cli(str(base), str(cur))
    assert result.exit_code == EXIT_ERROR, result.output
    assert "part 'messaging' [realtime]" in result.output
    # The same parts compare.
    same = cli(str(base), str(base))
    assert same.exit_code == EXIT_OK, same.output


def test_small_differences_are_notes_not_mismatches(tmp_path: Path) -> None:
    slowed = SCENARIO | {"server": {"max_message_bytes": 1048576, "delay_ms": 2.0}}
    base, cur = two_runs(
        tmp_path,
        {HTTP: {"latency": latencies(1)}},
        {HTTP: {"latency": latencies(2)}},
        cur_kwargs={
            "environment": ENVIRONMENT | {"python": "3.11.9", "packages": {"aiohttp": "3.10"}},
            "scenario": slowed | {"scenario": SCENARIO["scenario"] | {"name": "other"}},
        },
    )
    result = cli(str(base), str(cur))
    assert result.exit_code == EXIT_OK, result.output
    text = squash(result.output)
    for note in ("3.11.7→3.11.9", "aiohttp3.9.0→3.10", "delay_ms"):
        assert squash(note) in text


def test_incomplete_run_and_missing_cell_exit_2(tmp_path: Path) -> None:
    base = make_run(
        tmp_path / "base", {HTTP: {"latency": latencies(1)}, WS: {"latency": latencies(3)}}
    )
    part = make_run(
        tmp_path / "part",
        {HTTP: {"latency": latencies(2)}, WS: {"latency": latencies(4)}},
        complete=False,
    )
    result = cli(str(base), str(part))
    assert result.exit_code == EXIT_ERROR and "incomplete" in result.output
    fewer = make_run(tmp_path / "fewer", {HTTP: {"latency": latencies(2)}})
    result = cli(str(base), str(fewer))
    assert result.exit_code == EXIT_ERROR and WS in squash(result.output)
    # Comparing only the cells both have is allowed.
    assert cli(str(base), str(fewer), "--cell", HTTP).exit_code == EXIT_OK
    # A cell new in the current run is a note.
    result = cli(str(fewer), str(base))
    assert result.exit_code == EXIT_OK and "not in the baseline" in result.output


def test_missing_folder_exits_2(tmp_path: Path) -> None:
    cur = make_run(tmp_path / "cur", {HTTP: {"latency": latencies(2)}})
    result = cli(str(tmp_path / "nope"), str(cur), "--baselines", str(tmp_path / "baselines"))
    assert result.exit_code == EXIT_ERROR
    assert squash("neither a results folder nor a baseline") in squash(result.output)


def test_report_only_exits_0_on_regression_but_2_on_errors(tmp_path: Path) -> None:
    base, cur = two_runs(
        tmp_path,
        {HTTP: {"latency": latencies(1)}},
        {HTTP: {"latency": latencies(2, scale=2.0)}},
    )
    result = cli(str(base), str(cur), "--report-only")
    assert result.exit_code == EXIT_OK, result.output
    doc = json.loads((cur / "compare.json").read_text())
    assert doc["regressions"] >= 1 and doc["report_only"] and doc["exit_code"] == 0
    assert "report only" in (cur / "compare.md").read_text()
    assert cli(str(base), str(cur), "--report-only", "-r", "p999:+1%").exit_code == EXIT_ERROR


def test_out_folder_and_api(tmp_path: Path) -> None:
    base, cur = two_runs(
        tmp_path, {HTTP: {"latency": latencies(1)}}, {HTTP: {"latency": latencies(2)}}
    )
    out = tmp_path / "report"
    assert cli(str(base), str(cur), "--out", str(out)).exit_code == EXIT_OK
    assert (out / "compare.md").is_file() and (out / "compare.json").is_file()
    assert not (cur / "compare.md").exists()
    comparison = compare_runs(load_run(base), load_run(cur), parse_specs(["p50:+20%"]))
    assert comparison.exit_code() == EXIT_OK
    assert [r.metric for r in comparison.rows] == ["p50"]


def test_every_metric_can_be_checked(tmp_path: Path) -> None:
    base, cur = two_runs(
        tmp_path,
        {RT: {"latency": latencies(1), "lost": 0}},
        {RT: {"latency": latencies(2), "lost": 0}},
    )
    specs = []
    for name, metric in METRICS.items():
        specs += ["-r", f"{name}:0" if metric.count else f"{name}:{metric.worse * 50:+d}%"]
    result = cli(str(base), str(cur), *specs)
    assert result.exit_code == EXIT_OK, result.output
    assert {r["metric"] for r in rows_of(cur)} == set(METRICS)


# --- the test-only slowdown ----------------------------------------------------------------


def test_delay_ms_reaches_the_server_command_line() -> None:
    base = {"scenario": {"name": "x"}, "cells": [{"transport": "http", "client": "aiohttp"}]}
    assert "--delay-ms" not in server_args(parse_scenario(base))
    slowed = parse_scenario(base | {"server": {"delay_ms": 2}})
    args = server_args(slowed)
    assert args[args.index("--delay-ms") + 1] == "2.0"
    assert build_parser().parse_args(["http", "--delay-ms", "2"]).delay_ms == 2.0


async def test_hub_delay_slows_every_echo() -> None:
    import asyncio

    hub = Hub(echo_delay_s=0.02)
    loop = asyncio.get_running_loop()
    start = loop.time()
    reply = await hub.handle(b'{"op": "echo", "id": 1, "ts": 0, "payload": "x"}')
    assert reply.status == 200
    assert loop.time() - start >= 0.019
    with pytest.raises(ValueError):
        Hub(echo_delay_s=-1)


# --- end to end: two real short runs of the same code --------------------------------------

E2E_SCENARIO = """\
[scenario]
name = "e2e-gate"
repeats = 3
duration_s = 0.8
warmup_s = 0.2
payload_bytes = 64
timeout_s = 2
placement = "split"

[load]
model = "open"
rate = 200
connections = 2

[[cells]]
transport = "http"
client = "aiohttp"
conn_mode = "keep-alive"

[slo]
errors = 0
p99_ms = 10000
"""


@pytest.mark.timeout(180)
def test_e2e_two_real_runs_compare_in_report_only_mode(tmp_path: Path) -> None:
    """Two real runs of the unchanged servers, compared in report-only mode.

    Report-only because timing noise on a shared machine must never fail the
    suite: the assertions are on the mechanics (files, rows, exit code 0), not
    on the verdict.
    """
    scenario = tmp_path / "gate.toml"
    scenario.write_text(E2E_SCENARIO)
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        result = invoke_run(scenario, out)
        assert result.exit_code == 0, result.output
        assert json.loads((out / "slo.json").read_text())["ok"] is True
        runs.append(out)
    result = cli(str(runs[0]), str(runs[1]), "--report-only")
    assert result.exit_code == EXIT_OK, result.output
    doc = json.loads((runs[1] / "compare.json").read_text())
    assert doc["mismatches"] == [] and "error" not in doc
    assert {(r["cell"], r["metric"]) for r in doc["rows"]} == {
        (HTTP, "p50"),
        (HTTP, "p99"),
        (HTTP, "throughput"),
    }
    for row in doc["rows"]:
        assert row["status"] in ("ok", "improved", "unclear", "regression")
        assert row["ci_low"] <= row["change"] <= row["ci_high"]
        assert row["repeats_baseline"] == row["repeats_current"] == 3
    assert {r["method"] for r in doc["rows"]} == {"samples", "repeats"}
    assert (runs[1] / "compare.md").read_text().startswith("## ")
