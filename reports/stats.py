"""Latency statistics: percentiles from raw samples and HTTP/WebSocket ratio tables.

::

    from reports import stats
    per_cell = stats.sample_percentiles(run.samples)     # p50_ms ... max_ms per cell
    ratios = stats.ratio_table(run.cells)                # every HTTP cell vs every WS cell

Both return DataFrames using the column names of :mod:`reports.columns`, so
``ratio_table`` accepts ``run.cells`` or the output of ``sample_percentiles``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from loadgen.schema import family
from reports.columns import LATENCY_LABELS, latency_col

#: Columns that identify a cell in samples and cells DataFrames.
CELL_KEYS: tuple[str, ...] = ("cell", "transport", "client", "conn_mode")


def measured_samples(samples: pd.DataFrame, *, kind: str | None = "request") -> pd.DataFrame:
    """The rows that count: not warmup, ``ok`` true, and (unless ``kind=None``) of ``kind``.

    ``measured_samples(run.samples)``; failed requests and warmup never enter percentiles.
    """
    keep = samples["ok"].eq(True) & ~samples["warmup"].eq(True)
    if kind is not None:
        keep &= samples["kind"].eq(kind)
    return samples.loc[keep]


def percentile_of(label: str) -> float:
    """The percentile (0-100) a label names: ``"p99.9"`` -> 99.9, ``"max"`` -> 100."""
    if label == "max":
        return 100.0
    if label.startswith("p"):
        return float(label[1:])
    raise ValueError(f"not a percentile label: {label!r} (expected 'pNN' or 'max')")


def sample_percentiles(
    samples: pd.DataFrame,
    *,
    labels: Sequence[str] = LATENCY_LABELS,
    corrected: bool = True,
    kind: str | None = "request",
) -> pd.DataFrame:
    """Latency percentiles in ms per cell, computed from raw samples.

    Uses only :func:`measured_samples` rows and the corrected ``latency_ns`` (or
    ``latency_uncorrected_ns`` with ``corrected=False``); percentiles interpolate linearly
    (``numpy.percentile`` default). Returns one row per cell (per run_id and cell when a
    ``run_id`` column exists) with the cell keys, ``family``, ``count`` and one column per
    label named by :func:`reports.columns.latency_col`, e.g. ``p50_ms``, ``p99_9_ms``.
    """
    source = "latency_ns" if corrected else "latency_uncorrected_ns"
    value_cols = [latency_col(label, corrected=corrected) for label in labels]
    qs = np.array([percentile_of(label) for label in labels])
    keys = [k for k in ("run_id", *CELL_KEYS) if k in samples.columns]
    measured = measured_samples(samples, kind=kind)
    rows = []
    for key, group in measured.groupby(keys, sort=False, observed=True, dropna=False):
        values = group[source].to_numpy(dtype="float64") / 1e6
        values = values[~np.isnan(values)]
        row = dict(zip(keys, key, strict=True))
        row["family"] = family(str(row["transport"]))
        row["count"] = len(values)
        stats = np.percentile(values, qs) if len(values) else np.full(len(qs), np.nan)
        row.update(zip(value_cols, stats.tolist(), strict=True))
        rows.append(row)
    return pd.DataFrame(rows, columns=[*keys, "family", "count", *value_cols])


def ratio_table(
    cells: pd.DataFrame,
    *,
    labels: Sequence[str] = ("p50", "p99"),
    corrected: bool = True,
) -> pd.DataFrame:
    """Every HTTP cell against every WebSocket cell: HTTP latency / WS latency.

    ``ratio_table(run.cells)``; a ratio above 1 means WebSocket was faster (the "3x" claim
    predicts 3 or more). Pairs are formed within a run when ``cells`` has a ``run_id``
    column. Columns: ``run_id`` (if present), ``http_cell``, ``ws_cell``, then per label
    ``http_<label>_ms``, ``ws_<label>_ms``, ``<label>_ratio`` (``p99.9`` -> ``p99_9``).
    A ratio is NaN when either latency is missing or the WS latency is not positive.
    Plain ratios of point estimates, no confidence intervals.
    """
    cols = {label: latency_col(label, corrected=corrected) for label in labels}
    out_cols: list[str] = ["http_cell", "ws_cell"]
    for label, col in cols.items():
        out_cols += [f"http_{col}", f"ws_{col}", f"{label.replace('.', '_')}_ratio"]
    has_run = "run_id" in cells.columns
    if has_run:
        out_cols.insert(0, "run_id")
    fam = (
        cells["family"]
        if "family" in cells.columns
        else cells["transport"].map(lambda t: family(str(t)))
    )
    groups = cells.groupby("run_id", sort=False) if has_run else [(None, cells)]
    rows = []
    for run_id, group in groups:
        http = group[fam.loc[group.index] == "http"]
        ws = group[fam.loc[group.index] == "ws"]
        for _, h in http.iterrows():
            for _, w in ws.iterrows():
                row: dict[str, object] = {"http_cell": h["cell"], "ws_cell": w["cell"]}
                if has_run:
                    row["run_id"] = run_id
                for label, col in cols.items():
                    hv, wv = _num(h.get(col)), _num(w.get(col))
                    row[f"http_{col}"], row[f"ws_{col}"] = hv, wv
                    ratio = hv / wv if wv > 0 else np.nan
                    row[f"{label.replace('.', '_')}_ratio"] = ratio
                rows.append(row)
    return pd.DataFrame(rows, columns=out_cols)


def _num(value: object) -> float:
    """A float, NaN for None/NA/non-numbers."""
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")
    return result
