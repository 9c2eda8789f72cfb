"""Rate sweeps: one cell run at several open-loop rates, and the highest rate at which
its p99 stays under the objective.

::

    from reports.sweeps import sweep_table
    sweep_table(run.cells)               # one row per sweep group: max_rate, failure...
    slo, source = sweep_objective(group, DEFAULT_SWEEP_SLO_P99_MS)
    knee = sweep_knee(group, "target_rate", lambda c: sweep_rate_ok(c, slo), "p99_ms")

The objective and the knee walk are shared with users sweeps (:mod:`reports.users_sweeps`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from reports.fmt import as_float, float_or_nan, fmt_ms
from reports.thresholds import RATE_REACHED

#: p99 objective (ms) a rate sweep is judged against when its cells carry none.
DEFAULT_SWEEP_SLO_P99_MS = 10.0

#: Columns of :func:`sweep_table`.
SWEEP_COLUMNS: tuple[str, ...] = (
    "run_id",
    "sweep_group",
    "transport",
    "client",
    "conn_mode",
    "slo_p99_ms",
    "slo_source",
    "rates",
    "max_rate",
    "p99_at_max_ms",
    "first_failing_rate",
    "failure",
)


def sweep_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells of a rate sweep: those with a ``sweep_group`` and a ``target_rate``."""
    if "sweep_group" not in cells.columns or "target_rate" not in cells.columns:
        return cells.iloc[0:0]
    group = cells["sweep_group"]
    keep = group.notna() & group.astype(str).ne("") & cells["target_rate"].notna()
    return cells.loc[keep]


def sweep_rate_ok(row: pd.Series, slo_ms: float) -> tuple[bool, str]:
    """Whether one sweep cell met its objective, and if not why: ``(False, "p99 14.6 ms")``.

    It must have p99 under ``slo_ms``, no errors, and have delivered at least
    :data:`reports.thresholds.RATE_REACHED` of its target rate.
    """

    p99 = float_or_nan(row.get("p99_ms"))
    errors = float_or_nan(row.get("errors"))
    target = float_or_nan(row.get("target_rate"))
    achieved = float_or_nan(row.get("throughput_rps"))
    if not np.isfinite(p99):
        return False, "no p99"
    if errors > 0:
        return False, f"{errors:,.0f} errors"
    if np.isfinite(target) and np.isfinite(achieved) and achieved < RATE_REACHED * target:
        return False, f"rate not reached ({achieved:,.0f} req/s)"
    if p99 >= slo_ms:
        return False, f"p99 {fmt_ms(p99)} ms"
    return True, ""


def sweep_objective(group: pd.DataFrame, default_slo_ms: float) -> tuple[float, str]:
    """One sweep group's p99 objective and where it came from: its cells' ``slo_p99_ms``
    (``"scenario"``), else ``default_slo_ms`` (``"default"``)."""
    values = (
        pd.to_numeric(group["slo_p99_ms"], errors="coerce").dropna()
        if "slo_p99_ms" in group.columns
        else pd.Series(dtype=float)
    )
    if len(values):
        return float(values.iloc[0]), "scenario"
    return default_slo_ms, "default"


def sweep_knee(
    group: pd.DataFrame,
    axis: str,
    judge: Callable[[pd.Series], tuple[bool, str]],
    p99_column: str,
) -> dict[str, Any]:
    """Walk one sweep group up ``axis`` (the column stepped): the knee and where it stopped.

    ``judge(cell)`` is ``(ok, why)``. Returns ``max`` (the highest step such that it and
    every lower step passed; NaN when even the lowest failed), ``p99_at_max`` (that
    cell's ``p99_column``), ``first_failing`` and ``failure`` (NaN and ``""`` when every
    step passed).
    """
    out: dict[str, Any] = {
        "max": np.nan,
        "p99_at_max": np.nan,
        "first_failing": np.nan,
        "failure": "",
    }
    for _, cell in group.sort_values(axis).iterrows():
        ok, why = judge(cell)
        if not ok:
            out["first_failing"] = float(cell[axis])
            out["failure"] = why
            break
        out["max"] = float(cell[axis])
        out["p99_at_max"] = float_or_nan(cell.get(p99_column))
    return out


