"""The load generator's own floor in the report, and cells where the client outworks the server.

A run with echo cells records in meta.json (``harness_floor``) the round trip of a
raw-TCP echo on loopback between processes pinned like a cell's server and load
generator (:mod:`loadgen.floor`): what no HTTP or WebSocket stack can beat here::

    floors(run)               # DataFrame: run_id, payload_bytes, p50_ms, p99_ms, count, ...
    floor_table(run)          # each loopback echo cell's p50 and its multiple of the floor
    floor_notes(run)          # one line per floor, for the terminal, Markdown and HTML
    client_cpu_heavy(run)     # cells whose client CPU per request is >= 2x the server's

Only echo cells that ran directly over loopback get a multiple: over an emulated link
the round trip is mostly the link's.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from reports.fmt import as_float, fmt_int, fmt_ms
from reports.load import Run
from reports.stats import request_cells

#: Client CPU per request at or above this multiple of the server's is warned about.
CLIENT_CPU_RATIO = 2.0

FLOOR_COLUMNS = [
    "run_id",
    "payload_bytes",
    "p50_ms",
    "p99_ms",
    "count",
    "server_cpus",
    "client_cpus",
    "loop",
    "error",
]
MULTIPLE_COLUMNS = ["run_id", "cell", "payload_bytes", "p50_ms", "floor_p50_ms", "multiple"]


def floors(run: Run) -> pd.DataFrame:
    """Every floor recorded in the runs' meta.json, one row per run and payload size."""
    rows = []
    for single, run_id in zip(run.runs, run.run_ids, strict=True):
        recorded = single.meta.get("harness_floor")
        for f in recorded if isinstance(recorded, list) else []:
            if not isinstance(f, dict):
                continue
            p50, p99 = as_float(f.get("p50_ns")), as_float(f.get("p99_ns"))
            rows.append(
                {
                    "run_id": run_id,
                    "payload_bytes": as_float(f.get("payload_bytes")),
                    "p50_ms": None if p50 is None else p50 / 1e6,
                    "p99_ms": None if p99 is None else p99 / 1e6,
                    "count": f.get("count"),
                    "server_cpus": f.get("server_cpus"),
                    "client_cpus": f.get("client_cpus"),
                    "loop": f.get("loop"),
                    "error": f.get("error"),
                }
            )
    return pd.DataFrame(rows, columns=FLOOR_COLUMNS)


def _on_loopback(meta: dict[str, Any], profile: object) -> bool:
    """True when a cell of ``profile`` talked to its server directly over loopback."""
    if not isinstance(profile, str) or not profile:
        return True
    network = meta.get("network")
    links = network.get("profiles", {}) if isinstance(network, dict) else {}
    chosen = links.get(profile) if isinstance(links, dict) else None
    return isinstance(chosen, dict) and chosen.get("link") == "none"


def floor_table(run: Run) -> pd.DataFrame:
    """Each echo cell run over loopback, its p50 and that p50 as a multiple of its run's
    floor for the same payload size (the one floor of a run when sizes are not known)."""
    measured = floors(run)
    measured = measured[measured["p50_ms"].notna()]
    if measured.empty:
        return pd.DataFrame(columns=MULTIPLE_COLUMNS)
    metas = dict(zip(run.run_ids, (r.meta for r in run.runs), strict=True))
    rows = []
    for _, cell in request_cells(run.cells).iterrows():
        run_id = str(cell["run_id"])
        if not _on_loopback(metas.get(run_id, {}), cell.get("profile")):
            continue
        mine = measured[measured["run_id"] == run_id]
        payload = as_float(cell.get("payload_bytes"))
        if payload is not None:
            mine = mine[mine["payload_bytes"] == max(1.0, payload)]
        p50 = as_float(cell.get("p50_ms"))
        if len(mine) != 1 or p50 is None:
            continue
        floor = float(mine["p50_ms"].iloc[0])
        rows.append(
            {
                "run_id": run_id,
                "cell": cell["cell"],
                "payload_bytes": mine["payload_bytes"].iloc[0],
                "p50_ms": p50,
                "floor_p50_ms": floor,
                "multiple": p50 / floor if floor > 0 else None,
            }
        )
    return pd.DataFrame(rows, columns=MULTIPLE_COLUMNS)


def floor_notes(run: Run) -> list[str]:
    """One sentence per recorded floor (or why it is missing)."""
    lines = []
    multi = len(run.runs) > 1
    for _, f in floors(run).iterrows():
        where = f"run {f['run_id']}: " if multi else ""
        size = f"{fmt_int(f['payload_bytes'])} B"
        if isinstance(f["error"], str) and f["error"]:
            lines.append(f"{where}raw-TCP floor ({size}) not measured: {f['error']}")
            continue
        lines.append(
            f"{where}raw-TCP floor ({size}, loopback, {f['loop']}): p50 {fmt_ms(f['p50_ms'])} ms, "
            f"p99 {fmt_ms(f['p99_ms'])} ms over {fmt_int(f['count'])} round trips "
            f"(server on CPU {_cpus(f['server_cpus'])}, client on CPU {_cpus(f['client_cpus'])})"
        )
    return lines


def fmt_multiple(value: object) -> str:
    """A multiple of the floor: ``4.2×``, ``12×``."""
    v = as_float(value)
    if v is None:
        return "–"
    return f"{v:.1f}×" if v < 10 else f"{v:,.0f}×"


def _cpus(value: object) -> str:
    if isinstance(value, list) and value:
        return ",".join(str(c) for c in value)
    return "unpinned"


def client_cpu_heavy(run: Run, ratio: float = CLIENT_CPU_RATIO) -> pd.DataFrame:
    """Cells whose load generator spent ``ratio`` times the server's CPU per request or
    more: columns ``run_id``, ``cell``, ``client_s``, ``server_s`` (CPU seconds per
    request) and ``ratio``."""
    rows = []
    for _, cell in run.cells.iterrows():
        client = as_float(cell.get("cpu_s_per_request_client"))
        server = as_float(cell.get("cpu_s_per_request_server"))
        if client is None or not server or client < ratio * server:
            continue
        rows.append(
            {
                "run_id": cell["run_id"],
                "cell": cell["cell"],
                "client_s": client,
                "server_s": server,
                "ratio": client / server,
            }
        )
    return pd.DataFrame(rows, columns=["run_id", "cell", "client_s", "server_s", "ratio"])
