"""Callbacks at absolute ``time.monotonic()`` times, sharing one timer per event loop.

::

    scheduler = Scheduler(asyncio.get_running_loop())   # precise=True: a timerfd on Linux
    entry = scheduler.call_at(time.monotonic() + 0.025, release)
    Scheduler.cancel(entry)                              # before it fires; None is fine
    scheduler.kind                                       # "timerfd" or "loop.call_later"
    scheduler.close()                                    # nothing fires any more
    lateness_summary(late_seconds)                       # {"releases": n, "late_p50_us": ...}

On Linux the timer is a CLOCK_MONOTONIC ``timerfd`` armed for the earliest
entry (nanosecond resolution, where ``loop.call_at`` would round to
milliseconds); elsewhere, or with ``precise=False``, ``loop.call_later``. Times
are absolute, so lateness never accumulates. A callback that raises is reported
to the loop's exception handler and does not stop the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import heapq
import itertools
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

_now = time.monotonic

#: Timed releases whose lateness a relay keeps for its stats.
LATENESS_SAMPLES = 100_000


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100) of a sorted, non-empty list."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def lateness_summary(samples: Iterable[float]) -> dict[str, Any]:
    """How late timed releases fired (``samples`` in seconds), as counted and in µs."""
    late = sorted(samples)
    return {
        "releases": len(late),
        "late_p50_us": round(percentile(late, 50) * 1e6, 1) if late else None,
        "late_p99_us": round(percentile(late, 99) * 1e6, 1) if late else None,
        "late_max_us": round(late[-1] * 1e6, 1) if late else None,
    }


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _ITimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


class _TimerFd:
    """A CLOCK_MONOTONIC timerfd armed at absolute times (Linux, through libc)."""

    _CLOCK_MONOTONIC = 1
    _TFD_NONBLOCK = os.O_NONBLOCK
    _TFD_CLOEXEC = 0o2000000
    _TFD_TIMER_ABSTIME = 1

    def __init__(self) -> None:
        if not sys.platform.startswith("linux"):
            raise OSError("timerfd is Linux only")
        if "CLOCK_MONOTONIC" not in time.get_clock_info("monotonic").implementation:
            raise OSError("time.monotonic() is not CLOCK_MONOTONIC")
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        self._create = libc.timerfd_create
        self._create.argtypes = [ctypes.c_int, ctypes.c_int]
        self._settime = libc.timerfd_settime
        self._settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_ITimerspec),
            ctypes.c_void_p,
        ]
        fd = self._create(self._CLOCK_MONOTONIC, self._TFD_NONBLOCK | self._TFD_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.fd = fd
        self._spec = _ITimerspec()

    def arm(self, when: float) -> None:
        sec = int(when)
        nsec = int((when - sec) * 1e9)
        if sec <= 0 and nsec <= 0:
            sec, nsec = 0, 1  # an all-zero value would disarm the timer
        self._spec.it_value.tv_sec = sec
        self._spec.it_value.tv_nsec = nsec
        if self._settime(self.fd, self._TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            os.read(self.fd, 8)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Scheduler:
    """Calls callbacks at absolute ``time.monotonic()`` times, sharing one timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, precise: bool = True) -> None:
        self._loop = loop
        self._heap: list[list[Any]] = []
        self._seq = itertools.count()
        self._armed = math.inf
        self._running = False
        self._closed = False
        self._handle: asyncio.TimerHandle | None = None
        self._timerfd: _TimerFd | None = None
        if precise:
            try:
                self._timerfd = _TimerFd()
                loop.add_reader(self._timerfd.fd, self._on_timerfd)
            except (OSError, AttributeError, NotImplementedError):
                if self._timerfd is not None:
                    self._timerfd.close()
                self._timerfd = None
        self.kind = "timerfd" if self._timerfd is not None else "loop.call_later"

    def call_at(self, when: float, callback: Callable[[], None]) -> list[Any]:
        entry = [when, next(self._seq), callback]
        if self._closed:
            return entry  # the relay is shutting down: nothing fires any more
        heapq.heappush(self._heap, entry)
        if when < self._armed and not self._running:
            self._arm(when)
        return entry

    @staticmethod
    def cancel(entry: list[Any] | None) -> None:
        if entry is not None:
            entry[2] = None

    def _arm(self, when: float) -> None:
        self._armed = when
        if self._timerfd is not None:
            self._timerfd.arm(when)
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_later(max(0.0, when - _now()), self._run)

    def _on_timerfd(self) -> None:
        if self._timerfd is not None:
            self._timerfd.drain()
        self._run()

    def _run(self) -> None:
        self._armed = math.inf
        self._handle = None
        heap = self._heap
        now = _now()
        self._running = True
        try:
            while heap and heap[0][0] <= now:
                callback = heapq.heappop(heap)[2]
                if callback is not None:
                    try:
                        callback()
                    except Exception as exc:  # one connection's failure must not stop others
                        self._loop.call_exception_handler(
                            {"message": "link relay callback failed", "exception": exc}
                        )
        finally:
            self._running = False
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
        if heap:
            self._arm(heap[0][0])

    def close(self) -> None:
        self._closed = True
        self._heap.clear()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._timerfd is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._timerfd.fd)
            self._timerfd.close()
            self._timerfd = None
