"""The environment section of the HTML report: one run's ``meta.json`` as facts::

    section = environment(run)   # {"run_id", "facts", "key_packages", "other_packages", ...}

Every value comes from the run's metadata as recorded; nothing is read from this machine.
"""

from __future__ import annotations

import json
from typing import Any

from reports.load import Run

#: Packages listed first in the environment section (all others are in a details box).
KEY_PACKAGES = ("websockets", "aiohttp", "httpx", "httpcore", "uvloop", "orjson", "psutil")


def environment(run: Run) -> dict[str, Any]:
    """One run's metadata for the environment section."""
    meta = run.meta
    env = meta.get("environment") if isinstance(meta.get("environment"), dict) else {}
    packages = env.get("packages") if isinstance(env.get("packages"), dict) else {}
    key = [(name, str(packages[name])) for name in KEY_PACKAGES if name in packages]
    other = sorted((str(k), str(v)) for k, v in packages.items() if k not in KEY_PACKAGES)
    pinning = meta.get("pinning") if isinstance(meta.get("pinning"), dict) else {}
    commit = env.get("git_commit")
    if commit and env.get("git_dirty"):
        commit = f"{commit} (with uncommitted changes)"
    loops = meta.get("loops")
    facts = [
        ("Run id", run.run_id),
        ("Started", meta.get("started_at")),
        ("Ended", meta.get("ended_at")),
        ("Complete", "yes" if run.complete else "no"),
        ("Python", env.get("python")),
        ("CPU", env.get("cpu_model")),
        ("CPU count", env.get("cpu_count")),
        ("Platform", env.get("platform")),
        ("Host", env.get("hostname")),
        ("Kernel", env.get("kernel")),
        ("Memory (MB)", env.get("memory_total_mb")),
        ("Git commit", commit),
        ("Server CPUs", cpus_text(pinning.get("server_cpus"))),
        ("Client CPUs", cpus_text(pinning.get("client_cpus"))),
        ("Placement", pinning.get("placement")),
        ("Placement note", pinning.get("note") or None),
        ("Event loop", ", ".join(map(str, loops)) if isinstance(loops, list) else loops),
        ("Command", meta.get("command")),
        ("Results folder", str(run.path)),
    ]
    return {
        "run_id": run.run_id,
        "facts": [(k, str(v)) for k, v in facts if v is not None and v != ""],
        "key_packages": key,
        "other_packages": other,
        "scenario_json": json.dumps(meta.get("scenario"), indent=2, default=str),
    }


def cpus_text(value: object) -> str | None:
    """A pinning's CPU list as text: "0, 1", "none" for an empty list, "not pinned"."""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return "not pinned" if value is None else str(value)
