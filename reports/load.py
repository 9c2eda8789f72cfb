"""Read a results folder (``samples.parquet``, ``deliveries.parquet``, ``summary.json``,
``meta.json``) into a :class:`Run`.

Reports read files only, never a running test::

    import reports
    run = reports.load("results/20261129-015000-quick")
    run.cells[["cell", "p50_ms", "p99_ms"]]        # one row per cell (see reports.columns)
    run.samples                   # one row per request (SAMPLE_SCHEMA + run_id)
    run.deliveries                # one row per delivery (DELIVERY_SCHEMA + run_id)
    run.stalls                    # one row per server or load generator stall (STALL_SCHEMA)
    both = reports.load_many(["results/a", "results/b"])   # rows tagged by run_id

A run of a multi-part scenario (``[[parts]]``) holds several workloads; its cells carry
their part's name in ``run.cells["part"]`` (``None`` in ordinary runs)::

    part_names(run)                       # ["echo", "messaging"]; [] for ordinary runs
    live = select_part(run, "messaging")  # a Run with only that part's rows
    cell_scenario(run.meta, "messaging")  # that part's settings (meta.json "parts")
    cell_scenario(run.meta, None)         # an ordinary run's: meta.json "scenario"

Anything wrong with the folder raises :class:`ResultsError` with a message naming the file
and folder, fit to show a user as is. Schema versions 1 (echo only; samples without
``items``) and 2 (real-time workloads, deliveries.parquet) are read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loadgen.schema import (
    DELIVERIES_FILE,
    DELIVERY_COLUMNS,
    DELIVERY_SCHEMA,
    META_FILE,
    SAMPLE_COLUMNS,
    SAMPLE_SCHEMA,
    SAMPLES_FILE,
    SCHEMA_VERSION,
    STALL_SCHEMA,
    STALLS_FILE,
    SUMMARY_FILE,
)
from reports.columns import (
    CELL_COLUMNS,
    IDENTITY_COLUMNS,
    REPEAT_COLUMNS,
)
from reports.flatten import cell_frame, flatten, identity_defaults
from reports.parquet import read_frame

#: The oldest results schema this rtbench reads (1: echo only, samples without ``items``).
OLDEST_SCHEMA = 1


#: Which raw files :func:`load` reads: see its ``raw`` argument.
RawFiles = Literal["required", "optional", "none"]


class ResultsError(Exception):
    """A results folder is missing, incomplete on disk, malformed or from a newer rtbench."""


def empty_deliveries() -> pd.DataFrame:
    """A deliveries DataFrame without rows: ``run_id`` then ``DELIVERY_COLUMNS``, typed."""
    frame = DELIVERY_SCHEMA.empty_table().to_pandas()
    frame.insert(0, "run_id", pd.Categorical([], categories=[]))
    return frame


def empty_stalls() -> pd.DataFrame:
    """A stalls DataFrame without rows: ``run_id`` then ``STALL_COLUMNS``, typed."""
    frame = STALL_SCHEMA.empty_table().to_pandas()
    frame.insert(0, "run_id", pd.Categorical([], categories=[]))
    return frame


@dataclass(eq=False, repr=False)
class Run:
    """One results folder, or several combined by :func:`load_many`.

    Attributes:
        samples: one row per request, columns ``loadgen.schema.SAMPLE_COLUMNS`` plus a
            categorical ``run_id`` first. Includes warmup and failed rows; filter with
            :func:`reports.stats.measured_samples`. ``kind`` is ``request`` (echo),
            ``connect``, or a real-time operation (``poll``, ``send``...).
        cells: one row per cell from summary.json, columns ``reports.columns.CELL_COLUMNS``
            (``run_id``, ``cell``, ..., ``p50_ms``, ``p99_9_ms``, ``cpu_util_client``...).
        repeats: one row per (cell, repeat) from summary.json's ``per_repeat``, columns
            ``reports.columns.REPEAT_COLUMNS``.
        deliveries: one row per item delivered to a user in real-time workloads, columns
            ``loadgen.schema.DELIVERY_COLUMNS`` plus a categorical ``run_id`` first; no rows
            (same columns) when the folder has no deliveries.parquet, as for echo runs.
            Includes warmup, deferred and duplicate rows; filter with
            :func:`reports.stats.measured_deliveries`.
        stalls: one row per collection or late event-loop turn of 5 ms or more of a
            real-time repeat's server or load generator, columns
            ``loadgen.schema.STALL_COLUMNS`` plus a categorical ``run_id`` first; no rows
            when the folder has no stalls.parquet (echo runs, older runs).
        summary: summary.json as parsed (of the first run when combined).
        meta: meta.json as parsed (of the first run when combined).
        path: the results folder (the first one when combined).
        parts: the single runs a combined Run was made from; empty for a single run.
        part_name: the ``[[parts]]`` entry this Run is restricted to (see
            :func:`select_part`); ``None`` for a whole run.
    """

    samples: pd.DataFrame
    cells: pd.DataFrame
    summary: dict[str, Any]
    meta: dict[str, Any]
    path: Path
    repeats: pd.DataFrame
    deliveries: pd.DataFrame = field(default_factory=empty_deliveries)
    stalls: pd.DataFrame = field(default_factory=empty_stalls)
    parts: tuple[Run, ...] = ()
    part_name: str | None = None

    def __repr__(self) -> str:
        part = f", part={self.part_name!r}" if self.part_name else ""
        return (
            f"Run(run_id={self.run_id!r}{part}, cells={len(self.cells)}, "
            f"samples={len(self.samples):,}, deliveries={len(self.deliveries):,}, "
            f"complete={self.complete}, path={str(self.path)!r})"
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


def cell_scenario(meta: Mapping[str, Any], part: object = None) -> dict[str, Any]:
    """The single-workload scenario a cell ran under, as meta.json records it.

    ``cell_scenario(run.meta, row["part"])``: for a cell of a ``[[parts]]`` entry, the
    part merged with the shared tables (``meta["parts"][part]``); otherwise, or when
    meta.json has no such part (older results), the scenario itself (``meta["scenario"]``).
    Both have the keys ``scenario``, ``load``, ``realtime``, ``cells``...; ``{}`` when
    meta.json has neither.
    """
    parts = meta.get("parts")
    if isinstance(part, str) and part and isinstance(parts, Mapping):
        chosen = parts.get(part)
        if isinstance(chosen, dict):
            return chosen
    scenario = meta.get("scenario")
    return scenario if isinstance(scenario, dict) else {}


def scenario_label(run: Run, part: object = None) -> str:
    """``run.scenario_name``, followed by `` · PART`` for a part: ``"claim-matrix ·
    messaging"``. ``part`` defaults to ``run.part_name``."""
    part = run.part_name if part is None else part
    if isinstance(part, str) and part:
        return f"{run.scenario_name} · {part}"
    return run.scenario_name


