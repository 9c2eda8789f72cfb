"""Merge the locust workers' results (or a cell's load-generator processes' part
records, :mod:`loadgen.processes`) into one part record and its files.

Pure Python (no gevent), so it can be tested anywhere::

    part = merge_results(spec, results, failures, extra)
    write_part(out_prefix, spec, results, part)

Raw samples and deliveries are concatenated; latency histograms are merged
with HdrHistogram's ``add``; counters are summed; the window is the longest
of the workers' windows (they run at the same time).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loadgen.cellspec import CellRun
from loadgen.pacer import lag_block
from loadgen.recorder import decode_histogram, encode_histogram, new_histogram
from loadgen.schema import DELIVERY_SCHEMA, SAMPLE_SCHEMA
from servers.stalls import merge_reports

#: Counters of the echo engine's stats that add up across workers.
_ECHO_SUMS = ("issued", "connects", "connect_errors", "cancelled_in_flight")
#: Counters of the real-time stats that add up across workers.
_RT_SUMS = (
    "users",
    "reconnects",
    "auth_closes",
    "wire_sent",
    "wire_received",
    "requests",
    "polls",
    "empty_polls",
    # HTTP/2 cells' header bytes (the asyncio engine's processes; locust speaks HTTP/1.1).
    "http2_header_bytes_sent",
    "http2_header_bytes_received",
    "http2_requests",
    "http2_responses",
)


def _merge_hdr(texts: list[str]) -> str:
    merged = new_histogram()
    for text in texts:
        merged.add(decode_histogram(text))
    return encode_histogram(merged)


def _add_counts(dicts: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for d in dicts:
        for key, value in (d or {}).items():
            out[key] = out.get(key, 0) + value
    return out


def _min_nonzero(values: list[int]) -> int:
    nonzero = [v for v in values if v]
    return min(nonzero) if nonzero else 0


def _merge_echo_stats(stats: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {k: sum(s.get(k, 0) for s in stats) for k in _ECHO_SUMS}
    out["budget_exhausted"] = any(s.get("budget_exhausted") for s in stats)
    out["started_ns"] = _min_nonzero([s.get("started_ns", 0) for s in stats])
    out["measure_started_ns"] = _min_nonzero([s.get("measure_started_ns", 0) for s in stats])
    out["ended_ns"] = max((s.get("ended_ns", 0) for s in stats), default=0)
    out["drained_ns"] = max((s.get("drained_ns", 0) for s in stats), default=0)
    out["errors_by_code"] = _add_counts([s.get("errors_by_code", {}) for s in stats])
    return out


def _merge_activity(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    blocks = [b for b in blocks if b]
    if not blocks:
        return {}
    users = sum(b["users"] for b in blocks)
    return {
        "users": users,
        "server_ms": round(sum(b["server_ms"] for b in blocks), 3),
        "client_ms": round(sum(b["client_ms"] for b in blocks), 3),
        "mean_diff_ms": round(sum(b["mean_diff_ms"] * b["users"] for b in blocks) / users, 3),
        "mean_abs_diff_ms": round(
            sum(b["mean_abs_diff_ms"] * b["users"] for b in blocks) / users, 3
        ),
        "max_abs_diff_ms": max(b["max_abs_diff_ms"] for b in blocks),
    }


def _merge_rt_stats(stats: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {k: sum(s.get(k, 0) for s in stats) for k in _RT_SUMS}
    out["setup_s"] = max((s.get("setup_s", 0.0) for s in stats), default=0.0)
    out["measure_started_ns"] = _min_nonzero([s.get("measure_started_ns", 0) for s in stats])
    out["ended_ns"] = max((s.get("ended_ns", 0) for s in stats), default=0)
    out["drained_ns"] = max((s.get("drained_ns", 0) for s in stats), default=0)
    out["actions"] = _add_counts([s.get("actions", {}) for s in stats])
    out["action_errors"] = _add_counts([s.get("action_errors", {}) for s in stats])
    out["activity"] = _merge_activity([s.get("activity", {}) for s in stats])
    out["late_steps"] = sum(s.get("late_steps", 0) for s in stats)
    out["max_late_ms"] = max((s.get("max_late_ms", 0.0) for s in stats), default=0.0)
    # Every process runs with the same collector settings; the first one's stand for all.
    out["gc"] = next((s["gc"] for s in stats if s.get("gc")), {})
    out["stalls"] = merge_reports([s.get("stalls") or {} for s in stats])
    # The server is shared: every worker read the same counters; keep the latest.
    server = [s.get("server_stats") or {} for s in stats]
    out["server_stats"] = max(server, key=lambda d: d.get("deliveries", 0), default={})
    return out


def _read_table(data: bytes | None, schema: pa.Schema) -> pa.Table:
    if not data:
        return schema.empty_table()
    return pq.read_table(io.BytesIO(data)).cast(schema)


def merged_tables(spec: CellRun, results: list[dict[str, Any]]) -> tuple[pa.Table, pa.Table | None]:
    """All workers' samples (and deliveries, for real-time cells), concatenated."""
    samples = pa.concat_tables(
        [SAMPLE_SCHEMA.empty_table()]
        + [_read_table(r.get("samples"), SAMPLE_SCHEMA) for r in results]
    )
    if spec.workload == "echo":
        return samples, None
    deliveries = pa.concat_tables(
        [DELIVERY_SCHEMA.empty_table()]
        + [_read_table(r.get("deliveries_table"), DELIVERY_SCHEMA) for r in results]
    )
    return samples, deliveries


