"""A large parquet file into a pandas DataFrame without holding it twice.

::

    frame = read_frame(path, columns=["cell", "latency_ns"], strings=["cell"], convert=fix)

``pyarrow.parquet.read_table(...).to_pandas()`` holds the whole file in arrow memory, then
builds the DataFrame beside it: ten million rows of a run need about twice their final size
for a moment. Here each row group is read, converted (``convert`` casts or adds columns of
that one arrow table) and copied into columns allocated once at their final size, so the
peak is the DataFrame plus one row group. ``strings`` columns become categoricals (the
names of cells, kinds, recipients repeat over millions of rows: a small integer code each).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def read_frame(
    file: Path,
    *,
    columns: Sequence[str],
    read: Sequence[str] | None = None,
    strings: Sequence[str] = (),
    convert: Callable[[pa.Table], pa.Table] = lambda table: table,
    present: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The ``columns`` of ``file`` (in that order, after ``convert`` of each row group) as
    a DataFrame; ``strings`` columns as categoricals. ``read`` names the file's columns to
    read (by default those of ``columns`` it has); ``present``, the file's column names when
    the caller has already read its schema (else read here). Raises what pyarrow raises on a file it
    cannot read (``OSError``, ``pyarrow.ArrowException``)."""
    if present is None:
        present = pq.read_schema(file).names
    parquet = pq.ParquetFile(file, read_dictionary=[c for c in strings if c in present])
    n_rows = parquet.metadata.num_rows
    read = [c for c in (columns if read is None else read) if c in present]
    if n_rows == 0:  # no row group to take the types from: arrow's own conversion
        table = convert(parquet.read(columns=read)).select(list(columns))
        return table.to_pandas(strings_to_categorical=True)
    filled = {name: _Column(n_rows, categorical=name in strings) for name in columns}
    start = 0
    pool = pa.default_memory_pool()
    for group in range(parquet.num_row_groups):
        table = convert(parquet.read_row_group(group, columns=read))
        end = start + table.num_rows
        for name, column in filled.items():
            column.fill(start, end, table.column(name))
        start = end
        del table
        pool.release_unused()  # arrow keeps freed pages for reuse: pandas needs them back
    return pd.DataFrame({name: col.series(start) for name, col in filled.items()}, copy=False)


class _Column:
    """One output column, filled row group by row group."""

    def __init__(self, n_rows: int, *, categorical: bool) -> None:
        self.n_rows = n_rows
        self.categorical = categorical
        self.values: np.ndarray | None = None  # allocated at the first row group's dtype
        self.categories: dict[object, int] = {}

    def fill(self, start: int, end: int, chunks: pa.ChunkedArray) -> None:
        part = self._codes(chunks) if self.categorical else _numpy(chunks)
        if self.values is None:
            self.values = np.empty(self.n_rows, dtype=part.dtype)
        elif part.dtype != self.values.dtype:
            # a later row group has nulls (floats or objects): widen what is filled so far
            wide = np.result_type(self.values.dtype, part.dtype)
            if self.values.dtype != wide:
                self.values = self.values.astype(wide)
        self.values[start:end] = part

    def _codes(self, chunks: pa.ChunkedArray) -> np.ndarray:
        out = []
        for chunk in chunks.chunks:
            if not pa.types.is_dictionary(chunk.type):
                chunk = chunk.dictionary_encode()
            # each row group has its own dictionary: its codes mapped to the column's
            names = chunk.dictionary.to_pylist()
            lookup = [self.categories.setdefault(v, len(self.categories)) for v in names]
            table = np.array([*lookup, -1], dtype="int32")  # index -1 (a null) maps to -1
            indices = chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False)
            out.append(table[indices])
        return np.concatenate(out) if out else np.empty(0, dtype="int32")

    def series(self, n_rows: int) -> pd.Categorical | np.ndarray:
        values = self.values if self.values is not None else np.empty(0)
        values = values[:n_rows]
        if not self.categorical:
            return values
        names = list(self.categories)
        codes = values.astype(_code_dtype(len(names)), copy=False)
        return pd.Categorical.from_codes(codes, categories=pd.Index(names))


def _numpy(chunks: pa.ChunkedArray) -> np.ndarray:
    """A column of one row group as numpy: as ``to_pandas`` gives it (nulls of an integer
    column as NaN floats, of a boolean one as objects)."""
    return np.asarray(chunks.to_pandas())


def _code_dtype(n: int) -> str:
    return "int8" if n < 127 else "int16" if n < 32_767 else "int32"
