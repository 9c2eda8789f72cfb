"""Whether two runs are comparable: the differences between their machines or loads
that refuse a comparison (mismatches), and those only worth a note.

::

    mismatches, notes = environment_check(base, cur)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reports.gate.runs import RunData


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
