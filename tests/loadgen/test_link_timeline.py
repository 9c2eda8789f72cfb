"""When the relay releases bytes: delay, jitter without reordering, rate, burst and the gate."""

from __future__ import annotations

import math
import random

import pytest

from loadgen.link.timeline import MSS_BYTES, LinkTimeline


def test_timeline_never_reorders_even_with_large_jitter() -> None:
    timeline = LinkTimeline(0.010, 0.010, rng=random.Random(7))
    arrival, previous = 0.0, -math.inf
    for _ in range(2000):
        arrival += random.Random(arrival).uniform(0, 0.002)
        ((release, _),) = timeline.schedule(arrival, 100)
        assert release >= previous  # never overtakes the chunk before it
        assert release >= arrival  # the delay never goes negative
        assert release <= max(previous, arrival + 0.020)  # and is held back no more than needed
        previous = release


def test_timeline_serialises_at_the_rate_and_cuts_pieces() -> None:
    timeline = LinkTimeline(0.005, 0.0, 1_000_000.0)  # 8 Mbit/s, burst 0
    plan = timeline.schedule(0.0, 10_000)
    assert [size for _, size in plan] == [MSS_BYTES] * 6 + [10_000 - 6 * MSS_BYTES]
    assert plan[0][0] == pytest.approx(MSS_BYTES / 1e6 + 0.005)
    assert plan[-1][0] == pytest.approx(0.010 + 0.005)  # 10 kB at 1 MB/s, then the delay
    # An idle link is free again: a later chunk waits only for its own serialisation.
    ((release, _),) = timeline.schedule(1.0, 1000)
    assert release == pytest.approx(1.0 + 0.001 + 0.005)


def test_timeline_token_bucket_burst_passes_at_once() -> None:
    timeline = LinkTimeline(0.0, 0.0, 1_000_000.0, burst_bytes=4000, gate=0.0)
    assert timeline.schedule(0.0, 1000) == [(0.0, 1000)]
    ((release, _),) = timeline.schedule(0.0, 1000)
    assert release == 0.0  # still within the burst
    releases = [r for r, _ in timeline.schedule(0.0, 4000)]
    assert releases[-1] == pytest.approx(0.002)  # 2000 bytes over the burst at 1 MB/s


def test_timeline_holds_bytes_until_the_handshake_gate() -> None:
    timeline = LinkTimeline(0.010, gate=0.040)
    ((release, _),) = timeline.schedule(0.001, 10)
    assert release == pytest.approx(0.050)
    ((later, _),) = timeline.schedule(0.100, 10)
    assert later == pytest.approx(0.110)
    assert timeline.schedule_eof(0.100) == pytest.approx(0.110)  # a FIN follows the data
