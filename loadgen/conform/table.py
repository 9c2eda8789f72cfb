"""The conformance results for people (a rich table) and for programs (JSON).

::

    console.print(results_table(target, results))
    write_json(path, target, results)     # {"schema_version": 1, "target": ..., "checks": [...]}

Everything the server sent is untrusted: it is shown as plain text, never as markup.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table
from rich.text import Text

from loadgen.conform.runner import FAILED, PASSED, SKIPPED, CheckResult, verdict
from loadgen.conform.target import Target
from loadgen.escape import term_plain

#: Version of the JSON that ``--json`` writes.
SCHEMA_VERSION = 1

_STYLE = {PASSED: "green", FAILED: "bold red", SKIPPED: "yellow"}


def results_table(target: Target, results: list[CheckResult]) -> Table:
    """One row per check: id, outcome, what was expected and what came back."""
    table = Table(title=Text(f"rtbench conform {term_plain(target.name)}"), title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("expected")
    table.add_column("got")
    skipped: dict[str, int] = {}
    for r in results:
        if r.status == SKIPPED:
            # A transport the server does not offer is one row, not one per check.
            skipped[r.transport] = skipped.get(r.transport, 0) + 1
            continue
        table.add_row(
            Text(r.id),
            Text(r.status, style=_STYLE[r.status]),
            Text(term_plain(r.expected or r.title)),
            Text(term_plain(r.got)),
        )
    for transport, count in skipped.items():
        table.add_row(
            Text(f"{transport}.*"),
            Text(SKIPPED, style=_STYLE[SKIPPED]),
            Text(f"{count} checks"),
            Text(f"the server does not offer {transport}"),
        )
    return table


def summary_line(results: list[CheckResult]) -> str:
    """``"27 passed, 0 failed, 2 skipped: conforms"``."""
    counts = {s: sum(1 for r in results if r.status == s) for s in (PASSED, FAILED, SKIPPED)}
    word = "conforms" if verdict(results) else "does not conform"
    return f"{counts[PASSED]} passed, {counts[FAILED]} failed, {counts[SKIPPED]} skipped: {word}"


def write_json(path: Path, target: Target, results: list[CheckResult]) -> None:
    """The results as JSON at ``path`` (parents made)."""
    doc = {
        "schema_version": SCHEMA_VERSION,
        "target": {
            "base_url": target.base_url,
            "command": target.command,
            "offers": sorted(target.offers),
            "ready": target.ready,
            "stats": target.stats,
        },
        "conforms": verdict(results),
        "checks": [r.as_dict() for r in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
