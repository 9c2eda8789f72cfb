"""RawRecorder rows, LatencyHistograms statistics and the histogram encoding."""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadgen.recorder import (
    HDR_HIGHEST_NS,
    LatencyHistograms,
    RawRecorder,
    Sample,
    decode_histogram,
    encode_histogram,
    new_histogram,
    record_batch,
    record_clamped,
)
from loadgen.schema import PERCENTILES, SAMPLE_SCHEMA

MS = 1_000_000


def sample(**overrides: Any) -> Sample:
    """A successful measured request sample; override any field."""
    fields: dict[str, Any] = {
        "cell": "http/aiohttp/keep-alive",
        "transport": "http",
        "client": "aiohttp",
        "conn_mode": "keep-alive",
        "repeat": 0,
        "conn": 0,
        "kind": "request",
        "intended_ns": 1_000,
        "sent_ns": 1_500,
        "received_ns": 1_000 + 2 * MS,
        "latency_ns": 2 * MS,
        "latency_uncorrected_ns": 2 * MS - 500,
        "bytes_sent": 200,
        "bytes_received": 150,
        "items": 1,
        "ok": True,
        "error": None,
        "warmup": False,
    }
    fields.update(overrides)
    return Sample(**fields)


# --- RawRecorder ---------------------------------------------------------------------------


def test_sample_fields_are_the_schema_columns() -> None:
    assert list(Sample._fields) == SAMPLE_SCHEMA.names


def test_empty_recorder_gives_empty_table_with_schema() -> None:
    table = RawRecorder().to_table()
    assert table.schema.equals(SAMPLE_SCHEMA)
    assert table.num_rows == 0


def test_to_table_keeps_every_row_in_order_with_schema() -> None:
    raw = RawRecorder()
    rows = [
        sample(warmup=True, intended_ns=10),
        sample(conn=1, intended_ns=20),
        sample(ok=False, error="timeout", intended_ns=30, latency_ns=5 * MS),
        sample(kind="connect", transport="ws-aiohttp", conn_mode="persistent", intended_ns=40),
    ]
    for row in rows:
        raw.record(row)
    table = raw.to_table()
    assert table.schema.equals(SAMPLE_SCHEMA)
    assert table.num_rows == len(rows)
    assert table.to_pylist() == [row._asdict() for row in rows]
    assert table.column("error").null_count == 3
    assert table.column("repeat").type == pa.int32()


def test_to_table_round_trips_through_parquet(tmp_path: Any) -> None:
    import pyarrow.parquet as pq

    raw = RawRecorder()
    raw.record(sample())
    raw.record(sample(ok=False, error="connect_error"))
    pq.write_table(raw.to_table(), tmp_path / "s.parquet")
    back = pq.read_table(tmp_path / "s.parquet")
    assert back.schema.equals(SAMPLE_SCHEMA)
    assert back.to_pylist() == raw.to_table().to_pylist()


# --- LatencyHistograms ---------------------------------------------------------------------


def test_histograms_skip_warmup_and_count_errors_separately() -> None:
    hist = LatencyHistograms()
    hist.record(sample(warmup=True, latency_ns=999 * MS, bytes_sent=10**6))
    hist.record(sample(warmup=True, ok=False, error="timeout"))
    hist.record(sample(latency_ns=2 * MS, latency_uncorrected_ns=1 * MS))
    hist.record(sample(latency_ns=4 * MS, latency_uncorrected_ns=3 * MS))
    hist.record(sample(ok=False, error="timeout", latency_ns=5_000 * MS, bytes_sent=10**6))
    hist.record(sample(ok=False, error="connect_error", latency_ns=7_000 * MS))
    assert hist.count == 2
    assert hist.errors == 2
    assert hist.corrected.get_total_count() == 2
    assert hist.uncorrected.get_total_count() == 2
    assert hist.bytes_sent == 400
    assert hist.bytes_received == 300
    assert hist.max_ns == 4 * MS
    # Neither warm-up nor failed requests reach the histograms.
    assert hist.corrected.get_max_value() < 5 * MS
    assert hist.uncorrected.get_max_value() < 4 * MS


def test_corrected_and_uncorrected_recorded_separately() -> None:
    hist = LatencyHistograms()
    for i in range(1, 101):
        hist.record(sample(latency_ns=10 * i * MS, latency_uncorrected_ns=i * MS))
    c50 = hist.corrected.get_value_at_percentile(50)
    u50 = hist.uncorrected.get_value_at_percentile(50)
    assert c50 == pytest.approx(500 * MS, rel=1e-3)
    assert u50 == pytest.approx(50 * MS, rel=1e-3)


def test_empty_histograms() -> None:
    hist = LatencyHistograms()
    assert (hist.count, hist.errors, hist.max_ns) == (0, 0, 0)
    assert hist.corrected.get_total_count() == 0