def part_names(run: Run) -> list[str]:
    """The ``[[parts]]`` entries in ``run.cells``, in cell order; ``[]`` for ordinary runs."""
    if "part" not in run.cells.columns:
        return []
    names = (p for p in run.cells["part"] if isinstance(p, str) and p)
    return list(dict.fromkeys(names))


def select_part(run: Run, part: str) -> Run:
    """One part of a single multi-part run: ``select_part(run, "messaging")``.

    The returned Run has only the cells, repeats, samples and deliveries of that part's
    cells, ``part_name`` set, and the same ``summary``, ``meta`` and ``path``.

    Raises:
        ValueError: ``run`` combines several runs (pick one of ``run.runs`` first), or
            has no cell of that part.
    """
    if len(run.runs) > 1:
        raise ValueError("select_part takes a single run: pick one of run.runs first")
    if part not in part_names(run):
        known = ", ".join(part_names(run)) or "none"
        raise ValueError(f"run {run.run_id} has no part {part!r} (parts: {known})")
    cells = run.cells[run.cells["part"] == part].reset_index(drop=True)
    ids = set(cells["cell"].astype(str))

    def rows(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["cell"].astype(str).isin(ids)].reset_index(drop=True)

    return Run(
        samples=rows(run.samples),
        cells=cells,
        summary=run.summary,
        meta=run.meta,
        path=run.path,
        repeats=rows(run.repeats),
        deliveries=rows(run.deliveries),
        stalls=rows(run.stalls),
        part_name=part,
    )


