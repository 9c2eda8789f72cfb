"""Turn the per-repeat part records of a run into ``summary.json``.

A *part* is the dict the orchestrator keeps for one repeat of one cell:
the worker's part file (histograms and counters, see
:mod:`loadgen.worker`) plus ``procs`` (CPU seconds and peak RSS of the
server and the load generator over the measured window, and the server's RSS
before any user signed in), or ``failed``
with the reason when that repeat could not run::

    summary = build_summary(run_id, scenario_name, parts, complete=True)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hdrh.histogram import HdrHistogram

from loadgen.recorder import decode_histogram, new_histogram
from loadgen.schema import (
    DELIVERY_COUNTS,
    PERCENTILES,
    REFUSAL_COUNTERS,
    SCHEMA_VERSION,
    family,
)
from loadgen.stall_records import stalls_block
from loadgen.user_costs import cell_per_1000_users

NS_PER_MS = 1e6


def latency_block(hist: HdrHistogram, max_ns: int | None = None) -> dict[str, float | None]:
    """Percentiles (and max) of a histogram in milliseconds; None when it is empty."""
    if hist.get_total_count() == 0:
        return {label: None for label, _ in PERCENTILES} | {"max": None}
    top = max_ns if max_ns is not None else hist.get_max_value()
    # HdrHistogram reports a bucket's upper edge; no percentile exceeds the exact max.
    block: dict[str, float | None] = {
        label: round(min(hist.get_value_at_percentile(p), top) / NS_PER_MS, 4)
        for label, p in PERCENTILES
    }
    block["max"] = round(top / NS_PER_MS, 4)
    return block


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or not den:
        return None
    return num / den


def _cpu_blocks(
    server_cpu: float | None,
    client_cpu: float | None,
    client_busy: float | None,
    count: int,
    window: float,
) -> dict[str, dict[str, float | None]]:
    """CPU seconds per request and CPU utilisation over the window, server and client."""
    return {
        "cpu_s_per_request": {
            "server": _ratio(server_cpu, count),
            "client": _ratio(client_cpu, count),
        },
        "cpu_util": {
            "server": _ratio(server_cpu, window),
            "client": _ratio(client_busy, window),
        },
    }


def _repeat_stats(part: dict[str, Any]) -> dict[str, Any]:
    count = part["count"]
    window = part["window_s"]
    procs = part.get("procs", {})
    server_cpu = procs.get("server_cpu_s")
    client_cpu = procs.get("client_cpu_s")
    corrected = decode_histogram(part["hdr_corrected"])
    uncorrected = decode_histogram(part["hdr_uncorrected"])
    realtime = _realtime_block([part], server_cpu, client_cpu)
    client_busy = _client_busy(part)
    return {
        "repeat": part["spec"]["repeat"],
        "count": count,
        "errors": part["errors"],
        "duration_s": round(window, 6),
        "throughput_rps": round(_ratio(count, window) or 0.0, 3),
        "latency_ms": latency_block(corrected, part["max_ns"] or None),
        "latency_uncorrected_ms": latency_block(uncorrected),
        **_cpu_blocks(server_cpu, client_cpu, client_busy, count, window),
        "rss_mb": {"server": procs.get("server_rss_mb"), "client": procs.get("client_rss_mb")},
        "bytes_per_request": {
            "sent": _ratio(part["bytes_sent"], count),
            "received": _ratio(part["bytes_received"], count),
        },
        "send_lag_p99_ms": part.get("send_lag_p99_ms"),
        "loop": part.get("loop"),
        **{name: (part.get("server_counters") or {}).get(name) for name in REFUSAL_COUNTERS},
    } | {k: v for k, v in realtime.items() if k in REPEAT_REALTIME_KEYS}


def _refusals(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The server's refusal counters summed over a cell's repeats (failed ones included:
    a refusal is often why a repeat failed), and the repeats whose server started but
    reported nothing (``server_counters_missing``); a total is None when none reported.
    ``refusals_by_repeat`` gives each reporting repeat's counters, failed repeats included."""
    started = [p for p in parts if "server_counters" in p]
    reported = [p["server_counters"] for p in started if p["server_counters"] is not None]
    totals: dict[str, Any] = {
        name: sum(c.get(name, 0) for c in reported) if reported else None
        for name in REFUSAL_COUNTERS
    }
    totals["server_counters_missing"] = [
        p["repeat"] for p in started if p["server_counters"] is None
    ]
    # per_repeat holds only repeats that succeeded; a refusal often made one fail.
    totals["refusals_by_repeat"] = [
        {
            "repeat": p["repeat"],
            **{name: p["server_counters"].get(name, 0) for name in REFUSAL_COUNTERS},
        }
        for p in started
        if p["server_counters"] is not None
    ]
    return totals


def _client_busy(part: dict[str, Any]) -> float | None:
    """The load generator's CPU seconds per client CPU it ran on: with several processes
    on several CPUs, 1.0 of utilisation means all of those CPUs were busy."""
    procs = part.get("procs", {})
    cpu = procs.get("client_cpu_s")
    return None if cpu is None else cpu / (procs.get("client_cpu_count") or 1)


