"""Scenario files: valid ones load, invalid ones fail before anything runs, naming file and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadgen.cli import app
from loadgen.run.cell import cell_identity, cell_run
from loadgen.scenario import ScenarioError, load_scenario, parse_scenario

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((REPO / "scenarios").glob("*.toml"))

VALID = """\
[scenario]
name = "tiny"
repeats = 2
duration_s = 1.5
warmup_s = 0.5
payload_bytes = 64

[load]
model = "closed"
connections = 2

[[cells]]
transport = "http"
client = "aiohttp"
conn_mode = "keep-alive"

[[cells]]
transport = "ws-websockets"
client = "websockets"
"""


def squash(text: str) -> str:
    """``text`` without any whitespace, so console line wrapping cannot break a match."""
    return "".join(text.split())


def write(tmp_path: Path, text: str, name: str = "scenario.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- valid files ---------------------------------------------------------------------------


def test_quick_toml_loads() -> None:
    spec = load_scenario(REPO / "scenarios" / "quick.toml")
    assert spec.name == "quick"
    assert spec.scenario.repeats >= 1
    parts = spec.part_scenarios()
    assert list(parts) == ["echo", "http-versions", "polling-versions"]
    for sub in parts.values():
        # Whichever load model a part uses, rate is given exactly when the model is open.
        assert (sub.load.rate is not None) == (sub.load.model == "open")
        ids = [c.id for c in sub.cells]
        assert len(ids) == len(set(ids))
    echo = [c.id for c in parts["echo"].cells]
    assert "http/aiohttp/keep-alive" in echo
    assert "ws-websockets/websockets/persistent" in echo
    # WebSocket cells without conn_mode get the persistent mode filled in.
    assert all(c.conn_mode == "persistent" for c in parts["echo"].cells if c.family == "ws")
    # Every HTTP version, kept alive and not, on loopback and wan; the others on loopback.
    versions = parts["http-versions"]
    assert {(c.http_version, c.conn_mode) for c in versions.cells if c.family == "http"} == {
        (v, m) for v in ("1.1", "2", "3") for m in ("keep-alive", "new-connection")
    }
    assert versions.network is not None
    assert [p.name for p in versions.network.resolved()] == ["loopback", "wan"]
    assert parts["echo"].network is None and parts["polling-versions"].network is None
    polling = parts["polling-versions"].cells
    assert {c.http_version for c in polling if c.family == "http"} == {"1.1", "2", "3"}
    assert spec.estimated_seconds() > 0


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_every_shipped_scenario_validates(path: Path) -> None:
    spec = load_scenario(path)
    assert spec.run_cells()
    assert spec.as_dict()["scenario"]["name"] == spec.name


def test_minimal_scenario_gets_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[scenario]\nname = "m"\n[[cells]]\ntransport = "http"\nclient = "httpx"\n'
    )
    spec = load_scenario(path)
    assert spec.load.model == "closed"
    assert spec.load.rate is None
    assert spec.cells[0].conn_mode == "keep-alive"
    assert spec.cells[0].id == "http/httpx/keep-alive"


def test_open_model_with_rate_is_valid(tmp_path: Path) -> None:
    text = VALID.replace('model = "closed"', 'model = "open"\nrate = 200')
    spec = load_scenario(write(tmp_path, text))
    assert spec.load.model == "open"
    assert spec.load.rate == 200


def test_a_cell_on_a_server_command_is_named_after_its_server(tmp_path: Path) -> None:
    text = VALID + (
        '\n[[cells]]\ntransport = "http"\nclient = "lean"\nserver_command = ["node", "srv.js"]\n'
        '\n[[cells]]\ntransport = "ws"\nclient = "lean"\n'
        'server_command = ["/usr/bin/node", "s.js"]\n'
        'server_name = "node-ws"\n'
    )
    cells = load_scenario(write(tmp_path, text)).cells
    assert [c.id for c in cells[-2:]] == ["http@node/lean/keep-alive", "ws@node-ws/lean/persistent"]
    assert cells[-1].server_command == ["/usr/bin/node", "s.js"]
    assert cells[0].server is None and cells[0].id == "http/aiohttp/keep-alive"


def test_same_cell_twice_with_distinct_names_is_valid(tmp_path: Path) -> None:
    text = VALID + '\n[[cells]]\ntransport = "http"\nclient = "aiohttp"\nname = "again"\n'
    spec = load_scenario(write(tmp_path, text))
    assert [c.id for c in spec.cells][-1] == "again"


def _cell(**keys: str) -> str:
    """A ``[[cells]]`` table of string ``keys``, to append to a scenario's text."""
    return "\n[[cells]]\n" + "".join(f'{k} = "{v}"\n' for k, v in keys.items())


