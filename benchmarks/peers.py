"""rtbench's load generator against native peers (wrk, node's ws), side by side in one run.

::

    make perf-peers                    # installs wrk and ws when missing, then runs this
    .venv/bin/python benchmarks/peers.py [--duration 4] [--warmup 1] [--rounds 2] [--out DIR]

Every point starts a fresh rtbench server (``python -m servers KIND``, pinned to the
first CPU by :func:`loadgen.procs.start_server`) and one load generator pinned to the
second: wrk or ``benchmarks/peers/ws_echo.mjs`` (node's ``ws``) as the peer, or
rtbench's own engine (``python -m loadgen.worker``, :func:`loadgen.procs.start_worker`)
with each of its clients. Points are interleaved (peer, client, client, ..., peer, ...)
and the whole list is repeated ``--rounds`` times. Measured for each point: p50/p99,
requests or messages per second, and the server's and the load generator's CPU % over
the measured window.

Writes ``peers.json`` (settings, pinning, versions, git commit, every point, the ratio
rows) and ``peers.md`` (the ratio table) to the results folder and prints the table.
Exits 0 when every point ran, 1 when one failed to run (results are still written),
2 when a peer is missing or an argument is bad; never on a slow figure. A client that
:func:`loadgen.clients.base.make_client` refuses is skipped with a note.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.metadata
import json
import os
import queue
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psutil

from loadgen.cellspec import CellRun
from loadgen.clients.base import make_client
from loadgen.clients.kinds import PATHS, WS_CONN_MODE
from loadgen.environment import collect_environment
from loadgen.escape import md_text
from loadgen.procs import (
    Child,
    Placement,
    ProcessFailed,
    log_tail,
    plan_placement,
    start_process,
    start_server,
    start_worker,
    stop_process,
)
from loadgen.recorder import decode_histogram
from loadgen.runfolder import RESULTS_ROOT, RunFolderTaken, claim_run_folder
from loadgen.scenario_tables import RunSettings
from servers import protocol

ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = Path(__file__).resolve().parent / "peers"
NODE_SCRIPT = PEERS_DIR / "ws_echo.mjs"
WS_PACKAGE = PEERS_DIR / "node_modules" / "ws" / "package.json"
WRK = "wrk"
NODE_WS = "node-ws"
#: Seconds a load generator may run past warm-up + duration before it is killed.
GRACE_S = 15.0
TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Group:
    """One comparison: a server, a connection count, a peer and the rtbench clients."""

    key: str
    title: str
    server: str
    connections: int
    peer: str
    clients: tuple[str, ...]

    @property
    def http(self) -> bool:
        return self.server == "http"


HTTP_CLIENTS = ("aiohttp", "httpx", "lean")
WS_CLIENTS = ("websockets", "aiohttp", "lean")
GROUPS = (
    Group("http-c1", "HTTP keep-alive, 1 connection", "http", 1, WRK, HTTP_CLIENTS),
    Group("ws-aiohttp-c1", "WebSocket, 1 connection", "ws-aiohttp", 1, NODE_WS, WS_CLIENTS),
    Group("ws-websockets-c1", "WebSocket, 1 connection", "ws-websockets", 1, NODE_WS, WS_CLIENTS),
    Group("http-c50", "HTTP keep-alive, 50 connections", "http", 50, WRK, HTTP_CLIENTS),
    Group("ws-aiohttp-c50", "WebSocket, 50 connections", "ws-aiohttp", 50, NODE_WS, WS_CLIENTS),
    Group(
        "ws-websockets-c50", "WebSocket, 50 connections", "ws-websockets", 50, NODE_WS, WS_CLIENTS
    ),
)


class PointFailed(RuntimeError):
    """One point could not be measured; the message says why."""


# --------------------------------------------------------------------------- parsing

_TIME_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def wrk_time_us(text: str) -> float:
    """A wrk time such as ``148.00us``, ``2.20ms`` or ``4.00s`` in microseconds."""
    for unit in sorted(_TIME_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            try:
                return float(text[: -len(unit)]) * _TIME_UNITS[unit]
            except ValueError:
                break
    raise ValueError(f"not a wrk time: {text!r}")


def parse_wrk(output: str) -> dict[str, Any]:
    """The figures of ``wrk --latency`` output: p50/p99 (us), requests, seconds, rate, errors.

    Raises ValueError naming what is missing when the output is not a finished run.
    """
    found: dict[str, Any] = {"socket_errors": 0, "non_2xx": 0}
    for raw in output.splitlines():
        words = raw.split()
        if len(words) == 2 and words[0] in ("50%", "99%"):
            found[f"p{words[0][:-1]}_us"] = wrk_time_us(words[1])
        elif len(words) >= 4 and words[1:3] == ["requests", "in"]:
            found["requests"] = int(words[0])
            found["seconds"] = wrk_time_us(words[3].rstrip(",")) / 1e6
        elif raw.strip().startswith("Requests/sec:"):
            found["rate_per_s"] = float(words[-1])
        elif raw.strip().startswith("Socket errors:"):
            # "Socket errors: connect 0, read 0, write 0, timeout 0"
            counts = raw.split(":", 1)[1].split(",")
            found["socket_errors"] = sum(int(part.split()[-1]) for part in counts)
        elif raw.strip().startswith("Non-2xx or 3xx responses:"):
            found["non_2xx"] = int(words[-1])
    missing = [k for k in ("p50_us", "p99_us", "requests", "rate_per_s") if k not in found]
    if missing:
        raise ValueError(f"wrk output has no {', '.join(missing)} (was --latency given?)")
    found["errors"] = found["socket_errors"] + found["non_2xx"]
    return found


def parse_node_events(lines: Iterable[str]) -> dict[str, Any]:
    """The ``done`` event of ``ws_echo.mjs``'s output lines; other lines are skipped.

    Raises ValueError when no line is a done event with the figures.
    """
    done: dict[str, Any] | None = None
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "done":
            done = event
    if done is None:
        raise ValueError("node printed no done event")
    missing = [k for k in ("count", "errors", "p50_us", "p99_us", "rate_per_s") if k not in done]
    if missing:
        raise ValueError(f"node's done event has no {', '.join(missing)}")
    return done


def lua_string(data: bytes) -> str:
    """``data`` as a Lua string literal: every byte a decimal escape, so nothing needs quoting."""
    return '"' + "".join(f"\\{b}" for b in data) + '"'


def wrk_script(body: bytes) -> str:
    """The wrk Lua script that POSTs ``body`` as JSON on every request."""
    return (
        "-- POST rtbench's echo envelope (written by benchmarks/peers.py).\n"
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {lua_string(body)}\n"
    )


# --------------------------------------------------------------------------- ratios


def _span(values: Sequence[float]) -> list[float] | None:
    return [min(values), max(values)] if values else None


def _ok(point: dict[str, Any]) -> bool:
    return not point.get("failed") and point.get("count", 0) > 0


def ratio_rows(points: Sequence[dict[str, Any]], groups: Sequence[Group]) -> list[dict[str, Any]]:
    """One row per (group, rtbench client): peer and client figures and their ratios.

    Rounds are paired (a client's round r against the peer's round r, run next to it);
    each figure is the [min, max] over paired rounds, None when no round has both.
    ``p50_ratio`` is client p50 / peer p50; ``rate_pct`` is client rate / peer rate in %.
    """
    rows = []
    for group in groups:
        mine = [p for p in points if p["group"] == group.key]
        peer = {p["round"]: p for p in mine if p["contender"] == group.peer and _ok(p)}
        for client in group.clients:
            runs = [p for p in mine if p["contender"] == client]
            if not runs:
                continue
            pairs = [(peer[p["round"]], p) for p in runs if _ok(p) and p["round"] in peer]
            notes = sorted({p["skipped"] for p in runs if p.get("skipped")})
            notes += sorted({f"round {p['round']}: {p['failed']}" for p in runs if p.get("failed")})
            if len(pairs) < len(runs) and not notes:
                notes.append(f"{len(runs) - len(pairs)} round(s) without a {group.peer} figure")

            def span(side: int, key: str, pairs: list = pairs) -> list[float] | None:
                return _span([pair[side][key] for pair in pairs if pair[side].get(key) is not None])

            def ratio(key: str, scale: float = 1.0, pairs: list = pairs) -> list[float] | None:
                values = [scale * c[key] / q[key] for q, c in pairs if c.get(key) and q.get(key)]
                return _span(values)

            rows.append(
                {
                    "group": group.key,
                    "title": group.title,
                    "server": group.server,
                    "connections": group.connections,
                    "peer": group.peer,
                    "client": client,
                    "rounds": len(pairs),
                    "peer_p50_us": span(0, "p50_us"),
                    "client_p50_us": span(1, "p50_us"),
                    "p50_ratio": ratio("p50_us"),
                    "peer_p99_us": span(0, "p99_us"),
                    "client_p99_us": span(1, "p99_us"),
                    "peer_rate": span(0, "rate_per_s"),
                    "client_rate": span(1, "rate_per_s"),
                    "rate_pct": ratio("rate_per_s", 100.0),
                    "peer_server_cpu_pct": span(0, "server_cpu_pct"),
                    "client_server_cpu_pct": span(1, "server_cpu_pct"),
                    "peer_client_cpu_pct": span(0, "client_cpu_pct"),
                    "client_client_cpu_pct": span(1, "client_cpu_pct"),
                    "others_cpu_pct_max": max(
                        (
                            p[k]
                            for pair in pairs
                            for p in pair
                            for k in ("server_core_others_pct", "client_core_others_pct")
                            if p.get(k) is not None
                        ),
                        default=None,
                    ),
                    "note": "; ".join(notes),
                }
            )
    return rows


def fmt_span(span: Sequence[float] | None, digits: int = 0, unit: str = "") -> str:
    """``[148.0, 161.0]`` as ``148-161`` (one figure when both ends agree); ``-`` for None."""
    if not span:
        return "-"
    lo, hi = (f"{v:,.{digits}f}" for v in span)
    text = lo if lo == hi else f"{lo}-{hi}"
    return f"{text}{unit}"


def fmt_rate(span: Sequence[float] | None) -> str:
    """A requests-per-second span in thousands: ``17.0-20.9k``."""
    return fmt_span([v / 1000 for v in span], 1, "k") if span else "-"


def md_cell(text: object) -> str:
    """Text safe in a Markdown table cell: literal (:func:`loadgen.escape.md_text`), no pipe."""
    return md_text(text).replace("|", "\\|")


TABLE_HEADER = (
    "point (server)",
    "peer",
    "rtbench client",
    "p50 peer (us)",
    "p50 client (us)",
    "p50 client / peer",
    "p99 peer / client (us)",
    "rate peer (/s)",
    "rate client (/s)",
    "client rate % of peer",
    "server CPU % (peer / client)",
    "load-gen CPU % (peer / client)",
    "others' CPU % on the cores (max)",
)


def table_cells(row: dict[str, Any]) -> list[str]:
    """The cells of one ratio row, in :data:`TABLE_HEADER`'s order."""
    return [
        f"{row['title']} ({row['server']})",
        row["peer"],
        row["client"] + (" (see notes)" if row["note"] else ""),
        fmt_span(row["peer_p50_us"]),
        fmt_span(row["client_p50_us"]),
        fmt_span(row["p50_ratio"], 2, "x"),
        f"{fmt_span(row['peer_p99_us'])} / {fmt_span(row['client_p99_us'])}",
        fmt_rate(row["peer_rate"]),
        fmt_rate(row["client_rate"]),
        fmt_span(row["rate_pct"], 0, " %"),
        f"{fmt_span(row['peer_server_cpu_pct'])} / {fmt_span(row['client_server_cpu_pct'])}",
        f"{fmt_span(row['peer_client_cpu_pct'])} / {fmt_span(row['client_client_cpu_pct'])}",
        fmt_span(
            [row["others_cpu_pct_max"]] * 2 if row["others_cpu_pct_max"] is not None else None
        ),
    ]


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The ratio rows as a Markdown table (every cell escaped)."""
    lines = [
        "| " + " | ".join(TABLE_HEADER) + " |",
        "|" + "---|" * len(TABLE_HEADER),
    ]
    lines += ["| " + " | ".join(md_cell(c) for c in table_cells(row)) + " |" for row in rows]
    notes = [f"- {row['group']} {row['client']}: {row['note']}" for row in rows if row["note"]]
    if notes:
        lines += ["", "Notes:", "", *(md_cell(n) for n in notes)]
    return "\n".join(lines) + "\n"


#: :data:`TABLE_HEADER` for the terminal: units in the header, figures in the cells.
TERMINAL_HEADER = (
    "point (server)",
    "peer",
    "rtbench client",
    "p50 µs\npeer",
    "p50 µs\nclient",
    "p50\nratio",
    "p99 µs\npeer / cli",
    "req/s\npeer",
    "req/s\nclient",
    "rate\n% peer",
    "server CPU %\npeer / cli",
    "load-gen CPU %\npeer / cli",
    "others'\nCPU % max",
)

#: How a narrow terminal splits the table: latency, then rate and CPU (by column index).
TERMINAL_PARTS = ((0, 1, 2, 3, 4, 5, 6), (0, 2, 7, 8, 9, 10, 11, 12))


def terminal_tables(rows: Sequence[dict[str, Any]], parts: Sequence[Sequence[int]]) -> list[Any]:
    """The ratio rows as rich tables, one per entry of ``parts`` (column indices);
    names fold, figures stay whole; notes are the last table's caption."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from loadgen.escape import term_plain

    cells = [table_cells(row) for row in rows]
    notes = [f"{row['group']} {row['client']}: {row['note']}" for row in rows if row["note"]]
    tables = []
    for part in parts:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for i in part:
            name = i < 3
            table.add_column(
                TERMINAL_HEADER[i],
                justify="left" if name else "right",
                no_wrap=not name,
                overflow="fold",
            )
        for row in cells:
            table.add_row(*(Text(term_plain(row[i])) for i in part))
        tables.append(table)
    if notes and tables:
        tables[-1].caption = Text(term_plain("Notes: " + "; ".join(notes)))
        tables[-1].caption_justify = "left"
    return tables


