"""A cell's ``server_url``: only loopback http base URLs with a port, the rules a scenario
with one must follow, and finding and reading the process that listens there."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from pydantic import ValidationError

from loadgen import server_url as server_url_module
from loadgen.procs import Running, attach_process, plan_placement, stop_process
from loadgen.run.attach import (
    RunningServerError,
    attach_server,
    check_running_servers,
    option_notes,
    placement_notes,
)
from loadgen.run.interactive import interactive_spec
from loadgen.run.repeat import RepeatRunner
from loadgen.scenario import RunCell, ScenarioError, parse_scenario
from loadgen.scenario_tables import Cell
from loadgen.server_url import (
    ListeningProcess,
    ServerUnreachable,
    default_server_name,
    listening_process,
    parse_server_url,
    reach,
)


@pytest.fixture
def listening() -> Iterator[int]:
    """A port this process listens on at 127.0.0.1 (nothing answers, but it accepts)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]
    finally:
        sock.close()


def this_process_name() -> str:
    return psutil.Process().name()


# --- the URL -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("http://10.0.0.1:9000", "'10.0.0.1' is not a loopback host", id="private"),
        pytest.param("http://192.0.2.7:9000", "is not a loopback host", id="public"),
        pytest.param("http://example.com:9000", "'example.com' is not a loopback", id="name"),
        pytest.param("http://[2001:db8::1]:9000", "is not a loopback host", id="ipv6"),
        pytest.param("http://0.0.0.0:9000", "is not a loopback host", id="wildcard"),
        pytest.param("https://127.0.0.1:9000", "https needs the server's CA", id="https"),
        pytest.param("ws://127.0.0.1:9000", "WebSocket cells derive ws://", id="ws"),
        pytest.param("ftp://127.0.0.1:9000", "must be http://HOST:PORT", id="scheme"),
        pytest.param("127.0.0.1:9000", "must be http://HOST:PORT", id="no-scheme"),
        pytest.param("http://127.0.0.1", "needs the port", id="no-port"),
        pytest.param(
            "http://[::1]:0", "needs the port the server listens on (http://[::1]", id="0"
        ),
        pytest.param("http://127.0.0.1:99999", "no valid port", id="port-too-big"),
        pytest.param("http://127.0.0.1:9000/rpc", "without a path or query", id="path"),
        pytest.param("http://127.0.0.1:9000/?x=1", "without a path or query", id="query"),
        pytest.param("http://u:p@127.0.0.1:9000", "user name or password", id="userinfo"),
    ],
)
def test_a_url_that_is_not_a_loopback_http_base_is_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match="server_url") as info:
        parse_server_url(url)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("url", "addresses", "normalised"),
    [
        ("http://127.0.0.1:9000", ("127.0.0.1",), "http://127.0.0.1:9000"),
        ("http://127.8.9.10:9000/", ("127.8.9.10",), "http://127.8.9.10:9000"),
        ("http://[::1]:9000", ("::1",), "http://[::1]:9000"),
        ("HTTP://127.0.0.1:9000", ("127.0.0.1",), "http://127.0.0.1:9000"),
    ],
)
def test_a_loopback_http_base_is_accepted(
    url: str, addresses: tuple[str, ...], normalised: str
) -> None:
    target = parse_server_url(url)
    assert target.addresses == addresses
    assert target.url == normalised
    assert target.port == 9000


def test_localhost_is_accepted_when_it_resolves_to_loopback_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def resolve(addresses: list[str]) -> None:
        infos = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 9000)) for a in addresses]
        monkeypatch.setattr(server_url_module.socket, "getaddrinfo", lambda *a, **k: infos)

    resolve(["::1", "127.0.0.1"])
    assert parse_server_url("http://localhost:9000").addresses == ("::1", "127.0.0.1")
    resolve(["127.0.0.1", "192.0.2.7"])
    with pytest.raises(ValueError, match=r"resolves to 127\.0\.0\.1, 192\.0\.2\.7 here"):
        parse_server_url("http://localhost:9000")


# --- the cell and the scenario ------------------------------------------------------------


SCENARIO = {"scenario": {"name": "byo"}}


