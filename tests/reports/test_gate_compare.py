"""``rtbench compare`` and ``rtbench baseline``: synthetic runs with known answers, one real pair.

The synthetic runs are results folders written here (summary.json, meta.json and,
when wanted, samples.parquet) from latencies drawn with a fixed seed, so every
expected verdict is known in advance: a 30 % p99 regression, a 2 % wobble, a
throughput drop seen only through per-repeat figures, and so on.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_runs import invoke_run
from typer.testing import CliRunner

from loadgen.cli import app
from loadgen.run.cell import server_args
from loadgen.scenario import parse_scenario
from loadgen.schema import SAMPLE_SCHEMA, SAMPLES_FILE, SCHEMA_VERSION
from reports import bootstrap
from reports.gate.baseline import BaselineError, list_baselines, resolve_run, save_baseline
from reports.gate.compare import compare_runs
from reports.gate.errors import EXIT_ERROR, EXIT_OK, EXIT_REGRESSION, CompareError
from reports.gate.limits import DEFAULT_SPECS, parse_spec, parse_specs
from reports.gate.metrics import METRICS
from reports.gate.result import INSUFFICIENT, REGRESSION
from reports.gate.runs import load_run
from servers.__main__ import build_parser
from servers.hub import Hub

HTTP = "http/aiohttp/keep-alive"
WS = "ws-websockets/websockets/persistent"
RT = "ws-aiohttp/aiohttp/persistent"

ENVIRONMENT = {
    "python": "3.11.7",
    "python_implementation": "CPython",
    "cpu_model": "Test CPU 9000",
    "cpu_count": 2,
    "hostname": "test",
    "kernel": "6.0",
    "git_commit": "0123456789abcdef0123456789abcdef01234567",
    "git_dirty": False,
    "packages": {"aiohttp": "3.9.0"},
}
SCENARIO = {
    "scenario": {
        "name": "synthetic",
        "workload": "echo",
        "repeats": 3,
        "duration_s": 2.0,
        "payload_bytes": 64,
        "client_loop": "uvloop",
    },
    "load": {"model": "open", "connections": 4, "rate": 400.0, "think_time_ms": 0.0},
    "server": {"max_message_bytes": 1048576, "delay_ms": 0.0},
    "realtime": None,
    "cells": [],
}


def _pct(values: np.ndarray, q: float) -> float:
    ordered = np.sort(values)
    return float(ordered[max(1, math.ceil(q * len(ordered))) - 1])


def _latency_block(ns: np.ndarray) -> dict[str, float]:
    ms = ns / 1e6
    return {
        "p50": _pct(ms, 0.5),
        "p90": _pct(ms, 0.9),
        "p99": _pct(ms, 0.99),
        "p99.9": _pct(ms, 0.999),
        "max": float(ms.max()),
    }


def _stats(
    ns: np.ndarray, throughput: float, cpu: float, lost: int | None, errors: int
) -> dict[str, Any]:
    count = len(ns)
    stats: dict[str, Any] = {
        "count": count,
        "errors": errors,
        "duration_s": count / throughput,
        "throughput_rps": throughput,
        "latency_ms": _latency_block(ns),
        "cpu_s_per_request": {"server": cpu, "client": 2 * cpu},
        "bytes_per_request": {"sent": 265.0, "received": 273.0},
    }
    if lost is not None:
        stats["deliveries"] = {"expected": count + lost, "delivered": count, "lost": lost}
        stats["delivery_latency_ms"] = _latency_block(ns * 3)
        stats["per_useful_message"] = {
            "bytes": 300.0,
            "requests": 1.0,
            "cpu_s_server": cpu,
            "cpu_s_client": cpu,
        }
    return stats


def make_run(
    folder: Path,
    cells: dict[str, dict[str, Any]],
    *,
    samples: bool = True,
    schema: int = SCHEMA_VERSION,
    complete: bool = True,
    environment: dict[str, Any] | None = None,
    scenario: dict[str, Any] | None = None,
    parts: dict[str, Any] | None = None,
) -> Path:
    """A results folder whose cells are given as ``{name: spec}``.

    A spec has ``latency`` (one array of ns per repeat), and optionally per-repeat
    ``throughput``, ``cpu`` lists, ``lost`` (real-time cell) and ``errors``.
    """
    folder.mkdir(parents=True)
    rows: dict[str, list[Any]] = {name: [] for name in SAMPLE_SCHEMA.names}
    entries = []
    for name, spec in cells.items():
        reps = spec["latency"]
        k = len(reps)
        tput = spec.get("throughput", [400.0] * k)
        cpu = spec.get("cpu", [1e-4] * k)
        lost = spec.get("lost")
        per_repeat = [{"repeat": r, **_stats(reps[r], tput[r], cpu[r], lost, 0)} for r in range(k)]
        every = np.concatenate(reps)
        transport = name.split("/")[0]
        entries.append(
            {
                "cell": name,
                "transport": transport,
                "delivery": "push" if lost is not None else "request",
                "status": "ok",
                "repeats": k,
                "repeats_ok": k,
                **_stats(every, float(np.mean(tput)), float(np.mean(cpu)), lost, 0),
                "errors": spec.get("errors", 0),
                "per_repeat": per_repeat,
            }
        )
        for r, values in enumerate(reps):
            n = len(values)
            for col, value in (
                ("cell", name),
                ("transport", transport),
                ("client", "aiohttp"),
                ("conn_mode", "keep-alive"),
                ("repeat", r),
                ("conn", 0),
                ("kind", "request"),
                ("intended_ns", 0),
                ("sent_ns", 0),
                ("received_ns", 0),
                ("bytes_sent", 265),
                ("bytes_received", 273),
                ("items", 0),
                ("ok", True),
                ("error", None),
                ("warmup", False),
            ):
                rows[col].extend([value] * n)
            rows["latency_ns"].extend(values.astype("int64").tolist())
            rows["latency_uncorrected_ns"].extend(values.astype("int64").tolist())
    if samples:
        pq.write_table(pa.Table.from_pydict(rows, schema=SAMPLE_SCHEMA), folder / SAMPLES_FILE)
    summary = {
        "schema": schema,
        "run_id": folder.name,
        "scenario": "synthetic",
        "complete": complete,
        "cells": entries,
    }
    meta = {
        "schema": schema,
        "run_id": folder.name,
        "complete": complete,
        "scenario": scenario or SCENARIO,
        "environment": environment or ENVIRONMENT,
        "pinning": {"placement": "split", "server_cpus": [0], "client_cpus": [1]},
    }
    if parts is not None:
        meta["parts"] = parts
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def latencies(
    seed: int, scale: float = 1.0, repeats: int = 3, n: int = 4000, wobble: float = 0.0
) -> list[np.ndarray]:
    """Lognormal latencies around 0.3 ms; ``wobble`` scales each repeat by N(1, wobble)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(repeats):
        factor = scale * (1.0 + wobble * rng.standard_normal())
        out.append(np.round(rng.lognormal(math.log(300_000), 0.35, n) * factor))
    return out