# --- invalid files: (replace old -> new, or append), expected key, expected message ----------

INVALID = [
    pytest.param(
        ("repeats = 2", "repeats = 2\nrepeatz = 3"),
        "scenario.repeatz",
        "unknown key",
        id="unknown-key",
    ),
    pytest.param(
        ("[load]", "[laod]\nx = 1\n[load]"),
        "laod",
        "unknown key",
        id="unknown-table",
    ),
    pytest.param(
        ("duration_s = 1.5", 'duration_s = "1.5"'),
        "scenario.duration_s",
        "valid number",
        id="string-for-duration",
    ),
    pytest.param(
        ("connections = 2", "connections = 2.5"),
        "load.connections",
        "valid integer",
        id="float-for-connections",
    ),
    pytest.param(
        ("repeats = 2", "repeats = 0"),
        "scenario.repeats",
        "greater than or equal to 1",
        id="zero-repeats",
    ),
    pytest.param(
        ("warmup_s = 0.5", "warmup_s = -1"),
        "scenario.warmup_s",
        "greater than or equal to 0",
        id="negative-warmup",
    ),
    pytest.param(
        ("duration_s = 1.5", "duration_s = 0"),
        "scenario.duration_s",
        "greater than 0",
        id="zero-duration",
    ),
    pytest.param(
        ('model = "closed"', 'model = "open"'),
        "load",
        "needs 'rate'",
        id="open-model-without-rate",
    ),
    pytest.param(
        ('model = "closed"', 'model = "closed"\nrate = 100'),
        "load",
        "'rate' only applies",
        id="rate-with-closed-model",
    ),
    pytest.param(
        ('model = "closed"', 'model = "sideways"'),
        "load.model",
        "'closed' or 'open'",
        id="unknown-model",
    ),
    pytest.param(
        ('client = "aiohttp"', 'client = "websockets"'),
        "cells.0",
        "client 'websockets' cannot speak HTTP",
        id="websockets-client-on-http",
    ),
    pytest.param(
        ('client = "websockets"', 'client = "httpx"'),
        "cells.1",
        "client 'httpx' cannot speak WebSocket",
        id="httpx-client-on-websocket",
    ),
    pytest.param(
        ('conn_mode = "keep-alive"', 'conn_mode = "persistent"'),
        "cells.0",
        "conn_mode for HTTP",
        id="persistent-mode-on-http",
    ),
    pytest.param(
        ('transport = "http"', 'transport = "smoke-signals"'),
        "cells.0.transport",
        "'http-uvicorn', 'ws-uvicorn', 'http-hypercorn', 'ws-hypercorn', 'http-granian' or "
        "'ws-granian'",
        id="unknown-transport",
    ),
    pytest.param(
        (None, '\n[[cells]]\ntransport = "http"\nclient = "aiohttp"\n'),
        "(top level)",
        "two cells are both named 'http/aiohttp/keep-alive'",
        id="duplicate-cells",
    ),
    pytest.param(
        ('name = "tiny"', 'name = "no spaces allowed"'),
        "scenario.name",
        "pattern",
        id="bad-name",
    ),
    pytest.param(
        ('name = "tiny"\n', ""),
        "scenario.name",
        "required key is missing",
        id="missing-name",
    ),
    # The pacer's schedule of 1 / rate seconds overflowed (OverflowError) in the generator.
    pytest.param(
        ('model = "closed"', 'model = "open"\nrate = 1e-300'),
        "(top level)",
        "[load] rate: 1e-300 req/s sends no request in duration_s = 1.5 s",
        id="vanishing-rate",
    ),
    pytest.param(
        ('model = "closed"', 'model = "open"\nrates = [100, 1e-300]'),
        "(top level)",
        "[load] rates: 1e-300 req/s sends no request",
        id="vanishing-sweep-rate",
    ),
    # Every request got 413 from the server.
    pytest.param(
        ("payload_bytes = 64", "payload_bytes = 2000\n[server]\nmax_message_bytes = 1024"),
        "(top level)",
        "payload_bytes = 2000 makes 2076-byte echo requests, above [server] "
        "max_message_bytes = 1024",
        id="payload-above-server-limit",
    ),
    pytest.param(
        ("payload_bytes = 64", "payload_bytes = 1048576"),
        "(top level)",
        "above [server] max_message_bytes = 1048576",
        id="payload-at-default-server-limit",
    ),
    pytest.param(
        (None, "\n[server]\nws_ping_interval_s = 0.01\n"),
        "server",
        "'ws_ping_interval_s' must be 0 (no pings) or at least 1 s",
        id="ws-ping-too-often",
    ),
    pytest.param(
        (None, "\n[server]\nws_ping_interval_s = -1\n"),
        "server.ws_ping_interval_s",
        "greater than or equal to 0",
        id="ws-ping-negative",
    ),
    pytest.param(
        (None, "\n[server]\nmax_users = 0\n"),
        "server.max_users",
        "greater than or equal to 1",
        id="max-users-zero",
    ),
    pytest.param(
        (None, '\n[[cells]]\ntransport = "ws"\nclient = "lean"\n'),
        "cells.2",
        "transport 'ws' needs server_command",
        id="ws-without-a-command",
    ),
    pytest.param(
        (None, '\n[[cells]]\ntransport = "ws-aiohttp"\nclient = "lean"\nserver_command = ["x"]\n'),
        "cells.2",
        "transport 'http' or 'ws', not 'ws-aiohttp'",
        id="command-with-a-python-server-kind",
    ),
    pytest.param(
        (
            None,
            '\n[[cells]]\ntransport = "http"\nclient = "lean"\nserver_command = ["x"]\n'
            "tls = true\n",
        ),
        "cells.2",
        "a server_command serves plain TCP",
        id="command-with-tls",
    ),
    pytest.param(
        (None, '\n[[cells]]\ntransport = "http"\nclient = "lean"\nserver_command = []\n'),
        "cells.2.server_command",
        "at least 1 item",
        id="empty-command",
    ),
    pytest.param(
        (None, '\n[[cells]]\ntransport = "http"\nclient = "lean"\nserver_name = "node"\n'),
        "cells.2",
        "server_name names a server_command",
        id="name-without-a-command",
    ),
    pytest.param(
        (
            None,
            '\n[[cells]]\ntransport = "http"\nclient = "lean"\nserver_command = ["n"]\n'
            'server_name = "a b"\n',
        ),
        "cells.2.server_name",
        "should match pattern",
        id="bad-server-name",
    ),
    # http_version combinations no server or client in the matrix can run.
    pytest.param(
        (None, _cell(transport="http", client="lean", http_version="2")),
        "cells.2",
        "serves HTTP/1.1 only",
        id="http2-on-aiohttp-server",
    ),
    pytest.param(
        (None, _cell(transport="http-uvicorn", client="lean", http_version="2")),
        "cells.2",
        "serves HTTP/1.1 only",
        id="http2-on-uvicorn",
    ),
    # WebSocket over HTTP/2 (RFC 8441): ws-hypercorn and the lean client only, never HTTP/3.
    pytest.param(
        (None, _cell(transport="ws-hypercorn", client="lean", http_version="3") + "tls = true\n"),
        "cells.2",
        "http_version = '3': http_version '3' is not possible for WebSocket",
        id="http3-on-websocket",
    ),
    pytest.param(
        (None, _cell(transport="ws-uvicorn", client="lean", http_version="2")),
        "cells.2",
        "http_version = '2': http_version '2' for WebSocket (RFC 8441) is served by "
        "ws-hypercorn only, not 'ws-uvicorn'",
        id="ws-over-http2-on-uvicorn",
    ),
    pytest.param(
        (None, _cell(transport="ws-aiohttp", client="lean", http_version="2")),
        "cells.2",
        "served by ws-hypercorn only, not 'ws-aiohttp'",
        id="ws-over-http2-on-aiohttp",
    ),
    pytest.param(
        (None, _cell(transport="ws-hypercorn", client="websockets", http_version="2")),
        "cells.2",
        "http_version = '2': http_version '2' for WebSocket needs client lean",
        id="ws-over-http2-on-websockets-client",
    ),
    pytest.param(
        (None, _cell(transport="ws-hypercorn", client="aiohttp", http_version="2")),
        "cells.2",
        "needs client lean; 'aiohttp' opens WebSockets over HTTP/1.1 only",
        id="ws-over-http2-on-aiohttp-client",
    ),
    pytest.param(
        (
            None,
            _cell(transport="ws", client="lean", http_version="2") + 'server_command = ["n"]\n',
        ),
        "cells.2",
        "http_version = '2': a server_command's or server_url's WebSocket cell",
        id="ws-over-http2-on-a-server-command",
    ),
    pytest.param(
        (
            None,
            _cell(transport="ws", client="lean", http_version="2")
            + 'server_url = "http://127.0.0.1:9"\nserver_name = "n"\n',
        ),
        "cells.2",
        "http_version = '2': a server_command's or server_url's WebSocket cell",
        id="ws-over-http2-on-a-server-url",
    ),
    # HTTP/3 runs over QUIC: always TLS 1.3, on hypercorn, with the lean client.
    pytest.param(
        (None, _cell(transport="http-hypercorn", client="lean", http_version="3")),
        "cells.2",
        "always encrypted: add tls = true",
        id="http3-without-tls",
    ),
    pytest.param(
        (None, _cell(transport="http-uvicorn", client="lean", http_version="3")),
        "cells.2",
        "serves HTTP/1.1 only",
        id="http3-on-uvicorn",
    ),
    pytest.param(
        (
            None,
            _cell(transport="http-hypercorn", client="httpx", http_version="3") + "tls = true\n",
        ),
        "cells.2",
        "has no HTTP/3",
        id="http3-on-httpx",
    ),
    pytest.param(
        (None, _cell(transport="http-hypercorn", client="aiohttp", http_version="2")),
        "cells.2",
        "http_version",
        id="http2-on-aiohttp-client",
    ),
    pytest.param(
        (None, _cell(transport="http-hypercorn", client="lean", http_version="1.0")),
        "cells.2.http_version",
        "'1.1', '2' or '3'",
        id="unknown-http-version",
    ),
]


