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
no spec, :data:`DEFAULT_SPECS` apply. A metric or cell that does not exist,
or a spec that can never be checked, is an error (exit 2), never a silent
pass; so are differing results schemas, an incomplete run, and a different
machine (CPU model or count, Python version, pinning) or load (the scenario's
workload, load and duration), which ``allow_env_mismatch`` downgrades to a
warning.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports import bootstrap
from reports.columns import REQUEST_DELIVERY, delivery_col, latency_col
from reports.load import ResultsError, Run, load
from reports.stats import measured_deliveries, measured_samples

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_ERROR = 2

#: Limits used when no ``--max-regression`` is given.
DEFAULT_SPECS = ("p50:+20%", "p99:+30%", "throughput:-15%", "lost:0")

#: Sample kinds whose latency is a cell's request latency (echo; real-time actions).
LATENCY_KINDS = ("request", "send", "publish", "activity")

NS_PER_MS = 1e6


class CompareError(Exception):
    """A usage or data error: exit code 2. The message is fit to show as is."""


# --- metrics -------------------------------------------------------------------------------

#: A metric's value in a cell or repeat row (``run.cells``, ``run.repeats``): (row, real-time).
Getter = Callable[[pd.Series, bool], float | None]


def number(value: object) -> float | None:
    """A finite-or-infinite float of a numeric cell value; None for a missing one."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        return None
    result = float(value)
    return None if math.isnan(result) else result


def _column(name: str) -> Getter:
    return lambda entry, realtime: number(entry.get(name))


def _cost(side: str) -> Getter:
    """Per request on echo cells, per useful message on real-time cells."""
    echo, rt = _column(f"cpu_s_per_request_{side}"), _column(f"cpu_s_per_useful_message_{side}")
    return lambda entry, realtime: rt(entry, realtime) if realtime else echo(entry, realtime)


def _bytes(entry: pd.Series, realtime: bool) -> float | None:
    if realtime:
        return number(entry.get("bytes_per_useful_message"))
    sent = number(entry.get("bytes_per_request_sent"))
    received = number(entry.get("bytes_per_request_received"))
    return None if sent is None or received is None else sent + received


@dataclass(frozen=True)
class Metric:
    """Something ``compare`` can check. ``worse`` is +1 when higher is worse, -1 when lower."""

    name: str
    help: str
    unit: str
    worse: int
    get: Getter
    count: bool = False
    realtime_only: bool = False
    quantile: float | None = None
    raw: str | None = None  # "samples" or "deliveries": bootstrap the percentile from raw rows

    def value(self, entry: pd.Series, realtime: bool) -> float | None:
        return self.get(entry, realtime)


def _latency(label: str, q: float) -> Metric:
    return Metric(
        label,
        f"request latency {label} (ms)",
        "ms",
        +1,
        _column(latency_col(label)),
        quantile=q,
        raw="samples",
    )


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        _latency("p50", 0.50),
        _latency("p90", 0.90),
        _latency("p99", 0.99),
        _latency("p99.9", 0.999),
        Metric("throughput", "requests per second", "rps", -1, _column("throughput_rps")),
        Metric(
            "cpu_server",
            "server CPU per request (echo) or per useful message (real-time)",
            "cpu",
            +1,
            _cost("server"),
        ),
        Metric(
            "cpu_client",
            "load-generator CPU per request (echo) or per useful message (real-time)",
            "cpu",
            +1,
            _cost("client"),
        ),
        Metric(
            "bytes",
            "wire bytes per request (echo) or per useful message (real-time)",
            "bytes",
            +1,
            _bytes,
        ),
        Metric(
            "delivery_p50",
            "delivery latency p50 (ms), real-time cells",
            "ms",
            +1,
            _column(delivery_col("p50")),
            realtime_only=True,
            quantile=0.50,
            raw="deliveries",
        ),
        Metric(
            "delivery_p99",
            "delivery latency p99 (ms), real-time cells",
            "ms",
            +1,
            _column(delivery_col("p99")),
            realtime_only=True,
            quantile=0.99,
            raw="deliveries",
        ),
        Metric(
            "lost",
            "lost deliveries in the current run (absolute count)",
            "count",
            +1,
            _column("deliveries_lost"),
            count=True,
            realtime_only=True,
        ),
        Metric(
            "errors",
            "failed requests in the current run (absolute count)",
            "count",
            +1,
            _column("errors"),
            count=True,
        ),
    )
}


# --- limits --------------------------------------------------------------------------------

_LIMIT = re.compile(r"^([+-]?)(\d+(?:\.\d+)?)%$")


@dataclass(frozen=True)
class Threshold:
    """One limit: a relative change (``limit`` as a fraction) or an absolute count."""

    metric: str
    limit: float
    cell: str | None = None
    spec: str = ""
    default: bool = False

    @property
    def info(self) -> Metric:
        return METRICS[self.metric]

    def describe(self) -> str:
        if self.info.count:
            return f"≤ {self.limit:g}"
        sign = "+" if self.info.worse > 0 else "-"
        return f"{sign}{self.limit * 100:g}%"


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.5)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def parse_spec(text: str, default: bool = False) -> Threshold:
    """``METRIC[@CELL]:LIMIT`` as a :class:`Threshold`; raises CompareError if malformed."""
    known = ", ".join(METRICS)
    head, sep, limit_text = text.strip().rpartition(":")
    if not sep or not head or not limit_text:
        raise CompareError(
            f"--max-regression {text!r}: expected METRIC[@CELL]:LIMIT, e.g. 'p99:+15%', "
            f"'throughput:-10%' or 'lost:0' (metrics: {known})"
        )
    name, _, cell = head.partition("@")
    name = name.strip()
    if name not in METRICS:
        raise CompareError(
            f"--max-regression {text!r}: unknown metric {name!r}{_suggest(name, METRICS)}; "
            f"known metrics: {known}"
        )
    metric = METRICS[name]
    limit_text = limit_text.strip()
    if metric.count:
        if not re.fullmatch(r"\d+", limit_text):
            raise CompareError(
                f"--max-regression {text!r}: {name} is a count; give a whole number "
                f"of {name} allowed in the current run, e.g. '{name}:0'"
            )
        limit = float(limit_text)
    else:
        match = _LIMIT.match(limit_text)
        if not match:
            raise CompareError(
                f"--max-regression {text!r}: give the limit as a percentage, "
                f"e.g. '{name}:{'+' if metric.worse > 0 else '-'}15%'"
            )
        sign, number = match.groups()
        wrong = "-" if metric.worse > 0 else "+"
        if sign == wrong and float(number) != 0:
            direction = "grows" if metric.worse > 0 else "drops"
            raise CompareError(
                f"--max-regression {text!r}: {name} regresses when it {direction}; "
                f"write '{name}:{'+' if metric.worse > 0 else '-'}{number}%'"
            )
        limit = float(number) / 100.0
    return Threshold(name, limit, cell.strip() or None, text.strip(), default)


def parse_specs(specs: Sequence[str] | None) -> list[Threshold]:
    """The given specs, or :data:`DEFAULT_SPECS` when there are none."""
    if not specs:
        return [parse_spec(s, default=True) for s in DEFAULT_SPECS]
    parsed = [parse_spec(s) for s in specs]
    seen: dict[tuple[str, str | None], str] = {}
    for t in parsed:
        key = (t.metric, t.cell)
        if key in seen:
            raise CompareError(
                f"--max-regression {t.spec!r} and {seen[key]!r} set the same limit twice"
            )
        seen[key] = t.spec
    return parsed


# --- runs ----------------------------------------------------------------------------------


@dataclass(eq=False)
class RunData:
    """A results folder (or baseline) as ``compare`` needs it: a :class:`reports.load.Run`
    and its measured latencies grouped by cell and repeat."""

    run: Run

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def summary(self) -> dict[str, Any]:
        return self.run.summary

    @property
    def meta(self) -> dict[str, Any]:
        return self.run.meta

    @cached_property
    def cells(self) -> dict[str, pd.Series]:
        """Each cell's row of ``run.cells``, by name, in the run's order."""
        return {str(row["cell"]): row for _, row in self.run.cells.iterrows()}

    @cached_property
    def per_repeat(self) -> dict[str, list[pd.Series]]:
        """Each cell's rows of ``run.repeats`` (its successful repeats), by name."""
        out: dict[str, list[pd.Series]] = {}
        for _, row in self.run.repeats.iterrows():
            out.setdefault(str(row["cell"]), []).append(row)
        return out

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def commit(self) -> str | None:
        git = (self.meta.get("environment") or {}).get("git_commit")
        return str(git)[:12] if git else None

    @property
    def repeats(self) -> int | None:
        return ((self.meta.get("scenario") or {}).get("scenario") or {}).get("repeats")

    @cached_property
    def _samples(self) -> dict[str, dict[int, np.ndarray]]:
        rows = measured_samples(self.run.samples, kind=None)
        return _group(rows[rows["kind"].isin(LATENCY_KINDS)])

    @cached_property
    def _deliveries(self) -> dict[str, dict[int, np.ndarray]]:
        return _group(measured_deliveries(self.run.deliveries))

    def raw_groups(self, source: str, cell: str) -> list[np.ndarray] | None:
        """Per-repeat measured latencies (ns) of ``cell``'s successful repeats, if on disk."""
        data = self._samples if source == "samples" else self._deliveries
        if cell not in data:
            return None
        numbers = (number(r.get("repeat")) for r in self.per_repeat.get(cell, []))
        ok = [int(n) for n in numbers if n is not None]
        groups = [data[cell][r] for r in ok if r in data[cell] and len(data[cell][r])]
        return groups or None


