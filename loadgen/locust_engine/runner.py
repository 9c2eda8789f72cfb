"""The locust engine's command line: a local run, a master and workers, a joining worker, the UI.

Run as ``python -m loadgen.locust_engine.worker`` (which imports locust, and so
gevent's monkey patching, before anything else)::

    ... worker SPEC.json OUT_PREFIX                  # one process (locust LocalRunner)
    ... worker SPEC.json OUT_PREFIX --workers 2      # master + 2 local worker processes
    ... worker SPEC.json OUT_PREFIX --workers 0 --remote-workers 1 \\
            --master-bind 0.0.0.0 --master-port 5557 # a master waiting for another machine
    ... worker --join HOST[:PORT]                    # a worker joining that master
    ... worker SPEC.json --web-ui [--web-host H] [--web-port P]

A run prints the asyncio worker's JSON events on stdout (``phase`` measure and
drain, ``progress``, ``done``) and writes ``OUT_PREFIX.parquet``,
``OUT_PREFIX.deliveries.parquet`` (real-time cells) and ``OUT_PREFIX.json``,
plus locust's ``OUT_PREFIX.locust_stats.csv``, ``_stats_history.csv``,
``_failures.csv``, ``_exceptions.csv`` and ``OUT_PREFIX.locust.html``; local
workers log to ``OUT_PREFIX.locust_workerN.log``. Errors go to stderr with
exit code 1 (2 for a worker that cannot join).

The master and its workers agree first (versions: a mismatch is refused with
a clear error), then every worker spawns its users and sets them up, then the
master starts everyone's clock at once. Each worker runs warm-up, measured
window and drain on its own and sends back its raw samples, histograms and
delivery counts, which the master merges into the one part. A worker that dies
or goes silent is named in ``worker_failures`` and the part is marked
``partial``; what the other workers gathered is kept.

The processes are :mod:`.local` (one process), :mod:`.master`, :mod:`.join` (a
worker) and :mod:`.web` (the UI); :mod:`.part` writes the merged part.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import gevent
import orjson

from loadgen.cellspec import CellRun
from loadgen.locust_engine import DEFAULT_MASTER_BIND, MODULE, parse_master
from loadgen.locust_engine.join import run_worker
from loadgen.locust_engine.limits import JOIN_TIMEOUT_S
from loadgen.locust_engine.local import run_local
from loadgen.locust_engine.master import Master
from loadgen.locust_engine.web import run_web
from loadgen.targets import check_target
from loadgen.worker import exit_with_part


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description="Run one repeat of one rtbench cell through locust (see the module docs).",
    )
    parser.add_argument("spec", type=Path, nargs="?", help="the cell's CellRun as JSON")
    parser.add_argument("out_prefix", type=Path, nargs="?", help="where the part files go")
    parser.add_argument(
        "--workers", type=int, default=0, help="local worker processes (0: run in this process)"
    )
    parser.add_argument(
        "--remote-workers",
        type=int,
        default=0,
        help="workers from other machines the master waits for (they run --join)",
    )
    parser.add_argument("--master-bind", default=DEFAULT_MASTER_BIND, help="master's address")
    parser.add_argument("--master-port", type=int, default=0, help="master's port (0: any)")
    parser.add_argument("--join", metavar="HOST[:PORT]", help="run as a worker of that master")
    parser.add_argument("--connect-timeout", type=float, default=30.0, help="seconds, --join")
    parser.add_argument("--join-timeout", type=float, default=JOIN_TIMEOUT_S, help="seconds")
    parser.add_argument("--web-ui", action="store_true", help="open locust's web UI instead")
    parser.add_argument("--web-host", default="127.0.0.1")
    parser.add_argument("--web-port", type=int, default=8089)
    parser.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--advertise-version", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--log-level", default="WARNING", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.join:
        try:
            host, port = parse_master(args.join)
        except ValueError as exc:
            parser.error(str(exc))
        try:
            return run_worker(
                host, port, args.connect_timeout, args.parent_pid, args.advertise_version
            )
        except KeyboardInterrupt:
            return 130
    if args.spec is None:
        parser.error("SPEC is required (or --join HOST[:PORT])")
    try:
        spec = CellRun.from_dict(orjson.loads(args.spec.read_bytes()))
    except (OSError, ValueError, TypeError) as exc:
        sys.stderr.write(f"error: cannot read the cell spec {args.spec}: {exc}\n")
        return 2
    if (refusal := check_target(spec.base_url)) is not None:
        sys.stderr.write(f"error: {refusal}\n")
        return 2
    if args.web_ui:
        return run_web(spec, args.web_host, args.web_port)
    if args.out_prefix is None:
        parser.error("OUT_PREFIX is required")
    if args.workers < 0 or args.remote_workers < 0:
        parser.error("--workers and --remote-workers must be >= 0")
    masters: list[Master] = []

    def run_part() -> dict[str, Any]:
        if not (args.workers or args.remote_workers):
            return run_local(spec, args.out_prefix)
        master = Master(
            spec,
            args.out_prefix,
            args.workers,
            args.remote_workers,
            args.master_bind,
            args.master_port,
            args.join_timeout,
        )
        masters.append(master)

        def on_term() -> None:
            master.terminate_children()
            os._exit(143)

        gevent.signal_handler(signal.SIGTERM, on_term)
        return master.run()

    try:
        return exit_with_part(run_part)
    except KeyboardInterrupt:
        for master in masters:
            master.terminate_children()
        return 130