def test_an_http2_cell_is_named_and_carries_its_version(tmp_path: Path) -> None:
    text = VALID + (
        '\n[[cells]]\ntransport = "http-hypercorn"\nclient = "lean"\nhttp_version = "2"\n'
        '\n[[cells]]\ntransport = "http-hypercorn"\nclient = "httpx"\nhttp_version = "2"\n'
        'conn_mode = "new-connection"\ntls = true\n'
    )
    spec = load_scenario(write(tmp_path, text))
    assert [c.id for c in spec.cells[-2:]] == [
        "http-hypercorn/lean/keep-alive+h2",
        "http-hypercorn/httpx/new-connection+h2+tls",
    ]
    runs = {rc.id: cell_run(rc, "http://127.0.0.1:1") for rc in spec.run_cells()}
    assert runs["http-hypercorn/lean/keep-alive+h2"].http_version == "2"
    assert runs["http/aiohttp/keep-alive"].http_version == "1.1"
    identity = cell_identity(spec.run_cells()[-1])
    assert identity["http_version"] == "2"
    assert cell_identity(spec.run_cells()[1])["http_version"] is None  # WebSocket


@pytest.mark.parametrize("tls", [False, True])
def test_a_websocket_over_http2_cell_is_named_and_carries_its_version(
    tmp_path: Path, tls: bool
) -> None:
    cell = _cell(transport="ws-hypercorn", client="lean", http_version="2")
    spec = load_scenario(write(tmp_path, VALID + cell + ("tls = true\n" if tls else "")))
    name = "ws-hypercorn/lean/persistent+h2" + ("+tls" if tls else "")
    assert spec.cells[-1].id == name
    run_cell = spec.run_cells()[-1]
    assert cell_run(run_cell, "http://127.0.0.1:1").http_version == "2"
    identity = cell_identity(run_cell)
    assert (identity["cell"], identity["http_version"]) == (name, "2")
    assert identity["tls"] == ("1.3" if tls else None)