def load(
    path: str | PathLike[str], *, raw: RawFiles = "required", report_columns: bool = False
) -> Run:
    """Load one results folder: ``run = load("results/20261129-015000-quick")``.

    deliveries.parquet is optional (echo runs have none): without it ``run.deliveries`` has
    no rows. Schema 1 samples (no ``items`` column) get ``items`` 1 for successful echo
    requests and 0 otherwise.

    ``raw`` says what to do with the raw files: ``"required"`` reads them and samples.parquet
    must exist; ``"optional"`` reads those present (a saved baseline may lack them) and
    leaves the others without rows; ``"none"`` reads only summary.json and meta.json
    (``run.samples`` and ``run.deliveries`` have no rows).

    ``report_columns=True`` keeps only the raw columns ``rtbench report`` reads
    (:data:`REPORT_SAMPLE_COLUMNS`, :data:`REPORT_DELIVERY_COLUMNS`, plus ``run_id``): a
    run of millions of rows then fits in far less memory. Every column is still checked.

    Raises:
        ResultsError: the folder or one of its files is missing or unreadable, a file's
            schema version is newer than this rtbench knows, or samples.parquet (or
            deliveries.parquet) lacks columns of ``loadgen.schema.SAMPLE_SCHEMA`` (or
            ``DELIVERY_SCHEMA``).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ResultsError(f"results folder {folder} does not exist or is not a folder")
    summary = _read_json(folder, SUMMARY_FILE)
    meta = _read_json(folder, META_FILE)
    cell_entries = summary.get("cells")
    if not isinstance(cell_entries, list) or not all(
        isinstance(c, dict) and "cell" in c for c in cell_entries
    ):
        raise ResultsError(f"{SUMMARY_FILE} in {folder} has no list of cells under 'cells'")
    run_id = _run_id(summary, meta, folder)
    if raw == "none" or (raw == "optional" and not (folder / SAMPLES_FILE).exists()):
        samples = SAMPLE_SCHEMA.empty_table().select(list(SAMPLE_COLUMNS)).to_pandas()
    else:
        keep = REPORT_SAMPLE_COLUMNS if report_columns else SAMPLE_COLUMNS
        samples = _read_samples(folder, version=summary["schema"], keep=keep)
    _insert_run_id(samples, run_id)
    if raw == "none":
        deliveries = empty_deliveries().drop(columns="run_id")
    else:
        deliveries = _read_deliveries(
            folder, REPORT_DELIVERY_COLUMNS if report_columns else DELIVERY_COLUMNS
        )
    _insert_run_id(deliveries, run_id)
    stalls = _read_stalls(folder) if raw != "none" else empty_stalls().drop(columns="run_id")
    _insert_run_id(stalls, run_id)
    cell_rows = [identity_defaults(c) | flatten(c) for c in cell_entries]
    cells = cell_frame(cell_rows, CELL_COLUMNS, run_id)
    repeat_rows = []
    for entry, cell_row in zip(cell_entries, cell_rows, strict=True):
        for rep in entry.get("per_repeat") or []:
            row = {k: cell_row.get(k) for k in _REPEAT_IDENTITY}
            row.update(flatten(rep))
            repeat_rows.append(row)
    repeats = cell_frame(repeat_rows, REPEAT_COLUMNS, run_id)
    return Run(
        samples=samples,
        cells=cells,
        summary=summary,
        meta=meta,
        path=folder,
        repeats=repeats,
        deliveries=deliveries,
        stalls=stalls,
    )


#: The raw columns ``rtbench report`` reads (``load(..., report_columns=True)``).
REPORT_SAMPLE_COLUMNS: tuple[str, ...] = (
    *SAMPLE_COLUMNS[: SAMPLE_COLUMNS.index("repeat") + 1],
    "kind",
    "intended_ns",
    "latency_ns",
    "latency_uncorrected_ns",
    "bytes_sent",
    "bytes_received",
    "ok",
    "warmup",
)
REPORT_DELIVERY_COLUMNS: tuple[str, ...] = (
    *DELIVERY_COLUMNS[: DELIVERY_COLUMNS.index("repeat") + 1],
    "origin_ns",
    "latency_ns",
    "via",
    "duplicate",
    "warmup",
    "deferred",
    "bytes",
)

#: What names a cell (``cell`` to ``workload``), copied from its summary row to each repeat.
_REPEAT_IDENTITY = IDENTITY_COLUMNS[
    IDENTITY_COLUMNS.index("cell") : IDENTITY_COLUMNS.index("workload") + 1
]


def load_many(paths: Iterable[str | PathLike[str]], *, report_columns: bool = False) -> Run:
    """Load several results folders into one Run whose rows carry a ``run_id`` column.

    ``run = load_many(["results/a", "results/b"])``. ``summary``, ``meta`` and ``path`` are
    the first run's; every single run is in ``run.parts``. One path returns ``load(path)``.

    Raises:
        ResultsError: as :func:`load`, or if no folder is given or two share a run id.
    """
    runs = [load(p, report_columns=report_columns) for p in paths]
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
    samples = _concat_tagged([r.samples for r in runs], list(seen))
    deliveries = _concat_tagged([r.deliveries for r in runs], list(seen))
    stalls = _concat_tagged([r.stalls for r in runs], list(seen))
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
        deliveries=deliveries,
        stalls=stalls,
        parts=tuple(runs),
    )


def _insert_run_id(frame: pd.DataFrame, run_id: str) -> None:
    """Put a categorical ``run_id`` column first (replacing one already there)."""
    if "run_id" in frame.columns:
        frame.drop(columns="run_id", inplace=True)
    frame.insert(0, "run_id", pd.Categorical.from_codes(np.zeros(len(frame), "int8"), [run_id]))


def _concat_tagged(frames: Sequence[pd.DataFrame], run_ids: list[str]) -> pd.DataFrame:
    """Frames of single runs stacked, with one categorical ``run_id`` over all of them."""
    out = pd.concat([f.drop(columns="run_id") for f in frames], ignore_index=True)
    codes = np.repeat(np.arange(len(frames), dtype="int16"), [len(f) for f in frames])
    out.insert(0, "run_id", pd.Categorical.from_codes(codes, run_ids))
    return out


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
    if version < OLDEST_SCHEMA:
        raise ResultsError(f"{name} in {folder} has invalid schema version {version}")


def _read_samples(folder: Path, *, version: int, keep: Sequence[str]) -> pd.DataFrame:
    file = folder / SAMPLES_FILE
    if not file.is_file():
        raise ResultsError(f"{SAMPLES_FILE} is missing from results folder {folder}")
    optional = ("items",) if version < 2 else ()
    read = [c for c in SAMPLE_COLUMNS if c in keep or c in ("ok", "kind")]

    def schema_1_items(table: pa.Table) -> pa.Table:
        # schema 1: echo replies carry one item each
        if "items" not in keep or "items" in table.column_names:
            return table
        ok = pc.fill_null(table.column("ok"), False)
        useful = pc.and_(ok, pc.equal(pc.fill_null(table.column("kind"), ""), "request"))
        return table.append_column("items", pc.cast(useful, pa.int32()))

    return _read_table(
        file, folder, SAMPLE_SCHEMA, "SAMPLE_SCHEMA", optional, keep, read, schema_1_items
    )


def _read_deliveries(folder: Path, keep: Sequence[str]) -> pd.DataFrame:
    file = folder / DELIVERIES_FILE
    if not file.exists():
        return empty_deliveries().drop(columns="run_id")
    return _read_table(file, folder, DELIVERY_SCHEMA, "DELIVERY_SCHEMA", (), keep, keep)


def _read_stalls(folder: Path) -> pd.DataFrame:
    file = folder / STALLS_FILE
    if not file.exists():
        return empty_stalls().drop(columns="run_id")
    columns = list(STALL_SCHEMA.names)
    return _read_table(file, folder, STALL_SCHEMA, "STALL_SCHEMA", (), columns, columns)


def _read_table(
    file: Path,
    folder: Path,
    schema: pa.Schema,
    schema_name: str,
    optional: Sequence[str],
    keep: Sequence[str],
    read: Sequence[str],
    add: Callable[[pa.Table], pa.Table] = lambda table: table,
) -> pd.DataFrame:
    """The ``keep`` columns of a parquet file as a DataFrame (string columns categorical):
    its ``read`` columns, each cast to its type in ``schema``, then ``add`` of each row
    group (columns derived from them); every column of ``schema`` but ``optional`` must be
    in the file."""
    name = file.name
    try:
        present = pq.read_schema(file).names
    except (OSError, pa.ArrowException) as exc:
        raise ResultsError(f"cannot read {name} in {folder}: {exc}") from exc
    missing = [c for c in schema.names if c not in present and c not in optional]
    if missing:
        raise ResultsError(
            f"{name} in {folder} lacks columns {', '.join(missing)} "
            f"(expected loadgen.schema.{schema_name})"
        )

    def typed(table: pa.Table) -> pa.Table:
        for col in schema.names:
            i = table.schema.get_field_index(col)
            if i < 0:
                continue
            want = schema.field(col).type
            have = table.schema.field(i).type
            if pa.types.is_dictionary(have) and have.value_type == want:
                continue
            if have != want:
                table = table.set_column(i, col, table.column(i).cast(want))
        return add(table)

    strings = [c for c in keep if c in schema.names and schema.field(c).type == pa.string()]
    try:
        return read_frame(
            file, columns=keep, read=read, strings=strings, convert=typed, present=present
        )
    except (OSError, pa.ArrowException) as exc:
        raise ResultsError(f"cannot read {name} in {folder}: {exc}") from exc
