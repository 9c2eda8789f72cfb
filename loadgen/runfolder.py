"""A run's results folder, created exclusively: two runs never write into the same one.

::

    folder = claim_run_folder(None, "quick")        # results/20261204-150102-quick-3f9a1c/
    folder = claim_run_folder(Path("mine"), "quick")  # mine/, refused if another run has it

The folder is made with ``mkdir`` without ``exist_ok``, so of two runs started in the
same second only one gets a given name; a default name also carries a random suffix,
and a collision draws a new one. A folder named by the caller may already exist if it
is empty; claiming its ``parts/`` subfolder is then the exclusive step, so two runs
pointed at the same empty folder cannot both proceed. Either way the folder comes back
with empty ``parts/`` and ``logs/`` subfolders.
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

#: Where runs go when no folder is named.
RESULTS_ROOT = Path("results")

#: Fresh suffixes tried before giving up on a default folder name.
_ATTEMPTS = 8


class RunFolderTaken(FileExistsError):
    """The results folder exists with something in it, or another run claimed it first."""


def new_run_id(name: str) -> str:
    """``YYYYmmdd-HHMMSS-NAME-XXXXXX`` in UTC; ``XXXXXX`` is random hex."""
    return f"{_stamp()}-{name}-{secrets.token_hex(3)}"


def _stamp() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"


def claim_run_folder(out: Path | None, name: str, root: Path = RESULTS_ROOT) -> Path:
    """Create the run's folder (``root/RUN_ID`` when ``out`` is None) and return it.

    Raises :class:`RunFolderTaken` when ``out`` is not empty or another run claimed it
    at the same moment, naming the folder.
    """
    if out is None:
        root.mkdir(parents=True, exist_ok=True)  # the shared parent, not a run's folder
        for _ in range(_ATTEMPTS):
            folder = root / new_run_id(name)
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            _claim(folder)
            return folder
        raise RunFolderTaken(f"could not create a new results folder under {root}")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        out.mkdir()
    except FileExistsError:
        if not out.is_dir():
            raise RunFolderTaken(f"{out} exists and is not a folder; choose another") from None
        if any(out.iterdir()):
            raise RunFolderTaken(f"{out} exists and is not empty; choose another") from None
    _claim(out)
    return out


def _claim(folder: Path) -> None:
    """Make ``parts/`` (the exclusive step) and ``logs/`` in a folder this run created or
    found empty."""
    try:
        (folder / "parts").mkdir()
    except FileExistsError:
        raise RunFolderTaken(f"another run is writing into {folder}; choose another") from None
    (folder / "logs").mkdir()
