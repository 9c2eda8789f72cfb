"""The asyncio engines' timeline: sleeping to a deadline, and the measured window's phases.

::

    await sleep_until(deadline_ns)              # clock() >= deadline_ns afterwards
    done = await sleep_until(deadline_ns, stop)  # False when ``stop`` was set first
    await run_phases(warmup_end_ns, end_ns, stats, on_phase)   # "warm-up", "measure", "drain"
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Protocol

from loadgen.pacer import NS_PER_S

clock = time.perf_counter_ns


class WindowStats(Protocol):
    """Where :func:`run_phases` notes when the measured window opened and closed."""

    measure_started_ns: int
    ended_ns: int


async def sleep_until(deadline_ns: int, stop: asyncio.Event | None = None) -> bool:
    """Sleep until ``clock() >= deadline_ns``; False if ``stop`` was set first.

    Event-loop timers can fire early (uvloop's have whole-millisecond resolution
    and a cached "now"), so sleep again for whatever is left.
    """
    while (remaining := deadline_ns - clock()) > 0:
        if stop is None:
            await asyncio.sleep(remaining / NS_PER_S)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), remaining / NS_PER_S)
            if stop.is_set():
                return False
    return True


async def run_phases(
    warmup_end_ns: int,
    end_ns: int,
    stats: WindowStats,
    on_phase: Callable[[str], None] | None = None,
) -> None:
    """Wait out the warm-up and the measured window, noting both ends in ``stats`` and
    telling ``on_phase`` "warm-up" as the clock starts (set-up is over), then "measure"
    and "drain" as the window opens and closes."""
    if on_phase:
        on_phase("warm-up")
    await sleep_until(warmup_end_ns)
    stats.measure_started_ns = clock()
    if on_phase:
        on_phase("measure")
    await sleep_until(end_ns)
    stats.ended_ns = clock()
    if on_phase:
        on_phase("drain")
