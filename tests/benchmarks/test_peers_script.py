"""benchmarks/peers.py and the pure parts of its peerbench package: wrk and node output
parsing, the ratio table."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.peerbench.groups import GROUPS, Group, plan
from benchmarks.peerbench.output import (
    lua_string,
    parse_h2load,
    parse_node_events,
    parse_wrk,
    wrk_script,
    wrk_time_us,
)
from benchmarks.peerbench.ratios import ratio_rows
from benchmarks.peerbench.report import busiest_others, busy_warning
from benchmarks.peerbench.tables import (
    fmt_rate,
    fmt_span,
    markdown_table,
    print_terminal_table,
    table_cells,
)

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "peers.py"


def wrk_report(
    connections: int, percentiles: tuple[str, str, str, str], totals: str, rate: str, *errors: str
) -> str:
    """What ``wrk --latency`` prints: the 50/75/90/99 % latencies, the request count and
    time (``totals``), any error lines, then the rate."""
    lines = [
        "Running 2s test @ http://127.0.0.1:34345/rpc",
        f"  1 threads and {connections} connections",
        "  Thread Stats   Avg      Stdev     Max   +/- Stdev",
        "    Latency   160.64us  152.63us   4.23ms   98.94%",
        "    Req/Sec     6.60k     1.35k   12.14k    95.24%",
        "  Latency Distribution",
        *(f"     {q}%  {v:>8}" for q, v in zip((50, 75, 90, 99), percentiles, strict=True)),
        f"  {totals}, 2.65MB read",
        *errors,
        f"Requests/sec:  {rate:>9}",
        "Transfer/sec:      1.26MB",
    ]
    return "\n".join(lines) + "\n"


WRK_C1 = wrk_report(
    1, ("154.00us", "166.00us", "176.00us", "342.00us"), "13777 requests in 2.10s", "6561.80"
)
WRK_C50_ERRORS = wrk_report(
    50,
    ("2.20ms", "2.44ms", "3.23ms", "1.05s"),
    "81233 requests in 1.00m",
    "20561.68",
    "  Socket errors: connect 0, read 2, write 0, timeout 1",
    "  Non-2xx or 3xx responses: 5",
)


def test_wrk_c1_output_gives_percentiles_rate_and_no_errors() -> None:
    got = parse_wrk(WRK_C1)
    assert got["p50_us"] == pytest.approx(154.0)
    assert got["p99_us"] == pytest.approx(342.0)
    assert got["requests"] == 13777
    assert got["seconds"] == pytest.approx(2.10)
    assert got["rate_per_s"] == pytest.approx(6561.80)
    assert got["errors"] == 0


def test_wrk_units_and_error_lines_are_read() -> None:
    got = parse_wrk(WRK_C50_ERRORS)
    assert got["p50_us"] == pytest.approx(2200.0)
    assert got["p99_us"] == pytest.approx(1_050_000.0)
    assert got["seconds"] == pytest.approx(60.0)
    assert got["socket_errors"] == 3
    assert got["non_2xx"] == 5
    assert got["errors"] == 8


def test_wrk_output_without_latency_figures_is_refused() -> None:
    usage = "Usage: wrk <options> <url>\n  Options:\n    -c, --connections <N>\n"
    with pytest.raises(ValueError, match="p50_us"):
        parse_wrk(usage)
    without_latency = "\n".join(
        line for line in WRK_C1.splitlines() if not line.strip().startswith(("50%", "99%"))
    )
    with pytest.raises(ValueError, match="--latency"):
        parse_wrk(without_latency)


@pytest.mark.parametrize("text", ["", "12", "abcus", "1.5x"])
def test_bad_wrk_time_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a wrk time"):
        wrk_time_us(text)


def test_node_done_event_is_found_among_other_lines() -> None:
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
    got = parse_node_events(lines)
    assert got["p50_us"] == pytest.approx(133.2)
    assert got["count"] == 120
    assert got["ws"] == "8.23.1"


def test_node_output_without_a_done_event_is_refused() -> None:
    with pytest.raises(ValueError, match="no done event"):
        parse_node_events(['{"event":"phase","phase":"measure"}', "not json"])
    with pytest.raises(ValueError, match="p50_us"):
        parse_node_events(['{"event":"done","count":1,"errors":0}'])


def test_lua_string_escapes_every_byte_and_round_trips() -> None:
    body = b'{"op":"echo","id":1,"payload":"a\\"]]==]\n\xc3\xa9"}'
    literal = lua_string(body)
    assert re.fullmatch(r'"(\\[0-9]{1,3})*"', literal)
    decoded = bytes(int(n) for n in re.findall(r"\\([0-9]{1,3})", literal))
    assert decoded == body
    script = wrk_script(body)
    assert 'wrk.method = "POST"' in script
    assert literal in script


# What h2load 1.52 prints at the end of ``-D 2 --warm-up-time 1`` (progress lines cut).
H2LOAD_OUT = """finished in 3.00s, 1521.50 req/s, 236.33KB/s
requests: 3043 total, 3043 started, 3043 done, 3041 succeeded, 2 failed, 2 errored, 0 timeout
status codes: 3040 2xx, 0 3xx, 1 4xx, 0 5xx
traffic: 472.66KB (484003) total, 14.93KB (15289) headers (space savings 95.26%)
time for request:      333us      5.17ms       645us       321us    95.73%
"""


def test_parse_h2load_takes_percentiles_from_the_request_log() -> None:
    # Per request: start (us since the epoch), status, us to the end of the response.
    log = "".join(f"1796676372{i:06d}\t200\t{100 + i}\n" for i in range(100))
    log += "1796676373000000\t400\t99999\n"  # not a success: not a latency
    figures = parse_h2load(H2LOAD_OUT, log, 2.0)
    assert figures["p50_us"] == pytest.approx(149.5)
    assert figures["p99_us"] == pytest.approx(198.01)
    assert figures["requests"] == 100
    assert figures["rate_per_s"] == pytest.approx(50.0)
    assert figures["errors"] == 3  # 2 failed + 1 4xx


@pytest.mark.parametrize(
    ("output", "log", "problem"),
    [
        ("finished in 3.00s", "1\t200\t5\n", "no requests/status codes summary"),
        (H2LOAD_OUT, "", "no successful request"),
        (H2LOAD_OUT, "1\t503\t5\n", "no successful request"),
    ],
)
def test_parse_h2load_names_what_is_missing(output: str, log: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_h2load(output, log, 2.0)


def test_plan_runs_the_peer_first_and_skips_refused_clients() -> None:
    h2 = next(g for g in GROUPS if g.peer == "h2load")
    assert h2.http and h2.http_version == "2"
    refusals = {(h2.key, "httpx"): "not measured: no h2"}
    todo = list(plan([h2], 2, refusals))
    assert [(r, c) for r, _, c, _ in todo][: 1 + len(h2.clients)] == [
        (0, "h2load"),
        *((0, c) for c in h2.clients),
    ]
    assert {c: why for _, _, c, why in todo if why} == {"httpx": "not measured: no h2"}


def _point(group: str, contender: str, rnd: int, **figures: object) -> dict[str, object]:
    return {"group": group, "contender": contender, "round": rnd, **figures}


def test_ratio_rows_pair_rounds_and_span_them() -> None:
    group = Group("http-c1", "HTTP keep-alive, 1 connection", "http", 1, "wrk", ("aiohttp",))
    common = {"count": 100, "server_core_others_pct": 2.0, "client_core_others_pct": 0.5}
    points = [
        _point("http-c1", "wrk", 0, p50_us=100.0, rate_per_s=8000.0, server_cpu_pct=70.0, **common),
        _point("http-c1", "aiohttp", 0, p50_us=200.0, rate_per_s=4000.0, **common),
        _point(
            "http-c1", "wrk", 1, p50_us=120.0, rate_per_s=10000.0, server_cpu_pct=90.0, **common
        ),
        _point("http-c1", "aiohttp", 1, p50_us=300.0, rate_per_s=3000.0, **common),
    ]
    (row,) = ratio_rows(points, [group])
    assert row["rounds"] == 2
    assert row["peer_p50_us"] == [100.0, 120.0]
    assert row["client_p50_us"] == [200.0, 300.0]
    assert row["p50_ratio"] == pytest.approx([2.0, 2.5])
    assert row["rate_pct"] == pytest.approx([30.0, 50.0])
    assert row["peer_server_cpu_pct"] == [70.0, 90.0]
    assert row["others_cpu_pct_max"] == pytest.approx(2.0)
    assert row["note"] == ""
    cells = table_cells(row)
    assert cells[0] == "HTTP keep-alive, 1 connection (http)"
    assert cells[5] == "2.00-2.50x"
    assert cells[9] == "30-50 %"
    assert cells[7] == "8.0-10.0k"


def test_skipped_and_failed_clients_get_a_row_with_a_note() -> None:
    clients = ("websockets", "lean")
    group = Group("ws-c1", "WebSocket, 1 connection", "ws-aiohttp", 1, "node-ws", clients)
    points = [
        _point("ws-c1", "node-ws", 0, count=10, p50_us=100.0, rate_per_s=5000.0),
        _point("ws-c1", "websockets", 0, count=10, p50_us=150.0, rate_per_s=4000.0),
        _point("ws-c1", "node-ws", 1, failed="node ws exited with code 1: boom | <b>"),
        _point("ws-c1", "websockets", 1, count=10, p50_us=160.0, rate_per_s=4100.0),
        _point("ws-c1", "lean", 0, skipped="not measured: client 'lean' cannot speak WebSocket"),
        _point("ws-c1", "lean", 1, skipped="not measured: client 'lean' cannot speak WebSocket"),
    ]
    ws_row, lean_row = ratio_rows(points, [group])
    assert ws_row["rounds"] == 1
    assert ws_row["p50_ratio"] == pytest.approx([1.5, 1.5])
    assert "without a node-ws figure" in ws_row["note"]
    assert lean_row["rounds"] == 0
    assert lean_row["p50_ratio"] is None
    assert "cannot speak WebSocket" in lean_row["note"]
    assert table_cells(lean_row)[5] == "-"


def test_markdown_table_escapes_untrusted_text() -> None:
    group = Group("g", "T", "http", 1, "wrk", ("aiohttp",))
    points = [
        _point("g", "wrk", 0, count=1, p50_us=1.0, rate_per_s=1.0),
        _point("g", "aiohttp", 0, failed="died: a|b <script>`x`\nnext line"),
    ]
    table = markdown_table(ratio_rows(points, [group]))
    assert "<script>" not in table
    assert "\\<script\\>" in table
    assert "a\\|b" in table
    assert "\\`x\\`" in table
    note_lines = [line for line in table.splitlines() if "died" in line]
    assert len(note_lines) == 1
    assert "next line" in note_lines[0]


def test_fmt_span_collapses_equal_ends_and_shows_missing() -> None:
    assert fmt_span([148.0, 161.0], 0, " us") == "148-161 us"
    assert fmt_span([2.0, 2.0], 1, "x") == "2.0x"
    assert fmt_span(None) == "-"
    assert fmt_rate([17000.0, 20900.0]) == "17.0-20.9k"


def test_busiest_others_finds_the_most_disturbed_core() -> None:
    points = [
        {"server_core_others_pct": 3.0, "client_core_others_pct": None},
        {"server_core_others_pct": 1.0, "client_core_others_pct": 42.5},
        {"skipped": "not measured"},
    ]
    assert busiest_others(points) == pytest.approx(42.5)
    assert busiest_others([{"skipped": "not measured"}]) is None
    assert "42 %" in busy_warning(42.4)


@pytest.mark.parametrize("width", [60, 80, 240])
def test_terminal_table_fits_the_console(width: int) -> None:
    import io

    from rich.console import Console

    group = Group("http-c1", "HTTP keep-alive, 1 connection", "http", 1, "wrk", ("aiohttp",))
    common = {"count": 100, "server_core_others_pct": 2.0, "client_core_others_pct": 0.5}
    points = [
        _point("http-c1", "wrk", 0, p50_us=100.0, rate_per_s=8000.0, server_cpu_pct=70.0, **common),
        _point("http-c1", "aiohttp", 0, p50_us=200.0, rate_per_s=4000.0, **common),
        _point("http-c1", "lean", 0, failed="died: [bold]x\x1b[2J"),
    ]
    group = Group("http-c1", group.title, "http", 1, "wrk", ("aiohttp", "lean"))
    rows = ratio_rows(points, [group])
    buf = io.StringIO()
    print_terminal_table(rows, Console(file=buf, width=width, color_system=None))
    out = buf.getvalue()
    assert max(len(line) for line in out.splitlines()) <= width
    for figure in table_cells(rows[0])[3:]:
        assert figure in out
    assert "\x1b" not in out and "[bold]x\\x1b" in "".join(out.split())


def test_the_script_runs_from_its_path_and_refuses_a_bad_argument() -> None:
    # make perf-peers runs the script by its path, with benchmarks/ as the import root.
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--rounds", "1"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "--rounds >= 2" in done.stderr
