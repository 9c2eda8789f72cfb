"""The claim matrix: one run over every condition the "3x" verdict is asked for."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

from scenario_toml import toml_text
from typer.testing import CliRunner

from loadgen.cli import app
from loadgen.scenario import load_scenario, parse_scenario, read_scenario_dict

REPO = Path(__file__).resolve().parents[2]
MATRIX = REPO / "scenarios" / "claim-matrix.toml"
QUICK = REPO / "scenarios" / "claim-matrix-quick.toml"


def _conditions(path: Path) -> set[tuple[object, ...]]:
    return {
        (
            rc.settings.scenario.workload,
            rc.cell.delivery_mode,
            rc.cell.conn_mode,
            rc.cell.tls,
            rc.profile.name,
            rc.cell.server,
            rc.cell.http_version,
        )
        for rc in load_scenario(path).run_cells()
    }


def test_matrix_covers_every_condition_in_one_run() -> None:
    got = _conditions(MATRIX)
    profiles = ("loopback", "lan", "wan", "mobile")
    want = set()
    for tls, profile in itertools.product((False, True), profiles):
        for mode in ("keep-alive", "new-connection"):
            want.add(("echo", "request", mode, tls, profile, None, "1.1"))
            # hypercorn: HTTP/1.1, HTTP/2 and (over TLS only: QUIC) HTTP/3 against
            # WebSocket on the same server.
            for version in ("1.1", "2", "3") if tls else ("1.1", "2"):
                want.add(("echo", "request", mode, tls, profile, "hypercorn", version))
        want.add(("echo", "request", "persistent", tls, profile, None, "1.1"))
        want.add(("echo", "request", "persistent", tls, profile, "hypercorn", "1.1"))
        for workload in ("messaging", "notifications"):
            want |= {
                (workload, "short-poll", "keep-alive", tls, profile, None, "1.1"),
                (workload, "long-poll", "keep-alive", tls, profile, None, "1.1"),
                (workload, "long-poll", "new-connection", tls, profile, None, "1.1"),
                (workload, "sse", "keep-alive", tls, profile, None, "1.1"),
                (workload, "push", "persistent", tls, profile, None, "1.1"),
            }
    assert got == want


def test_quick_matrix_is_the_same_matrix_on_fewer_links() -> None:
    quick = _conditions(QUICK)
    assert {c[4] for c in quick} == {"loopback", "wan"}
    assert quick == {c for c in _conditions(MATRIX) if c[4] in ("loopback", "wan")}


def test_every_http_cell_has_a_websocket_partner_in_its_condition() -> None:
    # A verdict needs both sides measured under the same workload, TLS and link.
    cells = load_scenario(MATRIX).run_cells()
    ws = {(rc.part, rc.cell.tls, rc.profile.name) for rc in cells if rc.cell.family == "ws"}
    for rc in cells:
        assert (rc.part, rc.cell.tls, rc.profile.name) in ws, rc.id


def test_trimmed_matrix_runs_and_reports_a_verdict_per_part(tmp_path: Path) -> None:
    data = read_scenario_dict(QUICK)
    data["scenario"] |= {"repeats": 1, "duration_s": 0.8, "warmup_s": 0.2}
    data["network"]["profiles"] = [{"name": "rtt20", "rtt_ms": 20}]
    keep = {
        "echo": lambda c: c.get("tls") and c.get("conn_mode") != "keep-alive",
        "messaging": lambda c: not c.get("tls") and c.get("delivery") in (None, "long-poll"),
        # HTTP/2 by ALPN over TLS and HTTP/3 over QUIC (through the relay's UDP side),
        # a connection per request, against WebSocket on hypercorn.
        "echo-http-versions": lambda c: (
            c.get("tls")
            and (c["transport"] == "ws-hypercorn" or c.get("http_version") in ("2", "3"))
            and c.get("conn_mode") != "keep-alive"
        ),
    }
    data["parts"] = [
        p | {"cells": [c for c in p["cells"] if keep[p["name"]](c)]}
        for p in data["parts"]
        if p["name"] in keep
    ]
    for part in data["parts"]:
        if part.get("realtime"):
            part["realtime"] |= {"drain_s": 1.0}
    parse_scenario(data)  # the trimmed file is still valid
    path = tmp_path / "trimmed.toml"
    path.write_text(toml_text(data))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    with (out / "verdict.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["metric"] == "p50"]
    assert {r["part"] for r in rows} == {"echo", "echo-http-versions", "messaging"}
    by_workload = {r["workload"]: r for r in rows if r["part"] != "echo-http-versions"}
    assert by_workload["echo"]["http_cell"] == "echo:http/lean/new-connection+tls~rtt20"
    versions = {r["mode"]: r for r in rows if r["part"] == "echo-http-versions"}
    assert set(versions) == {"new-connection over HTTP/2", "new-connection over HTTP/3"}
    for version in "23":
        row = versions[f"new-connection over HTTP/{version}"]
        assert row["http_cell"] == (
            f"echo-http-versions:http-hypercorn/lean/new-connection+h{version}+tls~rtt20"
        )
        assert row["ws_cell"] == "echo-http-versions:ws-hypercorn/lean/persistent+tls~rtt20"
    assert by_workload["messaging"]["ws_cell"] == "messaging:ws-aiohttp/lean/persistent~rtt20"
    for row in rows:
        assert row["verdict"] in ("holds", "refuted", "inconclusive")
        assert float(row["ratio"]) > 0
