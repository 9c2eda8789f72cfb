"""What a cell's server is started with for the cell's size: its listen backlog and the
connections it makes room for in its open-files limit.

::

    somaxconn = read_somaxconn()                   # 4096, or None when it cannot be read
    sizing = server_sizing(run_cell, processes=1, somaxconn=somaxconn)
    sizing                                         # {"connections": 20000, "backlog": 4096}
    sizing_args(sizing)                            # ["--backlog", "4096", "--connections", "20000"]
"""

from __future__ import annotations

from pathlib import Path

from loadgen.footprint import cell_connections
from loadgen.scenario import RunCell
from servers.common import DEFAULT_BACKLOG

#: The kernel's cap on any listen backlog.
SOMAXCONN = Path("/proc/sys/net/core/somaxconn")


def read_somaxconn(path: Path = SOMAXCONN) -> int | None:
    """net.core.somaxconn, or None when it cannot be read (another OS, no /proc)."""
    try:
        value = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return value if value > 0 else None


def listen_backlog(connections: int, somaxconn: int | None) -> int:
    """A backlog with a slot for each of ``connections`` (at least the servers' default),
    capped by ``somaxconn``, beyond which the kernel would cut it silently."""
    wanted = max(DEFAULT_BACKLOG, connections)
    return wanted if somaxconn is None else max(1, min(wanted, somaxconn))


def server_sizing(run_cell: RunCell, processes: int, somaxconn: int | None) -> dict[str, int]:
    """The connections ``run_cell`` holds on its server (users of ``processes`` load
    generators) and the backlog for them."""
    settings = run_cell.settings
    connections = cell_connections(
        settings.scenario.workload,
        settings.load.connections,
        settings.realtime,
        run_cell.cell.delivery_mode,
        processes,
    )
    # The server must fit one connection per user (it makes room for a second itself).
    least = cell_connections(
        settings.scenario.workload,
        settings.load.connections,
        settings.realtime,
        "push",
        processes,
    )
    return {
        "connections": connections,
        "least_connections": least,
        "backlog": listen_backlog(connections, somaxconn),
    }


def sizing_args(sizing: dict[str, int]) -> list[str]:
    """The server's options for ``sizing``."""
    least = sizing.get("least_connections", sizing["connections"])
    return ["--backlog", str(sizing["backlog"]), "--connections", str(least)]