def _group(rows: pd.DataFrame) -> dict[str, dict[int, np.ndarray]]:
    """``{cell: {repeat: latencies in ns}}`` of measured samples or deliveries."""
    out: dict[str, dict[int, np.ndarray]] = {}
    df = rows[["cell", "repeat", "latency_ns"]]
    for (cell, repeat), group in df.groupby(["cell", "repeat"], sort=False, observed=True):
        out.setdefault(str(cell), {})[int(repeat)] = group["latency_ns"].to_numpy(dtype=float)
    return out


def load_run(path: Path) -> RunData:
    """A results folder read by :func:`reports.load.load`; its raw files are optional
    (a baseline keeps them only when small)."""
    try:
        return RunData(load(path, raw="optional"))
    except ResultsError as exc:
        raise CompareError(str(exc)) from None


# --- environment ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    """A difference between the runs' machines or loads that makes them incomparable."""

    what: str
    baseline: Any
    current: Any


def _minor(version: Any) -> str:
    return ".".join(str(version).split(".")[:2])


#: Scenario settings that change what is measured (name, repeats, timeouts do not).
_SCENARIO_KEYS = ("workload", "duration_s", "payload_bytes", "client_loop")


def environment_check(base: RunData, cur: RunData) -> tuple[list[Mismatch], list[str]]:
    """Mismatches (exit 2 unless allowed) and notes (shown only) between two runs' meta.json."""
    mismatches: list[Mismatch] = []
    notes: list[str] = []
    be, ce = base.meta.get("environment") or {}, cur.meta.get("environment") or {}

    def differ(what: str, b: Any, c: Any) -> None:
        if b != c:
            mismatches.append(Mismatch(what, b, c))

    differ("CPU model", be.get("cpu_model"), ce.get("cpu_model"))
    differ("CPU count", be.get("cpu_count"), ce.get("cpu_count"))
    differ("Python version", _minor(be.get("python")), _minor(ce.get("python")))
    differ(
        "Python implementation", be.get("python_implementation"), ce.get("python_implementation")
    )
    differ(
        "pinning",
        (base.meta.get("pinning") or {}).get("placement"),
        (cur.meta.get("pinning") or {}).get("placement"),
    )

    def settings(label: str, b: dict[str, Any], c: dict[str, Any]) -> None:
        for key in _SCENARIO_KEYS:
            differ(
                f"{label} {key}",
                (b.get("scenario") or {}).get(key),
                (c.get("scenario") or {}).get(key),
            )
        # Runs from before client_processes existed ran one load-generator process.
        differ(
            f"{label} client_processes",
            (b.get("scenario") or {}).get("client_processes", 1),
            (c.get("scenario") or {}).get("client_processes", 1),
        )
        differ(f"{label} [load]", b.get("load"), c.get("load"))
        differ(f"{label} [realtime]", b.get("realtime"), c.get("realtime"))

    bs, cs = base.meta.get("scenario") or {}, cur.meta.get("scenario") or {}
    settings("scenario", bs, cs)
    # A [[parts]] scenario keeps each part's workload, load and real-time settings apart.
    bparts, cparts = base.meta.get("parts") or {}, cur.meta.get("parts") or {}
    for name in sorted(set(bparts) | set(cparts)):
        b, c = bparts.get(name) or {}, cparts.get(name) or {}
        if b and c:
            settings(f"part {name!r}", b, c)
        else:
            differ(f"part {name!r}", "present" if b else "absent", "present" if c else "absent")

    if be.get("python") != ce.get("python") and _minor(be.get("python")) == _minor(
        ce.get("python")
    ):
        notes.append(f"Python {be.get('python')} → {ce.get('python')}")
    bp, cp = be.get("packages") or {}, ce.get("packages") or {}
    changed = [
        f"{k} {bp.get(k)} → {cp.get(k)}"
        for k in sorted(set(bp) | set(cp))
        if bp.get(k) != cp.get(k)
    ]
    if changed:
        notes.append("packages: " + ", ".join(changed))
    for key, label in (("hostname", "host"), ("kernel", "kernel")):
        if be.get(key) != ce.get(key):
            notes.append(f"{label} {be.get(key)} → {ce.get(key)}")
    delay = ((cs.get("server") or {}).get("delay_ms")) or 0
    if delay:
        notes.append(
            f"the current run slowed every echo by {delay} ms (server delay_ms, test only)"
        )
    bdelay = ((bs.get("server") or {}).get("delay_ms")) or 0
    if bdelay:
        notes.append(f"the baseline slowed every echo by {bdelay} ms (server delay_ms, test only)")
    if base.repeats != cur.repeats:
        notes.append(f"repeats {base.repeats} → {cur.repeats}")
    for run, label in ((base, "baseline"), (cur, "current")):
        if (run.meta.get("environment") or {}).get("git_dirty"):
            notes.append(f"the {label} run was made from a git tree with uncommitted changes")
    return mismatches, notes