def sweep_table(
    cells: pd.DataFrame, *, default_slo_ms: float = DEFAULT_SWEEP_SLO_P99_MS
) -> pd.DataFrame:
    """Per sweep group: the highest rate at which p99 stays under the objective.

    ``sweep_table(run.cells)``. A sweep group is one cell run at several open-loop rates
    (``sweep_group`` is the cell id without the ``@RATErps`` suffix). The objective is the
    cells' ``slo_p99_ms`` (``slo_source`` ``"scenario"``), else ``default_slo_ms``
    (``"default"``). ``max_rate`` is the highest rate such that it and every lower rate met
    the objective (:func:`sweep_rate_ok`: p99 under it, no errors, rate reached); NaN when
    even the lowest failed. ``first_failing_rate`` and ``failure`` say where and why the
    sweep stopped (NaN and ``""`` when every rate passed). ``rates`` lists the rates run.
    """
    sweep = sweep_cells(cells)
    if sweep.empty:
        return pd.DataFrame(columns=SWEEP_COLUMNS)
    rows = []
    for ident, group in sweep_groups(sweep, "target_rate"):
        slo, source = sweep_objective(group, default_slo_ms)
        knee = sweep_knee(group, "target_rate", lambda c, slo=slo: sweep_rate_ok(c, slo), "p99_ms")
        first = group.iloc[0]
        rows.append(
            {
                **ident,
                "transport": first.get("transport"),
                "client": first.get("client"),
                "conn_mode": first.get("conn_mode"),
                "slo_p99_ms": slo,
                "slo_source": source,
                "rates": [float(r) for r in group["target_rate"]],
                "max_rate": knee["max"],
                "p99_at_max_ms": knee["p99_at_max"],
                "first_failing_rate": knee["first_failing"],
                "failure": knee["failure"],
            }
        )
    return pd.DataFrame(rows, columns=list(SWEEP_COLUMNS))


def sweep_groups(sweep: pd.DataFrame, step: str) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    """Each sweep group of ``sweep`` (per run): its ``run_id`` and ``sweep_group`` as a
    dict, and its cells in rising ``step`` (``target_rate``, ``users``)."""
    keys = [k for k in ("run_id", "sweep_group") if k in sweep.columns]
    for key, group in sweep.groupby(keys, sort=False):
        ident = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        yield ident, group.sort_values(step)


def sweep_row_head(s: pd.Series, multi: bool) -> dict[str, str]:
    """The first cells of a sweep's report row: its group (after its run id when
    ``multi``) and its objective, saying when it is the default."""
    default = " (default: the scenario set none)" if s["slo_source"] == "default" else ""
    return {
        "group": (f"{s['run_id']}: " if multi else "") + str(s["sweep_group"]),
        "slo": f"{s['slo_p99_ms']:g} ms{default}",
    }


def sweep_rows(sweeps: pd.DataFrame, multi: bool) -> list[dict[str, str]]:
    """:func:`sweep_table` output as the HTML report's rows of plain strings."""
    rows = []
    for _, s in sweeps.iterrows():
        max_rate = as_float(s["max_rate"])
        failing = as_float(s["first_failing_rate"])
        rows.append(
            {
                **sweep_row_head(s, multi),
                "max_rate": f"{max_rate:,.0f} req/s"
                if max_rate
                else "none (even the lowest failed)",
                "p99_at_max": fmt_ms(s["p99_at_max_ms"]),
                "rates": ", ".join(f"{r:,.0f}" for r in s["rates"]),
                "stop": (
                    f"{failing:,.0f} req/s: {s['failure']}" if failing else "every rate passed"
                ),
            }
        )
    return rows
