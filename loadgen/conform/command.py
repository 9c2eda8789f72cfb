"""``rtbench conform``'s work, less the command line: pick the target, run, stop.

::

    target, results = asyncio.run(conform(["http://127.0.0.1:8080"], secret))
    target, results = asyncio.run(conform(["python", "-m", "servers", "http"]))

A single argument that starts with ``http://`` is a running server; anything
else is a command to start (with a fresh sign-in secret in its environment)
and stop afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from loadgen.conform.runner import CheckResult, run_checks
from loadgen.conform.target import Target, TargetError, probe_url, started
from servers.realtime.credentials import check_secret, secret_from_env


def is_url(args: list[str]) -> bool:
    """Whether the arguments name a running server rather than a command."""
    return len(args) == 1 and args[0].startswith(("http://", "https://"))


def read_secret(secret_file: Path | None) -> str | None:
    """The sign-in secret from ``secret_file``, else ``$RTBENCH_SIGNIN_SECRET``, else None.

    Raises TargetError naming the file when it cannot be read or is too short.
    """
    if secret_file is None:
        try:
            return secret_from_env()
        except ValueError as exc:
            raise TargetError(f"$RTBENCH_SIGNIN_SECRET: {exc}") from None
    try:
        return check_secret(secret_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TargetError(f"cannot read the secret file {secret_file}: {exc.strerror}") from None
    except ValueError as exc:
        raise TargetError(f"{secret_file}: {exc}") from None


async def conform(
    args: list[str],
    secret: str | None = None,
    only: list[str] | None = None,
    max_message_bytes: int | None = None,
    progress: Callable[[CheckResult], None] | None = None,
) -> tuple[Target, list[CheckResult]]:
    """Check the server ``args`` names; TargetError when it cannot be checked at all."""
    if not args:
        raise TargetError("name a server: a loopback URL, or -- and the command that starts one")

    async def check(target: Target) -> list[CheckResult]:
        if max_message_bytes:
            target.max_message_bytes = max_message_bytes
        return await run_checks(target, only, progress)

    if is_url(args):
        target = await probe_url(args[0], secret)
        return target, await check(target)
    async with started(args, secret) as target:
        results = await check(target)
    return target, results
