"""A results folder (or baseline) as ``compare`` reads it: the loaded run and its measured
latencies grouped by cell and repeat.

::

    run = load_run(path)                  # CompareError when it cannot be read
    run.raw_groups("samples", cell)       # per-repeat latencies (ns), or None
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports.gate.errors import CompareError
from reports.gate.metrics import number
from reports.load import ResultsError, Run, load
from reports.stats import measured_deliveries, measured_samples

#: Sample kinds whose latency is a cell's request latency (echo; real-time actions).
LATENCY_KINDS = ("request", "send", "publish", "activity")


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
        rows = measured_deliveries(self.run.deliveries, columns=["cell", "repeat", "latency_ns"])
        return _group(rows)

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
