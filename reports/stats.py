"""Statistics: the rows that count, percentiles from raw samples, HTTP/WebSocket ratio tables.

::

    from reports import stats
    echo = stats.request_cells(run.cells)                # echo cells (request/response)
    per_cell = stats.sample_percentiles(run.samples)     # p50_ms ... max_ms per cell
    ratios = stats.ratio_table(echo)                     # every HTTP cell vs every WS cell

    live = stats.realtime_cells(run.cells)               # real-time cells (deliveries)
    stats.delivery_table(run.cells)                      # latency, counts, cost per message
    stats.delivery_ratio_table(run.cells)                # every polling/SSE cell vs push cell
    stats.delivery_percentiles(run.deliveries)           # delivery_p50_ms ... from raw rows

Confidence intervals and the verdict on the claim are in :mod:`reports.verdict`; rate
sweeps in :mod:`reports.sweeps`; bytes, CPU and memory per message in :mod:`reports.costs`.

All return DataFrames using the column names of :mod:`reports.columns`, so
``ratio_table`` accepts ``run.cells`` or the output of ``sample_percentiles``, and
``delivery_ratio_table`` accepts ``run.cells`` or ``delivery_table(run.cells)``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from loadgen.schema import family
from reports.columns import (
    DELIVERY_COUNT_COLUMNS,
    DELIVERY_MODES,
    HTTP_DELIVERY_MODES,
    LATENCY_LABELS,
    PER_USEFUL_COLUMNS,
    delivery_col,
    latency_col,
)
from reports.fmt import float_or_nan
from reports.groups import cell_groups
from reports.load import Run

#: Columns that identify a cell in samples and cells DataFrames.
CELL_KEYS: tuple[str, ...] = ("cell", "transport", "client", "conn_mode")

#: Columns of :func:`delivery_table` after the cell's identity, in display order.
DELIVERY_TABLE_COLUMNS: tuple[str, ...] = (
    delivery_col("p50"),
    delivery_col("p99"),
    delivery_col("max"),
    *DELIVERY_COUNT_COLUMNS[:5],  # expected, delivered, lost, duplicated, out_of_order
    *PER_USEFUL_COLUMNS,
    "empty_poll_ratio",
)


def realtime_mask(cells: pd.DataFrame) -> pd.Series:
    """True for real-time cells: ``delivery`` is short-poll, long-poll or push, or the
    cell has delivery counts (``deliveries_expected``)."""
    mask = pd.Series(False, index=cells.index)
    if "delivery" in cells.columns:
        mask |= cells["delivery"].isin(DELIVERY_MODES)
    if "deliveries_expected" in cells.columns:
        mask |= cells["deliveries_expected"].notna()
    return mask.astype(bool)


def realtime_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The real-time cells of ``cells`` (see :func:`realtime_mask`)."""
    return cells.loc[realtime_mask(cells)]


def request_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The echo (request/response) cells of ``cells``: every cell that is not real-time."""
    return cells.loc[~realtime_mask(cells)]


def measured_samples(
    samples: pd.DataFrame,
    *,
    kind: str | None = "request",
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The rows that count: not warmup, ``ok`` true, and (unless ``kind=None``) of ``kind``.

    ``measured_samples(run.samples)``; failed requests and warmup never enter percentiles.
    ``columns`` keeps only those of them that ``samples`` has: a copy of millions of rows
    is then only as large as what the caller reads.
    """
    keep = samples["ok"].eq(True) & ~samples["warmup"].eq(True)
    if kind is not None:
        keep &= samples["kind"].eq(kind)
    return _rows(samples, keep, columns)


def _rows(frame: pd.DataFrame, keep: pd.Series, columns: Sequence[str] | None) -> pd.DataFrame:
    if columns is None:
        return frame.loc[keep]
    return frame.loc[keep, [c for c in dict.fromkeys(columns) if c in frame.columns]]


#: How summary.json names a failed repeat in ``failures`` (older runs lack ``failed_repeats``).
_FAILED_REPEAT = re.compile(r"repeat (\d+): ")


def failed_repeats(cells: pd.DataFrame) -> set[tuple[str, str, int]]:
    """``(run_id, cell, repeat)`` of every repeat that failed (its server or load generator
    died, or it could not start), from ``run.cells`` (``failed_repeats``, else the
    ``repeat N: ...`` entries of ``failures``)."""
    out: set[tuple[str, str, int]] = set()
    for _, row in cells.iterrows():
        listed = row.get("failed_repeats")
        if not isinstance(listed, list):
            failures = row.get("failures")
            texts = failures if isinstance(failures, list) else []
            listed = [int(m.group(1)) for f in texts if (m := _FAILED_REPEAT.match(str(f)))]
        out.update((str(row.get("run_id")), str(row["cell"]), int(r)) for r in listed)
    return out


