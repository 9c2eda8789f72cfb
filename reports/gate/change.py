"""The statistics of a change: one cell and metric, baseline against current, as a
:class:`reports.gate.result.Row` with a confidence interval and a status.

::

    row = compare_cell(base, cur, cell, threshold, rng, level, n_resamples)
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from reports import bootstrap
from reports.columns import REQUEST_DELIVERY
from reports.gate.limits import Threshold
from reports.gate.metrics import Metric, number
from reports.gate.result import ERROR, IMPROVED, INSUFFICIENT, OK, REGRESSION, UNCLEAR, Row
from reports.gate.runs import RunData

NS_PER_MS = 1e6


def is_realtime(cell: pd.Series) -> bool:
    # reports.load infers a missing ``delivery``: "request" only for echo cells.
    return cell.get("delivery") != REQUEST_DELIVERY


def _repeat_values(metric: Metric, run: RunData, name: str) -> list[float]:
    realtime = is_realtime(run.cells[name])
    values = [metric.value(r, realtime) for r in run.per_repeat.get(name, [])]
    return [v for v in values if v is not None and math.isfinite(v)]


def _decide(row: Row, worse: int, limit: float, interval_is_ci: bool) -> None:
    assert row.low is not None and row.high is not None
    bad = sorted((worse * row.low, worse * row.high))
    if bad[0] > limit:
        row.status = REGRESSION
    elif not interval_is_ci:
        row.status = INSUFFICIENT
    elif bad[1] > limit:
        row.status = UNCLEAR
    elif bad[1] < -limit:
        row.status = IMPROVED  # as far beyond the limit on the better side
    else:
        row.status = OK


def compare_cell(
    base: RunData,
    cur: RunData,
    name: str,
    threshold: Threshold,
    rng: np.random.Generator,
    level: float,
    n_resamples: int,
) -> Row:
    metric = threshold.info
    bcell, ccell = base.cells[name], cur.cells[name]
    row = Row(name, threshold)
    row.n_baseline = int(number(bcell.get("repeats_ok")) or 0)
    row.n_current = int(number(ccell.get("repeats_ok")) or 0)
    if not row.n_baseline:
        row.status, row.note = ERROR, "the baseline has no successful repeat of this cell"
        return row
    row.baseline = metric.value(bcell, is_realtime(bcell))
    row.current = metric.value(ccell, is_realtime(ccell))
    if not row.n_current:
        row.status, row.note = REGRESSION, "no successful repeat of this cell in the current run"
        return row
    if metric.count:
        row.method = "count"
        if row.current is None:
            row.status, row.note = ERROR, f"the current run has no {metric.name} figure"
        elif row.current > threshold.limit:
            row.status = REGRESSION
        return row
    if row.baseline is None or row.current is None:
        where = "baseline" if row.baseline is None else "current run"
        row.status, row.note = ERROR, f"no {metric.name} figure in the {where}"
        return row

    if metric.raw is not None and metric.quantile is not None:
        bg, cg = base.raw_groups(metric.raw, name), cur.raw_groups(metric.raw, name)
        if bg is not None and cg is not None:
            change, low, high = bootstrap.percentile_ci(
                bg, cg, metric.quantile, rng, level, n_resamples
            )
            row.baseline = _percentile(bg, metric.quantile) / NS_PER_MS
            row.current = _percentile(cg, metric.quantile) / NS_PER_MS
            row.change, row.low, row.high = change, low, high
            row.n_baseline, row.n_current = len(bg), len(cg)
            row.method = metric.raw  # "samples" or "deliveries": raw rows bootstrapped
            _decide(row, metric.worse, threshold.limit, interval_is_ci=True)
            if min(len(bg), len(cg)) == 1:
                row.note = "1 repeat: the spread between repeats is not measured"
            return row

    bv, cv = _repeat_values(metric, base, name), _repeat_values(metric, cur, name)
    if not bv or not cv:
        # An older summary without per-repeat figures: the totals only.
        bv, cv = [row.baseline], [row.current]
        row.note = "no per-repeat figures; totals only"
    row.n_baseline, row.n_current = len(bv), len(cv)
    if float(np.mean(bv)) <= 0:
        if float(np.mean(cv)) <= 0:
            row.change = row.low = row.high = 0.0
            row.method = "zero"
            return row
        row.status, row.note = ERROR, f"the baseline {metric.name} is 0: no relative change"
        return row
    if min(len(bv), len(cv)) >= bootstrap.MIN_BOOTSTRAP_REPEATS:
        row.change, row.low, row.high = bootstrap.repeats_ci(bv, cv, rng, level, n_resamples)
        row.method = "repeats"
        is_ci = True
    else:
        row.change, row.low, row.high = bootstrap.range_ci(bv, cv)
        row.method = "range" if max(len(bv), len(cv)) > 1 else "single"
        is_ci = False
        row.note = row.note or (
            f"fewer than {bootstrap.MIN_BOOTSTRAP_REPEATS} repeats: no confidence interval; "
            "fails only when every pairing of repeats is beyond the limit"
        )
    row.baseline, row.current = float(np.mean(bv)), float(np.mean(cv))
    _decide(row, metric.worse, threshold.limit, interval_is_ci=is_ci)
    return row


def _percentile(groups: list[np.ndarray], q: float) -> float:
    values = np.sort(np.concatenate(groups))
    return float(values[max(1, math.ceil(q * len(values))) - 1])
