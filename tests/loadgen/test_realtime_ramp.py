"""The set-up's connect ramp: the waits Ramp hands out, as tables of (time asked -> wait)."""

from __future__ import annotations

import pytest

from loadgen.pacer import NS_PER_S
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.ramp import Ramp, connect_ramp_s, process_connect_rate

MS = 1_000_000

# (rate, the times users ask for a slot in ns, the waits they get): user k is due
# k / rate after the first one asked.
RAMP_CASES = [
    pytest.param(500.0, [0, 0, 0], [0, 2 * MS, 4 * MS], id="a-burst-is-spread-out"),
    pytest.param(
        500.0, [10 * MS, 10 * MS, 10 * MS], [0, 2 * MS, 4 * MS], id="starts-at-the-first-ask"
    ),
    pytest.param(500.0, [0, 2 * MS, 4 * MS], [0, 0, 0], id="on-schedule-no-wait"),
    pytest.param(500.0, [0, 1 * MS, 1 * MS], [0, 1 * MS, 3 * MS], id="early-waits-the-rest"),
    pytest.param(100.0, [0, 50 * MS, 50 * MS], [0, 0, 0], id="late-goes-at-once"),
    pytest.param(
        100.0, [0, 50 * MS, 50 * MS, 50 * MS], [0, 0, 0, 0], id="late-users-catch-up-in-turn"
    ),
    pytest.param(100.0, [0, 0, 50 * MS], [0, 10 * MS, 0], id="a-stall-does-not-move-the-schedule"),
    pytest.param(1.0, [0, 0], [0, NS_PER_S], id="one-a-second"),
]


@pytest.mark.parametrize(("rate", "asks", "waits"), RAMP_CASES)
def test_ramp_waits(rate: float, asks: list[int], waits: list[int]) -> None:
    ramp = Ramp(rate)
    assert [ramp.next_wait_ns(now) for now in asks] == waits
    assert ramp.started == len(asks)


def test_ramp_refuses_a_rate_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        Ramp(0.0)


# (connect_rate, processes, each process's rate): the cell's rate is shared.
SHARE_CASES = [
    pytest.param(500.0, 1, 500.0, id="one-process-the-whole-rate"),
    pytest.param(500.0, 4, 125.0, id="four-share-it"),
    pytest.param(500.0, 0, 500.0, id="no-processes-counts-as-one"),
]


@pytest.mark.parametrize(("rate", "processes", "expected"), SHARE_CASES)
def test_process_connect_rate(rate: float, processes: int, expected: float) -> None:
    assert process_connect_rate(RealtimeParams(connect_rate=rate), processes) == expected


def test_connect_ramp_s_is_the_cells_users_at_the_rate() -> None:
    params = RealtimeParams(users=10_000, connect_rate=500.0)
    assert connect_ramp_s(params) == 20.0
