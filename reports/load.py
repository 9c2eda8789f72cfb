"""Read a results folder (``samples.parquet``, ``summary.json``, ``meta.json``) into a :class:`Run`.

Reports read files only, never a running test::

    import reports
    run = reports.load("results/20261129-015000-quick")
    run.cells[["cell", "p50_ms", "p99_ms"]]        # one row per cell (see reports.columns)
    run.samples                                     # one row per request (SAMPLE_SCHEMA + run_id)
    both = reports.load_many(["results/a", "results/b"])   # rows tagged by run_id

Anything wrong with the folder raises :class:`ResultsError` with a message naming the file
and folder, fit to show a user as is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loadgen.schema import (
    META_FILE,
    SAMPLE_COLUMNS,
    SAMPLE_SCHEMA,
    SAMPLES_FILE,
    SCHEMA_VERSION,
    SUMMARY_FILE,
    family,
)
from reports.columns import (
    CELL_COLUMNS,
    INT_COLUMNS,
    LATENCY_KEYS,
    REPEAT_COLUMNS,
    RESOURCE_COLUMNS,
    VOLUME_COLUMNS,
    latency_col,
    latency_columns,
)

_FLOAT_COLUMNS = frozenset(
    (
        "target_rate",
        *VOLUME_COLUMNS,
        *latency_columns(corrected=True),
        *latency_columns(corrected=False),
        *RESOURCE_COLUMNS,
    )
) - frozenset(INT_COLUMNS)


#: summary.json keys whose dict value stays one column (its keys vary from run to run).
KEEP_AS_DICT = frozenset({"errors_by_code"})


class ResultsError(Exception):
    """A results folder is missing, incomplete on disk, malformed or from a newer rtbench."""


@dataclass(eq=False, repr=False)
class Run:
    """One results folder, or several combined by :func:`load_many`.

    Attributes:
        samples: one row per request, columns ``loadgen.schema.SAMPLE_COLUMNS`` plus a
            categorical ``run_id`` first. Includes warmup and failed rows; filter with
            :func:`reports.stats.measured_samples`.
        cells: one row per cell from summary.json, columns ``reports.columns.CELL_COLUMNS``
            (``run_id``, ``cell``, ..., ``p50_ms``, ``p99_9_ms``, ``cpu_util_client``...).
        repeats: one row per (cell, repeat) from summary.json's ``per_repeat``, columns
            ``reports.columns.REPEAT_COLUMNS``.
        summary: summary.json as parsed (of the first run when combined).
        meta: meta.json as parsed (of the first run when combined).
        path: the results folder (the first one when combined).
        parts: the single runs a combined Run was made from; empty for a single run.
    """

    samples: pd.DataFrame
    cells: pd.DataFrame
    summary: dict[str, Any]
    meta: dict[str, Any]
    path: Path
    repeats: pd.DataFrame
    parts: tuple[Run, ...] = ()

    def __repr__(self) -> str:
        return (
            f"Run(run_id={self.run_id!r}, cells={len(self.cells)}, "
            f"samples={len(self.samples):,}, complete={self.complete}, path={str(self.path)!r})"
        )

    @property
    def runs(self) -> tuple[Run, ...]:
        """The single runs in this Run: ``(self,)`` unless combined by :func:`load_many`."""
        return self.parts or (self,)

    @property
    def run_ids(self) -> list[str]:
        """Run ids in load order."""
        return [_run_id(r.summary, r.meta, r.path) for r in self.runs]

    @property
    def run_id(self) -> str:
        """The run id, or the ids joined by ``", "`` for a combined Run."""
        return ", ".join(self.run_ids)

    @property
    def complete(self) -> bool:
        """True only if summary.json and meta.json of every run say ``"complete": true``."""
        return all(
            r.summary.get("complete") is True and r.meta.get("complete") is True for r in self.runs
        )

    @property
    def scenario_name(self) -> str:
        """Scenario name from meta.json (``scenario.name`` or ``scenario.scenario.name``),
        else summary.json ``scenario``; names of combined runs joined by ``", "``."""
        names = []
        for r in self.runs:
            scenario = r.meta.get("scenario")
            scenario = scenario if isinstance(scenario, Mapping) else {}
            settings = scenario.get("scenario")  # the scenario file's [scenario] table
            name = scenario.get("name") or (
                settings.get("name") if isinstance(settings, Mapping) else None
            )
            if not name and isinstance(r.summary.get("scenario"), str):
                name = r.summary["scenario"]
            names.append(str(name) if name else "unnamed scenario")
        return ", ".join(dict.fromkeys(names))


def load(path: str | PathLike[str]) -> Run:
    """Load one results folder: ``run = load("results/20261129-015000-quick")``.

    Raises:
        ResultsError: the folder or one of its files is missing or unreadable, a file's
            schema version is newer than this rtbench knows, or samples.parquet lacks
            columns of ``loadgen.schema.SAMPLE_SCHEMA``.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ResultsError(f"results folder {folder} does not exist or is not a folder")
    summary = _read_json(folder, SUMMARY_FILE)
    meta = _read_json(folder, META_FILE)
    cell_entries = summary.get("cells")
    if not isinstance(cell_entries, list) or not all(isinstance(c, dict) for c in cell_entries):
        raise ResultsError(f"{SUMMARY_FILE} in {folder} has no list of cells under 'cells'")
    run_id = _run_id(summary, meta, folder)
    samples = _read_samples(folder)
    samples.insert(0, "run_id", pd.Categorical.from_codes(np.zeros(len(samples), "int8"), [run_id]))
    cells = _frame([_flatten(c) for c in cell_entries], CELL_COLUMNS, run_id)
    repeat_rows = []
    for entry in cell_entries:
        for rep in entry.get("per_repeat") or []:
            row = {k: entry.get(k) for k in ("cell", "transport", "client", "conn_mode", "family")}
            row.update(_flatten(rep))
            repeat_rows.append(row)
    repeats = _frame(repeat_rows, REPEAT_COLUMNS, run_id)
    return Run(
        samples=samples, cells=cells, summary=summary, meta=meta, path=folder, repeats=repeats
    )


