"""When each user of a set-up may open its connections: ``connect_rate`` a second, no burst.

::

    ramp = Ramp(process_connect_rate(params, processes=2))
    wait_ns = ramp.next_wait_ns(now_ns)   # sleep this long, then start this user
    connect_ramp_s(params)                # how long a whole cell's set-up takes at least

Thousands of users connecting at once are a SYN storm: the listen backlog
overflows and connections are dropped or retried seconds later. The schedule
is :class:`~loadgen.pacer.Pacer`'s, a pure function of (elapsed, started):
user ``k`` is due ``k / rate`` seconds after the first one asked, and a late
user goes at once without moving the others. Both drivers (asyncio and gevent)
take every slot from one Ramp per process; the cell's rate is shared between
its load-generator processes, so the server sees ``connect_rate`` in all.
"""

from __future__ import annotations

from loadgen.pacer import Pacer
from loadgen.realtime.params import RealtimeParams


def process_connect_rate(params: RealtimeParams, processes: int) -> float:
    """This process's share of the cell's ``connect_rate`` (users per second)."""
    return params.connect_rate / max(1, processes)


def connect_ramp_s(params: RealtimeParams) -> float:
    """Seconds the cell's users take to connect at ``connect_rate``, at the least."""
    return params.users / params.connect_rate


class Ramp:
    """Connection slots at ``rate`` users per second, from the first slot taken."""

    def __init__(self, rate: float) -> None:
        self.pacer = Pacer(rate)
        self.started = 0
        self.first_ns: int | None = None

    def next_wait_ns(self, now_ns: int) -> int:
        """Take the next slot at ``now_ns``: how long to wait before starting its user."""
        if self.first_ns is None:
            self.first_ns = now_ns
        wait = self.pacer.wait_ns(now_ns - self.first_ns, self.started)
        self.started += 1
        return wait
