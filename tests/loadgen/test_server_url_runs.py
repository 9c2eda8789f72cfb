"""Cells on a server that is already running (``server_url``): a whole ``rtbench run``
against ``python -m servers http`` started by the test, and the errors that stop a run
before it starts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import psutil
import pytest
from cli_runs import invoke_run
from serving import TEST_SECRET
from typer.testing import CliRunner

from loadgen.cli import app
from loadgen.procs import Child, start_server, stop_process
from loadgen.schema import META_FILE, SUMMARY_FILE
from servers.realtime.credentials import SECRET_ENV

RUN = """\
[scenario]
name = "running-server"
repeats = 1
duration_s = 1.0
warmup_s = 0.2

[[parts]]
name = "echo"
workload = "echo"

[parts.load]
model = "open"
rate = 100
connections = 2

[[parts.cells]]
transport = "http"
client = "lean"

[[parts.cells]]
transport = "http"
client = "lean"
server_url = "URL"

[[parts]]
name = "messaging"
workload = "messaging"

[parts.realtime]
users = 4
group_size = 2
message_rate = 2.0
long_poll_timeout_ms = 1000
drain_s = 1

[[parts.cells]]
transport = "http"
client = "lean"
delivery = "long-poll"
server_url = "URL"
"""


@pytest.fixture
def running_server(tmp_path: Path) -> Iterator[Child]:
    """``python -m servers http`` on 127.0.0.1, port 0, signing users in with TEST_SECRET."""
    server = start_server("http", None, tmp_path / "server.log", 1 << 20, signin_secret=TEST_SECRET)
    try:
        yield server
    finally:
        stop_process(server)


def scenario(tmp_path: Path, text: str, url: str) -> Path:
    path = tmp_path / "running.toml"
    path.write_text(text.replace("URL", url))
    return path


@pytest.mark.e2e
def test_a_run_on_a_running_server_measures_it_by_its_port(
    tmp_path: Path, running_server: Child, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{running_server.info['port']}"
    pid = running_server.proc.pid
    name = psutil.Process(pid).name()
    secret = tmp_path / "secret"
    secret.write_text(TEST_SECRET + "\n")
    # The secret comes from the file, not from the environment every test has.
    monkeypatch.delenv(SECRET_ENV)
    out = tmp_path / "out"
    result = invoke_run(scenario(tmp_path, RUN, url), out, "--secret-file", str(secret))
    assert result.exit_code == 0, result.output
    # rtbench left it running.
    assert running_server.proc.poll() is None
    cells = {c["cell"]: c for c in orjson.loads((out / SUMMARY_FILE).read_bytes())["cells"]}
    assert set(cells) == {
        "echo:http/lean/keep-alive",
        f"echo:http@{name}/lean/keep-alive",
        f"messaging:http@{name}/lean/keep-alive/long-poll",
    }
    for cell_id, cell in cells.items():
        assert cell["status"] == "ok" and not cell["failures"], (cell_id, cell["failures"])
        assert cell["count"] > 0
    own = cells["echo:http/lean/keep-alive"]
    assert own["server"] is None and own["server_url"] is None and "server_process" not in own
    for cell_id in (
        f"echo:http@{name}/lean/keep-alive",
        f"messaging:http@{name}/lean/keep-alive/long-poll",
    ):
        cell = cells[cell_id]
        assert (cell["server"], cell["server_url"]) == (name, url)
        # Found by its port, and measured as a server rtbench starts is.
        assert cell["cpu_util"]["server"] is not None and cell["cpu_util"]["server"] > 0
        assert cell["rss_mb"]["server"] > 0
        process = cell["server_process"]
        assert (process["pid"], process["name"]) == (pid, name)
        assert process["started_by_rtbench"] is False and process["pinned_by_rtbench"] is False
        assert process["cpus"] == sorted(psutil.Process(pid).cpu_affinity() or [])
        (repeat,) = process["by_repeat"]
        before, after = repeat["before"], repeat["after"]
        assert after["cpu_s"] > before["cpu_s"] and before["rss_mb"] > 0
        assert before["open_files"] > 0 and after["open_files"] > 0
    messaging = cells[f"messaging:http@{name}/lean/keep-alive/long-poll"]
    counts = messaging["deliveries"]
    assert counts["expected"] > 0 and counts["delivered"] == counts["expected"]
    assert counts["lost"] == 0 and counts["duplicated"] == 0
    meta = orjson.loads((out / META_FILE).read_bytes())
    record = meta["running_servers"][url]
    assert (record["pid"], record["name"], record["pinned_by_rtbench"]) == (pid, name, False)
    assert "not controlled by rtbench" in record["placement"]


def test_a_server_url_with_nothing_listening_stops_the_run_before_it_starts(
    tmp_path: Path, dead_base_url: str
) -> None:
    text = RUN.split('[[parts]]\nname = "messaging"')[0]
    out = tmp_path / "out"
    result = invoke_run(scenario(tmp_path, text, dead_base_url), out)
    assert result.exit_code == 2, result.output
    where = dead_base_url.removeprefix("http://")
    assert f"nothing listening on {where}: start your server or fix server_url" in " ".join(
        result.output.split()
    )
    assert not out.exists()


def test_a_realtime_cell_on_a_running_server_needs_its_secret(
    tmp_path: Path, dead_base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV)
    out = tmp_path / "out"
    result = invoke_run(scenario(tmp_path, RUN, dead_base_url), out)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "sign in with that server's secret: pass --secret-file FILE or set" in text
    assert not out.exists()
    missing = invoke_run(
        scenario(tmp_path, RUN, dead_base_url), out, "--secret-file", str(tmp_path / "none")
    )
    assert missing.exit_code == 2 and "cannot read the secret file" in missing.output


def test_a_secret_file_without_a_server_url_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "own.toml"
    path.write_text('[scenario]\nname = "own"\n[[cells]]\ntransport = "http"\nclient = "lean"\n')
    result = invoke_run(path, tmp_path / "out", "--secret-file", str(tmp_path / "s"))
    assert result.exit_code == 2
    assert "no cell has a server_url" in " ".join(result.output.split())


def test_validate_refuses_a_server_url_that_is_not_loopback(tmp_path: Path) -> None:
    path = scenario(tmp_path, RUN, "http://192.0.2.7:9000")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "server_url: '192.0.2.7' is not a loopback host" in text
