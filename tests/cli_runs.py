"""Start ``rtbench run`` in fresh interpreters, side by side, and wait for all of them.

::

    outs = run_side_by_side(tmp_path, {"messaging": toml_text}, timeout_s=150)  # name -> results
    procs = {"messaging": start_run(scenario_path, out_dir)}
    wait_runs(procs, timeout_s=150)  # fails the test naming each run that did not exit 0
    stop_runs(procs)                 # kills what is still going, when a test gives up early
    result, out = run_toml(tmp_path, "tls", toml_text)  # in this process, into tmp_path/out
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from loadgen.cli import app

REPO = Path(__file__).resolve().parents[1]

#: ``rtbench run`` through typer's CliRunner, in a fresh interpreter: a run installs
#: signal handlers, so it cannot share the test's thread.
CLI_RUNNER = """\
import sys, traceback
from typer.testing import CliRunner
from loadgen.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
sys.stdout.write(result.output)
if result.exception is not None and not isinstance(result.exception, SystemExit):
    traceback.print_exception(result.exception)
sys.exit(result.exit_code)
"""


def run_args(scenario: Path, out: Path) -> list[str]:
    """The arguments of ``rtbench run scenario --out out`` without report or progress."""
    return ["run", str(scenario), "--out", str(out), "--no-report", "--no-progress"]


def invoke_run(scenario: Path, out: Path, *more: str) -> Result:
    """:func:`run_args` and ``more`` through typer's CliRunner in this process; the result,
    unchecked."""
    return CliRunner().invoke(app, [*run_args(scenario, out), *more])


def run_toml(base: Path, name: str, text: str, out: str = "out") -> tuple[Result, Path]:
    """Write ``text`` to ``base/NAME.toml`` and :func:`invoke_run` it into ``base/OUT``;
    return the result (unchecked) and that folder."""
    scenario = base / f"{name}.toml"
    scenario.write_text(text)
    return invoke_run(scenario, base / out), base / out


def start_run(scenario: Path, out: Path) -> subprocess.Popen[bytes]:
    """Start ``rtbench run scenario --out out`` without report or progress; output is piped."""
    args = run_args(scenario, out)
    return subprocess.Popen(
        [sys.executable, "-c", CLI_RUNNER, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_runs(procs: Mapping[str, subprocess.Popen[bytes]], timeout_s: float) -> None:
    """Wait for every run, all within ``timeout_s``; assert each exited 0.

    A run still going at the deadline is killed and counted as failed; none is left running.
    """
    deadline = time.monotonic() + timeout_s
    failures = []
    try:
        for name, proc in procs.items():
            try:
                output, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                output, _ = proc.communicate()
                failures.append(f"{name}: still running after {timeout_s}s")
                continue
            if proc.returncode != 0:
                failures.append(f"{name}: exit {proc.returncode}\n{output.decode()[-3000:]}")
    finally:
        stop_runs(procs)
    assert not failures, "\n".join(failures)


def stop_runs(procs: Mapping[str, subprocess.Popen[bytes]]) -> None:
    """Kill every run still going and reap it."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_side_by_side(base: Path, scenarios: Mapping[str, str], timeout_s: float) -> dict[str, Path]:
    """Write each scenario to ``base/NAME.toml``, run them all at once into ``base/out-NAME``.

    Waits as :func:`wait_runs` does; returns NAME -> results folder.
    """
    procs: dict[str, subprocess.Popen[bytes]] = {}
    outs: dict[str, Path] = {}
    try:
        for name, text in scenarios.items():
            path = base / f"{name}.toml"
            path.write_text(text)
            outs[name] = base / f"out-{name}"
            procs[name] = start_run(path, outs[name])
    except BaseException:
        stop_runs(procs)
        raise
    wait_runs(procs, timeout_s)
    return outs
