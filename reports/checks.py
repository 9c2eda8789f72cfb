"""Warnings a reader must see before trusting a run's numbers.

``for line in run_warnings(run): print(line)`` — used by the terminal and HTML reports.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports.floor import CLIENT_CPU_RATIO, client_cpu_heavy
from reports.fmt import as_float, fmt_int, fmt_ms, fmt_pct, fmt_us
from reports.load import Run
from reports.stats import failed_repeats, realtime_mask
from reports.thresholds import RATE_REACHED, SATURATION_THRESHOLD, SPREAD_CV, SPREAD_CV_P99

SATURATION_MESSAGE = "load generator saturated: results may measure the client"

SPREAD_MESSAGE = "high spread across repeats"

CLIENT_CPU_MESSAGE = "load generator works harder than the server"


def cell_label(run: Run, row: pd.Series) -> str:
    """The cell name, prefixed by its run id when ``run`` combines several runs."""
    if len(run.runs) > 1:
        return f"{row['run_id']}: {row['cell']}"
    return str(row["cell"])


def run_warnings(
    run: Run,
    *,
    saturation: float = SATURATION_THRESHOLD,
    spread: float = SPREAD_CV,
    spread_p99: float = SPREAD_CV_P99,
) -> list[str]:
    """Human-readable warning lines, empty if nothing is wrong.

    Flags: an incomplete run (summary.json or meta.json not saying ``"complete": true``),
    cells with ``status`` other than ``"ok"``, errors, failures or no measured requests,
    cells whose client CPU utilisation (cell or any repeat) exceeds ``saturation``, open-loop
    cells that did not reach 95 % of their offered rate, cells whose repeats disagree (the
    per-repeat p50 — delivery p50 for real-time cells — has a coefficient of variation above
    ``spread``, or the per-repeat p99 one above ``spread_p99``), cells whose client CPU per
    request is :data:`~reports.floor.CLIENT_CPU_RATIO` times the server's or more, and for
    real-time cells:
    lost or duplicated deliveries, no useful message, slow-consumer closes, reconnects, and
    deliveries missing from deliveries.parquet; and for every cell, requests its server
    refused (``limit_refusals``, ``unknown_recipients``) or repeats whose server did not
    report those counters. A real-time cell's ``count`` covers actions
    (send, publish, activity) only, so it is not flagged for having no requests when items
    were delivered.
    """
    lines: list[str] = []
    for part in run.runs:
        if not part.complete:
            lines.append(
                f"run incomplete: run {part.run_id} is not marked complete in summary.json and "
                "meta.json; results may cover only part of the scenario"
            )
    if run.cells.empty:
        lines.append("no cells: summary.json lists no measured cells")
    live = realtime_mask(run.cells)
    for i, row in run.cells.iterrows():
        problems = []
        status = row.get("status")
        if isinstance(status, str) and status != "ok":
            problems.append(f"status {status}")
        errors = as_float(row.get("errors"))
        if errors and live[i]:
            problems.append(f"{fmt_int(errors)} failed requests")
        elif errors:
            problems.append(f"{fmt_int(errors)} errors in {fmt_int(row.get('count'))} requests")
        if live[i]:
            if not as_float(row.get("deliveries_delivered")) and not as_float(row.get("count")):
                problems.append("nothing delivered and no successful actions")
        elif not as_float(row.get("count")):
            problems.append("no successful requests")
        failures = row.get("failures") or []
        if failures:
            shown = "; ".join(str(f) for f in failures[:3])
            more = f" (+{len(failures) - 3} more)" if len(failures) > 3 else ""
            problems.append(
                f"failures: {shown}{more} (failed repeats are left out of its figures and "
                "the verdict)"
            )
        if problems:
            lines.append(f"cell {cell_label(run, row)} had errors: {', '.join(problems)}")
        lines += _refusal_warnings(run, row)
        if live[i]:
            lines += _delivery_warnings(run, row)
    saturated = []
    for _, row in run.cells.iterrows():
        util = _max_client_util(run, row)
        if util is not None and util > saturation:
            saturated.append(f"{cell_label(run, row)} ({fmt_pct(util)})")
    behind = []
    for _, row in run.cells.iterrows():
        offered = as_float(row.get("offered_rps"))
        achieved = as_float(row.get("throughput_rps"))
        if offered and achieved is not None and achieved < RATE_REACHED * offered:
            behind.append(f"{cell_label(run, row)} ({achieved:,.0f} of {offered:,.0f} req/s)")
    if behind:
        lines.append(
            "open-loop rate not reached: the offered load was not delivered in: "
            + ", ".join(behind)
        )
    if saturated:
        lines.append(
            f"{SATURATION_MESSAGE} (client CPU above {fmt_pct(saturation)} in: "
            f"{', '.join(saturated)})"
        )
    heavy = client_cpu_heavy(run)
    if not heavy.empty:
        named = [
            f"{_label(run, r['run_id'], r['cell'])} ({r['ratio']:.1f}×: "
            f"{fmt_us(r['client_s'])} against {fmt_us(r['server_s'])} µs per request)"
            for _, r in heavy.iterrows()
        ]
        lines.append(
            f"{CLIENT_CPU_MESSAGE}: its CPU per request is {CLIENT_CPU_RATIO:g}× the server's "
            "or more, so latency and capacity may measure the client library more than the "
            f"protocol, in: {', '.join(named)}"
        )
    spreads = repeat_spread(run)
    for label, limit in (("p50", spread), ("p99", spread_p99)):
        noisy = spreads[(spreads["label"] == label) & (spreads["cv"] > limit)]
        if noisy.empty:
            continue
        named = [
            f"{_label(run, r['run_id'], r['cell'])} (CV {fmt_pct(r['cv'])}: "
            f"{', '.join(fmt_ms(v) for v in r['values'])} ms)"
            for _, r in noisy.iterrows()
        ]
        lines.append(
            f"{SPREAD_MESSAGE}: the per-repeat {label} varies by more than {fmt_pct(limit)} "
            "(coefficient of variation), so the machine or the run was noisy; the confidence "
            f"intervals pool the repeats and do not include this spread, in: {', '.join(named)}"
        )
    return lines


def repeat_spread(run: Run) -> pd.DataFrame:
    """How much each cell's repeats disagree: two rows (p50, p99) per cell with 2 or more
    repeats.

    Columns ``run_id``, ``cell``, ``label`` (``p50`` or ``p99``), ``metric`` (the column:
    ``p50_ms``, or ``delivery_p50_ms`` for real-time cells), ``values`` (the per-repeat
    values, list), ``mean`` and ``cv`` (the coefficient of variation: sample standard
    deviation / mean; NaN when the mean is 0).
    """
    columns = ["run_id", "cell", "label", "metric", "values", "mean", "cv"]
    reps = run.repeats
    if reps.empty:
        return pd.DataFrame(columns=columns)
    live = realtime_mask(reps)
    rows = []
    for (rid, cell), idx in reps.groupby(["run_id", "cell"], sort=False).groups.items():
        for label in ("p50", "p99"):
            metric = f"delivery_{label}_ms" if live.loc[idx].any() else f"{label}_ms"
            values = pd.to_numeric(reps.loc[idx, metric], errors="coerce").dropna()
            values = values.to_numpy(dtype="float64")
            if len(values) < 2:
                continue
            mean = float(values.mean())
            cv = float(values.std(ddof=1) / mean) if mean > 0 else float("nan")
            rows.append(
                {
                    "run_id": rid,
                    "cell": cell,
                    "label": label,
                    "metric": metric,
                    "values": values.tolist(),
                    "mean": mean,
                    "cv": cv,
                }
            )
    return pd.DataFrame(rows, columns=columns)


def cell_caveats(
    run: Run,
    *,
    saturation: float = SATURATION_THRESHOLD,
    spread: float = SPREAD_CV,
    spread_p99: float = SPREAD_CV_P99,
) -> dict[tuple[str, str], list[str]]:
    """Short reasons to doubt each cell, keyed by ``(run_id, cell)``; cells without any are
    left out. The verdict table lists them beside each pair: ``"status error"``,
    ``"12 errors"``, ``"3 lost deliveries"``, ``"client CPU 95%"``, ``"client CPU 2.4× the
    server's"``, ``"rate not reached (200 of 400 req/s)"``, ``"repeats disagree at p50
    (CV 35%)"``, ``"run incomplete"``."""
    out: dict[tuple[str, str], list[str]] = {}
    incomplete = {part.run_id for part in run.runs if not part.complete}
    failed = failed_repeats(run.cells)
    for _, row in run.cells.iterrows():
        tags = []
        if row["run_id"] in incomplete:
            tags.append("run incomplete")
        status = row.get("status")
        if isinstance(status, str) and status != "ok":
            tags.append(f"status {status}")
        errors = as_float(row.get("errors"))
        if errors:
            tags.append(f"{fmt_int(errors)} errors")
        lost = as_float(row.get("deliveries_lost"))
        if lost:
            tags.append(f"{fmt_int(lost)} lost deliveries")
        dropped = sorted(r for rid, c, r in failed if (rid, c) == (str(row["run_id"]), row["cell"]))
        if dropped:
            tags.append(f"failed repeat(s) {', '.join(map(str, dropped))} left out")
        util = _max_client_util(run, row)
        if util is not None and util > saturation:
            tags.append(f"client CPU {fmt_pct(util)}")
        offered = as_float(row.get("offered_rps"))
        achieved = as_float(row.get("throughput_rps"))
        if offered and achieved is not None and achieved < RATE_REACHED * offered:
            tags.append(f"rate not reached ({achieved:,.0f} of {offered:,.0f} req/s)")
        if tags:
            out[(str(row["run_id"]), str(row["cell"]))] = tags
    for _, r in client_cpu_heavy(run).iterrows():
        key = (str(r["run_id"]), str(r["cell"]))
        out.setdefault(key, []).append(f"client CPU {r['ratio']:.1f}× the server's")
    limits = {"p50": spread, "p99": spread_p99}
    for _, r in repeat_spread(run).iterrows():
        if np.isfinite(r["cv"]) and r["cv"] > limits[r["label"]]:
            key = (str(r["run_id"]), str(r["cell"]))
            text = f"repeats disagree at {r['label']} (CV {fmt_pct(r['cv'])})"
            out.setdefault(key, []).append(text)
    return out


