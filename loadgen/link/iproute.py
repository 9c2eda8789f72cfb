"""How the kernel link runs its ``ip`` and ``tc`` commands: through an injectable runner.

::

    result = run_command(["ip", "netns", "list"])   # CommandResult(returncode, stdout, stderr)
    link = KernelLink(profile, runner=fake)         # tests pass a fake Runner
    message = short_output(result)                  # its error on one line
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

COMMAND_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str = ""
    stderr: str = ""


Runner = Callable[[Sequence[str]], CommandResult]


def run_command(argv: Sequence[str]) -> CommandResult:
    """Run ``argv`` (no shell), capture its output; a missing program is returncode 127."""
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        return CommandResult(127, "", str(exc))
    except subprocess.TimeoutExpired:
        return CommandResult(124, "", f"timed out after {COMMAND_TIMEOUT_S:g} s")
    return CommandResult(done.returncode, done.stdout, done.stderr)


def short_output(result: CommandResult) -> str:
    """The command's error (or output) on one line, for messages."""
    text = (result.stderr or result.stdout).strip().replace("\n", " ")
    return text[:300] or f"exit status {result.returncode}"
