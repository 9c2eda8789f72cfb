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

What a settler freezes after is set by ``RTBENCH_GC_FREEZE`` in the environment:

- ``promoted`` (the default, also ``1``): after every collection that moves objects
  into the oldest generation (of generation 1 or 2). The oldest generation then never
  holds more than one collection's survivors, so no full collection has much to walk.
- ``full``: only after full collections; between two of them the oldest generation
  fills with everything promoted since, and the next full collection walks it all.
- ``0``: nothing frozen (the interpreter's defaults), to measure without.

What is frozen and later becomes cyclic garbage is never collected (reference
counting still frees the rest); a server's cycles are few, and each process
reports :func:`describe` in its run record so the setting is known.
"""

from __future__ import annotations

import asyncio
import gc
import os
from typing import Any

#: Environment variable: "0" leaves the collector as the interpreter sets it.
ENV = "RTBENCH_GC_FREEZE"
#: Its values, and what each means for a settler (see the module docstring).
POLICIES = {"0": "off", "1": "promoted", "promoted": "promoted", "full": "full"}


def policy() -> str:
    """``"promoted"``, ``"full"`` or ``"off"``, from ``RTBENCH_GC_FREEZE`` (default
    promoted); raises ValueError naming the variable for any other value."""
    raw = os.environ.get(ENV, "1").strip().lower()
    if raw not in POLICIES:
        raise ValueError(f"{ENV}={raw!r}: use one of {', '.join(POLICIES)}")
    return POLICIES[raw]


def enabled() -> bool:
    """Whether freezing is on (it is unless ``RTBENCH_GC_FREEZE=0``)."""
    return policy() != "off"


def _full_collections() -> int:
    return int(gc.get_stats()[2]["collections"])


def _promoting_collections() -> int:
    # Collections of generation 1 move their survivors into the oldest generation,
    # those of generation 2 leave only survivors in it.
    stats = gc.get_stats()
    return int(stats[1]["collections"]) + int(stats[2]["collections"])


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
    """Freezes what each promoting (or each full) collection left in the oldest
    generation, for a process that cannot tell when its set-up is over (a server:
    users sign in whenever they come) or that keeps making objects after it (a load
    generator during its window).

    Freezing them means the next full collection scans only what was promoted since.
    What became cyclic garbage between that collection and the call is frozen too and
    never collected: call :meth:`settle` often (the hub calls it every sweep, at most
    a second apart; :meth:`keep_settled` is a task that does) to keep that small.
    """

    def __init__(self) -> None:
        self.policy = policy()
        self.active = self.policy != "off"
        self._count = _full_collections if self.policy == "full" else _promoting_collections
        self._seen = self._count()
        self.freezes = 0

    def settle(self) -> bool:
        """Freeze if a collection of the policy's kind ran since the last call; returns
        whether it froze."""
        if not self.active:
            return False
        seen = self._count()
        if seen == self._seen:
            return False
        self._seen = seen
        gc.freeze()
        self.freezes += 1
        return True

    async def keep_settled(self, period_s: float = 0.5) -> None:
        """Call :meth:`settle` every ``period_s`` until cancelled (a task)."""
        while self.active:
            await asyncio.sleep(period_s)
            self.settle()


def describe() -> dict[str, Any]:
    """This process's collector settings, for a run's record."""
    return {
        "freeze": enabled(),
        "policy": policy(),
        "enabled": gc.isenabled(),
        "threshold": list(gc.get_threshold()),
        "frozen": gc.get_freeze_count(),
        "full_collections": _full_collections(),
    }