def _label(run: Run, run_id: object, cell: object) -> str:
    return f"{run_id}: {cell}" if len(run.runs) > 1 else str(cell)


def _refusal_warnings(run: Run, row: pd.Series) -> list[str]:
    """What the server of a cell refused or could not route, by its own counters, and
    repeats whose server never reported them."""
    label = cell_label(run, row)
    lines = []
    refused = as_float(row.get("limit_refusals"))
    if refused:
        lines.append(
            f"the server refused {fmt_int(refused)} requests at its limits in cell {label} "
            "(limit_refusals: users, rooms, topics, subscriptions or watch lists over the "
            "server's maximum): less load was served than the scenario asked for; raise "
            "the limit (e.g. [server] max_users) or lower the load"
        )
    unknown = as_float(row.get("unknown_recipients"))
    if unknown:
        lines.append(
            f"{fmt_int(unknown)} messages in cell {label} were addressed to users the server "
            "did not know (unknown_recipients) and were refused: check that every recipient "
            "signs in before it is sent to"
        )
    missing = row.get("server_counters_missing")
    if isinstance(missing, list | tuple | np.ndarray) and len(missing):
        shown = ", ".join(str(r) for r in missing)
        lines.append(
            f"the server of cell {label} did not report its counters in repeat(s) {shown}, "
            "so its refusals there are unknown (it was killed or crashed: see logs/)"
        )
    return lines