def merge_results(
    spec: CellRun,
    results: list[dict[str, Any]],
    samples: pa.Table,
    extra: dict[str, Any],
    loop: str = "gevent",
) -> dict[str, Any]:
    """One part record (the asyncio worker's fields) from the workers' results.

    ``results`` are locust workers' result records or asyncio part records
    (``python -m loadgen.worker``, one per process of a cell); ``loop`` names
    the event loop they ran on.
    """
    part: dict[str, Any] = {
        "spec": spec.to_dict(),
        "loop": loop,
        "window_s": max((r.get("window_s", 0.0) for r in results), default=0.0),
        "count": sum(r["count"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "bytes_sent": sum(r["bytes_sent"] for r in results),
        "bytes_received": sum(r["bytes_received"] for r in results),
        "max_ns": max((r["max_ns"] for r in results), default=0),
        "hdr_corrected": _merge_hdr([r["hdr_corrected"] for r in results]),
        "hdr_uncorrected": _merge_hdr([r["hdr_uncorrected"] for r in results]),
        "client_cpu_s_total": sum(
            r.get("cpu_s_total", r.get("client_cpu_s_total", 0.0)) for r in results
        ),
    }
    if spec.workload == "echo":
        part["stats"] = _merge_echo_stats([r.get("stats", {}) for r in results])
        requests = samples.filter(
            pc.and_(pc.equal(samples["kind"], "request"), pc.invert(samples["warmup"]))
        )
        lags = sorted(
            s - i
            for s, i in zip(
                requests["sent_ns"].to_pylist(), requests["intended_ns"].to_pylist(), strict=True
            )
        )
        part["send_lag_ms"] = lag_block(lags)
        part["send_lag_p99_ms"] = part["send_lag_ms"]["p99"]
    else:
        stats = _merge_rt_stats([r.get("stats", {}) for r in results])
        part["stats"] = stats
        part["send_lag_ms"] = lag_block([])
        hdr_types = sorted({k for r in results for k in r.get("delivery_hdr", {})})
        part.update(
            {
                "deliveries": _add_counts([r.get("deliveries", {}) for r in results]),
                "useful_measured": sum(r.get("useful_measured", 0) for r in results),
                "delivery_hdr": {
                    k: _merge_hdr([r["delivery_hdr"][k] for r in results if k in r["delivery_hdr"]])
                    for k in hdr_types
                },
                "delivery_max_ns": max((r.get("delivery_max_ns", 0) for r in results), default=0),
                "requests_measured": sum(r.get("requests_measured", 0) for r in results),
                "polls_measured": sum(r.get("polls_measured", 0) for r in results),
                "empty_polls_measured": sum(r.get("empty_polls_measured", 0) for r in results),
                "wire_bytes": {"sent": stats["wire_sent"], "received": stats["wire_received"]},
                "measured_wire_bytes": sum(r.get("measured_wire_bytes", 0) for r in results),
                "push_bytes_measured": sum(r.get("push_bytes_measured", 0) for r in results),
            }
        )
        if "all" not in part["delivery_hdr"]:
            part["delivery_hdr"]["all"] = encode_histogram(new_histogram())
    part.update(extra)
    return part


def write_part(
    out_prefix: Path,
    part: dict[str, Any],
    samples: pa.Table,
    deliveries: pa.Table | None,
) -> None:
    """Write ``OUT_PREFIX.parquet``, ``.deliveries.parquet`` (real time) and ``.json``."""
    pq.write_table(samples, out_prefix.with_suffix(".parquet"))
    if deliveries is not None:
        pq.write_table(deliveries, out_prefix.with_suffix(".deliveries.parquet"))
    out_prefix.with_suffix(".json").write_bytes(orjson.dumps(part, option=orjson.OPT_INDENT_2))
