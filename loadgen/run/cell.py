"""What a cell's settings mean for a run: server options, the load generator's spec, its
identity in summary.json.

::

    args = server_args(run_cell.settings)          # ["--delay-ms", "5", ...]
    spec = cell_run(run_cell, "http://127.0.0.1:8080", repeat=2)
    row = cell_identity(run_cell)                  # {"cell": ..., "transport": ...}
"""

from __future__ import annotations

from typing import Any

from loadgen.cellspec import CellRun
from loadgen.scenario import RunCell, Scenario
from servers.common import DEFAULT_KEEPALIVE_TIMEOUT_S


def server_args(scenario: Scenario) -> list[str]:
    """Server command-line options: test delay, WebSocket pings, user limit, real-time
    settings."""
    delay = ["--delay-ms", str(d)] if (d := scenario.server.delay_ms) else []
    delay += ["--ws-ping-interval", str(scenario.server.ws_ping_interval_s)]
    if scenario.server.keepalive_timeout_s != DEFAULT_KEEPALIVE_TIMEOUT_S:
        delay += ["--keepalive-timeout", str(scenario.server.keepalive_timeout_s)]
    if scenario.server.max_users is not None:
        delay += ["--max-users", str(scenario.server.max_users)]
    rt = scenario.realtime
    if rt is None:
        return delay
    return [
        *delay,
        "--presence-timeout",
        str(rt.presence_timeout_s),
        "--idle-timeout",
        str(rt.idle_timeout_s),
        "--inbox-retention",
        str(rt.inbox_retention),
        "--send-queue",
        str(rt.send_queue),
    ]


def cell_run(run_cell: RunCell, base_url: str, **extra: Any) -> CellRun:
    """The spec a load generator runs ``run_cell`` with against ``base_url``.

    ``extra`` sets the remaining :class:`CellRun` fields (``repeat``, ``tls``, ...);
    those not given keep their defaults.
    """
    settings: Scenario = run_cell.settings
    s = settings.scenario
    cell = run_cell.cell
    return CellRun(
        cell=run_cell.id,
        transport=cell.transport,
        client=cell.client,
        conn_mode=cell.conn_mode or "",
        base_url=base_url,
        model=settings.load.model,
        connections=settings.load.connections,
        rate=run_cell.rate,
        duration_s=s.duration_s,
        warmup_s=s.warmup_s,
        payload_bytes=s.payload_bytes,
        timeout_s=s.timeout_s,
        workload=s.workload,
        delivery=cell.delivery_mode,
        http_version=cell.http_version,
        realtime=rt.model_dump(mode="json") if (rt := settings.realtime) else None,
        **extra,
    )


def cell_identity(run_cell: RunCell) -> dict[str, Any]:
    """The columns that name a cell and its load in summary.json."""
    scenario: Scenario = run_cell.settings
    load = scenario.load
    cell = run_cell.cell
    return {
        "cell": run_cell.id,
        "part": run_cell.part,
        "transport": cell.transport,
        # The server a server_command started or a server_url names ("node"); None on
        # rtbench's own servers.
        "server": cell.server,
        # The running server it was measured on, which rtbench did not start (else None).
        "server_url": cell.server_url,
        "client": cell.client,
        "conn_mode": cell.conn_mode,
        "delivery": cell.delivery_mode,
        "workload": scenario.scenario.workload,
        "load_model": load.model if scenario.scenario.workload == "echo" else "open",
        "connections": load.connections,
        "users": rt.users if (rt := scenario.realtime) else None,
        "target_rate": run_cell.rate,
        "payload_bytes": scenario.scenario.payload_bytes,
        "tls": scenario.scenario.tls_version if cell.tls else None,
        # A WebSocket cell's only when it is not HTTP/1.1 (WebSocket over HTTP/2).
        "http_version": (
            cell.http_version if cell.family == "http" or cell.http_version != "1.1" else None
        ),
        "profile": run_cell.profile.name if run_cell.profile is not None else None,
        "rtt_ms": run_cell.profile.rtt_ms if run_cell.profile is not None else None,
        "sweep_group": run_cell.sweep_group,
        "slo_p99_ms": load.sweep_slo_p99_ms,
    }
