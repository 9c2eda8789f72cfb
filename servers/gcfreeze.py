"""Keep Python's cyclic GC from rescanning long-lived objects: freeze them.

A server or load generator holding thousands of connections has hundreds of
thousands of long-lived objects. Every full (generation-2) collection walks
all of them, pausing the event loop for hundreds of milliseconds on a busy
machine, and with connections opening and closing one comes every few
seconds: every delivery in flight then waits, a tail that belongs to neither
protocol. :func:`gc.freeze` moves the objects alive now out of the
collector's reach (reference counting still frees them), so later
collections scan only what was created since::

    settler = Settler()         # a server: call settler.settle() periodically
    settler.settle()            # freezes once a full collection has run since the last call
    freeze_now()                # a load generator after set-up: collect, then freeze
    describe()                  # {"freeze": True, "frozen": 120345, "threshold": [...], ...}

``RTBENCH_GC_FREEZE=0`` in the environment turns both off (the interpreter's
defaults), to measure with and without; each process reports :func:`describe`
in its run record so the setting is known.
"""

from __future__ import annotations

import gc
import os
from typing import Any

#: Environment variable: "0" leaves the collector as the interpreter sets it.
ENV = "RTBENCH_GC_FREEZE"


def enabled() -> bool:
    """Whether freezing is on (it is unless ``RTBENCH_GC_FREEZE=0``)."""
    return os.environ.get(ENV, "1").strip() != "0"


def _full_collections() -> int:
    return int(gc.get_stats()[2]["collections"])


def freeze_now() -> bool:
    """Collect garbage, then freeze every object left; returns whether it did (off: no-op).

    Call once the long-lived objects exist (a load generator after set-up), before
    anything is measured: the collection itself is a full pause.
    """
    if not enabled():
        return False
    gc.collect()
    gc.freeze()
    return True


class Settler:
    """Freezes the survivors of each full collection, for a process that cannot tell when
    its set-up is over (a server: users sign in whenever they come).

    A full collection leaves only live objects in the oldest generation; freezing
    them then means the next full collection scans only what was created since. What
    became cyclic garbage between that collection and the call is frozen too and never
    collected: call :meth:`settle` often (the hub calls it every sweep, at most a
    second apart) to keep that small.
    """

    def __init__(self) -> None:
        self.active = enabled()
        self._seen = _full_collections()
        self.freezes = 0

    def settle(self) -> bool:
        """Freeze if a full collection ran since the last call; returns whether it froze."""
        if not self.active:
            return False
        full = _full_collections()
        if full == self._seen:
            return False
        self._seen = full
        gc.freeze()
        self.freezes += 1
        return True


def describe() -> dict[str, Any]:
    """This process's collector settings, for a run's record."""
    return {
        "freeze": enabled(),
        "enabled": gc.isenabled(),
        "threshold": list(gc.get_threshold()),
        "frozen": gc.get_freeze_count(),
        "full_collections": _full_collections(),
    }
