"""The command line of ``benchmarks/peers.py``: parse the options, check the peers are
installed, run every planned point and write the results.

::

    code = main(["--rounds", "3", "--only", "http-c1"])   # 0, 1 (a point failed), 2, 130
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from loadgen.environment import collect_environment
from loadgen.procs import plan_placement
from loadgen.runfolder import RESULTS_ROOT, RunFolderTaken, claim_run_folder
from loadgen.scenario_tables import RunSettings
from servers import protocol

from .groups import GROUPS, plan
from .output import wrk_script
from .ratios import ratio_rows
from .report import BUSY_WARN_PCT, busiest_others, busy_warning, write_results
from .runner import Settings, run_points
from .tools import client_refusal, client_versions, missing_peers, peer_versions

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/peers.py",
        description="rtbench's clients against wrk, h2load and node's ws, side by side, pinned.",
    )
    parser.add_argument("--duration", type=int, default=4, help="measured seconds per point")
    parser.add_argument("--warmup", type=int, default=1, help="warm-up seconds per point")
    parser.add_argument("--rounds", type=int, default=2, help="times the whole list is run")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results folder, new or empty (default: results/DATE-TIME-peers-XXXXXX)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=[g.key for g in GROUPS],
        help="run only this group (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.duration < 1 or args.warmup < 1 or args.rounds < 2:
        parser.error(
            "--duration and --warmup must be >= 1 s (wrk counts whole seconds), --rounds >= 2"
        )
    missing = missing_peers()
    if missing:
        for line in missing:
            sys.stderr.write(f"peers: {line}\n")
        return 2
    try:
        out = claim_run_folder(args.out, "peers", root=ROOT / RESULTS_ROOT)
    except RunFolderTaken as exc:
        sys.stderr.write(f"peers: {exc}\n")
        return 2
    # The scenario defaults, so rtbench's cells run as a scenario that sets nothing would.
    defaults = {k: f.default for k, f in RunSettings.model_fields.items()}
    s = Settings(
        out=out,
        placement=plan_placement("split"),
        duration_s=args.duration,
        warmup_s=args.warmup,
        payload_bytes=defaults["payload_bytes"],
        loop=defaults["client_loop"],
    )
    body = protocol.encode_request(
        protocol.Request(
            op="echo",
            id=1,
            ts=time.perf_counter_ns(),
            payload=protocol.make_payload(s.payload_bytes),
        )
    )
    (out / "wrk-body.json").write_bytes(body)
    (out / "wrk-rpc.lua").write_text(wrk_script(body))
    groups = [g for g in GROUPS if not args.only or g.key in args.only]
    refusals = {(g.key, c): client_refusal(g, c) for g in groups for c in g.clients}
    todo = list(plan(groups, args.rounds, refusals))
    print(
        f"peers: {len(todo)} points, {s.placement.mode} placement "
        f"(server CPUs {s.placement.server_cpus}, load generator CPUs {s.client_cpus}); "
        f"results in {out}"
    )
    points: list[dict[str, Any]] = []
    # Other work on the machine shows in every figure: keep the load it started under.
    load_at_start = list(os.getloadavg())
    interrupted = False
    try:
        run_points(s, todo, points)
    except KeyboardInterrupt:
        interrupted = True
        print("peers: interrupted; writing the points measured so far", file=sys.stderr)
    record = {
        "settings": {
            "duration_s": s.duration_s,
            "warmup_s": s.warmup_s,
            "rounds": args.rounds,
            "payload_bytes": s.payload_bytes,
            "client_loop": s.loop,
            "groups": [g.key for g in groups],
            "interrupted": interrupted,
            "load_average_at_start": load_at_start,
        },
        "placement": s.placement.as_dict(),
        "environment": collect_environment(),
        "peer_versions": peer_versions(),
        "client_versions": client_versions(),
        "wrk_body": body.decode(),
        "points": points,
        "ratios": ratio_rows(points, groups),
    }
    write_results(out, record)
    busy = busiest_others(points)
    if busy is not None and busy >= BUSY_WARN_PCT:
        print(f"peers: warning: {busy_warning(busy)}", file=sys.stderr)
    failed = [p for p in points if p.get("failed")]
    if failed:
        print(f"peers: {len(failed)} point(s) failed to run; see peers.json", file=sys.stderr)
    return 130 if interrupted else 1 if failed else 0