def load_many(paths: Iterable[str | PathLike[str]]) -> Run:
    """Load several results folders into one Run whose rows carry a ``run_id`` column.

    ``run = load_many(["results/a", "results/b"])``. ``summary``, ``meta`` and ``path`` are
    the first run's; every single run is in ``run.parts``. One path returns ``load(path)``.

    Raises:
        ResultsError: as :func:`load`, or if no folder is given or two share a run id.
    """
    runs = [load(p) for p in paths]
    if not runs:
        raise ResultsError("no results folders given")
    if len(runs) == 1:
        return runs[0]
    seen: dict[str, Path] = {}
    for r in runs:
        rid = r.run_id
        if rid in seen:
            raise ResultsError(f"run id {rid!r} appears twice: {seen[rid]} and {r.path}")
        seen[rid] = r.path
    samples = pd.concat([r.samples.drop(columns="run_id") for r in runs], ignore_index=True)
    codes = np.repeat(np.arange(len(runs), dtype="int16"), [len(r.samples) for r in runs])
    samples.insert(0, "run_id", pd.Categorical.from_codes(codes, list(seen)))
    cells = pd.concat([r.cells for r in runs], ignore_index=True)
    repeats = pd.concat([r.repeats for r in runs], ignore_index=True)
    first = runs[0]
    return Run(
        samples=samples,
        cells=cells,
        summary=first.summary,
        meta=first.meta,
        path=first.path,
        repeats=repeats,
        parts=tuple(runs),
    )


def _run_id(summary: Mapping[str, Any], meta: Mapping[str, Any], folder: Path) -> str:
    return str(summary.get("run_id") or meta.get("run_id") or folder.name)


