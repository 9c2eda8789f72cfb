"""The conformance table and JSON: one row per check, server text shown as plain text."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from loadgen.conform.runner import FAILED, PASSED, SKIPPED, CheckResult
from loadgen.conform.table import results_table, summary_line, write_json
from loadgen.conform.target import Target

TARGET = Target("http://127.0.0.1:1", "s" * 16, frozenset({"rpc"}), command=["srv", "--x"])
RESULTS = [
    CheckResult("rpc.echo", "rpc", "echo answers", PASSED),
    CheckResult("rpc.unknown_op", "rpc", "unknown op", FAILED, "HTTP 400", "200 [bold]x\x1b[2J"),
    CheckResult("ws.echo", "ws", "echo answers", SKIPPED, got="the server does not offer ws"),
    CheckResult("ws.bye", "ws", "bye", SKIPPED, got="the server does not offer ws"),
]


def render() -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(results_table(TARGET, RESULTS))
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_rows_show_each_check_and_collapse_a_transport_not_offered() -> None:
    text = render()
    assert "rtbench conform srv --x" in text
    assert "rpc.echo" in text and "rpc.unknown_op" in text
    assert "ws.*" in text and "2 checks" in text and "ws.echo" not in text


def test_what_the_server_sent_is_plain_text() -> None:
    text = render()
    assert "200 [bold]x\\x1b[2J" in text
    assert "\x1b" not in text


def test_summary_line() -> None:
    assert summary_line(RESULTS) == "1 passed, 1 failed, 2 skipped: does not conform"
    assert summary_line(RESULTS[:1]) == "1 passed, 0 failed, 0 skipped: conforms"
    assert summary_line(RESULTS[2:]).endswith(": does not conform")


def test_json_carries_a_schema_version_and_every_row(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "out.json"
    write_json(path, TARGET, RESULTS)
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == 1
    assert doc["conforms"] is False
    assert doc["target"]["command"] == ["srv", "--x"]
    assert [c["id"] for c in doc["checks"]] == [r.id for r in RESULTS]
    assert doc["checks"][1]["got"] == "200 [bold]x\x1b[2J"
