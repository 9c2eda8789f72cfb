"""The part a locust run writes: its workers' results merged, with locust's own fields.

::

    extra = part_extra(spec, "local", 1, results, failures, files)
    part = finish_part(spec, out_prefix, results, failures, extra)   # files written
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import geventhttpclient
import locust
import websocket

from loadgen.cellspec import CellRun
from loadgen.locust_engine.limits import RunError
from loadgen.locust_engine.locustfile import user_class_for, user_count_for
from loadgen.locust_engine.merge import merge_results, merged_tables, write_part


def _clients() -> dict[str, str]:
    return {
        "http": f"geventhttpclient {geventhttpclient.__version__}",
        "ws": f"websocket-client {websocket.__version__}",
    }


def part_extra(
    spec: CellRun,
    mode: str,
    n_workers: int,
    results: list[dict[str, Any]],
    failures: list[dict[str, Any]],
    files: dict[str, str],
    master_cpu: tuple[float, float | None] | None = None,
) -> dict[str, Any]:
    """The locust-specific fields of the part: mode, users, files, each worker's figures.

    ``master_cpu`` is the master's own (total, measured) CPU seconds, when there is one.
    """
    measured = [r.get("cpu_s_measured") for r in results]
    measured_total = sum(m for m in measured if m is not None) if measured else None
    extra: dict[str, Any] = {
        "engine": "locust",
        "locust_version": locust.__version__,
        "locust_workers": n_workers,
        "locust_mode": mode,
        "closed_loop": True,
        "load_model": spec.model,
        "locust_user_class": user_class_for(spec).__name__,
        "locust_users": user_count_for(spec),
        "locust_clients": _clients(),
        "locust_files": files,
        "workers": [
            {
                "index": r.get("worker_index"),
                "host": r.get("host"),
                "pid": r.get("pid"),
                "users": r.get("users"),
                "cpu_s_total": r.get("cpu_s_total"),
                "cpu_s_measured": r.get("cpu_s_measured"),
                "error": r.get("error"),
            }
            for r in results
        ],
        "worker_failures": failures,
        "partial": bool(failures),
        # The open-files limit each locust process that ran users set for its share.
        "fd_limits": [r["fd_limit"] for r in results if r.get("fd_limit")],
    }
    if master_cpu is not None:
        extra["master_cpu_s_total"] = master_cpu[0]
        extra["master_cpu_s_measured"] = master_cpu[1]
        if measured_total is not None and master_cpu[1] is not None:
            measured_total += master_cpu[1]
    # The load generator's CPU over the measured window, summed over every locust process
    # (a psutil reading of the master process alone misses its workers).
    extra["client_cpu_s_measured"] = measured_total
    return extra


def finish_part(
    spec: CellRun,
    out_prefix: Path,
    results: list[dict[str, Any]],
    failures: list[dict[str, Any]],
    extra: dict[str, Any],
    extra_cpu_s: float = 0.0,
) -> dict[str, Any]:
    """Merge the workers' ``results`` into the part and write its files at ``out_prefix``.

    A result carrying an error joins ``failures``; :class:`RunError` when none is clean.
    """
    clean = [r for r in results if not r.get("error")]
    for r in results:
        if r.get("error"):
            failures.append(
                {
                    "worker_index": r.get("worker_index"),
                    "host": r.get("host"),
                    "pid": r.get("pid"),
                    "reason": r["error"],
                }
            )
    extra["worker_failures"] = failures
    extra["partial"] = bool(failures)
    if not clean:
        reasons = "; ".join(str(f["reason"]) for f in failures) or "no worker reported"
        raise RunError(f"no locust worker produced results: {reasons}")
    samples, deliveries = merged_tables(spec, results)
    part = merge_results(spec, results, samples, extra)
    part["client_cpu_s_total"] += extra_cpu_s
    write_part(out_prefix, part, samples, deliveries)
    for failure in failures:
        sys.stderr.write(f"locust worker failed: {failure['reason']}\n")
    return part
