"""Locust as rtbench's second engine: the same cells, through locust users, on one or many machines.

Nothing here imports locust or gevent (locust monkey-patches the process it is
imported in), so the asyncio engine and the CLI can import this package; locust
itself always runs in its own processes::

    python -m loadgen.locust_engine.worker SPEC.json OUT_PREFIX [--workers N]

prints the same stdout events and writes the same part files as
``python -m loadgen.worker`` (see :mod:`loadgen.locust_engine.runner`), plus
locust's own CSV and HTML outputs next to them. From Python::

    argv = worker_argv(spec_path, out_prefix, workers=2)   # for procs-style launching
    join_master("10.0.0.5", 5557)      # a worker for a master on another machine
    run_web_ui(spec)                   # locust's web UI with the cell's users

Modules: :mod:`.locustfile` (the locust user classes), :mod:`.world` (one
process's share of a cell: timeline, samples, delivery tracker), :mod:`.net`
(counting sockets), :mod:`.merge` (merging the workers' results),
:mod:`.compat` (version checks), :mod:`.runner` (the command line: the processes
are :mod:`.local`, :mod:`.master`, :mod:`.join` and :mod:`.web`). The real-time
driver under gevent has the asyncio driver's module names (:mod:`loadgen.realtime`)
over the same sans-I/O core: :mod:`.engine` (the stage: behaviours as greenlets),
:mod:`.users` (a virtual user), :mod:`.conns` (its connections).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

MODULE = "loadgen.locust_engine.worker"
#: The port a master listens on for workers unless told otherwise (locust's default).
DEFAULT_MASTER_PORT = 5557
#: Where a master listens unless told otherwise: loopback only.
DEFAULT_MASTER_BIND = "127.0.0.1"

__all__ = [
    "DEFAULT_MASTER_BIND",
    "DEFAULT_MASTER_PORT",
    "MODULE",
    "join_master",
    "parse_master",
    "run_web_ui",
    "worker_argv",
]


def worker_argv(
    spec_path: Path | str,
    out_prefix: Path | str,
    workers: int = 0,
    remote_workers: int = 0,
    master_bind: str = DEFAULT_MASTER_BIND,
    master_port: int = 0,
    python: str | None = None,
) -> list[str]:
    """The command that runs one repeat of one cell through locust.

    ``workers=0`` runs the users in that one process (locust's LocalRunner);
    ``workers=N`` starts a master and N local worker processes. With
    ``remote_workers=K`` the master also waits for K workers that join it with
    :func:`join_master` (bind it to an address they can reach: ``master_bind``).
    """
    argv = [python or sys.executable, "-m", MODULE, str(spec_path), str(out_prefix)]
    if workers or remote_workers:
        argv += ["--workers", str(workers)]
    if remote_workers:
        argv += ["--remote-workers", str(remote_workers)]
    if master_bind != DEFAULT_MASTER_BIND:
        argv += ["--master-bind", master_bind]
    if master_port:
        argv += ["--master-port", str(master_port)]
    return argv


def parse_master(text: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (or ``[V6]:PORT``) as ``(host, port)``; port defaults to 5557."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not host:
        raise ValueError(f"no host in {text!r}; expected HOST[:PORT]")
    try:
        number = int(port) if port else DEFAULT_MASTER_PORT
    except ValueError:
        raise ValueError(f"bad port in {text!r}; expected HOST[:PORT]") from None
    if not 0 < number < 65536:
        raise ValueError(f"port out of range in {text!r}")
    return host, number


def join_master(
    host: str,
    port: int = DEFAULT_MASTER_PORT,
    connect_timeout_s: float = 30.0,
    python: str | None = None,
) -> int:
    """Run a locust worker that joins the master at ``host:port``; returns its exit code.

    Blocks until the master ends the run (0), or fails: 2 when the master cannot
    be reached within ``connect_timeout_s`` or refuses this worker (a locust or
    rtbench version mismatch), 1 when the run fails. The reason is on stderr.
    """
    import subprocess

    argv = [
        python or sys.executable,
        "-m",
        MODULE,
        "--join",
        f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "--connect-timeout",
        str(connect_timeout_s),
    ]
    return subprocess.call(argv)


def run_web_ui(
    spec: Any,
    host: str = "127.0.0.1",
    port: int = 8089,
    python: str | None = None,
) -> int:
    """Open locust's web UI with the users of ``spec`` (a CellRun, dict or JSON path).

    Blocks until Ctrl-C; returns the process's exit code. The UI's user count
    is in locust users: connections for echo cells, groups of ``group_size``
    people for real-time cells.
    """
    import subprocess
    import tempfile

    import orjson

    if isinstance(spec, str | Path):
        return subprocess.call(_web_argv(Path(spec), host, port, python))
    data = spec.to_dict() if hasattr(spec, "to_dict") else dict(spec)
    with tempfile.TemporaryDirectory(prefix="rtbench-locust-") as tmp:
        path = Path(tmp) / "spec.json"
        path.write_bytes(orjson.dumps(data))
        return subprocess.call(_web_argv(path, host, port, python))


def _web_argv(spec_path: Path, host: str, port: int, python: str | None) -> list[str]:
    return [
        python or sys.executable,
        "-m",
        MODULE,
        str(spec_path),
        "--web-ui",
        "--web-host",
        host,
        "--web-port",
        str(port),
    ]
