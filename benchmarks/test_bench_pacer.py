"""Open-loop pacing: the per-request schedule arithmetic of every paced connection."""

from __future__ import annotations

from typing import Any

from loadgen.pacer import Pacer, split_rate


def test_pacer_wait_and_intended(benchmark: Any) -> None:
    pacer = Pacer(rate=1_000.0, offset_ns=250_000)

    def step() -> int:
        total = 0
        for sent in range(100):
            total += pacer.wait_ns(sent * 999_000, sent) + pacer.intended_ns(sent)
        return total

    assert benchmark(step) > 0


def test_split_rate(benchmark: Any) -> None:
    pacers = benchmark(split_rate, 2_000.0, 64)
    assert len(pacers) == 64
