"""Listeners that turn fired samples into raw rows and latency histograms.

::

    raw, hist = RawRecorder(), LatencyHistograms()
    hook.add_listener(raw.record)
    hook.add_listener(hist.record)
    ...
    table = raw.to_table()          # pyarrow.Table with SAMPLE_SCHEMA
    hist.corrected.get_value_at_percentile(99.0)
"""

from __future__ import annotations

from typing import NamedTuple

import pyarrow as pa
from hdrh.histogram import HdrHistogram

from loadgen.schema import SAMPLE_SCHEMA

#: Histogram range in nanoseconds: 1 us to 60 s, 3 significant digits.
HDR_LOWEST_NS = 1_000
HDR_HIGHEST_NS = 60_000_000_000
HDR_DIGITS = 3


class Sample(NamedTuple):
    """One request as measured; field order is :data:`SAMPLE_SCHEMA`'s."""

    cell: str
    transport: str
    client: str
    conn_mode: str
    repeat: int
    conn: int
    kind: str
    intended_ns: int
    sent_ns: int
    received_ns: int
    latency_ns: int
    latency_uncorrected_ns: int
    bytes_sent: int
    bytes_received: int
    items: int
    ok: bool
    error: str | None
    warmup: bool


assert Sample._fields == tuple(SAMPLE_SCHEMA.names), "Sample and SAMPLE_SCHEMA disagree"


def new_histogram() -> HdrHistogram:
    """An empty latency histogram in nanoseconds with rtbench's range."""
    return HdrHistogram(HDR_LOWEST_NS, HDR_HIGHEST_NS, HDR_DIGITS)


def record_clamped(hist: HdrHistogram, value_ns: int) -> None:
    """Record ``value_ns``, clamping into the histogram's range instead of dropping it."""
    hist.record_value(min(max(value_ns, 0), HDR_HIGHEST_NS))


def encode_histogram(hist: HdrHistogram) -> str:
    """Compressed HdrHistogram encoding as ASCII (for JSON files)."""
    raw = hist.encode()
    return raw.decode("ascii") if isinstance(raw, bytes) else str(raw)


def decode_histogram(text: str) -> HdrHistogram:
    """Inverse of :func:`encode_histogram`."""
    return HdrHistogram.decode(text.encode("ascii"))


class RawRecorder:
    """Keeps every sample, warm-up included, for ``samples.parquet``."""

    def __init__(self) -> None:
        self.rows: list[Sample] = []

    def record(self, sample: Sample) -> None:
        self.rows.append(sample)

    def to_table(self) -> pa.Table:
        """The rows as a pyarrow Table with :data:`SAMPLE_SCHEMA`."""
        columns = list(zip(*self.rows, strict=True)) if self.rows else [()] * len(Sample._fields)
        return pa.Table.from_arrays(
            [pa.array(col, type=f.type) for col, f in zip(columns, SAMPLE_SCHEMA, strict=True)],
            schema=SAMPLE_SCHEMA,
        )


class LatencyHistograms:
    """Corrected and uncorrected latency of measured (non-warm-up) successful requests.

    Only samples whose ``kind`` is in ``kinds`` count (echo requests by default;
    the real-time workloads count their actions: send, publish, activity).
    """

    def __init__(self, kinds: frozenset[str] = frozenset({"request"})) -> None:
        self.kinds = kinds
        self.corrected = new_histogram()
        self.uncorrected = new_histogram()
        self.count = 0
        self.errors = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.max_ns = 0

    def record(self, sample: Sample) -> None:
        if sample.warmup:
            return
        if not sample.ok:
            # A failure of any kind (a connect, a poll) is an error of the cell.
            self.errors += 1
            return
        if sample.kind not in self.kinds:
            return
        self.count += 1
        self.bytes_sent += sample.bytes_sent
        self.bytes_received += sample.bytes_received
        self.max_ns = max(self.max_ns, sample.latency_ns)
        record_clamped(self.corrected, sample.latency_ns)
        record_clamped(self.uncorrected, sample.latency_uncorrected_ns)

    def as_record(self) -> dict[str, int | str]:
        """Counts and encoded histograms as part-record keys, ``count`` to ``hdr_uncorrected``."""
        return {
            "count": self.count,
            "errors": self.errors,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "max_ns": self.max_ns,
            "hdr_corrected": encode_histogram(self.corrected),
            "hdr_uncorrected": encode_histogram(self.uncorrected),
        }
