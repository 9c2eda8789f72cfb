"""Recording one measured sample: latency histograms (HdrHistogram) and raw rows."""

from __future__ import annotations

from typing import Any

from benchmarks.cells import HTTP_CELL
from loadgen.recorder import LatencyHistograms, RawRecorder, Sample, new_histogram, record_clamped

SAMPLE = Sample(
    **HTTP_CELL,
    repeat=0,
    conn=1,
    kind="request",
    intended_ns=1_000_000,
    sent_ns=1_000_000,
    received_ns=1_250_000,
    latency_ns=250_000,
    latency_uncorrected_ns=250_000,
    bytes_sent=265,
    bytes_received=273,
    items=0,
    ok=True,
    error=None,
    warmup=False,
)


def test_histograms_record(benchmark: Any) -> None:
    hist = LatencyHistograms()
    benchmark(hist.record, SAMPLE)
    assert hist.count > 0


def test_record_clamped(benchmark: Any) -> None:
    hist = new_histogram()
    benchmark(record_clamped, hist, 123_456)
    assert hist.get_total_count() > 0


def test_raw_recorder_record(benchmark: Any) -> None:
    def record_100() -> RawRecorder:
        raw = RawRecorder()
        for _ in range(100):
            raw.record(SAMPLE)
        return raw

    assert len(benchmark(record_100).rows) == 100
