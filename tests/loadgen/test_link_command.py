"""The relay as a process: the argv that starts it and the ready line it prints."""

from __future__ import annotations

import json
import sys

import pytest

from loadgen.link.command import format_link_ready_line, parse_link_ready_line, relay_command
from loadgen.link.profiles import resolve_profile
from loadgen.link.relay import LinkUnsupported


def test_ready_line_round_trips() -> None:
    line = format_link_ready_line({"profile": {"name": "wan"}, "port": 4321, "pid": 1})
    assert line.startswith('RTBENCH-LINK-READY {"port": 4321, "profile"')
    assert parse_link_ready_line(line + "\n") == {
        "port": 4321,
        "profile": {"name": "wan"},
        "pid": 1,
    }
    for bad in (
        "RTBENCH-LINK-READY",
        "RTBENCH-LINK-READY {",
        'RTBENCH-LINK-READY {"port": "1", "profile": {}}',
        'RTBENCH-LINK-READY {"port": 1}',
        'RTBENCH-READY {"port": 1, "profile": {}}',
    ):
        assert parse_link_ready_line(bad) is None


def test_relay_command_runs_the_link_package_with_the_resolved_profile() -> None:
    argv = relay_command({"preset": "lan", "rtt_ms": 20}, 8080, extra=["--seed", "1"])
    assert argv[:4] == [sys.executable, "-m", "loadgen.link", "relay"]
    sent = json.loads(argv[argv.index("--profile") + 1])
    assert resolve_profile(sent) == resolve_profile({"preset": "lan", "rtt_ms": 20})
    assert sent["name"] == "lan-custom" and sent["rtt_ms"] == 20
    assert argv[argv.index("--target") + 1] == "127.0.0.1:8080"
    assert argv[-2:] == ["--seed", "1"]
    assert relay_command("wan", 8080, python="/opt/py")[0] == "/opt/py"


def test_relay_command_refuses_what_the_relay_would_refuse() -> None:
    with pytest.raises(LinkUnsupported, match="loopback"):
        relay_command("wan", 8080, target_host="10.0.0.1")
    with pytest.raises(LinkUnsupported, match="packet loss"):
        relay_command({"rtt_ms": 10, "loss_pct": 2}, 8080)
