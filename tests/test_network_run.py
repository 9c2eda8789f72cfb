"""Runs over emulated links: [network] profiles, the relay in the path, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadgen.cli import app
from loadgen.link.kernel import kernel_support
from loadgen.scenario import ScenarioError, parse_scenario

SCENARIO = """
[scenario]
name = "net"
repeats = 1
duration_s = 0.6
warmup_s = 0.2

[load]
model = "open"
rate = 20
connections = 2

[network]
profiles = {profiles}
link = "{link}"

[[cells]]
transport = "http"
client = "aiohttp"
conn_mode = "new-connection"

[[cells]]
transport = "ws-aiohttp"
client = "aiohttp"
"""


def _run(tmp_path: Path, profiles: str, link: str = "auto") -> tuple[int, str, Path]:
    path = tmp_path / "net.toml"
    path.write_text(SCENARIO.format(profiles=profiles, link=link))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["run", str(path), "--out", str(out), "--no-report", "--no-progress"]
    )
    return result.exit_code, result.output, out


def test_cells_run_over_each_profile_through_the_relay(tmp_path: Path) -> None:
    code, output, out = _run(tmp_path, '["loopback", {name = "rtt40", rtt_ms = 40}]')
    assert code == 0, output
    cells = {c["cell"]: c for c in json.loads((out / "summary.json").read_text())["cells"]}
    assert set(cells) == {
        "http/aiohttp/new-connection~loopback",
        "ws-aiohttp/aiohttp/persistent~loopback",
        "http/aiohttp/new-connection~rtt40",
        "ws-aiohttp/aiohttp/persistent~rtt40",
    }
    for cell in cells.values():
        assert cell["errors"] == 0 and cell["count"] > 0
    # Every request over the emulated link takes at least one round trip; a new
    # connection also pays the handshake round trip.
    assert cells["ws-aiohttp/aiohttp/persistent~rtt40"]["latency_ms"]["p50"] >= 40
    assert cells["http/aiohttp/new-connection~rtt40"]["latency_ms"]["p50"] >= 80
    assert cells["ws-aiohttp/aiohttp/persistent~rtt40"]["rtt_ms"] == 40
    meta = json.loads((out / "meta.json").read_text())
    assert meta["network"]["link"] == "userspace"
    assert meta["network"]["reason"]
    assert meta["network"]["relay_overhead"]["added_p50_us"] >= 0


def test_unknown_profile_is_a_scenario_error() -> None:
    with pytest.raises(ScenarioError, match="unknown link profile preset 'lann'"):
        parse_scenario(
            {
                "scenario": {"name": "x"},
                "network": {"profiles": ["lann"]},
                "cells": [{"transport": "http", "client": "aiohttp"}],
            }
        )


def test_kernel_link_request_is_refused_when_unavailable(tmp_path: Path) -> None:
    available, _ = kernel_support()
    code, output, out = _run(tmp_path, '["wan"]', link="kernel")
    assert code == 2
    assert "kernel" in output
    assert not out.exists()
    if not available:
        assert "cannot be honoured" in output