#: Counters of a real-time cell worth a warning when nonzero: what they count, what it means.
_COUNT_NOTES: dict[str, tuple[str, str]] = {
    "deliveries_gaps": (
        "retention gap(s)",
        "readers fell behind the server's inbox retention and the items they skipped count as lost",
    ),
    "slow_consumer_closes": (
        "slow-consumer closes",
        "the server closed connections whose send queue was full, so pushes to them were dropped",
    ),
    "auth_closes": (
        "auth closes",
        "the server ended streams or held polls whose token expired or was revoked, and their "
        "users signed in again and resumed (not counted as loss)",
    ),
    "reconnects": ("reconnects", "users lost their connection and connected again"),
}


def _count_note(row: pd.Series, label: str, column: str) -> list[str]:
    """The warning for ``row[column]`` (one of :data:`_COUNT_NOTES`), none when it is 0."""
    count = as_float(row.get(column))
    if not count:
        return []
    what, meaning = _COUNT_NOTES[column]
    return [f"{fmt_int(count)} {what} in cell {label}: {meaning}"]


def _delivery_warnings(run: Run, row: pd.Series) -> list[str]:
    """Lost, duplicated or missing deliveries, slow-consumer closes, reconnects of one cell."""
    label = cell_label(run, row)
    lines = []
    expected = as_float(row.get("deliveries_expected"))
    delivered = as_float(row.get("deliveries_delivered"))
    of = f" of {fmt_int(expected)}" if expected is not None else ""
    lost = as_float(row.get("deliveries_lost"))
    if lost:
        lines.append(f"lost {fmt_int(lost)}{of} deliveries in cell {label}")
    lines += _count_note(row, label, "deliveries_gaps")
    duplicated = as_float(row.get("deliveries_duplicated"))
    if duplicated:
        lines.append(
            f"duplicated {fmt_int(duplicated)}{of} deliveries in cell {label} "
            "(an item reached the same user more than once)"
        )
    if expected == 0 and not as_float(row.get("useful_messages")):
        lines.append(
            f"no useful messages in cell {label}: nothing was expected to be delivered "
            "and no activity event was accepted"
        )
    lines += _count_note(row, label, "slow_consumer_closes")
    late = as_float(row.get("late_steps"))
    if late:
        worst = as_float(row.get("max_late_ms"))
        lines.append(
            f"{fmt_int(late)} scheduled actions in cell {label} started more than 100 ms late"
            + (f" (up to {worst:,.0f} ms)" if worst else "")
            + ": the users could not keep the schedule, so the offered load was lower than "
            "configured; lower the rates or give [realtime] publishers more lanes"
        )
    lines += _count_note(row, label, "auth_closes")
    lines += _count_note(row, label, "reconnects")
    if delivered:
        d = run.deliveries
        mine = d["cell"].eq(row["cell"])
        if "run_id" in d.columns and "run_id" in row.index:
            mine &= d["run_id"].eq(row["run_id"])
        if not mine.any():
            lines.append(
                f"deliveries.parquet has no rows for cell {label}: its delivery charts are empty"
            )
    return lines


def _max_client_util(run: Run, row: pd.Series) -> float | None:
    """The highest client CPU utilisation of a cell, over the cell and its repeats."""
    values = [as_float(row.get("cpu_util_client"))]
    reps = run.repeats
    if not reps.empty and "cpu_util_client" in reps.columns:
        mine = reps[(reps["run_id"] == row["run_id"]) & (reps["cell"] == row["cell"])]
        values += [as_float(v) for v in mine["cpu_util_client"]]
    present = [v for v in values if v is not None]
    return max(present) if present else None
