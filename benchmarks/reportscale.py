"""Write a large synthetic run for timing ``rtbench report``.

::

    python -m benchmarks.reportscale --samples 10000000 --out /tmp/rtbench-report-10m

The folder holds samples.parquet, deliveries.parquet, summary.json and meta.json of five
real-time messaging cells (three HTTP delivery modes, two WebSocket servers) times two
repeats, with about as many deliveries as samples. Rows go through the writer a run uses:
each repeat's samples through :class:`loadgen.recorder.RawRecorder` and
:class:`~loadgen.recorder.LatencyHistograms`, its deliveries through
:func:`loadgen.realtime.part.delivery_table`, the part files merged by
:func:`loadgen.run.files.merge_samples` and summary.json built by
:func:`loadgen.summary.build_summary`. Latencies are log-normal from a seeded RNG.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from benchmarks.reportscale_parts import CELLS, REPEATS, write_part

__all__ = ["CELLS", "REPEATS", "generate", "main", "row_count"]
from loadgen.run.files import merge_samples, now, write_json
from loadgen.schema import META_FILE, SCHEMA_VERSION, SUMMARY_FILE
from loadgen.summary import build_summary

RUN_ID = "reportscale"


def generate(samples: int, out: Path, seed: int = 1) -> Path:
    """Write a complete results folder with ``samples`` sample rows into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    n_parts = len(CELLS) * REPEATS
    parts: list[dict[str, Any]] = []
    index = 0
    for cell in CELLS:
        for repeat in range(REPEATS):
            # Spread the rows so the parts add up to exactly ``samples``.
            rows = samples // n_parts + (1 if index < samples % n_parts else 0)
            parts.append(write_part(out, index, cell, repeat, rows, seed))
            index += 1
    merge_samples(out, parts)
    for part in parts:
        (out / (part["part"] + ".json")).unlink(missing_ok=True)
    summary = build_summary(RUN_ID, RUN_ID, list(CELLS), parts, complete=True)
    write_json(out / SUMMARY_FILE, summary)
    write_json(out / META_FILE, _meta())
    return out


def _meta() -> dict[str, Any]:
    stamp = now()
    return {
        "schema": SCHEMA_VERSION,
        "run_id": RUN_ID,
        "complete": True,
        "started_at": stamp,
        "ended_at": stamp,
        "scenario": {
            "name": RUN_ID,
            "scenario": {"name": RUN_ID, "workload": "messaging"},
            "workload": "messaging",
            "repeats": REPEATS,
            "cells": [c["cell"] for c in CELLS],
        },
        "environment": {"python": sys.version.split()[0], "synthetic": True},
    }


def row_count(folder: Path) -> int:
    """How many sample rows ``folder``'s samples.parquet holds (from its footer)."""
    return pq.ParquetFile(folder / "samples.parquet").metadata.num_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reportscale")
    parser.add_argument("--samples", type=int, default=10_000_000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    folder = generate(args.samples, args.out, args.seed)
    print(f"{folder}: {row_count(folder):,} samples")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
