"""``rtbench compare``: is the current run slower than the baseline, beyond the noise?

::

    comparison = compare_runs(load_run(base_dir), load_run(cur_dir), parse_specs(["p99:+15%"]))
    comparison.exit_code()        # 0 no regression, 1 regression, 2 data error

Both folders are read by :func:`reports.load.load` (its schema rules, its errors as
:class:`CompareError`; samples.parquet and deliveries.parquet optional), and metrics are
read from its tables: ``run.cells``, ``run.repeats`` (the per-repeat figures),
``run.samples`` and ``run.deliveries`` (measured rows, as the report counts them).

Cells are matched by name. For each cell and each chosen metric the relative
change ``current / baseline - 1`` gets a 95 % confidence interval
(:mod:`reports.bootstrap`), and a **regression** is a change whose *whole*
interval lies beyond the metric's limit, on the worse side. Latency
percentiles are bootstrapped from the raw samples when both runs have them
(requests resampled within repeats resampled within each run); other metrics
from the per-repeat values (``scipy.stats.bootstrap``, at
least 3 repeats per run). With fewer repeats there is no confidence interval:
the row says ``insufficient repeats`` and only fails when even the most
favourable pairing of repeats is beyond the limit (with a single repeat per
run: when the change itself is). Count metrics (``lost``, ``errors``) are
absolute: the current run fails when its count is above the limit.

A limit is a spec ``METRIC[@CELL]:LIMIT``: ``p99:+15%`` (p99 latency may grow
by 15 %), ``throughput:-10%`` (may drop by 10 %), ``lost:0`` (no lost
delivery), ``p50@ws-websockets/websockets/persistent:+5%`` (one cell). Given
no spec, :data:`reports.gate.limits.DEFAULT_SPECS` apply. A metric or cell that does not exist,
or a spec that can never be checked, is an error (exit 2), never a silent
pass; so are differing results schemas, an incomplete run, and a different
machine (CPU model or count, Python version, pinning) or load (the scenario's
workload, load and duration), which ``allow_env_mismatch`` downgrades to a
warning.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reports import bootstrap
from reports.gate.change import compare_cell, is_realtime
from reports.gate.errors import CompareError
from reports.gate.limits import Threshold, suggest
from reports.gate.metrics import METRICS
from reports.gate.mismatch import environment_check
from reports.gate.result import Comparison
from reports.gate.runs import RunData


def compare_runs(
    base: RunData,
    cur: RunData,
    thresholds: list[Threshold],
    cells: Sequence[str] | None = None,
    allow_env_mismatch: bool = False,
    report_only: bool = False,
    seed: int = 0,
    level: float = bootstrap.LEVEL,
    n_resamples: int = bootstrap.N_RESAMPLES,
) -> Comparison:
    """Compare ``cur`` with ``base``; raises CompareError for a usage or data error."""
    bschema, cschema = base.summary.get("schema"), cur.summary.get("schema")
    if bschema != cschema:
        raise CompareError(
            f"incompatible results: the baseline ({base.path}) has schema {bschema}, the "
            f"current run ({cur.path}) has schema {cschema}; record a new baseline"
        )
    for run, label in ((base, "baseline"), (cur, "current run")):
        if not run.run.complete:
            raise CompareError(f"the {label} {run.path} is incomplete (it was interrupted)")

    bcells, ccells = base.cells, cur.cells
    common = [c for c in bcells if c in ccells]
    named = list(dict.fromkeys([*(cells or []), *(t.cell for t in thresholds if t.cell)]))
    for name in named:
        where = [
            label for label, d in (("baseline", bcells), ("current run", ccells)) if name not in d
        ]
        if where:
            raise CompareError(
                f"cell {name!r} is not in the {' or the '.join(where)}"
                f"{suggest(name, common)}; cells in both: {', '.join(common) or 'none'}"
            )
    comparison = Comparison(
        base,
        cur,
        thresholds,
        allow_env_mismatch=allow_env_mismatch,
        report_only=report_only,
        level=level,
    )
    if cells:
        selected = list(dict.fromkeys([*cells, *(t.cell for t in thresholds if t.cell)]))
    else:
        missing = [c for c in bcells if c not in ccells]
        if missing:
            raise CompareError(
                f"cell(s) of the baseline missing from the current run: {', '.join(missing)}; "
                "compare the others with --cell, or save a new baseline"
            )
        selected = common
        extra = [c for c in ccells if c not in bcells]
        if extra:
            comparison.notes.append(f"not in the baseline, not compared: {', '.join(extra)}")
    if not selected:
        raise CompareError("the runs have no cell in common")

    comparison.mismatches, notes = environment_check(base, cur)
    comparison.notes[:0] = notes
    rng = np.random.default_rng(seed)
    global_limits = {t.metric: t for t in thresholds if t.cell is None}
    cell_limits = {(t.cell, t.metric): t for t in thresholds if t.cell is not None}
    used: set[str] = set()
    for name in selected:
        realtime = is_realtime(bcells[name])
        limits = {m: t for m, t in global_limits.items()}
        limits.update({m: t for (c, m), t in cell_limits.items() if c == name})
        for metric_name in METRICS:
            threshold = limits.get(metric_name)
            if threshold is None:
                continue
            if threshold.info.realtime_only and not realtime:
                if threshold.cell is not None:
                    raise CompareError(
                        f"--max-regression {threshold.spec!r}: {metric_name} applies to "
                        f"real-time cells only; {name!r} is an echo cell"
                    )
                continue
            used.add(metric_name)
            comparison.rows.append(
                compare_cell(base, cur, name, threshold, rng, level, n_resamples)
            )
    for t in thresholds:
        if not t.default and t.metric not in used:
            raise CompareError(
                f"--max-regression {t.spec!r}: {t.metric} applies to real-time cells only "
                "and none of the compared cells is one"
            )
    if not comparison.rows:
        raise CompareError("nothing to compare: no limit applies to the compared cells")
    return comparison
