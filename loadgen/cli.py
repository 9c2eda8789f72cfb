"""The ``rtbench`` command line.

::

    rtbench run scenarios/quick.toml [--out DIR] [--no-report]
    rtbench report results/RUN_ID [results/OTHER ...]
    rtbench validate scenarios/*.toml
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from loadgen.scenario import ScenarioError, load_scenario

app = typer.Typer(
    help="Measure whether WebSocket beats HTTP for real-time messaging, and by how much.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


@app.command()
def run(
    scenario: Annotated[Path, typer.Argument(help="Scenario TOML file, e.g. scenarios/quick.toml")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Results folder (default results/RUN_ID)")
    ] = None,
    report: Annotated[
        bool, typer.Option("--report/--no-report", help="Write report.html after the run")
    ] = True,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Run a scenario: start servers, drive load, write results (and a report)."""
    from loadgen.orchestrator import run_scenario

    try:
        spec = load_scenario(scenario)
    except ScenarioError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    if out is not None and out.exists() and any(out.iterdir()):
        err.print(f"[red]error:[/] {out} exists and is not empty; choose another --out")
        raise typer.Exit(2)
    err.print(
        f"running [bold]{spec.name}[/]: {len(spec.cells)} cells x {spec.scenario.repeats} "
        f"repeats, at least {spec.estimated_seconds():.0f}s"
    )
    result = run_scenario(spec, scenario, out, err, show_progress=progress)
    err.print(f"results: {result.out_dir}")
    if report:
        from reports.cli_report import report as write_report

        path = write_report([result.out_dir], console=Console())
        err.print(f"report: {path}")
    if not result.complete:
        raise typer.Exit(130)
    failed = [c["cell"] for c in result.summary["cells"] if c["status"] != "ok"]
    if failed:
        err.print(f"[red]cells with errors:[/] {', '.join(failed)} (see the logs/ folder)")
        raise typer.Exit(1)


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
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    err.print(f"report: {path}")


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
            err.print(f"[red]invalid[/] {exc}", highlight=False)
            continue
        err.print(f"[green]ok[/] {path}: {len(spec.cells)} cells, ~{spec.estimated_seconds():.0f}s")
    if bad:
        raise typer.Exit(2)


if __name__ == "__main__":
    app()
