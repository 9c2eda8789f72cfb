"""One cell's repeat over several load-generator processes: their files and the merge.

::

    prefixes = process_prefixes(prefix, 2)        # parts/STEM-p0, parts/STEM-p1
    ...                                           # each worker writes PREFIX.json/.parquet
    part = merge_process_parts(spec, prefixes, prefix)

The processes' part records are merged by :func:`loadgen.locust_engine.merge.merge_results`,
exactly as a locust master merges its workers: samples and deliveries concatenated,
histograms added, counters summed, the window the longest of theirs (a start barrier,
:func:`loadgen.worker.wait_for_start`, opens them together). The merged part is written
at ``prefix`` like a single worker's, and the processes' own files are removed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from loadgen.cellspec import CellRun
from loadgen.locust_engine.merge import merge_results, write_part
from loadgen.schema import DELIVERY_SCHEMA, SAMPLE_SCHEMA

#: A process's result files, removed once merged (its ``.spec.json`` stays, like a cell's).
_RESULT_SUFFIXES = (".json", ".parquet", ".deliveries.parquet")


def process_prefixes(prefix: Path, processes: int) -> list[Path]:
    """Where each process writes: ``prefix`` itself for one process, else ``prefix-pI``."""
    if processes == 1:
        return [prefix]
    return [prefix.with_name(f"{prefix.name}-p{i}") for i in range(processes)]


def _concat(paths: list[Path], schema: pa.Schema) -> pa.Table:
    return pa.concat_tables(
        [schema.empty_table()] + [pq.read_table(p).cast(schema) for p in paths if p.exists()]
    )


def merge_process_parts(spec: CellRun, prefixes: list[Path], out_prefix: Path) -> dict[str, Any]:
    """Merge the processes' part files into one part at ``out_prefix``; returns its record.

    ``spec`` is the whole cell's (before :func:`loadgen.shares.process_specs`). The
    record keeps each process's own count, errors and window under ``process_parts``.
    """
    records = [orjson.loads(p.with_suffix(".json").read_bytes()) for p in prefixes]
    samples = _concat([p.with_suffix(".parquet") for p in prefixes], SAMPLE_SCHEMA)
    deliveries = None
    if spec.workload != "echo":
        deliveries = _concat(
            [p.with_suffix(".deliveries.parquet") for p in prefixes], DELIVERY_SCHEMA
        )
    own = [
        {"index": i, "count": r["count"], "errors": r["errors"], "window_s": r["window_s"]}
        for i, r in enumerate(records)
    ]
    # Each process's open-files limit, in process order.
    limits = [limit for r in records for limit in r.get("fd_limits", [])]
    extra = {"process_parts": own, "fd_limits": limits}
    part = merge_results(spec, records, samples, extra, loop=records[0]["loop"])
    write_part(out_prefix, part, samples, deliveries)
    for p in prefixes:
        for suffix in _RESULT_SUFFIXES:
            p.with_suffix(suffix).unlink(missing_ok=True)
    return part