@pytest.mark.parametrize("delivery", ['delivery = "push"\n', ""])
def test_realtime_websocket_over_http2_is_refused(tmp_path: Path, delivery: str) -> None:
    cell = _cell(transport="ws-hypercorn", client="lean", http_version="2") + delivery
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, _realtime(cell)))
    text = str(info.value)
    assert "http_version = '2'" in text and "echo cells only" in text, text


def _realtime(cell: str) -> str:
    """VALID as a messaging scenario with ``cell`` as its only cell."""
    text = VALID.replace("[load]", "[realtime]\nusers = 4\nmessage_rate = 1\n\n[load]").replace(
        'name = "tiny"', 'name = "tiny"\nworkload = "messaging"'
    )
    return text.split("[[cells]]")[0] + cell


def test_a_realtime_http2_cell_runs_on_the_lean_client(tmp_path: Path) -> None:
    text = _realtime(
        _cell(transport="http-hypercorn", client="lean", http_version="2", delivery="long-poll")
        + _cell(transport="http-hypercorn", client="lean", http_version="2", delivery="sse")
        + _cell(transport="http-hypercorn", client="lean", http_version="2", delivery="sse")
        + "tls = true\n"
    )
    spec = load_scenario(write(tmp_path, text))
    assert [c.id for c in spec.cells] == [
        "http-hypercorn/lean/keep-alive/long-poll+h2",
        "http-hypercorn/lean/keep-alive/sse+h2",
        "http-hypercorn/lean/keep-alive/sse+h2+tls",
    ]
    run = cell_run(spec.run_cells()[0], "http://127.0.0.1:1")
    assert (run.http_version, run.delivery) == ("2", "long-poll")