def print_terminal_table(rows: Sequence[dict[str, Any]], console: Any = None) -> None:
    """Print the ratio rows: one table when the console is wide enough, else in two
    parts (:data:`TERMINAL_PARTS`), else one block per row."""
    from rich.console import Console

    from reports.termfit import print_fitting

    console = console or Console()
    full = (tuple(range(len(TERMINAL_HEADER))),)
    print_fitting(
        console,
        [lambda: terminal_tables(rows, full), lambda: terminal_tables(rows, TERMINAL_PARTS)],
    )


# --------------------------------------------------------------------------- running


@dataclass
class Settings:
    """What every point shares."""

    out: Path
    placement: Placement
    duration_s: int
    warmup_s: int
    payload_bytes: int
    loop: str

    @property
    def client_cpus(self) -> list[int] | None:
        return self.placement.client_cpus


@dataclass(frozen=True)
class CpuMark:
    """CPU seconds used so far by the server, the load generator and each core, at ``wall``."""

    server: float | None
    client: float | None
    cores: list[float]
    wall: float

    @classmethod
    def now(cls, server: Child, client: Child) -> CpuMark:
        # Child.cpu_seconds reads schedstat (sub-tick), falling back to psutil's times.
        # Per-core busy time shows whether anything else ran on the pinned cores.
        times = psutil.cpu_times(percpu=True)
        cores = [t.user + t.nice + t.system + t.irq + t.softirq for t in times]
        return cls(server.cpu_seconds(), client.cpu_seconds(), cores, time.monotonic())