# --- comparison ----------------------------------------------------------------------------

#: Row statuses. Only "regression" fails the gate; "error" is a data error (exit 2).
REGRESSION, UNCLEAR, OK, IMPROVED, INSUFFICIENT, ERROR = (
    "regression",
    "unclear",
    "ok",
    "improved",
    "insufficient repeats",
    "error",
)


def _finite(value: float | None) -> float | None:
    """None for an unbounded end of an interval (JSON has no infinity)."""
    return value if value is not None and math.isfinite(value) else None


@dataclass
class Row:
    """One cell and metric."""

    cell: str
    threshold: Threshold
    baseline: float | None = None
    current: float | None = None
    change: float | None = None
    low: float | None = None
    high: float | None = None
    method: str = ""
    n_baseline: int = 0
    n_current: int = 0
    status: str = OK
    note: str = ""

    @property
    def metric(self) -> str:
        return self.threshold.metric

    def as_dict(self) -> dict[str, Any]:
        m = self.threshold.info
        return {
            "cell": self.cell,
            "metric": self.metric,
            "unit": m.unit,
            "baseline": self.baseline,
            "current": self.current,
            "change": _finite(self.change),
            "ci_low": _finite(self.low),
            "ci_high": _finite(self.high),
            "limit": self.threshold.limit,
            "limit_text": self.threshold.describe(),
            "limit_spec": self.threshold.spec,
            "method": self.method,
            "repeats_baseline": self.n_baseline,
            "repeats_current": self.n_current,
            "status": self.status,
            "note": self.note,
        }


