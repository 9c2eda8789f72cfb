"""Open-loop pacing: Pacer.intended_ns / wait_ns and split_rate, as tables of cases."""

from __future__ import annotations

import math

import pytest

from loadgen.pacer import NS_PER_S, Pacer, split_rate

MS = 1_000_000

# (rate, offset_ns, sent, expected intended_ns): request k is due at offset + k / rate.
INTENDED_CASES = [
    pytest.param(100.0, 0, 0, 0, id="first-request-due-at-start"),
    pytest.param(100.0, 0, 1, 10 * MS, id="second-request-one-period-later"),
    pytest.param(100.0, 0, 250, 2_500 * MS, id="k-periods-later"),
    pytest.param(1.0, 0, 3, 3 * NS_PER_S, id="one-per-second"),
    pytest.param(100.0, 3 * MS, 0, 3 * MS, id="offset-shifts-first"),
    pytest.param(100.0, 3 * MS, 2, 23 * MS, id="offset-shifts-every-request"),
    pytest.param(3.0, 0, 1, 333_333_333, id="fractional-period-rounds-down"),
    pytest.param(3.0, 0, 2, 666_666_667, id="fractional-period-rounds-up"),
    pytest.param(3.0, 0, 3, NS_PER_S, id="fractional-period-no-drift-after-3"),
    pytest.param(3.0, 0, 3_000_000, 1_000_000 * NS_PER_S, id="fractional-no-drift-after-millions"),
    pytest.param(0.5, 0, 1, 2 * NS_PER_S, id="rate-below-one-per-second"),
    pytest.param(2.5, 7, 5, 2 * NS_PER_S + 7, id="fractional-rate-with-offset"),
    pytest.param(1e6, 0, 1, 1_000, id="high-rate-microsecond-period"),
]


@pytest.mark.parametrize(("rate", "offset_ns", "sent", "expected"), INTENDED_CASES)
def test_intended_ns(rate: float, offset_ns: int, sent: int, expected: int) -> None:
    assert Pacer(rate, offset_ns).intended_ns(sent) == expected


# (rate, offset_ns, elapsed_ns, sent, expected wait_ns): wait until due, never negative.
WAIT_CASES = [
    pytest.param(100.0, 0, 0, 0, 0, id="first-request-at-start-no-wait"),
    pytest.param(100.0, 0, 10 * MS, 1, 0, id="exactly-on-time"),
    pytest.param(100.0, 0, 4 * MS, 1, 6 * MS, id="early-waits-the-rest"),
    pytest.param(100.0, 0, 10 * MS - 1, 1, 1, id="one-ns-early-waits-one-ns"),
    pytest.param(100.0, 0, 10 * MS + 1, 1, 0, id="one-ns-late-no-wait"),
    pytest.param(100.0, 0, 95 * MS, 1, 0, id="very-late-no-wait"),
    pytest.param(100.0, 0, 10 * NS_PER_S, 3, 0, id="far-behind-sends-at-once"),
    pytest.param(100.0, 5 * MS, 0, 0, 5 * MS, id="offset-delays-first-request"),
    pytest.param(100.0, 5 * MS, 12 * MS, 1, 3 * MS, id="offset-applies-to-later-requests"),
    pytest.param(100.0, 5 * MS, 20 * MS, 1, 0, id="offset-and-late"),
    pytest.param(3.0, 0, 300 * MS, 1, 33_333_333, id="fractional-period-early"),
    pytest.param(3.0, 0, 700 * MS, 2, 0, id="fractional-period-late"),
]


@pytest.mark.parametrize(("rate", "offset_ns", "elapsed_ns", "sent", "expected"), WAIT_CASES)
def test_wait_ns(rate: float, offset_ns: int, elapsed_ns: int, sent: int, expected: int) -> None:
    assert Pacer(rate, offset_ns).wait_ns(elapsed_ns, sent) == expected


def test_late_request_keeps_its_intended_time() -> None:
    # Being late does not move the schedule: latency is measured from the due time.
    pacer = Pacer(10.0)
    assert pacer.wait_ns(elapsed_ns=5 * NS_PER_S, sent=2) == 0
    assert pacer.intended_ns(2) == 200 * MS
    assert pacer.intended_ns(3) == 300 * MS


@pytest.mark.parametrize(
    ("rate", "offset_ns"),
    [
        pytest.param(0.0, 0, id="zero-rate"),
        pytest.param(-1.0, 0, id="negative-rate"),
        pytest.param(math.nan, 0, id="nan-rate"),
        pytest.param(10.0, -1, id="negative-offset"),
    ],
)
def test_pacer_rejects_invalid(rate: float, offset_ns: int) -> None:
    with pytest.raises(ValueError):
        Pacer(rate, offset_ns)


# (total rate, connections): the union of the per-connection schedules must be the
# schedule of one connection at the total rate.
SPLIT_CASES = [
    pytest.param(100.0, 1, id="one-connection-is-the-whole-rate"),
    pytest.param(200.0, 2, id="two-connections"),
    pytest.param(1000.0, 4, id="four-connections"),
    pytest.param(300.0, 7, id="rate-not-divisible-by-connections"),
    pytest.param(12.5, 3, id="fractional-total-rate"),
    pytest.param(5.0, 10, id="more-connections-than-requests-per-second"),
]


@pytest.mark.parametrize(("total_rate", "connections"), SPLIT_CASES)
def test_split_rate_union_is_evenly_spaced(total_rate: float, connections: int) -> None:
    pacers = split_rate(total_rate, connections)
    assert len(pacers) == connections
    for pacer in pacers:
        assert pacer.rate == pytest.approx(total_rate / connections)
    assert [p.offset_ns for p in pacers] == sorted(p.offset_ns for p in pacers)
    per_conn = 20
    union = sorted(p.intended_ns(k) for p in pacers for k in range(per_conn))
    n = len(union)
    expected = [round(i * NS_PER_S / total_rate) for i in range(n)]
    # Each connection rounds its own schedule, so allow a couple of ns of rounding.
    assert all(abs(got - want) <= 2 for got, want in zip(union, expected, strict=True))
    assert len(set(union)) == n, "two connections would send at the same instant"


@pytest.mark.parametrize(
    ("total_rate", "connections"),
    [
        pytest.param(100.0, 0, id="zero-connections"),
        pytest.param(100.0, -2, id="negative-connections"),
        pytest.param(0.0, 2, id="zero-rate"),
        pytest.param(-50.0, 2, id="negative-rate"),
        pytest.param(math.nan, 2, id="nan-rate"),
    ],
)
def test_split_rate_rejects_invalid(total_rate: float, connections: int) -> None:
    with pytest.raises(ValueError):
        split_rate(total_rate, connections)
