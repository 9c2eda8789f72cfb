"""``--max-regression`` specs: the defaults, parsing, and the errors a bad one gets."""

from __future__ import annotations

import pytest
from gate_runs import WS

from reports.gate.errors import CompareError
from reports.gate.limits import DEFAULT_SPECS, parse_spec, parse_specs


def test_default_limits() -> None:
    parsed = parse_specs(None)
    assert [t.spec for t in parsed] == list(DEFAULT_SPECS)
    assert {t.metric: t.limit for t in parsed} == {
        "p50": 0.20,
        "p99": 0.30,
        "throughput": 0.15,
        "lost": 0,
    }
    assert all(t.default for t in parsed)


@pytest.mark.parametrize(
    ("spec", "metric", "limit", "cell"),
    [
        ("p99:+15%", "p99", 0.15, None),
        ("p99:15%", "p99", 0.15, None),
        ("p99.9:+100%", "p99.9", 1.0, None),
        ("throughput:-10%", "throughput", 0.10, None),
        ("throughput:10%", "throughput", 0.10, None),
        ("lost:0", "lost", 0, None),
        ("errors:3", "errors", 3, None),
        ("p50@ws-websockets/websockets/persistent:+5%", "p50", 0.05, WS),
        ("cpu_server:+2.5%", "cpu_server", 0.025, None),
    ],
)
def test_parse_spec(spec: str, metric: str, limit: float, cell: str | None) -> None:
    t = parse_spec(spec)
    assert (t.metric, t.cell) == (metric, cell)
    assert t.limit == pytest.approx(limit)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("p99x:+15%", ["unknown metric", "p99x", "did you mean", "p99"]),
        ("latency:+15%", ["unknown metric", "known metrics"]),
        ("p99:-15%", ["p99 regresses when it grows", "p99:+15%"]),
        ("throughput:+10%", ["throughput regresses when it drops", "throughput:-10%"]),
        ("p99:15", ["percentage"]),
        ("lost:5%", ["count", "whole number"]),
        ("p99", ["METRIC[@CELL]:LIMIT"]),
        (":+5%", ["METRIC[@CELL]:LIMIT"]),
    ],
)
def test_bad_spec_is_an_error(spec: str, words: list[str]) -> None:
    with pytest.raises(CompareError) as exc:
        parse_spec(spec)
    for word in words:
        assert word in str(exc.value)


def test_same_limit_twice_is_an_error() -> None:
    with pytest.raises(CompareError, match="same limit twice"):
        parse_specs(["p99:+10%", "p99:+20%"])
    # One global and one for a cell is fine.
    assert len(parse_specs(["p99:+10%", f"p99@{WS}:+5%"])) == 2
