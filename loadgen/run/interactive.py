"""One cell's server started for interactive tools (locust's UI), with its spec.

::

    with interactive_spec(scenario, "ws-aiohttp") as spec:
        spec.base_url        # the running server; stopped when the block ends
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from loadgen.cellspec import CellRun
from loadgen.procs import start_server, stop_process
from loadgen.run.cell import cell_run, server_args
from loadgen.runfolder import claim_run_folder
from loadgen.scenario import Scenario
from loadgen.server_url import parse_server_url, reach
from servers.realtime.credentials import SECRET_ENV, new_secret


@contextlib.contextmanager
def interactive_spec(scenario: Scenario, cell_id: str | None = None) -> Iterator[CellRun]:
    """Start a server for one cell and yield its spec, for interactive tools (locust's UI).

    The server is stopped when the block ends. TLS and link profiles are not
    applied here: the UI drives the plain server on loopback. A fresh sign-in
    secret is put in this process's environment for the block, so the server
    and the UI's processes (started inside it) share it.

    A cell with a ``server_url`` starts nothing: the spec targets the server running
    there (:class:`loadgen.server_url.ServerUnreachable` when nothing listens), whose
    users sign in with ``$RTBENCH_SIGNIN_SECRET`` as this process has it.
    """
    run_cells = scenario.run_cells()
    chosen = next((c for c in run_cells if cell_id in (None, c.id, c.cell.id)), None)
    if chosen is None:
        known = ", ".join(c.id for c in run_cells)
        raise ValueError(f"no cell {cell_id!r} in scenario {scenario.name}; cells: {known}")
    scenario = chosen.settings
    cell = chosen.cell
    if cell.server_url is not None:
        target = parse_server_url(cell.server_url)
        yield cell_run(chosen, target.url_at(reach(target)))
        return
    folder = claim_run_folder(None, f"{scenario.name}-interactive")
    previous = os.environ.get(SECRET_ENV)
    os.environ[SECRET_ENV] = secret = new_secret()
    try:
        server = start_server(
            cell.transport,
            None,
            folder / "server.log",
            scenario.server.max_message_bytes,
            extra_args=server_args(scenario),
            signin_secret=secret,
            command=cell.server_command,
        )
    except BaseException:
        _restore_env(SECRET_ENV, previous)
        raise
    try:
        yield cell_run(chosen, f"http://127.0.0.1:{server.info['port']}")
    finally:
        stop_process(server)
        _restore_env(SECRET_ENV, previous)


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
