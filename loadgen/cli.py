"""The ``rtbench`` command line.

::

    rtbench run scenarios/quick.toml [--out DIR] [--no-report]
    rtbench report results/RUN_ID [results/OTHER ...]
    rtbench validate scenarios/*.toml
    rtbench compare BASELINE CURRENT [--max-regression p99:+15% ...] [--report-only]
    rtbench baseline save results/RUN_ID [--name NAME]
    rtbench conform http://127.0.0.1:8080 | rtbench conform -- CMD ARGS...
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from loadgen.clients.kinds import LEAN
from loadgen.escape import term_name, term_text
from loadgen.scenario import (
    Scenario,
    ScenarioError,
    load_scenario,
    parse_scenario,
    read_scenario_dict,
)
from servers import gcfreeze

app = typer.Typer(
    help="Measure whether WebSocket beats HTTP for real-time messaging, and by how much.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)

#: The options every command that runs cells takes: where its results go, whether
#: report.html follows, and whether progress is shown.
RunOut = Annotated[
    Path | None, typer.Option("--out", "-o", help="Results folder (default results/RUN_ID)")
]
RunReport = Annotated[
    bool, typer.Option("--report/--no-report", help="Write report.html after the run")
]
RunProgress = Annotated[bool, typer.Option("--progress/--no-progress")]
#: The sign-in secret of the servers cells name by server_url (which rtbench did not start).
RunSecret = Annotated[
    Path | None,
    typer.Option(
        "--secret-file",
        help="Sign-in secret of the running servers at cells' server_url (default: "
        "$RTBENCH_SIGNIN_SECRET); servers rtbench starts get a fresh one",
    ),
]


@app.command()
def run(
    scenario: Annotated[Path, typer.Argument(help="Scenario TOML file, e.g. scenarios/quick.toml")],
    out: RunOut = None,
    report: RunReport = True,
    progress: RunProgress = True,
    engine: Annotated[
        str, typer.Option("--engine", help="asyncio (default) or locust (closed loop)")
    ] = "asyncio",
    workers: Annotated[
        int, typer.Option("--workers", min=0, help="locust: worker processes under a master")
    ] = 0,
    secret_file: RunSecret = None,
) -> None:
    """Run a scenario: start servers, drive load, write results (and a report)."""
    if engine not in ("asyncio", "locust"):
        got = term_text(repr(engine))
        err.print(f"[red]error:[/] --engine must be asyncio or locust, got {got}")
        raise typer.Exit(2)
    if workers and engine != "locust":
        err.print("[red]error:[/] --workers applies to --engine locust only")
        raise typer.Exit(2)
    try:
        spec = load_scenario(scenario)
    except ScenarioError as exc:
        err.print(f"[red]error:[/] {term_text(exc)}", highlight=False)
        raise typer.Exit(2) from None
    if engine == "locust" and spec.scenario.client_processes > 1:
        err.print(
            f"[red]error:[/] {scenario}: client_processes applies to the asyncio engine; "
            "with --engine locust, spread the load with --workers",
            highlight=False,
        )
        raise typer.Exit(2)
    _execute(spec, scenario, out, report, progress, engine, workers, secret_file)


@app.command()
def worker(
    master: Annotated[str, typer.Option("--master", help="HOST[:PORT] of a locust master")],
) -> None:
    """Join a locust master (started by `rtbench run --engine locust`) as a worker."""
    from loadgen.locust_engine import join_master, parse_master

    try:
        host, port = parse_master(master)
    except ValueError as exc:
        err.print(f"[red]error:[/] {term_text(exc)}")
        raise typer.Exit(2) from None
    raise typer.Exit(join_master(host, port))


@app.command()
def locust(
    scenario: Annotated[Path, typer.Argument(help="Scenario TOML file")],
    cell: Annotated[
        str | None, typer.Option("--cell", help="Which cell's users (default: the first)")
    ] = None,
    port: Annotated[int, typer.Option("--port", help="Web UI port")] = 8089,
) -> None:
    """Open locust's web UI with a scenario cell's users, against a server started for it."""
    from loadgen.locust_engine import run_web_ui
    from loadgen.run.interactive import interactive_spec

    try:
        spec = load_scenario(scenario)
    except ScenarioError as exc:
        err.print(f"[red]error:[/] {term_text(exc)}", highlight=False)
        raise typer.Exit(2) from None
    from loadgen.server_url import ServerUnreachable

    try:
        with interactive_spec(spec, cell) as cell_spec:
            err.print(f"locust web UI on http://127.0.0.1:{port} for {term_text(cell_spec.cell)}")
            raise typer.Exit(run_web_ui(cell_spec, port=port))
    except ServerUnreachable as exc:
        err.print(f"[red]error:[/] {term_text(exc)}", highlight=False)
        raise typer.Exit(2) from None


@app.command()
def sweep(
    scenario: Annotated[Path, typer.Argument(help="Scenario TOML file")],
    rates: Annotated[
        str | None,
        typer.Option(
            "--rates", help="Comma-separated open-loop rates, e.g. 200,400,800 (an echo workload)"
        ),
    ] = None,
    users: Annotated[
        str | None,
        typer.Option(
            "--users",
            help="Comma-separated user counts, rising, e.g. 1000,2000,5000 (a real-time workload)",
        ),
    ] = None,
    slo_p99_ms: Annotated[
        float | None,
        typer.Option(
            "--slo-p99-ms",
            help="p99 objective: report each cell's highest rate (or user count) under it",
        ),
    ] = None,
    out: RunOut = None,
    report: RunReport = True,
    progress: RunProgress = True,
    secret_file: RunSecret = None,
) -> None:
    """Run a scenario's cells at each of several open-loop rates (a rate sweep) or user
    counts (a users sweep)."""
    if (rates is None) == (users is None):
        err.print("[red]error:[/] give one of --rates (a rate sweep) or --users (a users sweep)")
        raise typer.Exit(2)
    option, text = ("--rates", rates) if rates is not None else ("--users", users or "")
    try:
        kind = float if rates is not None else int
        values = [kind(r) for r in text.split(",") if r.strip()]
    except ValueError:
        err.print(
            f"[red]error:[/] {option} must be numbers separated by commas, "
            f"got {term_text(repr(text))}"
        )
        raise typer.Exit(2) from None
    try:
        data = read_scenario_dict(scenario)
        load = dict(data.get("load", {}))
        if rates is not None:
            load.pop("rate", None)
            load.pop("think_time_ms", None)
            load.update(model="open", rates=values)
        else:
            data["realtime"] = {**data.get("realtime", {}), "users": values}
        if slo_p99_ms is not None:
            load["sweep_slo_p99_ms"] = slo_p99_ms
        data["load"] = load
        spec = parse_scenario(data, scenario)
    except ScenarioError as exc:
        err.print(f"[red]error:[/] {term_text(exc)}", highlight=False)
        raise typer.Exit(2) from None
    _execute(spec, scenario, out, report, progress, secret_file=secret_file)


def _execute(
    spec: Scenario,
    scenario: Path,
    out: Path | None,
    report: bool,
    progress: bool,
    engine: str = "asyncio",
    workers: int = 0,
    secret_file: Path | None = None,
) -> None:
    """Run a validated scenario, write the report, check SLOs, and set the exit code."""
    from loadgen.link.plan import LinkUnavailable
    from loadgen.orchestrator import run_scenario
    from loadgen.run.attach import RunningServerError
    from loadgen.runfolder import RunFolderTaken

    if out is not None and out.exists() and any(out.iterdir()):
        err.print(f"[red]error:[/] {term_text(out)} exists and is not empty; choose another --out")
        raise typer.Exit(2)
    try:
        # Servers and load generators read it as they start: a bad value fails here.
        gcfreeze.policy()
    except ValueError as exc:
        err.print(f"[red]error:[/] {term_text(exc)}", highlight=False)
        raise typer.Exit(2) from None
    lean = sorted({rc.id for rc in spec.run_cells() if rc.cell.client == LEAN})
    if engine == "locust" and lean:
        # Locust drives every cell with its own gevent clients: a "lean" label would lie.
        err.print(
            f"[red]error:[/] {term_text(scenario)}: cells {term_text(', '.join(lean))} use the "
            "lean client, which runs on the asyncio engine only; run without --engine locust",
            highlight=False,
        )
        raise typer.Exit(2)
    newer = sorted({rc.id for rc in spec.run_cells() if rc.cell.http_version != "1.1"})
    if engine == "locust" and newer:
        # Locust's gevent clients speak HTTP/1.1 only.
        err.print(
            f"[red]error:[/] {term_text(scenario)}: cells {term_text(', '.join(newer))} set "
            "http_version, and locust's clients speak HTTP/1.1 only; run without --engine "
            "locust",
            highlight=False,
        )
        raise typer.Exit(2)
    server_secret = _server_secret(spec, scenario, secret_file)
    err.print(
        f"running [bold]{term_name(spec.name)}[/]: {len(spec.run_cells())} cells x "
        f"{spec.scenario.repeats} repeats, at least {spec.estimated_seconds():.0f}s"
    )
    try:
        result = run_scenario(
            spec,
            scenario,
            out,
            err,
            show_progress=progress,
            engine=engine,
            locust_workers=workers,
            server_secret=server_secret,
        )
    except (LinkUnavailable, RunningServerError) as exc:
        err.print(f"[red]error:[/] {term_text(scenario)}: {term_text(exc)}", highlight=False)
        raise typer.Exit(2) from None
    except RunFolderTaken as exc:
        err.print(f"[red]error:[/] {term_text(exc)}", highlight=False)
        raise typer.Exit(2) from None
    err.print(f"results: {result.out_dir}", markup=False, highlight=False)
    report_failed = report and not _write_report(result.out_dir)
    if not result.complete:
        raise typer.Exit(130)
    slo_failed = False
    if spec.slo is not None:
        from reports.gate import slo

        checks = slo.check_slo(spec.slo, result.summary)
        slo.print_slo(checks, Console())
        slo.write_slo(result.out_dir, checks)
        slo_failed = slo.exit_code(checks) != 0
    from loadgen.summary import refusal_notes

    refused = refusal_notes(result.summary["cells"])
    if refused:
        err.print(
            f"[yellow]server refusals:[/] {term_text('; '.join(refused))} (see the report's "
            "warnings)"
        )
    failed = [c["cell"] for c in result.summary["cells"] if c["status"] != "ok"]
    if failed:
        err.print(
            f"[red]cells with errors:[/] {term_text(', '.join(failed))} (see the logs/ folder)"
        )
    if failed or slo_failed or report_failed:
        raise typer.Exit(1)


def _server_secret(spec: Scenario, scenario: Path, secret_file: Path | None) -> str | None:
    """The sign-in secret of the running servers the scenario's cells name by server_url:
    ``secret_file``'s, else ``$RTBENCH_SIGNIN_SECRET``'s, as ``rtbench conform`` reads it;
    None without one. Exits 2 when it cannot be read, or is given with no such cell."""
    from loadgen.conform.command import read_secret
    from loadgen.conform.target import TargetError

    if not any(rc.cell.server_url is not None for rc in spec.run_cells()):
        if secret_file is not None:
            err.print(
                f"[red]error:[/] {term_text(scenario)}: --secret-file is the sign-in secret of "
                "a running server, and no cell has a server_url",
                highlight=False,
            )
            raise typer.Exit(2)
        return None
    try:
        return read_secret(secret_file)
    except TargetError as exc:
        err.print(f"[red]error:[/] {term_text(exc)}", highlight=False)
        raise typer.Exit(2) from None


def _write_report(folder: Path) -> bool:
    """Write the run's report; on failure say why and return False (the results and the
    [slo] check do not depend on it)."""
    from reports.cli_report import report as write_report

    try:
        path = write_report([folder], console=Console())
    except Exception as exc:  # any failure: the run's files are written, the gate still runs
        err.print(f"[red]error:[/] the report could not be written: {term_text(exc)}")
        err.print(f"(the results are in {term_text(folder)}; try rtbench report there)")
        return False
    err.print(f"report: {path}", markup=False, highlight=False)
    return True


@app.command()
def report(
    dirs: Annotated[list[Path], typer.Argument(help="One or more results folders")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Where to write report.html")
    ] = None,
) -> None:
    """Print the summary of one or more runs and write report.html."""
    from reports import ResultsError
    from reports.cli_report import report as write_report

    try:
        path = write_report(dirs, out=out, console=Console())
    except ResultsError as exc:
        err.print(f"[red]error:[/] {term_text(exc)}", highlight=False)
        raise typer.Exit(2) from None
    err.print(f"report: {path}", markup=False, highlight=False)


@app.command()
def validate(
    scenarios: Annotated[list[Path], typer.Argument(help="Scenario TOML files to check")],
) -> None:
    """Check scenario files without running anything."""
    bad = 0
    for path in scenarios:
        try:
            spec = load_scenario(path)
        except ScenarioError as exc:
            bad += 1
            err.print(f"[red]invalid[/] {term_text(exc)}", highlight=False)
            continue
        cells, seconds = len(spec.run_cells()), spec.estimated_seconds()
        err.print(f"[green]ok[/] {term_name(path)}: {cells} cells, ~{seconds:.0f}s")
    if bad:
        raise typer.Exit(2)


@app.command()
def conform(
    target: Annotated[
        list[str],
        typer.Argument(
            help="A running loopback server's URL, or -- and the command that starts one",
            metavar="URL | -- CMD ARGS...",
        ),
    ],
    secret_file: Annotated[
        Path | None,
        typer.Option(
            "--secret-file",
            help="The server's sign-in secret (default: $RTBENCH_SIGNIN_SECRET); "
            "a started command gets a fresh one",
        ),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Run only checks matching this glob, e.g. 'ws.*' (repeatable)"),
    ] = None,
    max_message_bytes: Annotated[
        int | None,
        typer.Option(
            "--max-message-bytes",
            min=64,
            help="The server's message limit (default: its ready line's, else 1 MiB)",
        ),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the results as JSON here")
    ] = None,
    progress: RunProgress = True,
) -> None:
    """Check that a server speaks the rtbench protocol (docs/protocol.md); exit 1 if not."""
    import asyncio

    from loadgen.conform.command import conform as run_conform
    from loadgen.conform.command import is_url, read_secret
    from loadgen.conform.runner import CheckResult, verdict
    from loadgen.conform.table import results_table, summary_line, write_json
    from loadgen.conform.target import TargetError

    out = Console()

    def shown(result: CheckResult) -> None:
        if progress:
            err.print(f"{result.status:>7} {result.id}", markup=False, highlight=False)

    try:
        secret = read_secret(secret_file) if (is_url(target) or secret_file) else None
        checked, results = asyncio.run(run_conform(target, secret, only, max_message_bytes, shown))
    except TargetError as exc:
        err.print(f"[red]error:[/] {term_text(exc)}", highlight=False)
        raise typer.Exit(2) from None
    if not results:
        err.print("[red]error:[/] no check matches --only", highlight=False)
        raise typer.Exit(2)
    out.print(results_table(checked, results))
    out.print(summary_line(results), markup=False, highlight=False)
    if json_out is not None:
        write_json(json_out, checked, results)
    if not verdict(results):
        raise typer.Exit(1)


@app.command()
def compare(
    baseline: Annotated[
        str, typer.Argument(help="Baseline: a results folder, or a name under baselines/")
    ],
    current: Annotated[str, typer.Argument(help="Current results folder")],
    max_regression: Annotated[
        list[str] | None,
        typer.Option(
            "--max-regression",
            "-r",
            help="METRIC[@CELL]:LIMIT, repeatable: p99:+15%, throughput:-10%, lost:0. "
            "Default: p50:+20% p99:+30% throughput:-15% lost:0. Metrics: p50 p90 p99 p99.9 "
            "throughput cpu_server cpu_client bytes delivery_p50 delivery_p99 lost errors",
        ),
    ] = None,
    cell: Annotated[
        list[str] | None, typer.Option("--cell", help="Compare only this cell (repeatable)")
    ] = None,
    allow_env_mismatch: Annotated[
        bool,
        typer.Option(
            "--allow-env-mismatch",
            help="Compare runs from different machines or loads (reported, not an error)",
        ),
    ] = False,
    report_only: Annotated[
        bool,
        typer.Option(
            "--report-only", help="Print and write everything, but exit 0 on a regression"
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where to write compare.md/json (default CURRENT)"),
    ] = None,
    baselines: Annotated[
        Path, typer.Option("--baselines", help="Folder of saved baselines")
    ] = Path("baselines"),
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap random seed")] = 0,
) -> None:
    """Compare a run with a baseline; exit 1 on a regression beyond the noise, 2 on bad data."""
    from reports.gate.output import run_compare

    code = run_compare(
        baseline,
        current,
        specs=max_regression,
        cells=cell,
        allow_env_mismatch=allow_env_mismatch,
        report_only=report_only,
        out=out,
        baselines_dir=baselines,
        seed=seed,
        err=err,
    )
    raise typer.Exit(code)


baseline_app = typer.Typer(
    help="Baselines for rtbench compare, kept in baselines/NAME/.", no_args_is_help=True
)
app.add_typer(baseline_app, name="baseline")


@baseline_app.command("save")
def baseline_save(
    results: Annotated[Path, typer.Argument(help="A complete results folder")],
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Baseline name (default: scenario name)")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing baseline")] = False,
    baselines: Annotated[
        Path, typer.Option("--baselines", help="Folder of saved baselines")
    ] = Path("baselines"),
) -> None:
    """Copy a run's summary.json, meta.json (and raw files under 20 MB) to baselines/NAME/."""
    from reports.gate.baseline import BaselineError, save_baseline

    try:
        saved = save_baseline(results, name, root=baselines, force=force)
    except BaselineError as exc:
        err.print(f"[red]error:[/] {term_text(exc)}", highlight=False)
        raise typer.Exit(2) from None
    for warning in saved.warnings:
        err.print(f"[yellow]warning:[/] {term_text(warning)}", highlight=False)
    for fname, why in saved.skipped.items():
        err.print(f"[yellow]not copied:[/] {term_text(f'{fname} ({why})')}", highlight=False)
    err.print(f"baseline {saved.path}: {', '.join(saved.copied)}", markup=False, highlight=False)


@baseline_app.command("list")
def baseline_list(
    baselines: Annotated[
        Path, typer.Option("--baselines", help="Folder of saved baselines")
    ] = Path("baselines"),
) -> None:
    """List saved baselines."""
    from reports.gate.baseline import list_baselines
    from reports.gate.listing import print_baselines

    found = list_baselines(baselines)
    if not found:
        err.print(f"no baselines in {baselines}/", markup=False)
    else:
        print_baselines(found, Console())


if __name__ == "__main__":
    app()
