"""Run a whole scenario: every cell, every repeat, interleaved, into a results folder.

::

    result = run_scenario(load_scenario("scenarios/quick.toml"), Path("scenarios/quick.toml"))
    result.out_dir        # results/<run-id>/ with samples.parquet, summary.json, meta.json

For each repeat of each cell a fresh server starts pinned to one CPU and a
load-generator process pinned to another; both are sampled with psutil over
the measured window. Cells run in the order A B C A B C ... so drift in the
machine affects every cell alike. Ctrl-C or SIGTERM stops the run cleanly:
children are stopped, finished repeats are written and meta.json says the
run is incomplete.

With a ``[network]`` table each link profile runs over the link
:func:`plan_link` chose for it: directly (a profile that adds nothing), through
the userspace relay, or over the kernel link, where every repeat gets its own
pair of network namespaces (server and load generator each in one) that are
deleted once both children have stopped.

A cell with a ``server_url`` runs on a server that is already running: it is checked
before anything starts (:mod:`loadgen.run.attach`), measured but never started, pinned or
stopped, and ``meta.json`` says so under ``running_servers``.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from loadgen.environment import collect_environment
from loadgen.escape import term_text
from loadgen.link.plan import plan_link
from loadgen.procs import plan_placement
from loadgen.run.attach import check_running_servers, option_notes, placement_notes
from loadgen.run.cell import cell_identity
from loadgen.run.files import merge_samples, now, write_json
from loadgen.run.network import relay_overhead, remove_stale_namespaces
from loadgen.run.progress import progress_label, run_progress
from loadgen.run.repeat import RepeatRunner
from loadgen.run.stop import signals_as_interrupt
from loadgen.runfolder import claim_run_folder
from loadgen.scenario import Scenario
from loadgen.schema import META_FILE, SCHEMA_VERSION, SUMMARY_FILE
from loadgen.summary import build_summary


@dataclass
class RunResult:
    """Where a run went and how it ended."""

    out_dir: Path
    complete: bool
    summary: dict[str, Any]
    meta: dict[str, Any]


def run_scenario(
    scenario: Scenario,
    scenario_path: Path | None = None,
    out_dir: Path | None = None,
    console: Console | None = None,
    show_progress: bool = True,
    engine: str = "asyncio",
    locust_workers: int = 0,
    server_secret: str | None = None,
) -> RunResult:
    """Run every cell of ``scenario`` and write the results folder.

    ``engine`` is ``asyncio`` (rtbench's open/closed-loop generator) or
    ``locust`` (closed loop; ``locust_workers`` worker processes under a master).
    The folder is ``out_dir`` (which must be absent or empty) or a new
    ``results/RUN_ID``; :class:`loadgen.runfolder.RunFolderTaken` when another run has it.
    ``server_secret`` is the sign-in secret of the servers at cells' ``server_url``
    (needed by real-time cells there); :class:`loadgen.run.attach.RunningServerError`,
    before anything is written, when one is missing or such a server does not answer.
    """
    console = console or Console(stderr=True)
    if engine == "locust" and scenario.scenario.client_processes > 1:
        raise ValueError("client_processes applies to the asyncio engine; locust has --workers")
    # Refuse an impossible link before anything starts or is written.
    network = None
    if (links_needed := scenario.run_network()) is not None:
        network = plan_link(links_needed.link, links_needed.resolved())
    run_cells = scenario.run_cells()
    # Servers rtbench does not start must be there before anything starts or is written.
    running_servers = check_running_servers(run_cells, server_secret)
    # Exclusive: a second run never writes into this one's folder (RunFolderTaken).
    out = claim_run_folder(out_dir, scenario.name)
    run_id = out.name
    placement = plan_placement(scenario.scenario.placement)
    meta: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "run_id": run_id,
        "engine": engine,
        "locust_workers": locust_workers if engine == "locust" else None,
        "complete": False,
        "started_at": now(),
        "ended_at": None,
        "command": shlex.join(sys.argv),
        "scenario_file": str(scenario_path) if scenario_path else None,
        "scenario": scenario.as_dict(),
        # Each [[parts]] entry as the single-workload scenario its cells ran under.
        "parts": {name: sub.as_dict() for name, sub in scenario.part_scenarios().items()},
        "environment": collect_environment(),
        "pinning": placement.as_dict(),
    }
    if network is not None:
        relayed = any(p["link"] == "userspace" for p in network["profiles"].values())
        if any(p["link"] == "kernel" for p in network["profiles"].values()):
            network["stale_namespaces_removed"] = remove_stale_namespaces(console)
        # What the relay itself adds; None when no profile runs through it.
        network["relay_overhead"] = relay_overhead() if relayed else None
        meta["network"] = network
    progress = run_progress(console, disable=not show_progress)
    links = {n: p["link"] for n, p in network["profiles"].items()} if network else None
    runner = RepeatRunner(
        scenario, out, placement, progress, engine, locust_workers, links, server_secret
    )
    # Each cell's server: the connections it makes room for and its listen backlog.
    meta["server_sizing"] = {
        "somaxconn": runner.somaxconn,
        "cells": {c.id: runner.sizing(c) for c in run_cells},
    }
    if running_servers:
        # Servers rtbench measured but did not start or pin, by URL (their pid, CPUs...).
        meta["running_servers"] = running_servers
    write_json(out / META_FILE, meta)
    if placement.note:
        console.print(f"[yellow]note:[/] {placement.note}")
    notes = option_notes(run_cells, runner.sizing) + placement_notes(running_servers, placement)
    for note in notes:
        console.print(f"[yellow]note:[/] {term_text(note)}", highlight=False)
    order = [(r, c) for r in range(scenario.scenario.repeats) for c in run_cells]
    parts: list[dict[str, Any]] = []
    interrupted = False
    try:
        with signals_as_interrupt(runner.stop), progress:
            runner.task_id = progress.add_task(
                progress_label(scenario.name), total=len(order), status=""
            )
            floors = runner.harness_floors(run_cells)
            if floors:
                meta["harness_floor"] = floors
                write_json(out / META_FILE, meta)
            for index, (repeat, cell) in enumerate(order):
                runner.stop.check()
                part = runner.run_one(index, repeat, cell)
                parts.append(part)
                write_json(out / "parts" / f"{Path(part['part']).name}.record.json", part)
                if "failed" in part:
                    console.print(
                        f"[red]error[/] {term_text(cell.id)} repeat {repeat}: "
                        f"{term_text(part['failed'])}"
                    )
                progress.advance(runner.task_id)
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]interrupted: writing the repeats that finished[/]")
    finally:
        merge_samples(out, parts)
        summary = build_summary(
            run_id,
            scenario.name,
            [cell_identity(c) for c in run_cells],
            parts,
            complete=not interrupted,
        )
        write_json(out / SUMMARY_FILE, summary)
        meta["complete"] = not interrupted
        meta["ended_at"] = now()
        meta["loops"] = sorted({str(p.get("loop")) for p in parts if p.get("loop")})
        meta["pinning"]["client_processes"] = client_process_pinning(parts)
        write_json(out / META_FILE, meta)
    return RunResult(out, not interrupted, summary, meta)


def client_process_pinning(parts: list[dict[str, Any]]) -> dict[str, list[list[int] | None]]:
    """The CPUs each load-generator process of a cell was given, read back from the
    processes (the first repeat that ran of each cell); one list per process."""
    out: dict[str, list[list[int] | None]] = {}
    for part in parts:
        procs = part.get("procs")
        if not procs or part["cell"] in out:
            continue
        each = procs.get("client_processes")
        out[part["cell"]] = [p["cpus"] for p in each] if each else [procs.get("client_cpus")]
    return out
