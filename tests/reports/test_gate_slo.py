"""Absolute SLOs: the scenario's ``[slo]`` table, its checks, and ``rtbench run``'s exit code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_runs import invoke_run
from rich.console import Console

from loadgen import orchestrator
from loadgen.orchestrator import RunResult
from loadgen.scenario import Scenario, ScenarioError, load_scenario, parse_scenario
from loadgen.scenario_tables import SloSettings
from reports.gate import slo

ECHO = {
    "scenario": {"name": "slo-test", "repeats": 1},
    "cells": [{"transport": "http", "client": "aiohttp"}],
}
REALTIME = {
    "scenario": {"name": "rt", "workload": "messaging"},
    "realtime": {"users": 4, "message_rate": 1.0},
    "cells": [{"transport": "ws-aiohttp", "client": "aiohttp"}],
}


def squash(text: str) -> str:
    return "".join(text.split())


def cell(name: str = "http/aiohttp/keep-alive", **over: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "cell": name,
        "status": "ok",
        "count": 1000,
        "errors": 0,
        "throughput_rps": 400.0,
        "latency_ms": {"p50": 0.3, "p90": 0.5, "p99": 1.2, "p99.9": 3.0, "max": 4.0},
    }
    return entry | over


def summary(*cells: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": 2,
        "run_id": "r",
        "scenario": "slo-test",
        "complete": True,
        "cells": list(cells),
    }


# --- the [slo] table -----------------------------------------------------------------------


def test_slo_table_is_optional_and_parsed() -> None:
    assert parse_scenario(ECHO).slo is None
    spec = parse_scenario(ECHO | {"slo": {"p99_ms": 50, "errors": 0, "min_throughput_rps": 100}})
    assert spec.slo is not None
    assert spec.slo.limits() == {"p99_ms": 50.0, "errors": 0, "min_throughput_rps": 100.0}
    rt = parse_scenario(REALTIME | {"slo": {"lost": 0, "delivery_p99_ms": 800}})
    assert rt.slo is not None and rt.slo.limits() == {"delivery_p99_ms": 800.0, "lost": 0}


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"p99": 50}, ["slo.p99", "unknown key"]),
        ({"p99_ms": 0}, ["slo.p99_ms", "greater than 0"]),
        ({"lost": -1}, ["slo.lost"]),
        ({"errors": 0.5}, ["slo.errors", "integer"]),
        ({"p99_ms": "50"}, ["slo.p99_ms"]),
        ({}, ["empty [slo]"]),
        ({"lost": 0}, ["[slo] lost", "real-time"]),
        ({"delivery_p99_ms": 100}, ["delivery_p99_ms", "real-time"]),
    ],
)
def test_bad_slo_table_is_refused(table: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(ECHO | {"slo": table})
    for word in words:
        assert word in str(exc.value)


def test_slo_in_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        '[scenario]\nname = "x"\n\n[[cells]]\ntransport = "http"\nclient = "aiohttp"\n\n'
        "[slo]\np99_ms = 25\nerrors = 0\n"
    )
    spec = load_scenario(path)
    assert spec.slo == SloSettings(p99_ms=25.0, errors=0)


def test_rules_cover_every_key() -> None:
    assert set(slo.RULES) == set(SloSettings.model_fields)


# --- checks --------------------------------------------------------------------------------


def test_checks_pass_and_fail() -> None:
    limits = SloSettings(p99_ms=2.0, errors=0, min_throughput_rps=300)
    ok = slo.check_slo(limits, summary(cell(), cell("ws", throughput_rps=350.0)))
    assert len(ok) == 6 and all(c.ok for c in ok)
    assert slo.exit_code(ok) == slo.EXIT_OK

    bad = slo.check_slo(
        limits,
        summary(
            cell(),
            cell("slow", latency_ms={"p99": 2.5}),
            cell("errs", errors=3),
            cell("idle", throughput_rps=120.0),
        ),
    )
    assert slo.exit_code(bad) == slo.EXIT_VIOLATED
    assert {(c.cell, c.key, c.value) for c in slo.violations(bad)} == {
        ("slow", "p99_ms", 2.5),
        ("errs", "errors", 3.0),
        ("idle", "min_throughput_rps", 120.0),
    }


def test_limit_is_inclusive() -> None:
    checks = slo.check_slo(SloSettings(p99_ms=1.2, min_throughput_rps=400), summary(cell()))
    assert all(c.ok for c in checks)


def test_missing_figure_violates() -> None:
    """A cell whose repeats all failed has no latency: that fails, it never passes."""
    empty = cell("dead", count=0, latency_ms={"p50": None, "p99": None}, throughput_rps=0.0)
    checks = slo.check_slo(SloSettings(p99_ms=50), summary(empty))
    assert [c.ok for c in checks] == [False]
    assert checks[0].value is None


def test_realtime_checks() -> None:
    rt = cell(
        "ws-aiohttp/aiohttp/persistent",
        deliveries={"expected": 10, "delivered": 9, "lost": 1},
        delivery_latency_ms={"p50": 5.0, "p99": 40.0},
    )
    checks = slo.check_slo(SloSettings(lost=0, delivery_p99_ms=50), summary(rt))
    assert {c.key: c.ok for c in checks} == {"delivery_p99_ms": True, "lost": False}


def test_table_and_file(tmp_path: Path) -> None:
    checks = slo.check_slo(
        SloSettings(p99_ms=1.0), summary(cell(), cell("fast", latency_ms={"p99": 0.5}))
    )
    console = Console(record=True, width=120)
    slo.print_slo(checks, console)
    text = console.export_text()
    assert "VIOLATED" in text and "http/aiohttp/keep-alive" in text and "1.2 ms" in text
    assert "SLO violated: 1 of 2 checks" in text
    path = slo.write_slo(tmp_path, checks)
    doc = json.loads(path.read_text())
    assert doc["ok"] is False and doc["violations"] == 1
    assert {c["cell"]: c["ok"] for c in doc["checks"]} == {
        "http/aiohttp/keep-alive": False,
        "fast": True,
    }


# --- rtbench run's exit code ---------------------------------------------------------------


def _fake_run(
    monkeypatch: pytest.MonkeyPatch, cells: list[dict[str, Any]], complete: bool = True
) -> list[Path]:
    written: list[Path] = []

    def fake(spec: Scenario, path: Path, out: Path | None, console: Any, **kw: Any) -> RunResult:
        assert out is not None
        out.mkdir(parents=True, exist_ok=True)
        written.append(out)
        return RunResult(out, complete, summary(*cells) | {"complete": complete}, {})

    monkeypatch.setattr(orchestrator, "run_scenario", fake)
    return written


def _scenario(tmp_path: Path, table: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(
        '[scenario]\nname = "x"\nrepeats = 1\n\n[[cells]]\ntransport = "http"\n'
        f'client = "aiohttp"\n\n[slo]\n{table}\n'
    )
    return path


def test_run_exits_0_when_slo_met(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_run(monkeypatch, [cell()])
    result = invoke_run(_scenario(tmp_path, "p99_ms = 5\nerrors = 0"), tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "SLO met: 2 checks" in result.output
    assert json.loads((tmp_path / "out" / "slo.json").read_text())["ok"] is True


def test_run_exits_1_when_slo_violated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_run(monkeypatch, [cell(), cell("ws", latency_ms={"p99": 9.0})])
    result = invoke_run(_scenario(tmp_path, "p99_ms = 5"), tmp_path / "out")
    assert result.exit_code == 1, result.output
    text = squash(result.output)
    for word in ("ws", "p99_ms", "9ms", "≤5ms", "VIOLATED", "SLOviolated:1of2checks"):
        assert squash(word) in text
    assert json.loads((tmp_path / "out" / "slo.json").read_text())["violations"] == 1


def test_interrupted_run_skips_slo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_run(monkeypatch, [cell()], complete=False)
    result = invoke_run(_scenario(tmp_path, "p99_ms = 0.001"), tmp_path / "out")
    assert result.exit_code == 130
    assert not (tmp_path / "out" / "slo.json").exists()


def test_run_without_slo_writes_no_slo_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_run(monkeypatch, [cell(latency_ms={"p99": 1e6})])
    path = tmp_path / "s.toml"
    path.write_text('[scenario]\nname = "x"\n\n[[cells]]\ntransport = "http"\nclient = "aiohttp"\n')
    result = invoke_run(path, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "out" / "slo.json").exists()


def test_bad_slo_exits_2_before_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran = _fake_run(monkeypatch, [cell()])
    result = invoke_run(_scenario(tmp_path, "p99 = 5"), tmp_path / "out")
    assert result.exit_code == 2
    assert "slo.p99" in result.output and not ran


def test_table_fits_80_columns_with_a_hostile_cell_name() -> None:
    hostile = "[red]cell\x1b[2J/with/a/very/long/name/that/keeps/going/and/going[/red]"
    checks = slo.check_slo(SloSettings(p99_ms=1.0), summary(cell(hostile), cell("fast")))
    console = Console(record=True, width=80)
    slo.print_slo(checks, console)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "\x1b" not in text and "[red]cell\\x1b" in text
    assert "VIOLATED" in text and "1.2 ms" in text and "≤ 1 ms" in text