def cpu_percents(
    start: CpuMark, end: CpuMark, server_cpus: list[int] | None, client_cpus: list[int] | None
) -> dict[str, float | None]:
    """CPU % (of one core) over the window: the server, the load generator, and what
    everything else (other processes, interrupts) used of their cores
    (``*_core_others_pct``)."""
    wall = end.wall - start.wall

    def pct(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or wall <= 0 else 100.0 * (b - a) / wall

    def others(cpus: list[int] | None, own: float | None) -> float | None:
        if not cpus or own is None or wall <= 0 or max(cpus) >= len(end.cores):
            return None
        busy = sum(end.cores[c] - start.cores[c] for c in cpus) / wall * 100.0
        return max(0.0, busy - own)

    server, client = pct(start.server, end.server), pct(start.client, end.client)
    return {
        "server_cpu_pct": server,
        "client_cpu_pct": client,
        "server_core_others_pct": others(server_cpus, server),
        "client_core_others_pct": others(client_cpus, client),
    }


def _collect(
    child: Child, server: Child, deadline: float, phases: bool, timed: tuple[float, float] | None
) -> tuple[list[str], dict[str, float | None]]:
    """Read ``child``'s stdout to its end, sampling CPU over the measured window.

    The window is given by ``phase`` events (``phases``: rtbench's worker and the node
    script print them) or by offsets in seconds from now (``timed``: wrk prints nothing
    until it ends). Kills the child and raises PointFailed past ``deadline``.
    """
    try:
        return _read(child, server, deadline, phases, timed)
    except BaseException:
        stop_process(child)  # Ctrl-C included: it runs in its own session and would outlive us
        raise


def _read(
    child: Child, server: Child, deadline: float, phases: bool, timed: tuple[float, float] | None
) -> tuple[list[str], dict[str, float | None]]:
    lines: list[str] = []
    started = time.monotonic()
    marks: dict[str, CpuMark] = {}
    while True:
        now = time.monotonic()
        if now > deadline:
            raise PointFailed(f"{child.name} did not finish by its deadline; killed")
        if timed is not None:
            for name, offset in zip(("measure", "drain"), timed, strict=True):
                if name not in marks and now >= started + offset:
                    marks[name] = CpuMark.now(server, child)
        wait = 0.25
        if timed is not None and "drain" not in marks:
            wait = max(0.0, min(wait, started + timed[len(marks)] - now))
        try:
            line = child.lines.get(timeout=wait)
        except queue.Empty:
            continue
        if line is None:
            break
        lines.append(line)
        if phases and line.startswith("{"):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "phase" and event.get("phase") in ("measure", "drain"):
                marks.setdefault(event["phase"], CpuMark.now(server, child))
    if "measure" in marks and "drain" in marks:
        return lines, cpu_percents(marks["measure"], marks["drain"], server.cpus, child.cpus)
    return lines, {}


def _finish(child: Child, log: Path) -> None:
    code = child.proc.wait(timeout=10)
    if code != 0:
        raise PointFailed(f"{child.name} exited with code {code}: {log_tail(log)}")


def check_envelope(port: int, body: bytes) -> None:
    """POST ``body`` once to the HTTP server and raise PointFailed unless it echoes ok."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        conn.request("POST", PATHS["http"], body, {"Content-Type": "application/json"})
        reply = conn.getresponse()
        data = reply.read()
    except OSError as exc:
        raise PointFailed(f"the envelope check could not reach the server: {exc}") from None
    finally:
        conn.close()
    try:
        resp = protocol.decode_response(data)
    except protocol.ProtocolError as exc:
        raise PointFailed(f"the server's reply to wrk's envelope is not valid: {exc}") from None
    if reply.status != 200 or not resp.ok:
        raise PointFailed(f"the server refused wrk's envelope: HTTP {reply.status} {data[:200]!r}")


def run_wrk(s: Settings, group: Group, server: Child, stem: str) -> dict[str, Any]:
    """A warm-up wrk run, then the measured one with ``--latency``."""
    port = server.info["port"]
    url = f"http://127.0.0.1:{port}{PATHS['http']}"
    body = (s.out / "wrk-body.json").read_bytes()
    check_envelope(port, body)
    script = str(s.out / "wrk-rpc.lua")
    common = [WRK, "-t1", f"-c{group.connections}", "--timeout", f"{TIMEOUT_S:.0f}s"]
    log = s.out / "logs" / f"{stem}-wrk.log"
    warm = start_process(
        "wrk warm-up", [*common, f"-d{s.warmup_s}s", "-s", script, url], s.client_cpus, log
    )
    _collect(warm, server, time.monotonic() + s.warmup_s + GRACE_S, False, None)
    _finish(warm, log)
    child = start_process(
        "wrk", [*common, f"-d{s.duration_s}s", "--latency", "-s", script, url], s.client_cpus, log
    )
    # wrk prints nothing until it ends: read CPU a little after it starts and before it ends.
    edge = min(0.25, s.duration_s / 8)
    lines, cpu = _collect(
        child, server, time.monotonic() + s.duration_s + GRACE_S, False, (edge, s.duration_s - edge)
    )
    _finish(child, log)
    output = "\n".join(lines)
    (s.out / "logs" / f"{stem}-wrk.out").write_text(output + "\n")
    try:
        figures = parse_wrk(output)
    except ValueError as exc:
        raise PointFailed(str(exc)) from None
    return {
        "p50_us": figures["p50_us"],
        "p99_us": figures["p99_us"],
        "rate_per_s": figures["rate_per_s"],
        "count": figures["requests"],
        "errors": figures["errors"],
        "window_s": figures.get("seconds"),
        "client_cpus": child.cpus,
        **cpu,
    }


def run_node(s: Settings, group: Group, server: Child, stem: str) -> dict[str, Any]:
    """``ws_echo.mjs`` against the server's WebSocket endpoint."""
    url = f"ws://127.0.0.1:{server.info['port']}{PATHS[group.server]}"
    argv = [
        "node",
        str(NODE_SCRIPT),
        "--url",
        url,
        "--connections",
        str(group.connections),
        "--warmup",
        str(s.warmup_s),
        "--duration",
        str(s.duration_s),
        "--payload",
        orjson.dumps(protocol.make_payload(s.payload_bytes)).decode(),
        "--timeout",
        str(TIMEOUT_S),
    ]
    log = s.out / "logs" / f"{stem}-node.log"
    child = start_process("node ws", argv, s.client_cpus, log)
    deadline = time.monotonic() + s.warmup_s + s.duration_s + GRACE_S
    lines, cpu = _collect(child, server, deadline, True, None)
    _finish(child, log)
    try:
        done = parse_node_events(lines)
    except ValueError as exc:
        raise PointFailed(str(exc)) from None
    return {
        "p50_us": done["p50_us"],
        "p99_us": done["p99_us"],
        "rate_per_s": done["rate_per_s"],
        "count": done["count"],
        "errors": done["errors"],
        "errors_by_code": done.get("errors_by_code"),
        "window_s": done.get("window_s"),
        "client_cpus": child.cpus,
        "node": done.get("node"),
        "ws": done.get("ws"),
        **cpu,
    }


def run_rtbench(
    s: Settings, group: Group, client: str, rnd: int, server: Child, stem: str
) -> dict[str, Any]:
    """One cell through rtbench's engine (``python -m loadgen.worker``), pinned."""
    spec = CellRun(
        cell=f"peers-{group.key}-{client}",
        transport=group.server,
        client=client,
        conn_mode="keep-alive" if group.http else WS_CONN_MODE,
        base_url=f"http://127.0.0.1:{server.info['port']}",
        repeat=rnd,
        connections=group.connections,
        duration_s=float(s.duration_s),
        warmup_s=float(s.warmup_s),
        payload_bytes=s.payload_bytes,
        timeout_s=TIMEOUT_S,
    )
    prefix = s.out / "parts" / stem
    spec_path = prefix.with_suffix(".spec.json")
    spec_path.write_bytes(orjson.dumps(spec.to_dict(), option=orjson.OPT_INDENT_2))
    log = s.out / "logs" / f"{stem}-loadgen.log"
    child = start_worker(spec_path, prefix, s.client_cpus, log, s.loop)
    deadline = time.monotonic() + s.warmup_s + s.duration_s + TIMEOUT_S + GRACE_S
    _lines, cpu = _collect(child, server, deadline, True, None)
    _finish(child, log)
    part_path = prefix.with_suffix(".json")
    if not part_path.exists():
        raise PointFailed(f"the load generator wrote no {part_path.name}")
    part = orjson.loads(part_path.read_bytes())
    hist = decode_histogram(part["hdr_corrected"])
    count = int(part["count"])
    window = float(part["window_s"])
    return {
        "p50_us": hist.get_value_at_percentile(50.0) / 1000 if count else None,
        "p99_us": hist.get_value_at_percentile(99.0) / 1000 if count else None,
        "rate_per_s": count / window if window > 0 else None,
        "count": count,
        "errors": int(part["errors"]),
        "errors_by_code": part.get("stats", {}).get("errors_by_code"),
        "window_s": window,
        "client_cpus": child.cpus,
        "loop": part.get("loop"),
        **cpu,
    }


def run_point(s: Settings, group: Group, contender: str, rnd: int) -> dict[str, Any]:
    """Start a fresh server, measure one contender against it, stop the server."""
    stem = f"r{rnd}-{group.key}-{contender}"
    point: dict[str, Any] = {
        "group": group.key,
        "server": group.server,
        "connections": group.connections,
        "round": rnd,
        "contender": contender,
        "kind": "peer" if contender == group.peer else "rtbench",
    }
    server: Child | None = None
    try:
        server = start_server(
            group.server,
            s.placement.server_cpus,
            s.out / "logs" / f"{stem}-server.log",
            protocol.DEFAULT_MAX_MESSAGE_BYTES,
        )
        point["server_cpus"] = server.cpus
        point["server_loop"] = server.info.get("loop")
        if contender == WRK:
            point |= run_wrk(s, group, server, stem)
        elif contender == NODE_WS:
            point |= run_node(s, group, server, stem)
        else:
            point |= run_rtbench(s, group, contender, rnd, server, stem)
        if server.proc.poll() is not None:
            raise PointFailed(f"the server exited with code {server.proc.returncode} mid-point")
        if not point.get("count"):
            codes = point.get("errors_by_code") or {}
            raise PointFailed(f"no successful request ({point.get('errors', 0)} errors: {codes})")
    except (PointFailed, ProcessFailed, OSError, subprocess.SubprocessError) as exc:
        point["failed"] = str(exc)
    finally:
        if server is not None:
            stop_process(server)
    return point


def point_status(point: dict[str, Any]) -> str:
    """One line for the terminal: the point's figures, or why it has none."""
    if point.get("failed"):
        return f"failed: {point['failed']}"
    if point.get("p50_us") is None:
        return "no successful request"
    cpu = [point.get(k) for k in ("server_cpu_pct", "client_cpu_pct")]
    server_cpu, client_cpu = ("?" if v is None else f"{v:.0f}" for v in cpu)
    return (
        f"p50 {point['p50_us']:.0f} us, p99 {point['p99_us']:.0f} us, "
        f"{point['rate_per_s']:,.0f}/s, {point['errors']} errors; "
        f"CPU % server {server_cpu}, load generator {client_cpu}"
    )


def client_refusal(transport: str, client: str) -> str | None:
    """Why rtbench's make_client refuses ``client`` for ``transport``, or None."""
    mode = "keep-alive" if transport == "http" else WS_CONN_MODE
    try:
        make_client(transport, client, mode, "http://127.0.0.1:1")
    except ValueError as exc:
        return f"not measured: {exc}"
    return None


def peer_versions() -> dict[str, str | None]:
    """wrk's version line, node's version and the installed ws version."""

    def first_line(argv: list[str]) -> str | None:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        text = (done.stdout or done.stderr).strip().splitlines()
        return text[0].strip() if text else None

    try:
        ws = json.loads(WS_PACKAGE.read_text())["version"]
    except (OSError, ValueError, KeyError):
        ws = None
    return {
        "wrk": first_line([WRK, "--version"]),
        "node": first_line(["node", "--version"]),
        "ws": ws,
    }


#: The libraries under rtbench's clients and the engine's loop.
CLIENT_PACKAGES = ("aiohttp", "httpx", "websockets", "httptools", "uvloop", "orjson")


def client_versions() -> dict[str, str | None]:
    """Installed versions of :data:`CLIENT_PACKAGES` (None when absent)."""
    versions: dict[str, str | None] = {}
    for name in CLIENT_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def missing_peers() -> list[str]:
    """What is missing to run the peers, each with how to install it."""
    missing = []
    if shutil.which(WRK) is None:
        missing.append("wrk is not installed (Debian: apt-get install wrk)")
    if shutil.which("node") is None:
        missing.append("node is not installed (Debian: apt-get install nodejs npm)")
    if not WS_PACKAGE.exists():
        missing.append(f"node's ws is not installed (run: cd {PEERS_DIR} && npm ci)")
    return missing


def plan(
    groups: Sequence[Group], rounds: int, refusals: dict[tuple[str, str], str | None]
) -> Iterator[tuple[int, Group, str, str | None]]:
    """The points in run order: every round runs every group, peer first, then its clients."""
    for rnd in range(rounds):
        for group in groups:
            yield rnd, group, group.peer, None
            for client in group.clients:
                family = "http" if group.http else "ws"
                yield rnd, group, client, refusals.get((family, client))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/peers.py",
        description="rtbench's clients against wrk and node's ws, side by side, pinned.",
    )
    parser.add_argument("--duration", type=int, default=4, help="measured seconds per point")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up seconds per point")
    parser.add_argument("--rounds", type=int, default=2, help="times the whole list is run")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results folder, new or empty (default: results/DATE-TIME-peers-XXXXXX)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=[g.key for g in GROUPS],
        help="run only this group (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.duration < 1 or args.warmup < 1 or args.rounds < 2:
        parser.error(
            "--duration and --warmup must be >= 1 s (wrk counts whole seconds), --rounds >= 2"
        )
    missing = missing_peers()
    if missing:
        for line in missing:
            sys.stderr.write(f"peers: {line}\n")
        return 2
    try:
        out = claim_run_folder(args.out, "peers", root=ROOT / RESULTS_ROOT)
    except RunFolderTaken as exc:
        sys.stderr.write(f"peers: {exc}\n")
        return 2
    # The scenario defaults, so rtbench's cells run as a scenario that sets nothing would.
    defaults = {k: f.default for k, f in RunSettings.model_fields.items()}
    s = Settings(
        out=out,
        placement=plan_placement("split"),
        duration_s=args.duration,
        warmup_s=args.warmup,
        payload_bytes=defaults["payload_bytes"],
        loop=defaults["client_loop"],
    )
    body = protocol.encode_request(
        protocol.Request(
            op="echo",
            id=1,
            ts=time.perf_counter_ns(),
            payload=protocol.make_payload(s.payload_bytes),
        )
    )
    (out / "wrk-body.json").write_bytes(body)
    (out / "wrk-rpc.lua").write_text(wrk_script(body))
    groups = [g for g in GROUPS if not args.only or g.key in args.only]
    refusals = {
        (family, client): client_refusal(transport, client)
        for family, transport, clients in (
            ("http", "http", HTTP_CLIENTS),
            ("ws", "ws-aiohttp", WS_CLIENTS),
        )
        for client in clients
    }
    todo = list(plan(groups, args.rounds, refusals))
    print(
        f"peers: {len(todo)} points, {s.placement.mode} placement "
        f"(server CPUs {s.placement.server_cpus}, load generator CPUs {s.client_cpus}); "
        f"results in {out}"
    )
    points: list[dict[str, Any]] = []
    # Other work on the machine shows in every figure: keep the load it started under.
    load_at_start = list(os.getloadavg())
    interrupted = False
    try:
        run_points(s, todo, points)
    except KeyboardInterrupt:
        interrupted = True
        print("peers: interrupted; writing the points measured so far", file=sys.stderr)
    record = {
        "settings": {
            "duration_s": s.duration_s,
            "warmup_s": s.warmup_s,
            "rounds": args.rounds,
            "payload_bytes": s.payload_bytes,
            "client_loop": s.loop,
            "groups": [g.key for g in groups],
            "interrupted": interrupted,
            "load_average_at_start": load_at_start,
        },
        "placement": s.placement.as_dict(),
        "environment": collect_environment(),
        "peer_versions": peer_versions(),
        "client_versions": client_versions(),
        "wrk_body": body.decode(),
        "points": points,
        "ratios": ratio_rows(points, groups),
    }
    write_results(out, record)
    busy = busiest_others(points)
    if busy is not None and busy >= BUSY_WARN_PCT:
        print(f"peers: warning: {busy_warning(busy)}", file=sys.stderr)
    failed = [p for p in points if p.get("failed")]
    if failed:
        print(f"peers: {len(failed)} point(s) failed to run; see peers.json", file=sys.stderr)
    return 130 if interrupted else 1 if failed else 0