def two_runs(
    tmp_path: Path,
    base: dict[str, dict[str, Any]],
    cur: dict[str, dict[str, Any]],
    **kwargs: Any,
) -> tuple[Path, Path]:
    base_kwargs, cur_kwargs = kwargs.pop("base_kwargs", {}), kwargs.pop("cur_kwargs", {})
    b = make_run(tmp_path / "base", base, **base_kwargs, **kwargs)
    c = make_run(tmp_path / "cur", cur, **cur_kwargs, **kwargs)
    return b, c


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, ["compare", *args])


def rows_of(folder: Path) -> list[dict[str, Any]]:
    return json.loads((folder / "compare.json").read_text())["rows"]


def squash(text: str) -> str:
    return "".join(text.split())


# --- limits --------------------------------------------------------------------------------


def test_default_limits() -> None:
    parsed = parse_specs(None)
    assert [t.spec for t in parsed] == list(DEFAULT_SPECS)
    assert {t.metric: t.limit for t in parsed} == {
        "p50": 0.20,
        "p99": 0.30,
        "throughput": 0.15,
        "lost": 0,
    }
    assert all(t.default for t in parsed)


@pytest.mark.parametrize(
    ("spec", "metric", "limit", "cell"),
    [
        ("p99:+15%", "p99", 0.15, None),
        ("p99:15%", "p99", 0.15, None),
        ("p99.9:+100%", "p99.9", 1.0, None),
        ("throughput:-10%", "throughput", 0.10, None),
        ("throughput:10%", "throughput", 0.10, None),
        ("lost:0", "lost", 0, None),
        ("errors:3", "errors", 3, None),
        ("p50@ws-websockets/websockets/persistent:+5%", "p50", 0.05, WS),
        ("cpu_server:+2.5%", "cpu_server", 0.025, None),
    ],
)
def test_parse_spec(spec: str, metric: str, limit: float, cell: str | None) -> None:
    t = parse_spec(spec)
    assert (t.metric, t.cell) == (metric, cell)
    assert t.limit == pytest.approx(limit)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("p99x:+15%", ["unknown metric", "p99x", "did you mean", "p99"]),
        ("latency:+15%", ["unknown metric", "known metrics"]),
        ("p99:-15%", ["p99 regresses when it grows", "p99:+15%"]),
        ("throughput:+10%", ["throughput regresses when it drops", "throughput:-10%"]),
        ("p99:15", ["percentage"]),
        ("lost:5%", ["count", "whole number"]),
        ("p99", ["METRIC[@CELL]:LIMIT"]),
        (":+5%", ["METRIC[@CELL]:LIMIT"]),
    ],
)
def test_bad_spec_is_an_error(spec: str, words: list[str]) -> None:
    with pytest.raises(CompareError) as exc:
        parse_spec(spec)
    for word in words:
        assert word in str(exc.value)


