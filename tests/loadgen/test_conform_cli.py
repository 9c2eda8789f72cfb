"""``rtbench conform``: exit 0 when a server conforms, 1 when it does not, 2 when it cannot
be checked; the table, the summary line and the JSON say which check and why."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadgen.cli import app
from loadgen.conform.command import is_url, read_secret
from loadgen.conform.target import TargetError

PY = sys.executable

#: A server that answers an unknown op with 200: wrong status code.
BROKEN = """\
import sys
from servers import protocol
protocol.UnknownOp.http_status = 200
from servers.__main__ import main
sys.exit(main(["http", "--port", "0"]))
"""


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["conform", *args])
    return result.exit_code, result.output


def test_a_shipped_server_conforms(tmp_path: Path) -> None:
    out = tmp_path / "conform.json"
    code, output = invoke("--no-progress", "--json", str(out), "--", PY, "-m", "servers", "http")
    assert code == 0, output
    assert "0 failed" in output and "conforms" in output
    doc = json.loads(out.read_text())
    assert doc["schema_version"] == 1 and doc["conforms"] is True
    assert doc["target"]["offers"] == ["rpc", "sse"]
    assert {c["status"] for c in doc["checks"]} == {"passed", "skipped"}


def test_a_broken_server_fails_naming_the_check(tmp_path: Path) -> None:
    script = tmp_path / "broken.py"
    script.write_text(BROKEN)
    out = tmp_path / "conform.json"
    code, output = invoke(
        "--no-progress",
        "--only",
        "rpc.unknown_op",
        "--only",
        "rpc.echo",
        "--json",
        str(out),
        "--",
        PY,
        str(script),
    )
    assert code == 1, output
    assert "does not conform" in output
    rows = {c["id"]: c for c in json.loads(out.read_text())["checks"]}
    assert rows["rpc.echo"]["status"] == "passed"
    assert rows["rpc.unknown_op"]["status"] == "failed"
    assert "HTTP 400" in rows["rpc.unknown_op"]["expected"]
    assert rows["rpc.unknown_op"]["got"].startswith("200 ")


def test_a_url_that_is_not_loopback_is_refused() -> None:
    code, output = invoke("http://192.0.2.1:80")
    assert code == 2
    assert "not a loopback address" in output


def test_no_matching_check_is_an_error() -> None:
    code, output = invoke("--only", "nope.*", "--", PY, "-m", "servers", "http")
    assert code == 2
    assert "no check matches --only" in output


def test_urls_and_commands_are_told_apart() -> None:
    assert is_url(["http://127.0.0.1:1"])
    assert not is_url(["python", "-m", "servers", "http"])
    assert not is_url(["http://127.0.0.1:1", "extra"])


def test_the_secret_comes_from_its_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("  0123456789abcdef0123  \n")
    assert read_secret(secret) == "0123456789abcdef0123"
    monkeypatch.setenv("RTBENCH_SIGNIN_SECRET", "from-the-environment-1234")
    assert read_secret(None) == "from-the-environment-1234"
    with pytest.raises(TargetError, match="cannot read the secret file"):
        read_secret(tmp_path / "missing")
    secret.write_text("short")
    with pytest.raises(TargetError, match="at least 16 characters"):
        read_secret(secret)
