"""Raw rows grouped by cell, cheaply enough for runs of millions of rows.

::

    from reports.groups import cell_codes, cell_groups, cell_totals
    for key, rows in cell_groups(data, ["run_id", "cell", "transport"]):
        key          # ("run-1", "ws-aiohttp-push", "ws-aiohttp"), in order of first row
        rows         # data's rows of that cell
    cell_totals(run.samples, ["run_id", "cell"], rows=mask, column="bytes_sent")
    # {("run-1", "http-long-poll"): 1.2e6, ...}: sums (or row counts) of the cells with rows

A row's cell is decided by its ``run_id`` and ``cell`` (a cell name is unique within a run),
and every other cell key (``transport``, ``client``, ``conn_mode``, ``delivery``) follows
from them. So rows are grouped on one integer per row, built from the categorical codes of
those two columns, instead of on every key: pandas grouping on six keys of ten million
rows holds an int64 array per key and more, about a gigabyte, where one key holds a tenth.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

#: The columns that decide which cell a raw row belongs to.
CELL_IDENTITY: tuple[str, ...] = ("run_id", "cell")


def cell_codes(frame: pd.DataFrame) -> np.ndarray:
    """One int64 per row of ``frame``, equal for rows of the same ``run_id`` and ``cell``
    (whichever of the two ``frame`` has; all zeros when it has neither). Missing values
    have a code of their own."""
    code = np.zeros(len(frame), dtype="int64")
    for col in CELL_IDENTITY:
        if col not in frame.columns:
            continue
        values = frame[col]
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes, size = values.cat.codes.to_numpy(), len(values.cat.categories)
        else:
            codes, uniques = pd.factorize(values, use_na_sentinel=True)
            size = len(uniques)
        # codes are -1 for a missing value: shifted by one, every value is in [0, size]
        code *= size + 1
        code += codes.astype("int64") + 1
    return code


def cell_groups(
    frame: pd.DataFrame, keys: Sequence[str]
) -> Iterator[tuple[tuple[object, ...], pd.DataFrame]]:
    """``(key values, rows)`` per cell of ``frame``, cells in the order of their first row.

    Yields what ``frame.groupby(list(keys), sort=False, observed=True, dropna=False)``
    does, for ``keys`` that a row's ``run_id`` and ``cell`` decide (any of ``run_id``,
    ``cell``, ``transport``, ``client``, ``conn_mode``, ``delivery``): the key values are
    those of the cell's first row.
    """
    if frame.empty:
        return
    for rows in _blocks(frame, cell_codes(frame)):
        yield tuple(rows[k].iat[0] for k in keys), rows


def _blocks(frame: pd.DataFrame, codes: np.ndarray) -> Iterator[pd.DataFrame]:
    """The rows of each code, codes in order of first row: slices when each code's rows
    are contiguous (a run writes cell after cell), else taken one code at a time; never a
    sorted copy of the whole frame, which is what grouping in pandas makes."""
    starts = np.concatenate([[0], np.flatnonzero(codes[1:] != codes[:-1]) + 1])
    if len(np.unique(codes[starts])) == len(starts):
        for start, end in zip(starts, [*starts[1:], len(codes)], strict=True):
            yield frame.iloc[start:end]
        return
    order = np.argsort(codes, kind="stable")
    ordered = codes[order]
    for code in pd.unique(codes[starts]):
        lo, hi = np.searchsorted(ordered, [code, code + 1])
        yield frame.iloc[order[lo:hi]]


def cell_totals(
    frame: pd.DataFrame,
    keys: Sequence[str],
    *,
    rows: pd.Series | np.ndarray | None = None,
    column: str | None = None,
) -> dict[tuple[object, ...], float]:
    """Per cell with rows in ``rows`` (a boolean mask; all rows by default): the sum of
    ``column``, or the number of rows without one; keyed by the tuple of ``keys`` values
    (as :func:`cell_groups`), cells in the order of their first row."""
    codes = cell_codes(frame)
    mask = np.ones(len(frame), dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    picked = codes[mask]
    if len(picked) == 0:
        return {}
    counts = np.bincount(picked)
    if column is None:
        sums = counts.astype("float64")
    else:
        values = frame[column].to_numpy(dtype="float64", na_value=np.nan)[mask]
        values = np.where(np.isnan(values), 0.0, values)  # as pandas' sum skips NaN
        sums = np.bincount(picked, weights=values, minlength=len(counts))
    # the first row of each cell, in row order: its key values name the cell
    first = pd.Series(picked).drop_duplicates()
    positions = np.flatnonzero(mask)[first.index.to_numpy()]
    names = [frame[k].iloc[positions].tolist() for k in keys]
    return {
        tuple(name[i] for name in names): float(sums[code])
        for i, code in enumerate(first.to_numpy())
    }