def run_points(
    s: Settings, todo: Sequence[tuple[int, Group, str, str | None]], points: list[dict[str, Any]]
) -> None:
    """Run the planned points in order, appending each result (or skip note) to ``points``."""
    for i, (rnd, group, contender, refusal) in enumerate(todo, 1):
        if refusal:
            points.append(
                {
                    "group": group.key,
                    "server": group.server,
                    "connections": group.connections,
                    "round": rnd,
                    "contender": contender,
                    "kind": "rtbench",
                    "skipped": refusal,
                }
            )
            continue
        point = run_point(s, group, contender, rnd)
        points.append(point)
        status = point_status(point)
        print(f"[{i}/{len(todo)}] round {rnd} {group.key} {contender}: {status}", flush=True)


def write_results(out: Path, record: dict[str, Any]) -> None:
    """``peers.json`` and ``peers.md`` in ``out``; the table is printed too (fitted to
    the terminal, :func:`print_terminal_table`)."""
    (out / "peers.json").write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2))
    table = markdown_table(record["ratios"])
    (out / "peers.md").write_text(markdown_report(record, table))
    print()
    print_terminal_table(record["ratios"])
    print(f"peers: wrote {out / 'peers.json'} and {out / 'peers.md'}")


def _loads(values: Sequence[float] | None) -> str:
    return ", ".join(f"{v:.1f}" for v in values) if values else "unknown"


