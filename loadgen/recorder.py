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

from array import array
from typing import NamedTuple

import numpy as np
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


def record_batch(hist: HdrHistogram, values_ns: array | np.ndarray) -> None:
    """Record many values (clamped like :func:`record_clamped`) in one pass.

    Values that share a histogram bucket are recorded with one
    ``record_value(v, n)`` call: the same counts, minimum and maximum as
    recording them one by one, at a fraction of the cost (hdrh's
    ``record_value`` is pure Python).
    """
    v = np.clip(np.asarray(values_ns, dtype=np.int64), 0, HDR_HIGHEST_NS)
    if not len(v):
        return
    # hdrh's bucket of v: bit_length(v | sub_bucket_mask) - sub_bucket_half_count_magnitude - 1
    # low bits are below its resolution. frexp's exponent is the bit length, exact below 2**53.
    bits = np.frexp((v | hist.sub_bucket_mask).astype(np.float64))[1].astype(np.int64)
    shift = bits - hist.sub_bucket_half_count_magnitude - 1
    lowest = (v >> shift) << shift
    order = np.argsort(lowest, kind="stable")
    _, starts, counts = np.unique(lowest[order], return_index=True, return_counts=True)
    # Each bucket is recorded as its largest member, so min and max come out as exact.
    tops = np.maximum.reduceat(v[order], starts)
    for value, n in zip(tops.tolist(), counts.tolist(), strict=True):
        hist.record_value(value, n)


def encode_histogram(hist: HdrHistogram) -> str:
    """Compressed HdrHistogram encoding as ASCII (for JSON files)."""
    raw = hist.encode()
    return raw.decode("ascii") if isinstance(raw, bytes) else str(raw)


def decode_histogram(text: str) -> HdrHistogram:
    """Inverse of :func:`encode_histogram`."""
    return HdrHistogram.decode(text.encode("ascii"))


def _record_pending(hist: HdrHistogram, pending: array) -> array:
    """Record ``pending`` into ``hist``; the buffer to keep appending to (empty)."""
    if not pending:
        return pending
    record_batch(hist, pending)
    return array("q")


class RawRecorder:
    """Keeps every sample, warm-up included, for ``samples.parquet``.

    A sample costs one list append; every :attr:`batch_rows` rows the list is
    turned into an arrow record batch (columns, no Python object per row),
    so memory stays near 100 bytes a row however long the run.
    """

    batch_rows = 8192

    def __init__(self) -> None:
        self._rows: list[Sample] = []
        self._batches: list[pa.RecordBatch] = []
        self._flushed = 0
        _warm_arrow()

    def record(self, sample: Sample) -> None:
        rows = self._rows
        rows.append(sample)
        if len(rows) >= self.batch_rows:
            self._flush()

    def _flush(self) -> None:
        rows, self._rows = self._rows, []
        if rows:
            self._batches.append(_batch(rows))
            self._flushed += len(rows)

    def __len__(self) -> int:
        return self._flushed + len(self._rows)

    @property
    def rows(self) -> list[Sample]:
        """Every sample as a row (builds one object per row: for tests and small runs)."""
        out = [Sample(**row) for batch in self._batches for row in batch.to_pylist()]
        return out + self._rows

    def to_table(self) -> pa.Table:
        """The rows as a pyarrow Table with :data:`SAMPLE_SCHEMA`."""
        self._flush()
        return pa.Table.from_batches(self._batches, schema=SAMPLE_SCHEMA)


def _warm_arrow() -> None:
    """Build one throwaway batch now: arrow's first conversion costs about 0.3 s, which
    must not fall inside a measured window as a stall of the load generator."""
    global _warmed
    if not _warmed:
        _batch([Sample("", "", "", "", 0, 0, "", 0, 0, 0, 0, 0, 0, 0, 0, True, None, False)])
        _warmed = True


_warmed = False


def _batch(rows: list[Sample]) -> pa.RecordBatch:
    columns = zip(*rows, strict=True)
    return pa.RecordBatch.from_arrays(
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
        self._corrected = new_histogram()
        self._uncorrected = new_histogram()
        # Latencies wait here and are recorded in batches (record_batch) when read.
        self._pending_corrected = array("q")
        self._pending_uncorrected = array("q")
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
        latency = sample.latency_ns
        if latency > self.max_ns:
            self.max_ns = latency
        self._pending_corrected.append(latency)
        self._pending_uncorrected.append(sample.latency_uncorrected_ns)

    @property
    def corrected(self) -> HdrHistogram:
        """Latency from the intended send time, everything recorded so far."""
        self._pending_corrected = _record_pending(self._corrected, self._pending_corrected)
        return self._corrected

    @property
    def uncorrected(self) -> HdrHistogram:
        """Latency from the actual send time, everything recorded so far."""
        self._pending_uncorrected = _record_pending(self._uncorrected, self._pending_uncorrected)
        return self._uncorrected

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