REALTIME_HTTP2_REFUSED = [
    pytest.param(
        _cell(transport="http-hypercorn", client="httpx", http_version="2", delivery="long-poll"),
        ("http_version", "lean client only"),
        id="httpx",
    ),
    pytest.param(
        _cell(transport="http-hypercorn", client="aiohttp", http_version="2", delivery="sse"),
        ("http_version", "lean client only"),
        id="aiohttp",
    ),
]


@pytest.mark.parametrize(("cell", "words"), REALTIME_HTTP2_REFUSED)
def test_realtime_http2_cells_the_lean_client_cannot_count_are_refused(
    tmp_path: Path, cell: str, words: tuple[str, ...]
) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, _realtime(cell)))
    text = str(info.value)
    assert "cells.0" in text and all(w in text for w in words), text


@pytest.mark.parametrize(("edit", "key", "message"), INVALID)
def test_invalid_scenario_names_file_and_key(
    tmp_path: Path, edit: tuple[str | None, str], key: str, message: str
) -> None:
    old, new = edit
    if old is None:
        text = VALID + new
    else:
        assert old in VALID
        text = VALID.replace(old, new, 1)
    path = write(tmp_path, text, "broken.toml")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    text = str(info.value)
    assert text.startswith(f"{path}: invalid scenario")
    assert f"  - {key}: " in text, text
    assert message in text, text