def _sum(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) if vals else None


def _max(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return max(vals) if vals else None


def cell_summary(cell: dict[str, Any], parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate every repeat of one cell; ``cell`` carries its identity and load."""
    ok_parts = [p for p in parts if "failed" not in p]
    failures = [f"repeat {p['repeat']}: {p['failed']}" for p in parts if "failed" in p]
    corrected, uncorrected = new_histogram(), new_histogram()
    for p in ok_parts:
        corrected.add(decode_histogram(p["hdr_corrected"]))
        uncorrected.add(decode_histogram(p["hdr_uncorrected"]))
    count = sum(p["count"] for p in ok_parts)
    errors = sum(p["errors"] for p in ok_parts)
    window = sum(p["window_s"] for p in ok_parts)
    server_cpu = _sum(p.get("procs", {}).get("server_cpu_s") for p in ok_parts)
    client_cpu = _sum(p.get("procs", {}).get("client_cpu_s") for p in ok_parts)
    client_busy = _sum(_client_busy(p) for p in ok_parts)
    max_ns = max((p["max_ns"] for p in ok_parts), default=0)
    status = "ok" if ok_parts and not failures and errors == 0 else "error"
    realtime = _realtime_block(ok_parts, server_cpu, client_cpu)
    if realtime and (realtime["deliveries"]["lost"] or realtime["deliveries"]["duplicated"]):
        status = "error"
    return realtime | {
        **cell,
        "family": family(cell["transport"]),
        "status": status,
        "failures": failures,
        # Left out of every figure here, and of the report's verdict.
        "failed_repeats": [p["repeat"] for p in parts if "failed" in p],
        "repeats": len(parts),
        "repeats_ok": len(ok_parts),
        "count": count,
        "errors": errors,
        "duration_s": round(window, 6),
        "throughput_rps": round(_ratio(count, window) or 0.0, 3),
        "latency_ms": latency_block(corrected, max_ns or None),
        "latency_uncorrected_ms": latency_block(uncorrected),
        **_cpu_blocks(server_cpu, client_cpu, client_busy, count, window),
        "rss_mb": {
            "server": _max(p.get("procs", {}).get("server_rss_mb") for p in ok_parts),
            "client": _max(p.get("procs", {}).get("client_rss_mb") for p in ok_parts),
        },
        "bytes_per_request": {
            "sent": _ratio(sum(p["bytes_sent"] for p in ok_parts), count),
            "received": _ratio(sum(p["bytes_received"] for p in ok_parts), count),
        },
        "errors_by_code": _merge_codes(ok_parts),
        **_refusals(parts),
        "offered_rps": cell.get("target_rate"),
        "send_lag_ms": {
            "p50": _max(p.get("send_lag_ms", {}).get("p50") for p in ok_parts),
            "p99": _max(p.get("send_lag_ms", {}).get("p99") for p in ok_parts),
            "max": _max(p.get("send_lag_ms", {}).get("max") for p in ok_parts),
        },
        "per_repeat": [_repeat_stats(p) for p in ok_parts],
        "hdr_corrected": corrected.encode().decode("ascii") if count else None,
        **_server_process(parts),
    }


def _server_process(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"server_process": ...}`` for a cell on a server rtbench did not start (its
    server_url), else ``{}``: what the process was when last found (pid, name, CPU affinity
    as read, that rtbench neither started nor pinned it) and, for every repeat that found
    it, its CPU seconds, RSS and open files ``before`` and ``after`` the repeat."""
    records = [(p["repeat"], p["server_process"]) for p in parts if p.get("server_process")]
    if not records:
        return {}
    last = records[-1][1]
    return {
        "server_process": {
            **{k: v for k, v in last.items() if k not in ("before", "after")},
            "by_repeat": [
                {
                    "repeat": repeat,
                    "pid": record.get("pid"),
                    "before": record.get("before"),
                    "after": record.get("after"),
                }
                for repeat, record in records
            ],
        }
    }


#: Real-time figures also given per repeat (rtbench compare needs their spread).
REPEAT_REALTIME_KEYS = (
    "deliveries",
    "delivery_latency_ms",
    "useful_messages",
    "per_useful_message",
    "per_1000_users",
)


def _realtime_block(
    parts: list[dict[str, Any]], server_cpu: float | None, client_cpu: float | None
) -> dict[str, Any]:
    """Delivery counts and latency, and costs per useful message, for real-time cells."""
    parts = [p for p in parts if "deliveries" in p]
    if not parts:
        return {}
    counts = {k: sum(p["deliveries"].get(k, 0) for p in parts) for k in DELIVERY_COUNTS}
    hists: dict[str, HdrHistogram] = {}
    for p in parts:
        for kind, text in p["delivery_hdr"].items():
            hists.setdefault(kind, new_histogram()).add(decode_histogram(text))
    top = max((p.get("delivery_max_ns", 0) for p in parts), default=0)
    useful = sum(p["useful_measured"] for p in parts)
    wire = sum(p["measured_wire_bytes"] + p["push_bytes_measured"] for p in parts)
    polls = sum(p["polls_measured"] for p in parts)
    empty = sum(p["empty_polls_measured"] for p in parts)
    activity = [p["stats"].get("activity") for p in parts if p["stats"].get("activity")]
    server = [p["stats"].get("server_stats", {}) for p in parts]
    all_hist = hists.get("all", new_histogram())
    return {
        "deliveries": counts,
        "delivery_latency_ms": latency_block(all_hist, top or None),
        "delivery_latency_by_type_ms": {
            kind: latency_block(h) for kind, h in sorted(hists.items()) if kind != "all"
        },
        "useful_messages": useful,
        "per_useful_message": {
            "bytes": _ratio(wire, useful),
            "requests": _ratio(sum(p["requests_measured"] for p in parts), useful),
            "cpu_s_server": _ratio(server_cpu, useful),
            "cpu_s_client": _ratio(client_cpu, useful),
        },
        "per_1000_users": cell_per_1000_users(parts),
        "polls": polls,
        "empty_polls": empty,
        "empty_poll_ratio": _ratio(empty, polls),
        "reconnects": sum(p["stats"].get("reconnects", 0) for p in parts),
        # Ended by the server because their token did, then resumed: not a loss.
        "auth_closes": sum(p["stats"].get("auth_closes", 0) for p in parts),
        # Steps users reached more than 100 ms after they were due: load not offered on time.
        "late_steps": sum(p["stats"].get("late_steps", 0) for p in parts),
        "max_late_ms": max((p["stats"].get("max_late_ms", 0.0) for p in parts), default=0.0),
        "slow_consumer_closes": sum(s.get("slow_consumer_closes", 0) for s in server),
        "activity": _activity_block(activity),
        # The longest pauses of the server and of the load generator inside the windows.
        "stalls": stalls_block(parts),
        **_http2_headers(parts),
    }


def _http2_headers(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"http2_headers": ...}`` for a real-time HTTP/2 cell, else ``{}``: the HEADERS
    (+CONTINUATION) frame bytes each way over whole repeats (set-up included), the requests
    and responses they framed, and the bytes per request and per response."""
    stats = [p["stats"] for p in parts]
    requests = sum(s.get("http2_requests", 0) for s in stats)
    if not requests:
        return {}
    responses = sum(s.get("http2_responses", 0) for s in stats)
    sent = sum(s.get("http2_header_bytes_sent", 0) for s in stats)
    received = sum(s.get("http2_header_bytes_received", 0) for s in stats)
    return {
        "http2_headers": {
            "requests": requests,
            "responses": responses,
            "bytes_sent": sent,
            "bytes_received": received,
            "bytes_sent_per_request": _ratio(sent, requests),
            "bytes_received_per_response": _ratio(received, responses),
        }
    }


def _activity_block(reports: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Time on site: the server's figure against the clients' own, over repeats."""
    if not reports:
        return None
    n = sum(r["users"] for r in reports)
    return {
        "users": n,
        "server_ms": round(sum(r["server_ms"] for r in reports), 3),
        "client_ms": round(sum(r["client_ms"] for r in reports), 3),
        "mean_abs_diff_ms": round(sum(r["mean_abs_diff_ms"] * r["users"] for r in reports) / n, 3),
        "max_abs_diff_ms": max(r["max_abs_diff_ms"] for r in reports),
    }


def _merge_codes(parts: list[dict[str, Any]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for p in parts:
        for code, n in p.get("stats", {}).get("errors_by_code", {}).items():
            merged[code] = merged.get(code, 0) + n
    return merged


def build_summary(
    run_id: str,
    scenario: str,
    cells: list[dict[str, Any]],
    parts: list[dict[str, Any]],
    complete: bool,
) -> dict[str, Any]:
    """The whole ``summary.json`` document; ``cells`` lists each cell's identity in order."""
    by_cell: dict[str, list[dict[str, Any]]] = {c["cell"]: [] for c in cells}
    for part in parts:
        by_cell.setdefault(part["cell"], []).append(part)
    return {
        "schema": SCHEMA_VERSION,
        "run_id": run_id,
        "scenario": scenario,
        "complete": complete,
        "cells": [cell_summary(c, by_cell[c["cell"]]) for c in cells if by_cell[c["cell"]]],
    }


def refusal_notes(cells: list[dict[str, Any]]) -> list[str]:
    """``"CELL: 3 limit_refusals, 1 unknown_recipients"`` for each summary.json cell whose
    server refused anything (its counters are non-zero)."""
    notes = []
    for cell in cells:
        counts = [f"{cell[name]} {name}" for name in REFUSAL_COUNTERS if cell.get(name)]
        if counts:
            notes.append(f"{cell['cell']}: {', '.join(counts)}")
    return notes
