"""Users sweeps: one real-time cell run at rising numbers of connected users, and the
largest user count at which its delivery p99 stays under the objective.

::

    from reports.users_sweeps import users_sweep_cells, users_sweep_table
    users_sweep_cells(run.cells)     # the cells of users sweeps, with their ``users``
    users_sweep_table(run.cells)     # one row per sweep group: max_users, failure...

The objective is the rate sweep's (``[load] sweep_slo_p99_ms``, else
:data:`reports.sweeps.DEFAULT_SWEEP_SLO_P99_MS`), judged against delivery latency.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports.fmt import float_or_nan, fmt_ms
from reports.sweeps import (
    DEFAULT_SWEEP_SLO_P99_MS,
    sweep_groups,
    sweep_knee,
    sweep_objective,
    sweep_row_head,
)

#: Columns of :func:`users_sweep_table`.
USERS_SWEEP_COLUMNS: tuple[str, ...] = (
    "run_id",
    "sweep_group",
    "transport",
    "client",
    "conn_mode",
    "delivery",
    "slo_p99_ms",
    "slo_source",
    "users",
    "max_users",
    "delivery_p99_at_max_ms",
    "first_failing_users",
    "failure",
)


def users_sweep_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells of a users sweep: a ``sweep_group``, a ``users`` count and no
    ``target_rate`` (a rate sweep's cells have one)."""
    if "sweep_group" not in cells.columns or "users" not in cells.columns:
        return cells.iloc[0:0]
    group = cells["sweep_group"]
    rate = (
        cells["target_rate"] if "target_rate" in cells.columns else pd.Series(np.nan, cells.index)
    )
    users = pd.to_numeric(cells["users"], errors="coerce")
    keep = group.notna() & group.astype(str).ne("") & rate.isna() & users.notna()
    return cells.loc[keep]


def users_step_ok(row: pd.Series, slo_ms: float) -> tuple[bool, str]:
    """Whether one users-sweep cell met its objective, and if not why: ``(False, "delivery
    p99 80.2 ms")``. It must have a delivery p99 under ``slo_ms``, no errors and no lost
    deliveries (a count that loses items is not carried, however fast the rest arrive)."""
    p99 = float_or_nan(row.get("delivery_p99_ms"))
    errors = float_or_nan(row.get("errors"))
    lost = float_or_nan(row.get("deliveries_lost"))
    if not np.isfinite(p99):
        return False, "no delivery p99"
    if errors > 0:
        return False, f"{errors:,.0f} errors"
    if lost > 0:
        return False, f"{lost:,.0f} deliveries lost"
    if p99 >= slo_ms:
        return False, f"delivery p99 {fmt_ms(p99)} ms"
    return True, ""


def users_sweep_table(
    cells: pd.DataFrame, *, default_slo_ms: float = DEFAULT_SWEEP_SLO_P99_MS
) -> pd.DataFrame:
    """Per users-sweep group: the largest user count whose delivery p99 met the objective.

    ``users_sweep_table(run.cells)``. A group is one cell run at several user counts
    (``sweep_group`` is the cell id without the ``@USERSu`` suffix). ``max_users`` is the
    largest count such that it and every smaller count passed (:func:`users_step_ok`);
    NaN when even the smallest failed. ``first_failing_users`` and ``failure`` say where
    and why the sweep stopped (NaN and ``""`` when every count passed); ``users`` lists
    the counts run. The objective and its source are as in :func:`reports.sweeps.sweep_table`.
    """
    sweep = users_sweep_cells(cells).copy()
    if sweep.empty:
        return pd.DataFrame(columns=USERS_SWEEP_COLUMNS)
    sweep["users"] = pd.to_numeric(sweep["users"], errors="coerce").astype("float64")
    rows = []
    for ident, group in sweep_groups(sweep, "users"):
        slo, source = sweep_objective(group, default_slo_ms)
        knee = sweep_knee(
            group, "users", lambda c, slo=slo: users_step_ok(c, slo), "delivery_p99_ms"
        )
        first = group.iloc[0]
        rows.append(
            {
                **ident,
                **{k: first.get(k) for k in ("transport", "client", "conn_mode", "delivery")},
                "slo_p99_ms": slo,
                "slo_source": source,
                "users": [int(n) for n in group["users"]],
                "max_users": knee["max"],
                "delivery_p99_at_max_ms": knee["p99_at_max"],
                "first_failing_users": knee["first_failing"],
                "failure": knee["failure"],
            }
        )
    return pd.DataFrame(rows, columns=list(USERS_SWEEP_COLUMNS))


def users_sweep_rows(sweeps: pd.DataFrame, multi: bool) -> list[dict[str, str]]:
    """:func:`users_sweep_table` output as the HTML report's rows of plain strings;
    ``multi`` prefixes each group with its run id."""
    rows = []
    for _, s in sweeps.iterrows():
        max_users = float_or_nan(s["max_users"])
        failing = float_or_nan(s["first_failing_users"])
        rows.append(
            {
                **sweep_row_head(s, multi),
                "max_users": f"{max_users:,.0f} users"
                if np.isfinite(max_users)
                else "none (even the smallest count failed)",
                "p99_at_max": fmt_ms(s["delivery_p99_at_max_ms"]),
                "stop": (
                    f"{failing:,.0f} users: {s['failure']}"
                    if np.isfinite(failing)
                    else "every count passed"
                ),
                "users": ", ".join(f"{n:,}" for n in s["users"]),
            }
        )
    return rows