def test_a_realtime_http3_cell_runs_on_the_lean_client_over_tls(tmp_path: Path) -> None:
    h3 = {"transport": "http-hypercorn", "client": "lean", "http_version": "3"}
    text = _realtime(
        _cell(**h3, delivery="long-poll")
        + "tls = true\n"
        + _cell(**h3, delivery="sse")
        + "tls = true\n"
        + _cell(**h3, delivery="short-poll", conn_mode="new-connection")
        + "tls = true\n"
    )
    spec = load_scenario(write(tmp_path, text))
    assert [c.id for c in spec.cells] == [
        "http-hypercorn/lean/keep-alive/long-poll+h3+tls",
        "http-hypercorn/lean/keep-alive/sse+h3+tls",
        "http-hypercorn/lean/new-connection/short-poll+h3+tls",
    ]
    run = cell_run(spec.run_cells()[1], "https://127.0.0.1:1")
    assert (run.http_version, run.delivery) == ("3", "sse")


REALTIME_HTTP3_REFUSED = [
    pytest.param(
        _cell(transport="http-hypercorn", client="lean", http_version="3", delivery="sse"),
        ("http_version = '3'", "add tls = true"),
        id="no-tls",
    ),
    pytest.param(
        _cell(transport="http-hypercorn", client="aiohttp", http_version="3", delivery="sse")
        + "tls = true\n",
        ("http_version = '3'", "lean client only"),
        id="aiohttp",
    ),
    pytest.param(
        _cell(transport="http-uvicorn", client="lean", http_version="3", delivery="long-poll")
        + "tls = true\n",
        ("http_version = '3'", "serves HTTP/1.1 only"),
        id="uvicorn",
    ),
]


@pytest.mark.parametrize(("cell", "words"), REALTIME_HTTP3_REFUSED)
def test_realtime_http3_cells_that_cannot_run_are_refused(
    tmp_path: Path, cell: str, words: tuple[str, ...]
) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, _realtime(cell)))
    text = str(info.value)
    assert "cells.0" in text and all(w in text for w in words), text


def test_http3_cells_need_tls_13(tmp_path: Path) -> None:
    h3 = _cell(transport="http-hypercorn", client="lean", http_version="3") + "tls = true\n"
    assert load_scenario(write(tmp_path, VALID + h3)).cells[-1].http_version == "3"
    old = VALID.replace("repeats = 2", 'repeats = 2\ntls_version = "1.2"', 1)
    with pytest.raises(ScenarioError, match=r"QUIC, which is TLS 1\.3 only"):
        load_scenario(write(tmp_path, old + h3, "old.toml"))


def test_granian_cells_run_without_ws_pings_and_under_tls_13(tmp_path: Path) -> None:
    http = _cell(transport="http-granian", client="lean", conn_mode="keep-alive")
    ws = _cell(transport="ws-granian", client="lean")
    # An HTTP cell never uses pings: the default interval stands.
    spec = load_scenario(write(tmp_path, VALID + http))
    assert spec.cells[-1].server == "granian" and spec.cells[-1].family == "http"
    with pytest.raises(ScenarioError, match=r"granian sends no WebSocket pings") as info:
        load_scenario(write(tmp_path, VALID + ws, "pings.toml"))
    assert "ws_ping_interval_s" in str(info.value)
    off = VALID + ws + "\n[server]\nws_ping_interval_s = 0\n"
    assert (
        load_scenario(write(tmp_path, off, "off.toml")).cells[-1].id == "ws-granian/lean/persistent"
    )
    old = VALID.replace("repeats = 2", 'repeats = 2\ntls_version = "1.2"', 1)
    with pytest.raises(ScenarioError, match=r"granian cannot cap TLS below 1\.3") as info:
        load_scenario(write(tmp_path, old + http + "tls = true\n", "old.toml"))
    assert "tls_version" in str(info.value)
    assert load_scenario(write(tmp_path, old + http, "plain.toml")).scenario.tls_version == "1.2"


def test_a_payload_just_under_the_limit_is_accepted(tmp_path: Path) -> None:
    text = VALID.replace(
        "payload_bytes = 64", "payload_bytes = 948\n[server]\nmax_message_bytes = 1024"
    )
    assert load_scenario(write(tmp_path, text)).scenario.payload_bytes == 948