def test_percentiles_match_numpy_within_hdr_precision() -> None:
    # 1 ms .. 101 ms in 10 us steps, shuffled: neighbouring ranks differ by 1e-4
    # relative at most, so the rank convention does not matter at 3 significant digits.
    step = 10_000
    values = 1 * MS + step * np.arange(10_000, dtype=np.int64)
    np.random.default_rng(7).shuffle(values)
    hist = LatencyHistograms()
    for v in values.tolist():
        hist.record(sample(latency_ns=v, latency_uncorrected_ns=v // 2))
    assert hist.count == len(values)
    assert hist.max_ns == int(values.max())
    for _label, p in [*PERCENTILES, ("max", 100.0)]:
        want = float(np.percentile(values, p))
        got = hist.corrected.get_value_at_percentile(p)
        assert abs(got - want) <= want * 1e-3 + step, (p, got, want)
        got_u = hist.uncorrected.get_value_at_percentile(p)
        assert abs(got_u - want / 2) <= want / 2 * 1e-3 + step, (p, got_u, want / 2)


# --- record_clamped ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value_ns", "expected_ns"),
    [
        pytest.param(HDR_HIGHEST_NS + 1, HDR_HIGHEST_NS, id="just-above-60s"),
        pytest.param(3600 * 10**9, HDR_HIGHEST_NS, id="an-hour"),
        pytest.param(10**18, HDR_HIGHEST_NS, id="huge"),
        pytest.param(HDR_HIGHEST_NS, HDR_HIGHEST_NS, id="exactly-60s"),
        pytest.param(5 * MS, 5 * MS, id="in-range"),
        pytest.param(-5, 0, id="negative-to-zero"),
    ],
)
def test_record_clamped(value_ns: int, expected_ns: int) -> None:
    hist = new_histogram()
    record_clamped(hist, value_ns)
    assert hist.get_total_count() == 1, "the value must be recorded, not dropped"
    assert hist.values_are_equivalent(hist.get_max_value(), expected_ns)


def test_plain_record_above_range_is_dropped_which_is_why_we_clamp() -> None:
    hist = new_histogram()
    hist.record_value(HDR_HIGHEST_NS * 10)
    record_clamped(hist, HDR_HIGHEST_NS * 10)
    assert hist.get_total_count() == 1


# --- encode / decode -----------------------------------------------------------------------


def assert_same_histogram(a: Any, b: Any) -> None:
    assert b.get_total_count() == a.get_total_count()
    # min/max are tracked exactly but rebuilt from buckets on decode: same bucket.
    assert b.values_are_equivalent(b.get_min_value(), a.get_min_value())
    assert b.values_are_equivalent(b.get_max_value(), a.get_max_value())
    for p in (0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0):
        assert b.get_value_at_percentile(p) == a.get_value_at_percentile(p)


def test_encode_decode_empty() -> None:
    hist = new_histogram()
    text = encode_histogram(hist)
    assert isinstance(text, str)
    assert decode_histogram(text).get_total_count() == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.integers(min_value=-(10**6), max_value=2 * HDR_HIGHEST_NS),
        min_size=0,
        max_size=200,
    )
)
def test_encode_decode_round_trip(values: list[int]) -> None:
    hist = new_histogram()
    for v in values:
        record_clamped(hist, v)
    text = encode_histogram(hist)
    assert isinstance(text, str)
    text.encode("ascii")  # JSON-safe
    back = decode_histogram(text)
    assert back.get_total_count() == len(values)
    assert_same_histogram(hist, back)
    for v in set(values):
        clamped = min(max(v, 0), HDR_HIGHEST_NS)
        assert back.get_count_at_value(clamped) == hist.get_count_at_value(clamped)


# --- record_batch ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=-5, max_value=HDR_HIGHEST_NS * 2), max_size=300))
def test_record_batch_matches_recording_one_by_one(values: list[int]) -> None:
    one_by_one, batched = new_histogram(), new_histogram()
    for v in values:
        record_clamped(one_by_one, v)
    record_batch(batched, array("q", values))
    assert encode_histogram(batched) == encode_histogram(one_by_one)
    assert batched.get_total_count() == one_by_one.get_total_count()
    assert batched.get_max_value() == one_by_one.get_max_value()
    assert batched.get_min_value() == one_by_one.get_min_value()
    for p in (0, 50, 90, 99, 99.9, 100):
        assert batched.get_value_at_percentile(p) == one_by_one.get_value_at_percentile(p)


def test_histograms_read_between_records_count_everything_once() -> None:
    hist = LatencyHistograms()
    hist.record(sample(latency_ns=2 * MS))
    assert hist.corrected.get_total_count() == 1
    hist.record(sample(latency_ns=3 * MS))
    assert hist.corrected.get_total_count() == 2
    assert hist.uncorrected.get_total_count() == 2


def test_raw_recorder_batches_keep_every_row_in_order() -> None:
    raw = RawRecorder()
    raw.batch_rows = 3
    for i in range(8):
        raw.record(sample(latency_ns=i + 1, latency_uncorrected_ns=i + 1))
    assert len(raw) == 8
    assert [r.latency_ns for r in raw.rows] == list(range(1, 9))
    assert raw.to_table().column("latency_ns").to_pylist() == list(range(1, 9))
