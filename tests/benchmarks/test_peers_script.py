"""The pure parts of benchmarks/peers.py: wrk and node output parsing, the ratio table."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "peers.py"


@pytest.fixture(scope="module")
def peers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rtbench_peers_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


WRK_C1 = """\
Running 2s test @ http://127.0.0.1:34345/rpc
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   160.64us  152.63us   4.23ms   98.94%
    Req/Sec     6.60k     1.35k   12.14k    95.24%
  Latency Distribution
     50%  154.00us
     75%  166.00us
     90%  176.00us
     99%  342.00us
  13777 requests in 2.10s, 2.65MB read
Requests/sec:   6561.80
Transfer/sec:      1.26MB
"""

WRK_C50_ERRORS = """\
Running 4s test @ http://127.0.0.1:34345/rpc
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.42ms  597.80us   7.61ms   84.68%
    Req/Sec    20.72k     2.51k   23.16k    75.00%
  Latency Distribution
     50%    2.20ms
     75%    2.44ms
     90%    3.23ms
     99%    1.05s
  81233 requests in 1.00m, 7.94MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  20561.68
Transfer/sec:      3.96MB
"""


def test_wrk_c1_output_gives_percentiles_rate_and_no_errors(peers: ModuleType) -> None:
    got = peers.parse_wrk(WRK_C1)
    assert got["p50_us"] == pytest.approx(154.0)
    assert got["p99_us"] == pytest.approx(342.0)
    assert got["requests"] == 13777
    assert got["seconds"] == pytest.approx(2.10)
    assert got["rate_per_s"] == pytest.approx(6561.80)
    assert got["errors"] == 0


def test_wrk_units_and_error_lines_are_read(peers: ModuleType) -> None:
    got = peers.parse_wrk(WRK_C50_ERRORS)
    assert got["p50_us"] == pytest.approx(2200.0)
    assert got["p99_us"] == pytest.approx(1_050_000.0)
    assert got["seconds"] == pytest.approx(60.0)
    assert got["socket_errors"] == 3
    assert got["non_2xx"] == 5
    assert got["errors"] == 8


def test_wrk_output_without_latency_figures_is_refused(peers: ModuleType) -> None:
    usage = "Usage: wrk <options> <url>\n  Options:\n    -c, --connections <N>\n"
    with pytest.raises(ValueError, match="p50_us"):
        peers.parse_wrk(usage)
    without_latency = "\n".join(
        line for line in WRK_C1.splitlines() if not line.strip().startswith(("50%", "99%"))
    )
    with pytest.raises(ValueError, match="--latency"):
        peers.parse_wrk(without_latency)


@pytest.mark.parametrize("text", ["", "12", "abcus", "1.5x"])
def test_bad_wrk_time_is_refused(peers: ModuleType, text: str) -> None:
    with pytest.raises(ValueError, match="not a wrk time"):
        peers.wrk_time_us(text)


def test_node_done_event_is_found_among_other_lines(peers: ModuleType) -> None:
    done = {
        "event": "done",
        "count": 120,
        "errors": 1,
        "p50_us": 133.2,
        "p99_us": 410.0,
        "rate_per_s": 7000.5,
        "ws": "8.23.1",
    }
    lines = [
        '{"event":"phase","phase":"measure"}',
        "(node:42) ExperimentalWarning: something",
        '{"event":"phase","phase":"drain"}',
        json.dumps(done),
    ]
    got = peers.parse_node_events(lines)
    assert got["p50_us"] == pytest.approx(133.2)
    assert got["count"] == 120
    assert got["ws"] == "8.23.1"


def test_node_output_without_a_done_event_is_refused(peers: ModuleType) -> None:
    with pytest.raises(ValueError, match="no done event"):
        peers.parse_node_events(['{"event":"phase","phase":"measure"}', "not json"])
    with pytest.raises(ValueError, match="p50_us"):
        peers.parse_node_events(['{"event":"done","count":1,"errors":0}'])


def test_lua_string_escapes_every_byte_and_round_trips(peers: ModuleType) -> None:
    body = b'{"op":"echo","id":1,"payload":"a\\"]]==]\n\xc3\xa9"}'
    literal = peers.lua_string(body)
    assert re.fullmatch(r'"(\\[0-9]{1,3})*"', literal)
    decoded = bytes(int(n) for n in re.findall(r"\\([0-9]{1,3})", literal))
    assert decoded == body
    script = peers.wrk_script(body)
    assert 'wrk.method = "POST"' in script
    assert literal in script


def _point(group: str, contender: str, rnd: int, **figures: object) -> dict[str, object]:
    return {"group": group, "contender": contender, "round": rnd, **figures}


def test_ratio_rows_pair_rounds_and_span_them(peers: ModuleType) -> None:
    group = peers.Group("http-c1", "HTTP keep-alive, 1 connection", "http", 1, "wrk", ("aiohttp",))
    common = {"count": 100, "server_core_others_pct": 2.0, "client_core_others_pct": 0.5}
    points = [
        _point("http-c1", "wrk", 0, p50_us=100.0, rate_per_s=8000.0, server_cpu_pct=70.0, **common),
        _point("http-c1", "aiohttp", 0, p50_us=200.0, rate_per_s=4000.0, **common),
        _point(
            "http-c1", "wrk", 1, p50_us=120.0, rate_per_s=10000.0, server_cpu_pct=90.0, **common
        ),
        _point("http-c1", "aiohttp", 1, p50_us=300.0, rate_per_s=3000.0, **common),
    ]
    (row,) = peers.ratio_rows(points, [group])
    assert row["rounds"] == 2
    assert row["peer_p50_us"] == [100.0, 120.0]
    assert row["client_p50_us"] == [200.0, 300.0]
    assert row["p50_ratio"] == pytest.approx([2.0, 2.5])
    assert row["rate_pct"] == pytest.approx([30.0, 50.0])
    assert row["peer_server_cpu_pct"] == [70.0, 90.0]
    assert row["others_cpu_pct_max"] == pytest.approx(2.0)
    assert row["note"] == ""
    cells = peers.table_cells(row)
    assert cells[0] == "HTTP keep-alive, 1 connection (http)"
    assert cells[5] == "2.00-2.50x"
    assert cells[9] == "30-50 %"
    assert cells[7] == "8.0-10.0k"


def test_skipped_and_failed_clients_get_a_row_with_a_note(peers: ModuleType) -> None:
    clients = ("websockets", "lean")
    group = peers.Group("ws-c1", "WebSocket, 1 connection", "ws-aiohttp", 1, "node-ws", clients)
    points = [
        _point("ws-c1", "node-ws", 0, count=10, p50_us=100.0, rate_per_s=5000.0),
        _point("ws-c1", "websockets", 0, count=10, p50_us=150.0, rate_per_s=4000.0),
        _point("ws-c1", "node-ws", 1, failed="node ws exited with code 1: boom | <b>"),
        _point("ws-c1", "websockets", 1, count=10, p50_us=160.0, rate_per_s=4100.0),
        _point("ws-c1", "lean", 0, skipped="not measured: client 'lean' cannot speak WebSocket"),
        _point("ws-c1", "lean", 1, skipped="not measured: client 'lean' cannot speak WebSocket"),
    ]
    ws_row, lean_row = peers.ratio_rows(points, [group])
    assert ws_row["rounds"] == 1
    assert ws_row["p50_ratio"] == pytest.approx([1.5, 1.5])
    assert "without a node-ws figure" in ws_row["note"]
    assert lean_row["rounds"] == 0
    assert lean_row["p50_ratio"] is None
    assert "cannot speak WebSocket" in lean_row["note"]
    assert peers.table_cells(lean_row)[5] == "-"


def test_markdown_table_escapes_untrusted_text(peers: ModuleType) -> None:
    group = peers.Group("g", "T", "http", 1, "wrk", ("aiohttp",))
    points = [
        _point("g", "wrk", 0, count=1, p50_us=1.0, rate_per_s=1.0),
        _point("g", "aiohttp", 0, failed="died: a|b <script>`x`\nnext line"),
    ]
    table = peers.markdown_table(peers.ratio_rows(points, [group]))
    assert "<script>" not in table
    assert "\\<script\\>" in table
    assert "a\\|b" in table
    assert "\\`x\\`" in table
    note_lines = [line for line in table.splitlines() if "died" in line]
    assert len(note_lines) == 1
    assert "next line" in note_lines[0]


def test_fmt_span_collapses_equal_ends_and_shows_missing(peers: ModuleType) -> None:
    assert peers.fmt_span([148.0, 161.0], 0, " us") == "148-161 us"
    assert peers.fmt_span([2.0, 2.0], 1, "x") == "2.0x"
    assert peers.fmt_span(None) == "-"
    assert peers.fmt_rate([17000.0, 20900.0]) == "17.0-20.9k"


def test_busiest_others_finds_the_most_disturbed_core(peers: ModuleType) -> None:
    points = [
        {"server_core_others_pct": 3.0, "client_core_others_pct": None},
        {"server_core_others_pct": 1.0, "client_core_others_pct": 42.5},
        {"skipped": "not measured"},
    ]
    assert peers.busiest_others(points) == pytest.approx(42.5)
    assert peers.busiest_others([{"skipped": "not measured"}]) is None
    assert "42 %" in peers.busy_warning(42.4)


@pytest.mark.parametrize("width", [60, 80, 240])
def test_terminal_table_fits_the_console(peers: ModuleType, width: int) -> None:
    import io

    from rich.console import Console

    group = peers.Group("http-c1", "HTTP keep-alive, 1 connection", "http", 1, "wrk", ("aiohttp",))
    common = {"count": 100, "server_core_others_pct": 2.0, "client_core_others_pct": 0.5}
    points = [
        _point("http-c1", "wrk", 0, p50_us=100.0, rate_per_s=8000.0, server_cpu_pct=70.0, **common),
        _point("http-c1", "aiohttp", 0, p50_us=200.0, rate_per_s=4000.0, **common),
        _point("http-c1", "lean", 0, failed="died: [bold]x\x1b[2J"),
    ]
    group = peers.Group("http-c1", group.title, "http", 1, "wrk", ("aiohttp", "lean"))
    rows = peers.ratio_rows(points, [group])
    buf = io.StringIO()
    peers.print_terminal_table(rows, Console(file=buf, width=width, color_system=None))
    out = buf.getvalue()
    assert max(len(line) for line in out.splitlines()) <= width
    for figure in peers.table_cells(rows[0])[3:]:
        assert figure in out
    assert "\x1b" not in out and "[bold]x\\x1b" in "".join(out.split())
