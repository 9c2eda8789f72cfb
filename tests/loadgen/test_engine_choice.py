"""`rtbench run --engine locust --workers N` runs through the orchestrator like asyncio."""

from __future__ import annotations

import json
from pathlib import Path

from cli_runs import invoke_run
from scenario_toml import cells_toml
from typer.testing import CliRunner

from loadgen.cli import app

SCENARIO = """
[scenario]
name = "engines"
repeats = 1
duration_s = 1
warmup_s = 0.3

[load]
model = "closed"
connections = 2

""" + cells_toml("http/aiohttp/keep-alive", "ws-aiohttp/aiohttp")


def test_locust_engine_with_two_workers(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO)
    out = tmp_path / "out"
    result = invoke_run(path, out, "--engine", "locust", "--workers", "2")
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "meta.json").read_text())
    assert (meta["engine"], meta["locust_workers"]) == ("locust", 2)
    for cell in json.loads((out / "summary.json").read_text())["cells"]:
        assert cell["count"] > 0 and cell["errors"] == 0
        assert cell["latency_ms"]["p50"] > 0


def test_workers_need_the_locust_engine(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO)
    result = CliRunner().invoke(app, ["run", str(path), "--workers", "2"])
    assert result.exit_code == 2
    assert "--engine locust" in result.output


def test_lean_cells_are_refused_by_the_locust_engine(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.replace('client = "aiohttp"\nconn_mode', 'client = "lean"\nconn_mode'))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--engine", "locust"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "http/lean/keep-alive" in text and "asyncio engine only" in text
    assert not out.exists()  # refused before anything ran or was written