def test_a_vanishing_realtime_rate_is_refused(tmp_path: Path) -> None:
    text = (
        '[scenario]\nname = "rt"\nworkload = "messaging"\n'
        "[realtime]\nusers = 4\nmessage_rate = 1e-300\n"
        '[[cells]]\ntransport = "ws-aiohttp"\nclient = "aiohttp"\n'
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, text))
    assert "realtime: " in str(info.value)
    assert "message_rate = 1e-300: give 0 (off) or at least 0.001 per s" in str(info.value)


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    text = VALID.replace("repeats = 2", "repeats = 0").replace("warmup_s = 0.5", "warmup_s = -1")
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, text))
    assert "2 problem(s)" in str(info.value)
    assert "scenario.repeats" in str(info.value)
    assert "scenario.warmup_s" in str(info.value)


def test_no_cells(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"give at least one \[\[cells\]\] entry"):
        load_scenario(write(tmp_path, '[scenario]\nname = "x"\n'))


def test_invalid_toml_names_file(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "\nthis is = = not toml\n", "garbled.toml")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path}: not valid TOML")


def test_not_utf8_names_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[scenario]\nname = "caf\xe9"\n')
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(path)


def test_missing_file_names_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value) == f"{path}: scenario file not found"


def test_directory_is_not_a_scenario(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read scenario file"):
        load_scenario(tmp_path)


def test_parse_scenario_uses_given_name() -> None:
    with pytest.raises(ScenarioError, match=r"^inline\.toml: invalid scenario"):
        parse_scenario({"scenario": {"name": "x"}}, "inline.toml")


# --- rtbench validate ----------------------------------------------------------------------


def test_validate_ok_exits_0(tmp_path: Path) -> None:
    path = write(tmp_path, VALID, "good.toml")
    result = CliRunner().invoke(app, ["validate", str(path), str(REPO / "scenarios/quick.toml")])
    assert result.exit_code == 0, result.output
    assert squash(f"ok {path}: 2 cells") in squash(result.output)


def test_validate_bad_exits_2_with_message(tmp_path: Path) -> None:
    good = write(tmp_path, VALID, "good.toml")
    bad = write(tmp_path, VALID.replace("repeats = 2", "repeatz = 2"), "bad.toml")
    missing = tmp_path / "missing.toml"
    result = CliRunner().invoke(app, ["validate", str(good), str(bad), str(missing)])
    assert result.exit_code == 2
    out = squash(result.output)
    assert squash(f"ok {good}") in out
    assert squash(f"invalid {bad}: invalid scenario") in out
    assert squash("scenario.repeatz: unknown key") in out
    assert squash(f"invalid {missing}: scenario file not found") in out


REALTIME = (
    '[scenario]\nname = "rt"\nworkload = "messaging"\n'
    "[realtime]\nusers = 4\nmessage_rate = 1.0\n{line}\n"
    '[[cells]]\ntransport = "ws-aiohttp"\nclient = "aiohttp"\n'
)

# (connect_rate line, what validate says about realtime.connect_rate)
BAD_CONNECT_RATES = [
    pytest.param("connect_rate = 0", "greater than or equal to 1", id="zero"),
    pytest.param("connect_rate = 0.5", "greater than or equal to 1", id="below-one-a-second"),
    pytest.param("connect_rate = 1e9", "less than or equal to 100000", id="no-ramp-at-all"),
    pytest.param('connect_rate = "fast"', "should be a valid number", id="not-a-number"),
]


@pytest.mark.parametrize(("line", "message"), BAD_CONNECT_RATES)
def test_validate_refuses_a_bad_connect_rate_naming_the_key(
    tmp_path: Path, line: str, message: str
) -> None:
    path = write(tmp_path, REALTIME.format(line=line), "rate.toml")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    out = squash(result.output)
    assert squash(f"invalid {path}") in out
    assert squash("realtime.connect_rate: Input") in out, result.output
    assert squash(message) in out, result.output


def test_connect_rate_defaults_and_accepts_a_whole_number(tmp_path: Path) -> None:
    default = load_scenario(write(tmp_path, REALTIME.format(line=""), "default.toml"))
    assert default.realtime is not None and default.realtime.connect_rate == 500.0
    slow = load_scenario(write(tmp_path, REALTIME.format(line="connect_rate = 20"), "slow.toml"))
    assert slow.realtime is not None and slow.realtime.connect_rate == 20.0


def test_run_with_bad_scenario_exits_2_before_running(tmp_path: Path) -> None:
    bad = write(tmp_path, VALID.replace("warmup_s = 0.5", "warmup_s = -1"), "bad.toml")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(bad), "--out", str(out), "--no-report"])
    assert result.exit_code == 2
    assert squash("scenario.warmup_s") in squash(result.output)
    assert not out.exists()


