"""Cells on a server that is already running (a cell's ``server_url``): checked before the
run, found again for each repeat and measured as the servers rtbench starts are.

::

    servers = check_running_servers(run_cells, secret)  # by URL; RunningServerError
    for note in option_notes(run_cells, runner.sizing): console.print(note)
    for note in placement_notes(servers, placement): console.print(note)
    server, address, record = attach_server(run_cell)   # ServerUnreachable if nobody listens
    ...
    record["after"] = server.reading()

rtbench never starts, pins, signals or stops such a server: its CPU time, memory and open
files are read from the process found listening on the URL's port, and what could not be
read is None with the reason in the record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loadgen.procs import Child, Placement, attach_process
from loadgen.run.capacity import sizing_args
from loadgen.run.cell import server_args
from loadgen.scenario import RunCell
from loadgen.server_url import (
    ListeningProcess,
    ServerTarget,
    ServerUnreachable,
    listening_process,
    parse_server_url,
    reach,
)

#: How meta.json and summary.json describe such a server's placement.
PLACEMENT = "not controlled by rtbench: the server runs on the CPUs it was started with"
#: At most this many cell names in one message.
_SHOWN = 3
#: Server options that size it for its cells' connections: the largest is what fits them all.
_SIZING = frozenset({"--backlog", "--connections"})


class RunningServerError(Exception):
    """A run that cannot start: a server_url with nothing listening, or real-time cells on
    one without its sign-in secret; the message says what to fix."""


def running_cells(run_cells: list[RunCell]) -> list[RunCell]:
    """The cells that run on a server already running (they have a server_url)."""
    return [rc for rc in run_cells if rc.cell.server_url is not None]


def check_running_servers(
    run_cells: list[RunCell], secret: str | None
) -> dict[str, dict[str, Any]]:
    """Before any cell runs: real-time cells on a running server have its sign-in
    ``secret``, and every server_url accepts a connection; RunningServerError otherwise.

    Returns what was found at each URL (:func:`describe_server`), for meta.json.
    """
    cells = running_cells(run_cells)
    realtime = [rc.id for rc in cells if rc.settings.scenario.workload != "echo"]
    if realtime and secret is None:
        raise RunningServerError(
            f"real-time cells on a server rtbench did not start ({_names(realtime)}) sign in "
            "with that server's secret: pass --secret-file FILE or set $RTBENCH_SIGNIN_SECRET"
        )
    found: dict[str, dict[str, Any]] = {}
    for rc in cells:
        url = str(rc.cell.server_url)
        if url in found:
            continue
        target = parse_server_url(url)
        try:
            reach(target)
        except ServerUnreachable as exc:
            raise RunningServerError(f"cell {rc.id}: {exc}") from None
        process = listening_process(target)
        found[url] = describe_server(target, process, attach_process("server", process.pid).cpus)
    return found


def option_notes(
    run_cells: list[RunCell], sizing: Callable[[RunCell], dict[str, int]]
) -> list[str]:
    """One note per running server: the options rtbench would give a server it started for
    that server's cells (values of different cells joined by ``/``; the largest sizing),
    which a running server cannot be given. ``sizing`` is
    :meth:`loadgen.run.repeat.RepeatRunner.sizing`."""
    by_url: dict[str, dict[str, list[str]]] = {}
    for rc in running_cells(run_cells):
        settings = rc.settings
        args = [
            "--max-message-bytes",
            str(settings.server.max_message_bytes),
            *server_args(settings),
            *sizing_args(sizing(rc)),
        ]
        options = by_url.setdefault(str(rc.cell.server_url), {})
        for flag, value in zip(args[::2], args[1::2], strict=True):
            values = options.setdefault(flag, [])
            if flag in _SIZING:
                values[:] = [str(max([int(value), *(int(v) for v in values)]))]
            elif value not in values:
                values.append(value)
    return [
        f"{url} was not started by rtbench and keeps the options it was started with; "
        "the options rtbench gives a server it starts for these cells are: "
        + " ".join(f"{flag} {'/'.join(values)}" for flag, values in options.items())
        for url, options in by_url.items()
    ]


def placement_notes(servers: dict[str, dict[str, Any]], placement: Placement) -> list[str]:
    """A note for each running server (:func:`check_running_servers`) whose CPU affinity
    includes CPUs the load generators are pinned to: rtbench does not move it."""
    clients = set(placement.client_pool or placement.client_cpus or [])
    notes = []
    for url, record in servers.items():
        shared = sorted(clients & set(record.get("cpus") or []))
        if shared:
            notes.append(
                f"{url} (pid {record['pid']}) may run on CPUs {_cpus(shared)}, where the load "
                f"generators are pinned (its affinity: {_cpus(record['cpus'])}, which rtbench "
                "does not change); start it pinned elsewhere, e.g. with taskset -c"
            )
    return notes


def describe_server(
    target: ServerTarget, found: ListeningProcess, cpus: list[int] | None
) -> dict[str, Any]:
    """What the server at ``target`` is: its process (``pid``, ``name``, ``cpus`` its CPU
    affinity as read; None with a ``note`` when it cannot be found or read), the other
    processes listening with it, and that rtbench neither started nor pinned it."""
    return {
        "url": target.url,
        "started_by_rtbench": False,
        "pinned_by_rtbench": False,
        "placement": PLACEMENT,
        "found_by": f"the process listening on {target.where}",
        "pid": found.pid,
        "name": found.name,
        "cpus": cpus,
        # A server of several processes: only pid is measured.
        "other_pids": list(found.other_pids),
        "note": found.reason or _several(found),
    }


def attach_server(run_cell: RunCell) -> tuple[Child, str, dict[str, Any]]:
    """The server at ``run_cell``'s server_url, for one repeat: a :class:`Child` to watch
    (:func:`loadgen.procs.attach_process`; ``info`` has its ``host`` and ``port``), the
    address load generators are sent to (``127.0.0.1``), and its record
    (:func:`describe_server`) with ``before``: its CPU seconds, RSS and open files now.
    Raises ServerUnreachable when nothing listens there.
    """
    cell = run_cell.cell
    target = parse_server_url(cell.server_url)
    address = reach(target)
    found = listening_process(target)
    info = {"host": address, "port": target.port}
    server = attach_process(f"server {cell.server} at {target.url}", found.pid, info)
    record = describe_server(target, found, server.cpus)
    record["before"] = server.reading()
    return server, address, record


def _several(found: ListeningProcess) -> str | None:
    if not found.other_pids:
        return None
    others = ", ".join(str(p) for p in found.other_pids)
    return f"processes {others} listen on the same port too; only {found.pid} is measured"


def _cpus(cpus: list[int]) -> str:
    return ",".join(str(c) for c in cpus)


def _names(ids: list[str]) -> str:
    shown = ", ".join(ids[:_SHOWN])
    return shown if len(ids) <= _SHOWN else f"{shown} and {len(ids) - _SHOWN} more"
