"""Run every check against a target and collect one row per check.

::

    results = await run_checks(target, only=["rpc.*"], progress=print)
    failed = [r for r in results if r.status == FAILED]

A check that raises anything but :class:`~loadgen.conform.checks.Mismatch`
(a dropped connection, a timeout, a reply that is not JSON where one was
needed) is a failed row naming the exception: one misbehaving check never
stops the others.
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import aiohttp

from loadgen.conform import envelope_checks, poll_checks, push_checks  # noqa: F401 (registers)
from loadgen.conform.checks import Check, Mismatch, Probe, registered
from loadgen.conform.target import Target

PASSED = "passed"
FAILED = "failed"
SKIPPED = "skipped"

#: Longest a single check may take, in seconds.
CHECK_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One row of the table: the check, its outcome, and what differed."""

    id: str
    transport: str
    title: str
    status: str
    expected: str = ""
    got: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def select(checks: list[Check], only: list[str] | None) -> list[Check]:
    """The checks whose id matches one of the ``only`` glob patterns (all when None)."""
    if not only:
        return checks
    return [c for c in checks if any(fnmatch.fnmatchcase(c.id, pat) for pat in only)]


async def run_one(target: Target, http: aiohttp.ClientSession, chk: Check) -> CheckResult:
    """Run ``chk``; its outcome as a row."""
    if chk.transport not in target.offers:
        return CheckResult(
            chk.id,
            chk.transport,
            chk.title,
            SKIPPED,
            got=f"the server does not offer {chk.transport}",
        )
    probe = Probe(target, http, chk.transport)
    start = time.monotonic()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await chk.fn(probe)
    except Mismatch as exc:
        return CheckResult(
            chk.id,
            chk.transport,
            chk.title,
            FAILED,
            exc.expected,
            exc.got,
            time.monotonic() - start,
        )
    except TimeoutError:
        got = f"no answer within {CHECK_TIMEOUT_S:.0f} s"
        return CheckResult(
            chk.id, chk.transport, chk.title, FAILED, "an answer", got, time.monotonic() - start
        )
    except Exception as exc:  # any failure of the server is this check's row
        got = f"{type(exc).__name__}: {exc}"[:300]
        return CheckResult(
            chk.id,
            chk.transport,
            chk.title,
            FAILED,
            "the exchange to complete",
            got,
            time.monotonic() - start,
        )
    finally:
        await probe.close()
    return CheckResult(chk.id, chk.transport, chk.title, PASSED, seconds=time.monotonic() - start)


async def run_checks(
    target: Target,
    only: list[str] | None = None,
    progress: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Every selected check, one after the other, in registration order."""
    results: list[CheckResult] = []
    async with aiohttp.ClientSession() as http:
        for chk in select(registered(), only):
            result = await run_one(target, http, chk)
            results.append(result)
            if progress is not None:
                progress(result)
    return results


def verdict(results: list[CheckResult]) -> bool:
    """True when nothing failed and at least one check passed."""
    return any(r.status == PASSED for r in results) and not any(r.status == FAILED for r in results)
