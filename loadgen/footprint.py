"""How many connections a cell and each of its load generators hold, and room for them.

::

    user_connections("long-poll")                    # 2: one for actions, one for polls
    cell_connections(spec.workload, spec.connections, params, spec.delivery, processes=2)
    share = process_share(spec)                      # this asyncio process's users (or conns)
    share = locust_share(spec, n_workers=2)          # one locust worker's
    record = make_room(spec, share)                  # {"users": ..., "needed": ..., ...}

:func:`make_room` raises the process's open-files limit for its share
(:func:`servers.fdlimit.raise_fd_limit`) and returns what it set, for the part
record; :class:`~servers.fdlimit.FdLimitTooLow` when the hard limit cannot fit it.
"""

from __future__ import annotations

from typing import Any

from loadgen.cellspec import CellRun
from loadgen.realtime.groups import split_groups
from loadgen.realtime.params import RealtimeParams
from loadgen.shares import my_connections, my_groups
from servers.fdlimit import files_for, raise_fd_limit

#: Connections a real-time user holds at once, by delivery mode: a WebSocket carries
#: everything; an event stream comes with an HTTP connection for actions; a polling
#: user keeps one connection for its actions and one for its polls.
USER_CONNECTIONS = {"push": 1, "sse": 2, "long-poll": 2, "short-poll": 2}


def user_connections(delivery: str) -> int:
    """Connections one real-time user of ``delivery`` holds (2 for a mode not listed)."""
    return USER_CONNECTIONS.get(delivery, 2)


def publishers_per_process(params: RealtimeParams) -> int:
    """Notification publishers each load-generator process runs."""
    return params.publishers if params.notification_rate else 0


def realtime_connections(people: int, params: RealtimeParams, delivery: str, processes: int) -> int:
    """Connections ``people`` users and ``processes`` processes' publishers hold."""
    users = people + publishers_per_process(params) * processes
    return users * user_connections(delivery)


def cell_connections(
    workload: str,
    connections: int,
    params: RealtimeParams | None,
    delivery: str,
    processes: int = 1,
) -> int:
    """Connections a whole cell holds on its server: echo ``connections``, or every
    real-time user's (in whole groups) and every process's publishers'."""
    if workload == "echo" or params is None:
        return connections
    people = -(-params.users // params.group_size) * params.group_size
    return realtime_connections(people, params, delivery, max(1, processes))


def process_share(spec: CellRun) -> int:
    """Users (real time) or connections (echo) of the cell this asyncio process runs."""
    if spec.workload == "echo":
        return len(my_connections(spec))
    params = RealtimeParams.model_validate(spec.realtime or {})
    groups = split_groups([f"u{i}" for i in range(params.users)], params.group_size)
    return sum(len(groups[gi]) for gi in my_groups(len(groups), spec))


def locust_share(spec: CellRun, n_workers: int) -> int:
    """Users (real time, whole groups) or connections (echo) one of ``n_workers`` locust
    processes runs, at most: locust spreads its users evenly."""
    n = max(1, n_workers)
    if spec.workload == "echo":
        return -(-spec.connections // n)
    params = RealtimeParams.model_validate(spec.realtime or {})
    groups = -(-params.users // params.group_size)
    return -(-groups // n) * params.group_size


def make_room(spec: CellRun, share: int) -> dict[str, Any]:
    """Raise the open-files limit for ``share`` users or connections of ``spec``; the record
    of what was set. FdLimitTooLow names the hard limit and what to lower when even one
    connection per user (or each echo connection) cannot fit."""
    if spec.workload == "echo":
        connections = share
        what, remedy = f"{share} connections", "lower [load] connections"
        least = connections
    else:
        params = RealtimeParams.model_validate(spec.realtime or {})
        connections = realtime_connections(share, params, spec.delivery, 1)
        # A polling or SSE user holds its second connection only while it acts, so one
        # per user is what must fit; the limit is raised towards both where it can be.
        least = realtime_connections(share, params, "push", 1)
        what, remedy = f"{share} users", "lower [realtime] users"
    first = raise_fd_limit(files_for(least), what, remedy)
    room = raise_fd_limit(files_for(connections), what, remedy, strict=False)
    return {
        "share": share,
        "connections": connections,
        **first.as_dict(),
        "needed": room.needed,
        "soft_after": room.soft_after,
        "hard_after": room.hard_after,
    }
