"""Start ``rtbench run`` as a real process and find its children, for fault tests.

::

    with rtbench_run(scenario_text, tmp_path) as run:
        server = run.child("servers")            # waits for the server process
        ...
    run.code, run.out                            # exit code, results folder
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

RTBENCH_RUN = [sys.executable, "-m", "loadgen.cli", "run"]

#: What each child's command line holds.
SERVER, LOADGEN, RELAY = "servers", "loadgen.worker", "loadgen.link"


@dataclass
class RtbenchRun:
    proc: subprocess.Popen[bytes]
    out: Path
    code: int | None = None
    #: Every child pid seen, so none outlives the test even if rtbench itself is gone.
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    def children(self, marker: str) -> list[psutil.Process]:
        """Live descendants whose command line has ``marker`` as an argument."""
        try:
            family = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        found = []
        for p in family:
            with contextlib.suppress(psutil.Error):
                self.seen.setdefault(p.pid, p)
                if marker in p.cmdline() and p.status() != psutil.STATUS_ZOMBIE:
                    found.append(p)
        return found

    def child(
        self, marker: str, timeout_s: float = 30.0, skip: frozenset[int] = frozenset()
    ) -> psutil.Process:
        """The first live child with ``marker`` whose pid is not in ``skip``; waits for it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for p in self.children(marker):
                if p.pid not in skip:
                    return p
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {marker} child appeared (rtbench exit {self.proc.poll()})")


def wait_connected(proc: psutil.Process, timeout_s: float = 30.0) -> None:
    """Wait until ``proc`` has an established TCP connection: its load has started."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(psutil.Error):
            if any(c.status == psutil.CONN_ESTABLISHED for c in proc.net_connections("tcp")):
                return
        time.sleep(0.02)
    raise AssertionError(f"pid {proc.pid} made no TCP connection")


def gone(pids: list[int], timeout_s: float = 15.0) -> list[int]:
    """Wait for ``pids`` to exit (zombies count as exited); return those still running."""
    deadline = time.monotonic() + timeout_s
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _running(p)]
        time.sleep(0.05)
    return alive


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@contextlib.contextmanager
def rtbench_run(scenario: str, folder: Path, *args: str) -> Iterator[RtbenchRun]:
    """Run ``rtbench run`` on ``scenario`` (TOML text) into ``folder/out``; on leaving,
    wait for it (or kill it and whatever it started, if the block failed)."""
    path = folder / "scenario.toml"
    path.write_text(scenario)
    out = folder / "out"
    cmd = [*RTBENCH_RUN, str(path), "--out", str(out), "--no-report", "--no-progress", *args]
    log = (folder / "rtbench.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    run = RtbenchRun(proc, out)
    try:
        yield run
        run.code = proc.wait(timeout=120)
    finally:
        run.children("")  # note the last children
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in run.seen.values():
            with contextlib.suppress(psutil.Error):
                p.kill()  # psutil refuses a pid reused by another process
        log.close()


def rtbench_log(folder: Path) -> str:
    """What ``rtbench run`` printed."""
    return (folder / "rtbench.log").read_text(errors="replace")
