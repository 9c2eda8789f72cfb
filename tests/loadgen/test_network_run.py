"""Runs over emulated links: [network] profiles, the relay or the kernel link, refusals.

The kernel-link runs need root and iproute2 (``.ci/run`` runs as root); they
create and delete real ``rtbench-`` namespaces and skip, with the reason, where
namespaces or tbf cannot be used.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from cli_runs import invoke_run, run_toml
from scenario_toml import Cell, cell_table, one_repeat_toml

from loadgen.cellspec import CellRun
from loadgen.link.kernel import SERVER_ADDR
from loadgen.link.namespaces import NS_PREFIX, list_namespaces
from loadgen.link.probe import KernelSupport, kernel_support, probe_kernel
from loadgen.scenario import ScenarioError, parse_scenario
from loadgen.targets import check_target
from loadgen.worker import main as worker_main

pytestmark = pytest.mark.timeout(120)


def _scenario(
    profiles: list[Any],
    link: str,
    *more_cells: Cell,
    name: str = "net",
    duration_s: float = 0.6,
) -> str:
    """Two cells (and ``more_cells``) at 20 requests/s over ``profiles`` on ``link``."""
    cells = ("http/aiohttp/new-connection", "ws-aiohttp/aiohttp", *more_cells)
    network = {"profiles": profiles, "link": link}
    return one_repeat_toml(name, 20, *cells, duration_s=duration_s, network=network)


def _run(tmp_path: Path, profiles: list[Any], link: str = "auto") -> tuple[int, str, Path]:
    result, out = run_toml(tmp_path, "net", _scenario(profiles, link))
    return result.exit_code, result.output, out


def test_cells_run_over_each_profile_through_the_relay(tmp_path: Path) -> None:
    code, output, out = _run(tmp_path, ["loopback", {"name": "rtt40", "rtt_ms": 40}])
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
    network = meta["network"]
    assert network["reason"]
    assert network["relay_overhead"]["added_p50_us"] >= 0
    assert network["profiles"]["loopback"]["link"] == "none"
    # rtt40 needs netem: the kernel link where it works, else the relay, saying why.
    rtt40 = network["profiles"]["rtt40"]
    support = KernelSupport(**network["kernel_support"])
    if support.namespaces and support.netem:
        assert rtt40["link"] == network["link"] == "kernel"
    else:
        assert rtt40["link"] == network["link"] == "userspace"
        assert "using the userspace relay" in rtt40["reason"]
        if support.namespaces:
            assert "needs tc netem (delay_ms = 20)" in rtt40["reason"]


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
    code, output, out = _run(tmp_path, ["wan"], link="kernel")
    assert code == 2
    assert "kernel" in output
    assert not out.exists()
    if not available:
        assert "cannot be honoured" in output


# -- the load generator's targets ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "inside", "allowed"),
    [
        ("http://127.0.0.1:8080", False, True),
        ("https://[::1]:8080", False, True),
        ("https://localhost:8080", False, True),
        (f"https://{SERVER_ADDR}:8080", True, True),
        (f"http://{SERVER_ADDR}:8080", False, False),
        ("http://10.77.0.9:8080", True, False),
        ("http://192.0.2.1:8080", True, False),
        ("http://example.com", True, False),
        ("not a url", True, False),
    ],
)
def test_load_generator_targets(url: str, inside: bool, allowed: bool) -> None:
    refusal = check_target(url, lambda: inside)
    assert (refusal is None) is allowed
    if not allowed:
        assert "refusing non-loopback target" in refusal


def test_load_generator_refuses_the_link_address_outside_its_namespace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = CellRun("c", "http", "aiohttp", "keep-alive", f"http://{SERVER_ADDR}:9")
    path = tmp_path / "spec.json"
    path.write_bytes(orjson.dumps(spec.to_dict()))
    assert worker_main([str(path), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "refusing non-loopback target" in err and "inside a network namespace" in err
    assert not (tmp_path / "out.json").exists()


def test_locust_load_generator_refuses_the_link_address_outside_its_namespace(
    tmp_path: Path,
) -> None:
    spec = CellRun("c", "http", "aiohttp", "keep-alive", f"http://{SERVER_ADDR}:9")
    path = tmp_path / "spec.json"
    path.write_bytes(orjson.dumps(spec.to_dict()))
    done = subprocess.run(
        [sys.executable, "-m", "loadgen.locust_engine.worker", str(path), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "refusing non-loopback target" in done.stderr
    assert not (tmp_path / "out.json").exists()


# -- real runs over the kernel link (root, iproute2, namespaces, tbf) ----------------------

RATE_ONLY = [{"name": "tbf8", "rate_mbit": 8}]
RTBENCH_RUN = [sys.executable, "-m", "loadgen.cli", "run"]


@pytest.fixture(scope="module")
def kernel_here() -> KernelSupport:
    """What the kernel link can do here; skips unless namespaces and tbf work."""
    if not (hasattr(os, "geteuid") and os.geteuid() == 0):
        pytest.skip("the kernel link needs root")
    if not (shutil.which("ip") and shutil.which("tc")):
        pytest.skip("the kernel link needs iproute2 (ip, tc): apt-get install iproute2")
    support = probe_kernel()
    if not support.namespaces:
        pytest.skip(f"network namespaces cannot be created here: {support.namespaces_reason}")
    if not support.tbf:
        pytest.skip(f"tc tbf cannot be used here: {support.tbf_reason}")
    return support


def _ours(pid: int) -> list[str]:
    return [n for n in list_namespaces() if n.startswith(f"{NS_PREFIX}{pid}-")]


def _write_kernel_scenario(
    tmp_path: Path, profiles: list[Any], link: str, duration: float = 0.6
) -> Path:
    # The same two cells plus a TLS one; placement is split by default.
    tls_cell = cell_table("ws-aiohttp/aiohttp", tls=True)
    path = tmp_path / "knet.toml"
    path.write_text(_scenario(profiles, link, tls_cell, name="knet", duration_s=duration))
    return path


def test_kernel_link_run_with_a_rate_only_profile(
    tmp_path: Path, kernel_here: KernelSupport
) -> None:
    path = _write_kernel_scenario(tmp_path, RATE_ONLY, "kernel")
    out = tmp_path / "out"
    # A namespace left by a killed run (its owner pid cannot exist) is removed first.
    stale = f"{NS_PREFIX}4194305-dead-c"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    result = invoke_run(path, out)
    assert result.exit_code == 0, result.output
    assert stale not in list_namespaces()
    meta_network = json.loads((out / "meta.json").read_text())["network"]
    assert meta_network["stale_namespaces_removed"] == [stale]
    cells = {c["cell"]: c for c in json.loads((out / "summary.json").read_text())["cells"]}
    assert set(cells) == {
        "http/aiohttp/new-connection~tbf8",
        "ws-aiohttp/aiohttp/persistent~tbf8",
        "ws-aiohttp/aiohttp/persistent+tls~tbf8",
    }
    for cell in cells.values():
        assert cell["status"] == "ok" and cell["errors"] == 0 and cell["count"] > 0, cell
    network = json.loads((out / "meta.json").read_text())["network"]
    assert network["link"] == "kernel" and network["requested"] == "kernel"
    assert network["profiles"]["tbf8"]["link"] == "kernel"
    assert "tbf" in network["profiles"]["tbf8"]["reason"]
    assert network["relay_overhead"] is None  # no profile went through the relay
    records = [json.loads(p.read_text()) for p in sorted((out / "parts").glob("*.record.json"))]
    assert len(records) == 3
    namespaces = set()
    for record in records:
        assert "failed" not in record, record["failed"]
        link = record["link"]
        assert link["mode"] == "kernel" and link["removed"] is True
        assert link["server_addr"] == SERVER_ADDR
        assert link["server_pid_in_place"] is True  # ip netns exec ran the server in place
        assert link["server_in_namespace"] is True and link["client_in_namespace"] is True
        assert record["spec"]["base_url"].split("://")[1].startswith(f"{SERVER_ADDR}:")
        # Pinning still applies through ip netns exec, and is read back.
        procs = record["procs"]
        if procs["server_cpus"] is not None:
            assert link["server_cpus"] == procs["server_cpus"]
            assert link["client_cpus"] == procs["client_cpus"]
        namespaces |= set(link["namespaces"].values())
    assert len(namespaces) == 6  # a fresh pair per repeat
    tls = next(r for r in records if "+tls" in r["cell"])
    assert tls["spec"]["base_url"].startswith(f"https://{SERVER_ADDR}:")
    left = set(list_namespaces())
    assert not namespaces & left and _ours(os.getpid()) == []


def test_kernel_request_with_a_delay_profile_is_refused_here(
    tmp_path: Path, kernel_here: KernelSupport
) -> None:
    if kernel_here.netem:
        pytest.skip("this kernel has netem: a delay profile can use the kernel link")
    path = _write_kernel_scenario(tmp_path, ["wan", *RATE_ONLY], "kernel")
    out = tmp_path / "out"
    result = invoke_run(path, out)
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "cannot be honoured here: profile 'wan' needs tc netem (delay_ms = 25)" in text
    assert not out.exists()  # refused before anything ran or was written
    assert _ours(os.getpid()) == []


def test_sigterm_during_a_kernel_link_run_removes_the_namespaces(
    tmp_path: Path, kernel_here: KernelSupport
) -> None:
    path = _write_kernel_scenario(tmp_path, RATE_ONLY, "kernel", duration=20)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*RTBENCH_RUN, str(path), "--out", str(out), "--no-report", "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while len(_ours(proc.pid)) < 2 or not list((out / "logs").glob("*-loadgen.log")):
            assert proc.poll() is None, "rtbench exited before its first repeat ran"
            assert time.monotonic() < deadline, "no kernel link within 30 s"
            time.sleep(0.05)
        time.sleep(0.5)  # the load generator is running inside the client namespace
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err.decode(errors="replace")
    assert _ours(proc.pid) == []
