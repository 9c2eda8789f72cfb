"""SIGTERM and Ctrl-C as a clean stop of a run, deferred while a child starts.

::

    stop = StopRequest()
    with signals_as_interrupt(stop):
        stop.check()                    # KeyboardInterrupt once a signal came
        with stop.deferred():
            child = start_server(...)   # the interrupt lands after the block
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any


class StopRequest:
    """Set when SIGTERM or SIGINT arrives; raises KeyboardInterrupt unless deferred.

    While a child is being started the interrupt is deferred to the end of the
    ``deferred()`` block: raised inside ``subprocess.Popen`` it would lose the new
    child (which runs in its own session and would outlive the run), and raised in
    an ``os.fork()`` hook Python would print and swallow it. The run also polls
    :meth:`check` between and during repeats.
    """

    def __init__(self) -> None:
        self.requested = False
        self._deferring = 0

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    def on_signal(self, signum: int, frame: Any) -> None:
        self.requested = True
        if not self._deferring:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        self.check()


@contextlib.contextmanager
def signals_as_interrupt(stop: StopRequest) -> Iterator[None]:
    """Route SIGTERM and SIGINT to ``stop`` for the block; the old handlers come back after."""
    signums = (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.signal(signum, stop.on_signal) for signum in signums}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