def cell(**keys: object) -> dict[str, object]:
    return {"transport": "http", "client": "lean", **keys}


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        pytest.param(
            cell(server_url="http://10.1.2.3:9000"), "server_url: '10.1.2.3' is not", id="host"
        ),
        pytest.param(
            cell(server_url="https://127.0.0.1:9000"), "server_url: https needs", id="https"
        ),
        pytest.param(
            cell(server_url="http://127.0.0.1:9000", tls=True),
            "tls = true applies to rtbench's own servers",
            id="tls",
        ),
        pytest.param(
            cell(server_url="http://127.0.0.1:9000", server_command=["node", "s.js"]),
            "give server_command (a server rtbench starts) or server_url",
            id="with-a-command",
        ),
        pytest.param(
            cell(transport="ws-aiohttp", server_url="http://127.0.0.1:9000"),
            "a cell with server_url has transport 'http' or 'ws', not 'ws-aiohttp'",
            id="rtbench-transport",
        ),
        pytest.param(
            cell(server_url="http://127.0.0.1"), "server_url needs the port", id="no-port"
        ),
        pytest.param(
            cell(server_url="http://127.0.0.1:9000", http_version="2"),
            "http_version = '2'",
            id="http2",
        ),
    ],
)
def test_cell_rules_name_the_key(keys: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Cell.model_validate(keys)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("server", "key"),
    [
        ({"delay_ms": 5.0}, "[server] delay_ms = 5.0 cannot be passed"),
        ({"max_users": 10}, "[server] max_users = 10 cannot be passed"),
        ({"keepalive_timeout_s": 5.0}, "[server] keepalive_timeout_s = 5.0 cannot"),
        ({"ws_ping_interval_s": 0.0}, "[server] ws_ping_interval_s = 0.0 cannot"),
    ],
)
def test_server_settings_a_running_server_cannot_get_are_refused(
    server: dict[str, object], key: str
) -> None:
    data = {
        **SCENARIO,
        "server": server,
        "cells": [cell(), cell(server_url="http://127.0.0.1:9", server_name="mine")],
    }
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    assert key in str(info.value)
    assert "http@mine/lean/keep-alive" in str(info.value)
    # Without the server_url cell the same settings are fine.
    parse_scenario({**data, "cells": [cell()]})


def test_the_kernel_link_is_refused_and_the_relay_accepted() -> None:
    network = {"profiles": ["loopback", {"name": "slow", "rtt_ms": 20}]}
    data = {**SCENARIO, "cells": [cell(server_url="http://127.0.0.1:9")], "network": network}
    with pytest.raises(ScenarioError, match="run over the userspace relay only"):
        parse_scenario(data)
    parse_scenario({**data, "network": {**network, "link": "userspace"}})
    parse_scenario({**data, "network": {"profiles": ["loopback"]}})


def test_a_part_with_a_server_url_is_checked_too() -> None:
    data = {
        "scenario": {"name": "byo"},
        "server": {"delay_ms": 1.0},
        "parts": [{"name": "echo", "cells": [cell(server_url="http://127.0.0.1:9")]}],
    }
    with pytest.raises(ScenarioError, match=r"part 'echo'.*delay_ms"):
        parse_scenario(data)


def test_a_ws_cell_and_server_name_work_with_a_server_url() -> None:
    spec = parse_scenario(
        {
            **SCENARIO,
            "cells": [
                cell(server_url="http://127.0.0.1:9", server_name="go"),
                cell(transport="ws", server_url="http://127.0.0.1:9", server_name="go"),
            ],
        }
    )
    assert [c.id for c in spec.cells] == ["http@go/lean/keep-alive", "ws@go/lean/persistent"]
    assert {c.server for c in spec.cells} == {"go"}


def test_the_default_name_is_the_listening_process_or_url(listening: int) -> None:
    found = Cell.model_validate(cell(server_url=f"http://127.0.0.1:{listening}"))
    assert found.server == this_process_name()
    assert found.id == f"http@{this_process_name()}/lean/keep-alive"
    # The name travels with the cell: a part's copy looks nothing up again.
    assert Cell.model_validate(found.model_dump()).server == this_process_name()
    nobody = Cell.model_validate(cell(server_url="http://127.0.0.1:9"))
    assert (nobody.server, nobody.id) == ("url", "http@url/lean/keep-alive")