def _read_json(folder: Path, name: str) -> dict[str, Any]:
    file = folder / name
    if not file.is_file():
        raise ResultsError(f"{name} is missing from results folder {folder}")
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"cannot read {name} in {folder}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ResultsError(f"{name} in {folder} is not a JSON object")
    _check_version(doc.get("schema"), name, folder)
    return doc


def _check_version(version: object, name: str, folder: Path) -> None:
    if isinstance(version, bool) or not isinstance(version, int):
        raise ResultsError(f"{name} in {folder} has no integer 'schema' version: {version!r}")
    if version > SCHEMA_VERSION:
        raise ResultsError(
            f"{name} in {folder} has schema version {version}, but this rtbench reads only up "
            f"to version {SCHEMA_VERSION}: upgrade rtbench to read these results"
        )
    if version < 1:
        raise ResultsError(f"{name} in {folder} has invalid schema version {version}")


def _read_samples(folder: Path) -> pd.DataFrame:
    file = folder / SAMPLES_FILE
    if not file.is_file():
        raise ResultsError(f"{SAMPLES_FILE} is missing from results folder {folder}")
    try:
        present = pq.read_schema(file).names
    except (OSError, pa.ArrowException) as exc:
        raise ResultsError(f"cannot read {SAMPLES_FILE} in {folder}: {exc}") from exc
    missing = [c for c in SAMPLE_COLUMNS if c not in present]
    if missing:
        raise ResultsError(
            f"{SAMPLES_FILE} in {folder} lacks columns {', '.join(missing)} "
            "(expected loadgen.schema.SAMPLE_SCHEMA)"
        )
    try:
        table = pq.read_table(file)
        for name in SAMPLE_COLUMNS:
            want = SAMPLE_SCHEMA.field(name).type
            i = table.schema.get_field_index(name)
            if table.schema.field(i).type != want:
                table = table.set_column(i, name, table.column(i).cast(want))
    except (OSError, pa.ArrowException) as exc:
        raise ResultsError(f"cannot read {SAMPLES_FILE} in {folder}: {exc}") from exc
    return table.to_pandas()


def _flatten(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One summary.json cell (or per_repeat entry) as a flat row; see reports.columns."""
    row: dict[str, Any] = {}
    for key, value in entry.items():
        if key == "per_repeat":
            continue
        if key in KEEP_AS_DICT:
            row[key] = value
        elif key in LATENCY_KEYS:
            for label, v in (value or {}).items():
                row[latency_col(label, corrected=LATENCY_KEYS[key])] = v
        elif isinstance(value, dict):
            for inner, v in value.items():
                row[f"{key}_{inner}".replace(".", "_")] = v
        else:
            row[key] = value
    return row


def _frame(rows: Sequence[dict[str, Any]], columns: Sequence[str], run_id: str) -> pd.DataFrame:
    """Rows as a DataFrame with ``columns`` first (all present), extras after, tidy dtypes."""
    df = pd.DataFrame(list(rows))
    for name in columns:
        if name not in df.columns:
            df[name] = pd.Series([None] * len(df), dtype=object)
    df = df[[*columns, *(c for c in df.columns if c not in columns)]].copy()
    df["run_id"] = run_id
    for name in df.columns:
        if name in _FLOAT_COLUMNS:
            df[name] = pd.to_numeric(df[name], errors="coerce").astype("float64")
        elif name in INT_COLUMNS:
            df[name] = pd.to_numeric(df[name], errors="coerce").round().astype("Int64")
    if "family" in df.columns and "transport" in df.columns:
        df["family"] = [
            f if isinstance(f, str) and f else (family(t) if isinstance(t, str) else None)
            for f, t in zip(df["family"], df["transport"], strict=True)
        ]
    if "failures" in df.columns:
        df["failures"] = [list(f) if isinstance(f, list) else [] for f in df["failures"]]
    return df
