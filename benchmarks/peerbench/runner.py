"""Measuring one point: a fresh pinned server, then wrk, h2load, node's ws or rtbench's
engine against it, each pinned to the load generator's CPUs.

::

    point = run_point(settings, group, contender, rnd)   # "failed" says why it has no figures
    run_points(settings, plan(...), points)              # every planned point, printed as it ends
"""

from __future__ import annotations

import http.client
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from loadgen.cellspec import CellRun
from loadgen.clients.kinds import PATHS, WS_CONN_MODE
from loadgen.procs import (
    Child,
    Placement,
    ProcessFailed,
    start_process,
    start_server,
    start_worker,
    stop_process,
)
from loadgen.recorder import decode_histogram
from servers import protocol

from .groups import H2LOAD, NODE_WS, WRK, Group, point_head
from .output import parse_h2load, parse_node_events, parse_wrk
from .sampling import PointFailed, collect, finish
from .tools import NODE_SCRIPT

#: Seconds a load generator may run past warm-up + duration before it is killed.
GRACE_S = 15.0
TIMEOUT_S = 5.0


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


#: The figures every contender reports, in ``peers.json``'s order.
FIGURES = ("p50_us", "p99_us", "rate_per_s", "count", "errors")


def _figures(
    done: dict[str, Any],
    child: Child,
    cpu: dict[str, float | None],
    before: Sequence[str] = (),
    after: Sequence[str] = (),
) -> dict[str, Any]:
    """A point's figures from a finished run's ``done``: :data:`FIGURES`, the optional
    ``before`` keys, the window, the load generator's CPUs, ``after`` keys, CPU %."""
    return {
        **{k: done[k] for k in FIGURES},
        **{k: done.get(k) for k in before},
        "window_s": done.get("window_s"),
        "client_cpus": child.cpus,
        **{k: done.get(k) for k in after},
        **cpu,
    }


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
    collect(warm, server, time.monotonic() + s.warmup_s + GRACE_S, False, None)
    finish(warm, log)
    child = start_process(
        "wrk", [*common, f"-d{s.duration_s}s", "--latency", "-s", script, url], s.client_cpus, log
    )
    # wrk prints nothing until it ends: read CPU a little after it starts and before it ends.
    edge = min(0.25, s.duration_s / 8)
    lines, cpu = collect(
        child, server, time.monotonic() + s.duration_s + GRACE_S, False, (edge, s.duration_s - edge)
    )
    finish(child, log)
    output = "\n".join(lines)
    (s.out / "logs" / f"{stem}-wrk.out").write_text(output + "\n")
    try:
        figures = parse_wrk(output)
    except ValueError as exc:
        raise PointFailed(str(exc)) from None
    done = figures | {"count": figures["requests"], "window_s": figures.get("seconds")}
    return _figures(done, child, cpu)


def run_h2load(s: Settings, group: Group, server: Child, stem: str) -> dict[str, Any]:
    """h2load over HTTP/2 with prior knowledge, one stream per connection at a time (as
    wrk and rtbench's engine do), warm-up and measured window in one run."""
    port = server.info["port"]
    url = f"http://127.0.0.1:{port}{PATHS['http']}"
    body_path = s.out / "wrk-body.json"
    check_envelope(port, body_path.read_bytes())
    log = s.out / "logs" / f"{stem}-h2load.log"
    request_log = s.out / "logs" / f"{stem}-h2load.requests.tsv"
    argv = [
        H2LOAD,
        "-t1",
        f"-c{group.connections}",
        "-m1",
        f"-D{s.duration_s}",
        f"--warm-up-time={s.warmup_s}",
        "-d",
        str(body_path),
        "-H",
        "content-type: application/json",
        f"--log-file={request_log}",
        url,
    ]
    child = start_process("h2load", argv, s.client_cpus, log)
    # h2load prints its figures when it ends: read CPU inside the measured window.
    edge = min(0.25, s.duration_s / 8)
    window = (s.warmup_s + edge, s.warmup_s + s.duration_s - edge)
    deadline = time.monotonic() + s.warmup_s + s.duration_s + GRACE_S
    lines, cpu = collect(child, server, deadline, False, window)
    finish(child, log)
    output = "\n".join(lines)
    (s.out / "logs" / f"{stem}-h2load.out").write_text(output + "\n")
    try:
        requests = request_log.read_text() if request_log.exists() else ""
        figures = parse_h2load(output, requests, float(s.duration_s))
    except ValueError as exc:
        raise PointFailed(str(exc)) from None
    done = figures | {"count": figures["requests"], "window_s": figures["seconds"]}
    return _figures(done, child, cpu)


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
    lines, cpu = collect(child, server, deadline, True, None)
    finish(child, log)
    try:
        done = parse_node_events(lines)
    except ValueError as exc:
        raise PointFailed(str(exc)) from None
    return _figures(done, child, cpu, before=("errors_by_code",), after=("node", "ws"))


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
        http_version=group.http_version,
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
    _lines, cpu = collect(child, server, deadline, True, None)
    finish(child, log)
    part_path = prefix.with_suffix(".json")
    if not part_path.exists():
        raise PointFailed(f"the load generator wrote no {part_path.name}")
    part = orjson.loads(part_path.read_bytes())
    hist = decode_histogram(part["hdr_corrected"])
    count = int(part["count"])
    window = float(part["window_s"])
    done = {
        "p50_us": hist.get_value_at_percentile(50.0) / 1000 if count else None,
        "p99_us": hist.get_value_at_percentile(99.0) / 1000 if count else None,
        "rate_per_s": count / window if window > 0 else None,
        "count": count,
        "errors": int(part["errors"]),
        "errors_by_code": part.get("stats", {}).get("errors_by_code"),
        "window_s": window,
        "loop": part.get("loop"),
    }
    return _figures(done, child, cpu, before=("errors_by_code",), after=("loop",))


def run_point(s: Settings, group: Group, contender: str, rnd: int) -> dict[str, Any]:
    """Start a fresh server, measure one contender against it, stop the server."""
    stem = f"r{rnd}-{group.key}-{contender}"
    point = point_head(group, contender, rnd)
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
        elif contender == H2LOAD:
            point |= run_h2load(s, group, server, stem)
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


def run_points(
    s: Settings, todo: Sequence[tuple[int, Group, str, str | None]], points: list[dict[str, Any]]
) -> None:
    """Run the planned points in order, appending each result (or skip note) to ``points``."""
    for i, (rnd, group, contender, refusal) in enumerate(todo, 1):
        if refusal:
            points.append(point_head(group, contender, rnd) | {"skipped": refusal})
            continue
        point = run_point(s, group, contender, rnd)
        points.append(point)
        status = point_status(point)
        print(f"[{i}/{len(todo)}] round {rnd} {group.key} {contender}: {status}", flush=True)