def test_same_limit_twice_is_an_error() -> None:
    with pytest.raises(CompareError, match="same limit twice"):
        parse_specs(["p99:+10%", "p99:+20%"])
    # One global and one for a cell is fine.
    assert len(parse_specs(["p99:+10%", f"p99@{WS}:+5%"])) == 2


# --- statistics ----------------------------------------------------------------------------


def test_percentile_ci_known_answers() -> None:
    rng = np.random.default_rng(0)
    same = bootstrap.percentile_ci(latencies(1), latencies(2), 0.99, rng)
    assert same[1] <= 0 <= same[2]
    worse = bootstrap.percentile_ci(latencies(1), latencies(2, scale=1.3), 0.99, rng)
    assert worse[0] == pytest.approx(0.3, abs=0.08)
    assert 0.15 < worse[1] <= worse[0] <= worse[2] < 0.5
    # One repeat per run still gives an interval (requests only).
    single = bootstrap.percentile_ci(latencies(1, repeats=1), latencies(2, repeats=1), 0.5, rng)
    assert single[1] < single[0] < single[2]


def test_percentile_ci_widens_with_spread_between_repeats() -> None:
    rng = np.random.default_rng(0)
    steady = bootstrap.percentile_ci(latencies(1), latencies(2), 0.5, rng)
    wobbly = bootstrap.percentile_ci(latencies(1, wobble=0.1), latencies(2, wobble=0.1), 0.5, rng)
    assert wobbly[2] - wobbly[1] > 2 * (steady[2] - steady[1])


def test_repeats_ci_and_range() -> None:
    rng = np.random.default_rng(0)
    change, low, high = bootstrap.repeats_ci([100, 102, 98], [70, 71, 69], rng)
    assert change == pytest.approx(-0.3)
    assert -0.34 < low <= change <= high < -0.26
    assert bootstrap.repeats_ci([5, 5, 5], [6, 6, 6], rng) == pytest.approx((0.2, 0.2, 0.2))
    with pytest.raises(ValueError):
        bootstrap.repeats_ci([1, 2], [1, 2, 3], rng)
    assert bootstrap.range_ci([10, 20], [15]) == pytest.approx((0.0, -0.25, 0.5))


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


# --- baselines -----------------------------------------------------------------------------


