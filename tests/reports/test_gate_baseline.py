"""``rtbench baseline save`` and comparing against a saved baseline by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from gate_runs import HTTP, cli, latencies, make_run
from typer.testing import CliRunner

from loadgen.cli import app
from reports.gate.baseline import BaselineError, list_baselines, resolve_run, save_baseline
from reports.gate.compare import compare_runs
from reports.gate.errors import EXIT_OK
from reports.gate.limits import parse_specs
from reports.gate.runs import load_run


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
