"""Time on site: the server's figure per user against the client's own visits."""

from __future__ import annotations

import pytest

from loadgen.realtime.visits import time_on_site_report, visits_ms

pytestmark = pytest.mark.timeout(10)


def test_visits_ms_adds_up_each_visit() -> None:
    assert visits_ms([]) == 0.0
    assert visits_ms([[1_000_000, 3_000_000], [10_000_000, 10_500_000]]) == 2.5


def test_report_totals_and_differences() -> None:
    assert time_on_site_report([]) == {}
    report = time_on_site_report([(100.0, 90.0), (50.0, 60.0), (10.0, 10.0)])
    assert report == {
        "users": 3,
        "server_ms": 160.0,
        "client_ms": 160.0,
        "mean_diff_ms": 0.0,
        "mean_abs_diff_ms": round(20 / 3, 3),
        "max_abs_diff_ms": 10.0,
    }