def test_a_process_name_becomes_a_valid_server_name(monkeypatch: pytest.MonkeyPatch) -> None:
    found = ListeningProcess(1, "Web Content (x)")
    monkeypatch.setattr(server_url_module, "listening_process", lambda target: found)
    assert default_server_name(parse_server_url("http://127.0.0.1:9")) == "Web-Content-x"
    assert Cell.model_validate(cell(server_url="http://127.0.0.1:9")).server == "Web-Content-x"


# --- finding and reading the process --------------------------------------------------------


def test_the_process_listening_on_the_port_is_found(listening: int) -> None:
    target = parse_server_url(f"http://127.0.0.1:{listening}")
    assert reach(target) == "127.0.0.1"
    found = listening_process(target)
    assert (found.pid, found.name, found.reason) == (os.getpid(), this_process_name(), None)


def test_nothing_listening_is_named_with_what_to_fix(dead_base_url: str) -> None:
    target = parse_server_url(dead_base_url)
    where = dead_base_url.removeprefix("http://")
    with pytest.raises(ServerUnreachable) as info:
        reach(target)
    assert str(info.value) == (f"nothing listening on {where}: start your server or fix server_url")
    found = listening_process(target)
    assert found.pid is None and found.reason == f"no process found listening on {where}"


def test_an_attached_process_is_read_but_never_stopped() -> None:
    child = attach_process("server x", os.getpid())
    assert isinstance(child.proc, Running)
    assert child.cpus == sorted(psutil.Process().cpu_affinity() or [])
    reading = child.reading()
    assert reading["cpu_s"] and reading["rss_mb"] and reading["open_files"]
    assert stop_process(child) is None
    assert child.proc.poll() is None  # still running: this very process
    unknown = attach_process("server y", None)
    assert unknown.reading() == {"cpu_s": None, "rss_mb": None, "open_files": None}
    assert unknown.proc.poll() is None and unknown.cpus is None


def test_a_process_that_goes_away_polls_as_gone() -> None:
    proc = psutil.Popen(["sleep", "30"])
    child = attach_process("server z", proc.pid)
    assert child.proc.poll() is None
    proc.kill()
    proc.wait()
    assert child.proc.poll() == -1
    assert child.reading()["rss_mb"] is None


# --- before the run and for each repeat -----------------------------------------------------


def realtime(url: str) -> dict[str, object]:
    return {
        "scenario": {"name": "byo", "workload": "messaging"},
        "realtime": {"users": 4, "group_size": 2, "message_rate": 1.0},
        "cells": [cell(server_url=url, delivery="long-poll")],
    }


def test_a_realtime_cell_needs_the_secret_before_anything_runs(listening: int) -> None:
    spec = parse_scenario(realtime(f"http://127.0.0.1:{listening}"))
    with pytest.raises(RunningServerError, match=r"--secret-file FILE or set \$RTBENCH"):
        check_running_servers(spec.run_cells(), None)
    found = check_running_servers(spec.run_cells(), "s" * 20)
    record = found[f"http://127.0.0.1:{listening}"]
    assert record["pid"] == os.getpid() and record["name"] == this_process_name()
    assert record["started_by_rtbench"] is False and record["pinned_by_rtbench"] is False
    assert record["cpus"] == sorted(psutil.Process().cpu_affinity() or [])
    # Echo cells do not sign in.
    echo = parse_scenario({**SCENARIO, "cells": [cell(server_url=f"http://127.0.0.1:{listening}")]})
    assert check_running_servers(echo.run_cells(), None)


def test_an_unreachable_server_stops_the_run_before_it_starts(dead_base_url: str) -> None:
    spec = parse_scenario({**SCENARIO, "cells": [cell(server_url=dead_base_url)]})
    with pytest.raises(RunningServerError, match=r"nothing listening on .* fix server_url"):
        check_running_servers(spec.run_cells(), None)


