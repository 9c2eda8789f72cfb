"""Baselines: results folders kept in the repository for ``rtbench compare``.

A baseline is a trimmed copy of a results folder under ``baselines/NAME/``
(relative to the current directory, i.e. the repository root): its
``summary.json`` and ``meta.json``, plus ``samples.parquet`` and
``deliveries.parquet`` when each is under :data:`MAX_RAW_BYTES` (the raw
samples let ``compare`` bootstrap latency percentiles request by request), and
a ``baseline.json`` saying where it came from::

    saved = save_baseline(Path("results/20261129-020000-ci"), name="ci")
    path = resolve_run("ci")          # baselines/ci, or any results folder given as a path

The results folder is read by :func:`reports.load.load` (summary.json and meta.json only);
its files are then copied as they are.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen.schema import DELIVERIES_FILE, META_FILE, SAMPLES_FILE, SCHEMA_VERSION, SUMMARY_FILE
from reports.load import ResultsError, load

#: Where baselines live, relative to the repository root (the current directory).
BASELINES_DIR = Path("baselines")

#: Raw sample files at least this large are left out of a baseline.
MAX_RAW_BYTES = 20 * 2**20

BASELINE_INFO = "baseline.json"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


class BaselineError(ValueError):
    """A baseline that cannot be saved or found; the message says why."""


@dataclass
class SavedBaseline:
    """What :func:`save_baseline` wrote."""

    path: Path
    copied: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def check_name(name: str) -> str:
    """``name`` if it is usable as a folder name (letters, digits, ``. _ -``)."""
    if not _NAME.match(name):
        raise BaselineError(
            f"baseline name {name!r}: use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit, at most 80 characters)"
        )
    return name


def save_baseline(
    results: Path,
    name: str | None = None,
    root: Path = BASELINES_DIR,
    force: bool = False,
    max_raw_bytes: int = MAX_RAW_BYTES,
) -> SavedBaseline:
    """Copy a complete results folder's summary, meta (and small raw files) to ``root/NAME``.

    ``name`` defaults to the run's scenario name. An existing baseline is only
    replaced with ``force``.
    """
    results = Path(results)
    try:
        run = load(results, raw="none")
    except ResultsError as exc:
        raise BaselineError(str(exc)) from None
    summary = run.summary
    schema = summary.get("schema")
    if schema != SCHEMA_VERSION:
        raise BaselineError(
            f"{results} has results schema {schema!r}; this rtbench writes {SCHEMA_VERSION}"
        )
    if not run.complete:
        raise BaselineError(f"{results} is an incomplete run; a baseline must be complete")
    cells = summary.get("cells") or []
    if not cells:
        raise BaselineError(f"{results} has no cells")
    empty = [c.get("cell") for c in cells if not c.get("repeats_ok")]
    if empty:
        raise BaselineError(f"{results}: no successful repeat for cell(s) {', '.join(empty)}")
    name = check_name(name or str(summary.get("scenario") or results.name))
    dest = Path(root) / name
    if dest.exists() and not force:
        raise BaselineError(f"baseline {dest} already exists; pass --force to replace it")
    saved = SavedBaseline(dest)
    saved.warnings = [
        f"cell {c['cell']} had errors or failed repeats (status {c.get('status')!r})"
        for c in cells
        if c.get("status") != "ok"
    ]
    tmp = dest.with_name(f".{name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for fname in (SUMMARY_FILE, META_FILE):
            shutil.copy2(results / fname, tmp / fname)
            saved.copied.append(fname)
        for fname in (SAMPLES_FILE, DELIVERIES_FILE):
            src = results / fname
            if not src.exists():
                continue
            size = src.stat().st_size
            if size >= max_raw_bytes:
                saved.skipped[fname] = (
                    f"{size / 2**20:.1f} MB, over the {max_raw_bytes / 2**20:.0f} MB limit"
                )
                continue
            shutil.copy2(src, tmp / fname)
            saved.copied.append(fname)
        info = {
            "name": name,
            "source": str(results),
            "run_id": summary.get("run_id"),
            "scenario": summary.get("scenario"),
            "saved_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "files": saved.copied,
            "skipped": saved.skipped,
        }
        (tmp / BASELINE_INFO).write_text(json.dumps(info, indent=2) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return saved


def resolve_run(text: str, root: Path = BASELINES_DIR) -> Path:
    """A results folder given as a path, or the baseline ``root/TEXT``."""
    path = Path(text)
    if path.is_dir():
        return path
    candidate = Path(root) / text
    if _NAME.match(text) and candidate.is_dir():
        return candidate
    known = ", ".join(b["name"] for b in list_baselines(root)) or "none"
    raise BaselineError(
        f"{text!r} is neither a results folder nor a baseline in {root}/ (baselines: {known})"
    )


def list_baselines(root: Path = BASELINES_DIR) -> list[dict[str, Any]]:
    """One dict per saved baseline under ``root``: name, path and what baseline.json says."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for sub in sorted(root.iterdir()):
        if not sub.is_dir() or sub.name.startswith(".") or not (sub / SUMMARY_FILE).exists():
            continue
        try:
            info = json.loads((sub / BASELINE_INFO).read_text())
        except (OSError, ValueError):
            info = {}
        found.append({**info, "name": sub.name, "path": str(sub)})
    return found