def markdown_report(record: dict[str, Any], table: str) -> str:
    """``peers.md``: how the run was made (pinning, versions, commit), then the table."""
    env, st, pl, peers = (
        record["environment"],
        record["settings"],
        record["placement"],
        record["peer_versions"],
    )
    versions = ", ".join(f"{name} {v}" for name, v in record["client_versions"].items())
    commit = (env.get("git_commit") or "unknown")[:12] + (
        " (dirty)" if env.get("git_dirty") else ""
    )
    lines = [
        "# rtbench's load generator against wrk and node's ws",
        "",
        f"- {st['rounds']} rounds, interleaved; {st['warmup_s']} s warm-up and "
        f"{st['duration_s']} s measured per point; a fresh server for every point; "
        f"{st['payload_bytes']}-byte payload in rtbench's echo envelope.",
        f"- Pinning ({pl['placement']}): server on CPUs {pl['server_cpus']}, load generator on "
        f"CPUs {pl['client_cpus']}. {pl['note']}".rstrip(),
        f"- Peers: {peers.get('wrk')}; node {peers.get('node')} with ws {peers.get('ws')}.",
        f"- rtbench {commit}, Python {env.get('python')}, {versions}; "
        f"client loop {st['client_loop']}; CPU {env.get('cpu_model')}.",
        "- Each figure is the lowest-highest over the rounds; a ratio pairs a client's round "
        "with the peer's round run next to it. CPU % is of one core over the measured window; "
        "the last column is what else (other processes, interrupts) used of a pinned core.",
        f"- Load average (1, 5, 15 min) at the start {_loads(st.get('load_average_at_start'))}, "
        f"at the end {_loads(env.get('load_average'))}.",
    ]
    busy = busiest_others(record["points"])
    if busy is not None and busy >= BUSY_WARN_PCT:
        lines.append(f"- Warning: {busy_warning(busy)}")
    lines += ["", table]
    return "\n".join(md_cell(line) if line.startswith("- ") else line for line in lines)


#: Other processes' CPU % on a pinned core above which the run is flagged as disturbed.
BUSY_WARN_PCT = 10.0


def busiest_others(points: Sequence[dict[str, Any]]) -> float | None:
    """The most CPU % anything else used of a pinned core during any point, or None."""
    keys = ("server_core_others_pct", "client_core_others_pct")
    values = [p[k] for p in points for k in keys if p.get(k) is not None]
    return max(values) if values else None


def busy_warning(busy: float) -> str:
    """The sentence that flags a run disturbed by other work on the pinned cores."""
    return (
        f"other processes or interrupts used up to {busy:.0f} % of a pinned core during a point; "
        "these figures measure a shared machine, run again when it is idle."
    )


if __name__ == "__main__":
    raise SystemExit(main())
