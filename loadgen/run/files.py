"""The results folder's files: timestamps, JSON written whole, part names, merged samples.

::

    write_json(out / META_FILE, meta)        # replaced atomically, never half-written
    stem = f"{index:03d}-{slug(cell_id)}-r{repeat}"
    rows = merge_samples(out, parts)         # samples.parquet (+ deliveries, stalls)
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from loadgen.schema import (
    DELIVERIES_FILE,
    DELIVERY_SCHEMA,
    SAMPLE_SCHEMA,
    SAMPLES_FILE,
    STALLS_FILE,
)
from loadgen.stall_records import stall_table


def now() -> str:
    """The current UTC time as ISO 8601, to the second."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` through a temporary file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    tmp.replace(path)


def slug(text: str) -> str:
    """``text`` with every character but letters, digits and ``-`` made ``_``."""
    # No dots: part files are named with Path.with_suffix, which would cut at one.
    return "".join(ch if ch.isalnum() or ch == "-" else "_" for ch in text)


def merge_samples(out_dir: Path, parts: list[dict[str, Any]]) -> int:
    """Concatenate the parts' raw rows into ``samples.parquet`` (and ``deliveries.parquet``),
    and their recorded stalls into ``stalls.parquet`` (when any part recorded them).

    Returns the number of sample rows. Part files are removed once merged.
    """
    merged = 0
    for suffix, schema, name in (
        (".parquet", SAMPLE_SCHEMA, SAMPLES_FILE),
        (".deliveries.parquet", DELIVERY_SCHEMA, DELIVERIES_FILE),
    ):
        paths = [out_dir / (part["part"] + suffix) for part in parts]
        tables = [pq.read_table(p).cast(schema) for p in paths if p.exists()]
        if name == DELIVERIES_FILE and not tables:
            continue
        table = pa.concat_tables(tables) if tables else schema.empty_table()
        pq.write_table(table, out_dir / name, compression="zstd")
        for p in paths:
            p.unlink(missing_ok=True)
        if name == SAMPLES_FILE:
            merged = table.num_rows
    if any((part.get("stats") or {}).get("stalls") for part in parts):
        pq.write_table(stall_table(parts), out_dir / STALLS_FILE, compression="zstd")
    return merged