def without_failed_repeats(frame: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` (``run.samples`` or ``run.deliveries``) outside failed repeats:
    a repeat whose server died keeps its few rows on disk, but they are not a measurement
    of the cell. ``without_failed_repeats(run.samples, run.cells)``."""
    failed = failed_repeats(cells)
    if not failed or frame.empty:
        return frame
    run_ids = frame["run_id"].astype(str) if "run_id" in frame.columns else ""
    keys = pd.MultiIndex.from_arrays(
        [
            pd.Series(run_ids, index=frame.index).astype(str),
            frame["cell"].astype(str),
            frame["repeat"].astype("int64"),
        ]
    )
    return frame.loc[~keys.isin(list(failed))]


def completed_run(run: Run) -> Run:
    """``run`` with the rows of failed repeats left out of ``samples`` and ``deliveries``
    (see :func:`without_failed_repeats`), as summary.json's figures leave them out; the
    report draws its charts from it."""
    return dataclasses.replace(
        run,
        samples=without_failed_repeats(run.samples, run.cells),
        deliveries=without_failed_repeats(run.deliveries, run.cells),
    )


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
    keys = [k for k in ("run_id", *CELL_KEYS) if k in samples.columns]
    measured = measured_samples(samples, kind=kind, columns=[*keys, source])
    return _percentiles(measured, keys, source, labels, value_cols)


def _percentiles(
    measured: pd.DataFrame,
    keys: list[str],
    source: str,
    labels: Sequence[str],
    value_cols: list[str],
) -> pd.DataFrame:
    """Percentiles in ms of ``measured[source]`` (ns) per ``keys`` group: the keys,
    ``family``, ``count`` and one column per label (``value_cols``); NaN when empty."""
    qs = np.array([percentile_of(label) for label in labels])
    rows = []
    for key, group in cell_groups(measured, keys):
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

    ``ratio_table(request_cells(run.cells))``; a ratio above 1 means WebSocket was faster
    (the "3x" claim predicts 3 or more). Pairs are formed within a run when ``cells`` has a
    ``run_id`` column, and within a part when some cell has a ``part``. Columns: ``run_id``
    (if present), ``part`` (if some cell has one), ``http_cell``, ``ws_cell``, then per
    label ``http_<label>_ms``, ``ws_<label>_ms``, ``<label>_ratio`` (``p99.9`` -> ``p99_9``).
    A ratio is NaN when either latency is missing or the WS latency is not positive.
    Plain ratios of point estimates, no confidence intervals. Real-time cells are not left
    out here; their request latency is that of actions (send, publish...).
    """
    cols = {label.replace(".", "_"): latency_col(label, corrected=corrected) for label in labels}
    fam = _families(cells)
    keys = ("run_id", *_part_key(cells))
    return _pair_ratios(cells, fam == "http", fam == "ws", cols, keys, ())


def delivery_table(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per real-time cell: delivery mode, latency, counts and cost per message.

    ``delivery_table(run.cells)``. Columns: ``run_id`` (if present), ``cell``,
    ``transport``, ``family``, ``delivery``, ``workload``, then
    :data:`DELIVERY_TABLE_COLUMNS` (``delivery_p50_ms``, ``delivery_p99_ms``,
    ``delivery_max_ms``, ``deliveries_expected`` ... ``deliveries_out_of_order``,
    ``bytes_per_useful_message``, ``requests_per_useful_message``,
    ``cpu_s_per_useful_message_server``/``_client``, ``empty_poll_ratio``). Missing
    columns come out as NaN. Echo cells are left out.
    """
    live = realtime_cells(cells)
    ident = ("run_id", "cell", "transport", "family", "delivery", "workload")
    out = pd.DataFrame(index=live.index)
    for col in (*ident, *DELIVERY_TABLE_COLUMNS):
        if col in live.columns:
            out[col] = live[col]
        elif col == "family":
            out[col] = live["transport"].map(lambda t: family(str(t)))
        elif col != "run_id":
            out[col] = np.nan
    return out.reset_index(drop=True)


def delivery_ratio_table(
    cells: pd.DataFrame, *, labels: Sequence[str] = ("p50", "p99")
) -> pd.DataFrame:
    """Every HTTP polling (or Server-Sent Events) cell against every WebSocket push cell.

    ``delivery_ratio_table(run.cells)``: delivery latency ratios (above 1: push delivered
    sooner) and the ratio of bytes on the wire per useful message (above 1: polling cost
    more bytes). Pairs are formed within a run, part and workload. Columns: ``run_id`` (if
    present), ``part`` (if some cell has one), ``workload`` (if present), ``http_cell``,
    ``ws_cell``, ``http_delivery`` (short-poll, long-poll or sse), then per label
    ``http_delivery_<label>_ms``, ``ws_delivery_<label>_ms``, ``delivery_<label>_ratio``,
    and ``http_bytes_per_useful_message``, ``ws_bytes_per_useful_message``, ``bytes_ratio``.
    A ratio is NaN when either value is missing or the WS value is not positive.
    """
    cols = {f"delivery_{label.replace('.', '_')}": delivery_col(label) for label in labels}
    cols["bytes"] = "bytes_per_useful_message"
    fam = _families(cells)
    delivery = cells["delivery"] if "delivery" in cells.columns else pd.Series(None, cells.index)
    live = realtime_mask(cells)
    http = live & (fam == "http") & delivery.isin(HTTP_DELIVERY_MODES)
    ws = live & (fam == "ws") & (delivery.eq("push") | delivery.isna())
    keys = ("run_id", *_part_key(cells), "workload")
    return _pair_ratios(cells, http, ws, cols, keys, ("delivery",))


def measured_deliveries(
    deliveries: pd.DataFrame, *, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Deliveries that enter latency statistics: not warmup, not deferred, not duplicate.

    Deferred rows (the recipient was offline when the item was caused) are counted as
    delivered but their latency says how long the user was away, not how fast delivery is.
    ``columns`` keeps only those of them that ``deliveries`` has (as :func:`measured_samples`).
    """
    return _rows(deliveries, measured_delivery_mask(deliveries), columns)


def measured_delivery_mask(deliveries: pd.DataFrame) -> pd.Series:
    """True for the rows :func:`measured_deliveries` keeps: ``mask.sum()`` counts them
    without copying any row."""
    return ~(
        deliveries["warmup"].eq(True)
        | deliveries["deferred"].eq(True)
        | deliveries["duplicate"].eq(True)
    )


def delivery_percentiles(
    deliveries: pd.DataFrame, *, labels: Sequence[str] = LATENCY_LABELS
) -> pd.DataFrame:
    """Delivery latency percentiles in ms per cell, from raw ``run.deliveries`` rows.

    Uses :func:`measured_deliveries` only; percentiles interpolate linearly. One row per
    cell (per run_id and cell when a ``run_id`` column exists) with the cell keys,
    ``delivery``, ``family``, ``count`` and ``delivery_p50_ms`` ... ``delivery_max_ms``.
    """
    value_cols = [delivery_col(label) for label in labels]
    keys = [k for k in ("run_id", *CELL_KEYS, "delivery") if k in deliveries.columns]
    measured = measured_deliveries(deliveries, columns=[*keys, "latency_ns"])
    return _percentiles(measured, keys, "latency_ns", labels, value_cols)


def _part_key(cells: pd.DataFrame) -> tuple[str, ...]:
    """``("part",)`` when some cell belongs to a ``[[parts]]`` entry, else ``()``."""
    return ("part",) if "part" in cells.columns and cells["part"].notna().any() else ()


def _families(cells: pd.DataFrame) -> pd.Series:
    """``family`` of each cell (from the column, else from ``transport``)."""
    if "family" in cells.columns:
        return cells["family"]
    return cells["transport"].map(lambda t: family(str(t)))


def _pair_ratios(
    cells: pd.DataFrame,
    http_mask: pd.Series,
    ws_mask: pd.Series,
    cols: dict[str, str],
    group_keys: Sequence[str],
    http_extra: Sequence[str],
) -> pd.DataFrame:
    """Every ``http_mask`` row against every ``ws_mask`` row within ``group_keys``.

    Per ``{stem: column}`` in ``cols``: ``http_<column>``, ``ws_<column>``, ``<stem>_ratio``.
    """
    groups_by = [k for k in group_keys if k in cells.columns]
    out_cols: list[str] = [*groups_by, "http_cell", "ws_cell", *(f"http_{c}" for c in http_extra)]
    for stem, col in cols.items():
        out_cols += [f"http_{col}", f"ws_{col}", f"{stem}_ratio"]
    groups = cells.groupby(groups_by, sort=False, dropna=False) if groups_by else [((), cells)]
    rows = []
    for key, group in groups:
        ident = dict(zip(groups_by, key if isinstance(key, tuple) else (key,), strict=True))
        http = group[http_mask.loc[group.index]]
        ws = group[ws_mask.loc[group.index]]
        for _, h in http.iterrows():
            for _, w in ws.iterrows():
                row: dict[str, object] = {**ident, "http_cell": h["cell"], "ws_cell": w["cell"]}
                for extra in http_extra:
                    row[f"http_{extra}"] = h.get(extra)
                for stem, col in cols.items():
                    hv, wv = float_or_nan(h.get(col)), float_or_nan(w.get(col))
                    row[f"http_{col}"], row[f"ws_{col}"] = hv, wv
                    row[f"{stem}_ratio"] = hv / wv if wv > 0 else np.nan
                rows.append(row)
    return pd.DataFrame(rows, columns=out_cols)