def test_a_repeat_whose_server_is_gone_fails_alone(tmp_path: Path, dead_base_url: str) -> None:
    spec = parse_scenario({**SCENARIO, "cells": [cell(server_url=dead_base_url)]})
    runner = RepeatRunner(spec, tmp_path, plan_placement("none"), None)
    part = runner.run_one(0, 0, spec.run_cells()[0])
    assert "nothing listening on" in part["failed"]
    assert "server_exit_code" not in part


def test_attach_server_records_the_reading_before_the_repeat(listening: int) -> None:
    spec = parse_scenario({**SCENARIO, "cells": [cell(server_url=f"http://127.0.0.1:{listening}")]})
    server, address, record = attach_server(spec.run_cells()[0])
    assert address == "127.0.0.1" and server.info == {"host": address, "port": listening}
    assert record["pid"] == os.getpid() and record["before"]["rss_mb"]
    assert "not controlled by rtbench" in record["placement"]


def test_notes_say_what_a_running_server_was_not_given(listening: int) -> None:
    url = f"http://127.0.0.1:{listening}"
    spec = parse_scenario(realtime(url))
    runner = RepeatRunner(spec, Path("unused"), plan_placement("none"), None)
    (note,) = option_notes(spec.run_cells(), runner.sizing)
    assert note.startswith(f"{url} was not started by rtbench")
    assert "--presence-timeout 2.0" in note and "--max-message-bytes 1048576" in note
    servers = check_running_servers(spec.run_cells(), "s" * 20)
    cpus = servers[url]["cpus"]
    # This process may run on every CPU, the load generators' among them.
    (placed,) = placement_notes(servers, plan_placement("split", cpus))
    assert placed.startswith(f"{url} (pid {os.getpid()}) may run on CPUs") and "taskset" in placed
    assert placement_notes(servers, plan_placement("none")) == []


def test_the_interactive_spec_targets_the_running_server(listening: int) -> None:
    spec = parse_scenario({**SCENARIO, "cells": [cell(server_url=f"http://127.0.0.1:{listening}")]})
    with interactive_spec(spec) as run_spec:
        assert run_spec.base_url == f"http://127.0.0.1:{listening}"


def test_a_process_that_cannot_be_found_is_recorded_with_the_reason(
    listening: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    hidden = ListeningProcess(None, None, "its process cannot be read here")
    monkeypatch.setattr("loadgen.run.attach.listening_process", lambda target: hidden)
    spec = parse_scenario({**SCENARIO, "cells": [cell(server_url=f"http://127.0.0.1:{listening}")]})
    server, _, record = attach_server(spec.run_cells()[0])
    assert (record["pid"], record["cpus"], record["note"]) == (None, None, hidden.reason)
    assert record["before"] == {"cpu_s": None, "rss_mb": None, "open_files": None}
    assert server.cpu_seconds() is None and server.proc.poll() is None


def test_of_processes_sharing_a_socket_the_parent_is_measured() -> None:
    child = psutil.Popen(["sleep", "30"])
    try:
        pids = sorted([os.getpid(), child.pid])
        assert server_url_module._first_ancestor(pids) == os.getpid()
    finally:
        child.kill()
        child.wait()


def test_one_note_per_running_server_whatever_its_cells(listening: int) -> None:
    url = f"http://127.0.0.1:{listening}"
    messaging = realtime(url)
    spec = parse_scenario(
        {
            "scenario": {"name": "byo"},
            "parts": [
                {"name": "echo", "cells": [cell(server_url=url)]},
                {
                    "name": "messaging",
                    "workload": "messaging",
                    "realtime": messaging["realtime"],
                    "cells": messaging["cells"],
                },
            ],
        }
    )
    sizes = {"echo:http@": 9, "messaging:": 3}

    def sizing(rc: RunCell) -> dict[str, int]:
        n = next(v for k, v in sizes.items() if rc.id.startswith(k))
        return {"connections": n, "backlog": 128}

    (note,) = option_notes(spec.run_cells(), sizing)
    assert "--presence-timeout 2.0" in note and "--connections 9" in note
    assert note.count("--max-message-bytes") == 1
