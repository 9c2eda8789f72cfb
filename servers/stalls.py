"""Time this process's stalls: garbage collections and late event-loop turns.

A delivery that waits shows the wait in its latency whichever process held it:
a server whose loop stopped for a collection delays every push in flight, and
a load generator that stopped records the stop as latency it never offered.
Two recorders tell them apart::

    stalls = Stalls()
    async with stalls.watching():         # gc.callbacks, and a task timing loop turns
        ...
        stalls.report(since_ns, until_ns)  # {"gc": {...}, "loop": {...}, "events": [...]}

(or ``install()``/``uninstall()`` and a task of your own running ``watch_loop()``).

Times are ``time.perf_counter_ns()`` (CLOCK_MONOTONIC on Linux, one clock for
every process of the machine), so a load generator can lay a server's stalls
over its own samples. Only stalls of at least ``min_event_ms`` are kept one by
one, at most ``max_events`` of them (the longest win once full); counts and
totals cover every collection.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

#: Loop turns are checked this often (s): a stall shorter than this may go unseen.
LOOP_PERIOD_S = 0.01
#: Environment variable: "1" makes a server watch its loop too. Each check is a timer
#: wake-up, which cost about 0.1 ms of CPU here (10-20 ms/s of an idle server), so
#: servers, whose CPU per user is measured, time only their collections (free) unless
#: asked; load generators always watch.
LOOP_WATCH_ENV = "RTBENCH_LOOP_WATCH"


def server_watches_loop() -> bool:
    """Whether a server watches its event loop (``RTBENCH_LOOP_WATCH=1``)."""
    return os.environ.get(LOOP_WATCH_ENV, "0").strip() == "1"


#: A stall this long or longer (ms) is kept as an event of its own.
MIN_EVENT_MS = 5.0
#: At most this many events are kept (the longest, once there are more).
MAX_EVENTS = 5_000
#: Event kinds: a collection of generation 0, 1 or 2, or a loop turn that came late.
GC_KINDS = ("gc0", "gc1", "gc2")
LOOP = "loop"


class Stalls:
    """Collections (through ``gc.callbacks``) and late loop turns of this process."""

    def __init__(
        self,
        clock: Callable[[], int] = time.perf_counter_ns,
        min_event_ms: float = MIN_EVENT_MS,
        max_events: int = MAX_EVENTS,
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be >= 1")
        self.clock = clock
        self.min_event_ns = int(min_event_ms * 1e6)
        self.max_events = max_events
        #: Per generation: collections, their total and their longest time (ns).
        self.gc_count = [0, 0, 0]
        self.gc_total_ns = [0, 0, 0]
        self.gc_max_ns = [0, 0, 0]
        self.loop_checks = 0
        self.loop_late_ns = 0
        self.loop_max_ns = 0
        # (duration, start, kind) as a min-heap: the shortest is dropped first.
        self._events: list[tuple[int, int, str]] = []
        self._started = 0
        self._installed = False

    # -- collections ---------------------------------------------------------

    def install(self) -> None:
        """Start timing collections (idempotent)."""
        if not self._installed:
            gc.callbacks.append(self._on_gc)
            self._installed = True

    def uninstall(self) -> None:
        """Stop timing collections (idempotent)."""
        if self._installed:
            gc.callbacks.remove(self._on_gc)
            self._installed = False

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        now = self.clock()
        if phase == "start":
            self._started = now
            return
        gen = min(int(info.get("generation", 0)), 2)
        self.gc_pause(gen, self._started, now - self._started)

    def gc_pause(self, generation: int, start_ns: int, duration_ns: int) -> None:
        """Count one collection of ``generation`` (0-2) that took ``duration_ns``."""
        self.gc_count[generation] += 1
        self.gc_total_ns[generation] += duration_ns
        self.gc_max_ns[generation] = max(self.gc_max_ns[generation], duration_ns)
        self._keep(start_ns, duration_ns, GC_KINDS[generation])

    # -- the event loop ------------------------------------------------------

    async def watch_loop(self, period_s: float = LOOP_PERIOD_S) -> None:
        """Sleep ``period_s`` at a time until cancelled, counting how late each wake-up
        came: a stall of the loop, whatever held it (a collection, a long callback)."""
        for wait in self.loop_waits(period_s):
            await asyncio.sleep(wait)

    def loop_waits(self, period_s: float = LOOP_PERIOD_S) -> Iterator[float]:
        """The seconds to sleep before each check, without end; asking for the next one
        counts how late the sleep came back. Any event loop drives it with its own sleep:
        ``for wait in stalls.loop_waits(): gevent.sleep(wait)``."""
        period_ns = int(period_s * 1e9)
        due = self.clock() + period_ns
        while True:
            yield max(0.0, (due - self.clock()) / 1e9)
            now = self.clock()
            self.loop_turn(due, now - due)
            due = max(due + period_ns, now)

    def loop_turn(self, due_ns: int, late_ns: int) -> None:
        """Count one wake-up that was due at ``due_ns`` and came ``late_ns`` late."""
        late_ns = max(0, late_ns)
        self.loop_checks += 1
        self.loop_late_ns += late_ns
        self.loop_max_ns = max(self.loop_max_ns, late_ns)
        self._keep(due_ns, late_ns, LOOP)

    @contextlib.asynccontextmanager
    async def watching(self, loop: bool = True) -> AsyncIterator[Stalls]:
        """Time collections (and loop turns, unless ``loop=False``) inside the block:
        ``async with s.watching():``."""
        self.install()
        task = asyncio.create_task(self.watch_loop()) if loop else None
        try:
            yield self
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.uninstall()

    # -- the record ----------------------------------------------------------

    def _keep(self, start_ns: int, duration_ns: int, kind: str) -> None:
        if duration_ns < self.min_event_ns:
            return
        entry = (duration_ns, start_ns, kind)
        if len(self._events) < self.max_events:
            heapq.heappush(self._events, entry)
        elif entry > self._events[0]:
            heapq.heapreplace(self._events, entry)

    def events(
        self, since_ns: int | None = None, until_ns: int | None = None
    ) -> list[tuple[int, float, str]]:
        """Kept stalls starting in ``[since_ns, until_ns)`` as ``(start_ns, ms, kind)``,
        in time order."""
        lo = since_ns if since_ns is not None else -(2**63)
        hi = until_ns if until_ns is not None else 2**63
        return [
            (start, round(dur / 1e6, 3), kind)
            for dur, start, kind in sorted(self._events, key=lambda e: e[1])
            if lo <= start < hi
        ]

    def report(
        self, since_ns: int | None = None, until_ns: int | None = None, limit: int = 1_000
    ) -> dict[str, Any]:
        """Totals since this recorder was made, and the kept events in the span (the
        ``limit`` longest, in time order), for JSON."""
        events = self.events(since_ns, until_ns)
        if len(events) > limit:
            longest = heapq.nlargest(limit, events, key=lambda e: e[1])
            events = sorted(longest, key=lambda e: e[0])
        return {
            "gc": {
                "collections": list(self.gc_count),
                "total_ms": [round(t / 1e6, 3) for t in self.gc_total_ns],
                "max_ms": [round(t / 1e6, 3) for t in self.gc_max_ns],
            },
            "loop": {
                "period_ms": LOOP_PERIOD_S * 1e3,
                "checks": self.loop_checks,
                "late_ms_total": round(self.loop_late_ns / 1e6, 3),
                "max_ms": round(self.loop_max_ns / 1e6, 3),
            },
            "min_event_ms": self.min_event_ns / 1e6,
            "events": [list(e) for e in events],
        }


def merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One report for several processes of one role (load generators sharing a cell):
    counts and totals added, longest stalls the longest of any, events in time order."""
    reports = [r for r in reports if r]
    if not reports:
        return {}
    if len(reports) == 1:
        return reports[0]

    def column(block: str, key: str) -> list[Any]:
        return [r[block][key] for r in reports]

    def add(lists: list[list[float]]) -> list[float]:
        return [round(sum(v), 3) for v in zip(*lists, strict=True)]

    return {
        "gc": {
            "collections": [int(v) for v in add(column("gc", "collections"))],
            "total_ms": add(column("gc", "total_ms")),
            "max_ms": [max(v) for v in zip(*column("gc", "max_ms"), strict=True)],
        },
        "loop": {
            "period_ms": reports[0]["loop"]["period_ms"],
            "checks": sum(column("loop", "checks")),
            "late_ms_total": round(sum(column("loop", "late_ms_total")), 3),
            "max_ms": max(column("loop", "max_ms")),
        },
        "min_event_ms": reports[0]["min_event_ms"],
        "events": sorted((e for r in reports for e in r["events"]), key=lambda e: e[0]),
    }
