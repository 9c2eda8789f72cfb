"""What a run records about the machine and software it ran on.

::

    env = collect_environment()   # dict, JSON-serialisable
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil

#: Distributions whose versions go into every run's metadata.
TRACKED_PACKAGES = (
    "rtbench",
    "websockets",
    "aiohttp",
    "httpx",
    "httpcore",
    "anyio",
    "locust",
    "pandas",
    "pyarrow",
    "matplotlib",
    "hdrhistogram",
    "uvloop",
    "orjson",
    "psutil",
    "jinja2",
    "rich",
    "typer",
    "pydantic",
    "scipy",
)


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution in ``names`` (None when absent)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(repo: Path | None = None) -> dict[str, Any]:
    """The checked-out commit and whether the tree had local changes."""
    cwd = repo or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def available_cpus() -> list[int]:
    """CPUs this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return list(range(os.cpu_count() or 1))


def collect_environment() -> dict[str, Any]:
    """Versions, CPU, memory, kernel and git state, as one JSON-ready dict."""
    freq = psutil.cpu_freq()
    git = git_commit()
    return {
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "packages": package_versions(),
        "platform": platform.platform(),
        "kernel": platform.release(),
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "cpus_available": available_cpus(),
        "cpu_freq_mhz": round(freq.current) if freq else None,
        "memory_total_mb": round(psutil.virtual_memory().total / 2**20),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
    }