def test_baseline_save_and_compare_by_name(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", {HTTP: {"latency": latencies(1)}})
    root = tmp_path / "baselines"
    result = CliRunner().invoke(
        app, ["baseline", "save", str(run), "--name", "ci", "--baselines", str(root)]
    )
    assert result.exit_code == 0, result.output
    saved = root / "ci"
    assert sorted(p.name for p in saved.iterdir()) == [
        "baseline.json",
        "meta.json",
        "samples.parquet",
        "summary.json",
    ]
    info = json.loads((saved / "baseline.json").read_text())
    assert info["source"] == str(run) and info["run_id"] == "run"
    assert resolve_run("ci", root) == saved
    assert [b["name"] for b in list_baselines(root)] == ["ci"]

    # Saving again needs --force.
    again = CliRunner().invoke(
        app, ["baseline", "save", str(run), "--name", "ci", "--baselines", str(root)]
    )
    assert again.exit_code == 2 and "--force" in again.output
    forced = CliRunner().invoke(
        app, ["baseline", "save", str(run), "-n", "ci", "--force", "--baselines", str(root)]
    )
    assert forced.exit_code == 0, forced.output

    cur = make_run(tmp_path / "cur", {HTTP: {"latency": latencies(2)}})
    result = cli("ci", str(cur), "--baselines", str(root))
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads((cur / "compare.json").read_text())["baseline"]["path"] == str(saved)


def test_baseline_save_default_name_and_size_limit(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", {HTTP: {"latency": latencies(1)}})
    saved = save_baseline(run, root=tmp_path / "b", max_raw_bytes=100)
    assert saved.path == tmp_path / "b" / "synthetic"  # the scenario's name
    assert "samples.parquet" in saved.skipped
    assert not (saved.path / "samples.parquet").exists()
    # Without samples the comparison falls back to per-repeat figures.
    cur = make_run(tmp_path / "cur", {HTTP: {"latency": latencies(2)}})
    comparison = compare_runs(load_run(saved.path), load_run(cur), parse_specs(None))
    assert {r.method for r in comparison.rows} == {"repeats"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"complete": False}, "incomplete"), ({"schema": 1}, "schema")],
)
def test_baseline_save_refuses_bad_runs(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    run = make_run(tmp_path / "run", {HTTP: {"latency": latencies(1)}}, **kwargs)
    with pytest.raises(BaselineError, match=message):
        save_baseline(run, root=tmp_path / "b")
    with pytest.raises(BaselineError, match="baseline name"):
        save_baseline(make_run(tmp_path / "ok", {HTTP: {"latency": latencies(1)}}), "../x")


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


def test_compare_md_keeps_hostile_cell_names_inert(tmp_path: Path) -> None:
    from markdown_it import MarkdownIt

    hostile = "http/`</code><img src=x onerror=alert(1)>` | x"
    base, cur = two_runs(
        tmp_path,
        {hostile: {"latency": latencies(1)}, WS: {"latency": latencies(3)}},
        {hostile: {"latency": latencies(2, scale=1.3)}, WS: {"latency": latencies(4)}},
    )
    cli(str(base), str(cur), "--max-regression", "p99:+15%")
    md = (cur / "compare.md").read_text()
    html = MarkdownIt("commonmark").enable("table").render(md)
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_compare_output_fits_the_terminal_and_keeps_every_figure(
    tmp_path: Path, columns: int
) -> None:
    from reports.gate.output import fmt_bare, fmt_change, fmt_value

    hostile = "[bold]http\x1b[2J/aiohttp/keep-alive-with-a-rather-long-name[/bold]"
    base, cur = two_runs(
        tmp_path,
        {hostile: {"latency": latencies(1)}, WS: {"latency": latencies(3)}},
        {hostile: {"latency": latencies(2, scale=1.3)}, WS: {"latency": latencies(4)}},
    )
    result = CliRunner().invoke(
        app, ["compare", str(base), str(cur), "-r", "p99:+15%"], env={"COLUMNS": str(columns)}
    )
    out = result.output
    assert result.exit_code == EXIT_REGRESSION, out
    assert max(len(line) for line in out.splitlines()) <= columns
    assert "\x1b" not in out and "[bold]http\\x1b[2J" in squash(out)
    for row in rows_of(cur):
        unit = METRICS[row["metric"]].unit
        # a wide table has the unit in every cell, the narrow ones by the metric
        fmt = fmt_value if columns >= 200 else fmt_bare
        for figure in (fmt(row["baseline"], unit), fmt(row["current"], unit)):
            assert figure in out, (row["cell"], figure)
        assert fmt_change(row["change"]) in out
    assert "regression" in out
    assert ("method" in out) and (columns < 200 or "cell" in out)
    assert columns >= 200 or "p99 ms" in out
