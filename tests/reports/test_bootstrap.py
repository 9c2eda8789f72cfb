"""The bootstrap intervals of a change (:mod:`reports.bootstrap`), on latencies with known
answers."""

from __future__ import annotations

import numpy as np
import pytest
from gate_runs import latencies

from reports import bootstrap


def test_percentile_ci_known_answers() -> None:
    rng = np.random.default_rng(0)
    same = bootstrap.percentile_ci(latencies(1), latencies(2), 0.99, rng)
    assert same[1] <= 0 <= same[2]
    worse = bootstrap.percentile_ci(latencies(1), latencies(2, scale=1.3), 0.99, rng)
    assert worse[0] == pytest.approx(0.3, abs=0.08)
    assert 0.15 < worse[1] <= worse[0] <= worse[2] < 0.5
    # One repeat per run still gives an interval (requests only).
    single = bootstrap.percentile_ci(latencies(1, repeats=1), latencies(2, repeats=1), 0.5, rng)
    assert single[1] < single[0] < single[2]


def test_percentile_ci_widens_with_spread_between_repeats() -> None:
    rng = np.random.default_rng(0)
    steady = bootstrap.percentile_ci(latencies(1), latencies(2), 0.5, rng)
    wobbly = bootstrap.percentile_ci(latencies(1, wobble=0.1), latencies(2, wobble=0.1), 0.5, rng)
    assert wobbly[2] - wobbly[1] > 2 * (steady[2] - steady[1])


def test_repeats_ci_and_range() -> None:
    rng = np.random.default_rng(0)
    change, low, high = bootstrap.repeats_ci([100, 102, 98], [70, 71, 69], rng)
    assert change == pytest.approx(-0.3)
    assert -0.34 < low <= change <= high < -0.26
    assert bootstrap.repeats_ci([5, 5, 5], [6, 6, 6], rng) == pytest.approx((0.2, 0.2, 0.2))
    with pytest.raises(ValueError):
        bootstrap.repeats_ci([1, 2], [1, 2, 3], rng)
    assert bootstrap.range_ci([10, 20], [15]) == pytest.approx((0.0, -0.25, 0.5))