@dataclass
class Comparison:
    """Everything ``rtbench compare`` found; see :meth:`exit_code`."""

    baseline: RunData
    current: RunData
    thresholds: list[Threshold]
    rows: list[Row] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    allow_env_mismatch: bool = False
    report_only: bool = False
    level: float = bootstrap.LEVEL

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.status == REGRESSION]

    @property
    def errors(self) -> list[Row]:
        return [r for r in self.rows if r.status == ERROR]

    @property
    def blocked_by_env(self) -> bool:
        return bool(self.mismatches) and not self.allow_env_mismatch

    def exit_code(self) -> int:
        if self.errors or self.blocked_by_env:
            return EXIT_ERROR
        if self.regressions and not self.report_only:
            return EXIT_REGRESSION
        return EXIT_OK

    def verdict(self) -> str:
        n = len(self.rows)
        if self.blocked_by_env:
            return (
                "error: the runs are not comparable (different machine or load); "
                "see the mismatches, or pass --allow-env-mismatch"
            )
        if self.errors:
            return f"error: {len(self.errors)} of {n} checks could not be made"
        if self.regressions:
            cells = len({r.cell for r in self.regressions})
            text = f"regression: {len(self.regressions)} of {n} checks in {cells} cell(s)"
            return text + (" (report only: exit 0)" if self.report_only else "")
        return f"no regression in {n} checks"

    def as_dict(self) -> dict[str, Any]:
        def run(r: RunData) -> dict[str, Any]:
            return {"path": str(r.path), "run_id": r.run_id, "commit": r.commit}

        return {
            "compare_schema": 1,
            "baseline": run(self.baseline),
            "current": run(self.current),
            "confidence_level": self.level,
            "limits": [
                {"metric": t.metric, "cell": t.cell, "limit": t.limit, "spec": t.spec}
                for t in self.thresholds
            ],
            "defaults_used": all(t.default for t in self.thresholds),
            "mismatches": [
                {"what": m.what, "baseline": m.baseline, "current": m.current}
                for m in self.mismatches
            ],
            "allow_env_mismatch": self.allow_env_mismatch,
            "report_only": self.report_only,
            "notes": self.notes,
            "rows": [r.as_dict() for r in self.rows],
            "regressions": len(self.regressions),
            "verdict": self.verdict(),
            "exit_code": self.exit_code(),
        }


def _is_realtime(cell: pd.Series) -> bool:
    # reports.load infers a missing ``delivery``: "request" only for echo cells.
    return cell.get("delivery") != REQUEST_DELIVERY


def _repeat_values(metric: Metric, run: RunData, name: str) -> list[float]:
    realtime = _is_realtime(run.cells[name])
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


def _compare_cell(
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
    row.baseline = metric.value(bcell, _is_realtime(bcell))
    row.current = metric.value(ccell, _is_realtime(ccell))
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
                f"{_suggest(name, common)}; cells in both: {', '.join(common) or 'none'}"
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
        realtime = _is_realtime(bcells[name])
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
                _compare_cell(base, cur, name, threshold, rng, level, n_resamples)
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