def test_ws_pings_are_on_unless_the_scenario_turns_them_off(tmp_path: Path) -> None:
    from loadgen.run.cell import server_args

    on = load_scenario(write(tmp_path, VALID, "on.toml"))
    assert on.server.ws_ping_interval_s == 20.0
    args = server_args(on)
    assert args[args.index("--ws-ping-interval") + 1] == "20.0"
    off = load_scenario(write(tmp_path, VALID + "\n[server]\nws_ping_interval_s = 0\n", "off.toml"))
    args = server_args(off)
    assert args[args.index("--ws-ping-interval") + 1] == "0.0"
    assert off.as_dict()["server"]["ws_ping_interval_s"] == 0.0  # what meta.json records


def test_max_users_reaches_the_server_only_when_set(tmp_path: Path) -> None:
    from loadgen.run.cell import server_args

    default = load_scenario(write(tmp_path, VALID, "default.toml"))
    assert "--max-users" not in server_args(default)
    small = load_scenario(write(tmp_path, VALID + "\n[server]\nmax_users = 5\n", "small.toml"))
    args = server_args(small)
    assert args[args.index("--max-users") + 1] == "5"


REALTIME_DOES_NOTHING = [
    # (workload, [realtime] lines, words the error must carry)
    (
        "presence",
        "churn_fraction = 0.1",
        "churn_fraction = 0.1 with group_size = 4 makes no churner",
    ),
    (
        "presence",
        "message_rate = 1.0",
        "workload 'presence' does nothing without [realtime] churn_fraction > 0",
    ),
    ("messaging", "notification_rate = 5.0", "without [realtime] message_rate > 0"),
    ("notifications", "", "without [realtime] notification_rate > 0"),
    ("activity", "message_rate = 1.0", "without [realtime] activity_rate > 0"),
    ("mix", "", "without [realtime] message_rate or [realtime] churn_fraction or"),
]


@pytest.mark.parametrize(("workload", "lines", "words"), REALTIME_DOES_NOTHING)
def test_a_realtime_workload_that_would_do_nothing_is_refused(
    tmp_path: Path, workload: str, lines: str, words: str
) -> None:
    text = (
        f'[scenario]\nname = "rt"\nworkload = "{workload}"\n'
        f"[realtime]\nusers = 8\ngroup_size = 4\noffline_s = 4.0\n{lines}\n"
        '[[cells]]\ntransport = "ws-aiohttp"\nclient = "aiohttp"\n'
    )
    with pytest.raises(ScenarioError, match=re.escape(words)):
        load_scenario(write(tmp_path, text))


def test_the_smallest_churn_that_makes_a_churner_is_accepted(tmp_path: Path) -> None:
    text = (
        '[scenario]\nname = "rt"\nworkload = "presence"\n'
        "[realtime]\nusers = 8\ngroup_size = 4\nchurn_fraction = 0.125\noffline_s = 4.0\n"
        '[[cells]]\ntransport = "ws-aiohttp"\nclient = "aiohttp"\n'
    )
    assert load_scenario(write(tmp_path, text)).realtime.churners_per_group == 1


def test_keepalive_timeout_reaches_the_server_only_when_changed(tmp_path: Path) -> None:
    from loadgen.run.cell import server_args

    default = load_scenario(write(tmp_path, VALID, "default.toml"))
    assert "--keepalive-timeout" not in server_args(default)
    short = "\n[server]\nkeepalive_timeout_s = 5\n"
    args = server_args(load_scenario(write(tmp_path, VALID + short, "short.toml")))
    assert args[args.index("--keepalive-timeout") + 1] == "5.0"
