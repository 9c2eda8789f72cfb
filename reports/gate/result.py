"""What a comparison found: one :class:`Row` per cell and metric with its status, and the
:class:`Comparison` that holds them, its verdict and its exit code.

::

    comparison.exit_code()        # 0 no regression, 1 regression, 2 data error
    comparison.as_dict()          # compare.json
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from reports import bootstrap
from reports.gate.errors import EXIT_ERROR, EXIT_OK, EXIT_REGRESSION
from reports.gate.limits import Threshold
from reports.gate.mismatch import Mismatch
from reports.gate.runs import RunData

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
