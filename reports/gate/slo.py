"""Absolute service-level objectives: the scenario's ``[slo]`` table, checked after a run.

::

    [slo]                     # every cell must meet every limit given
    p99_ms = 50               # also p50_ms, p90_ms, p99_9_ms, max_ms (request latency)
    delivery_p99_ms = 800     # also delivery_p50_ms (real-time workloads)
    lost = 0                  # at most this many lost deliveries (real-time workloads)
    errors = 0                # at most this many failed requests
    min_throughput_rps = 300  # at least this many requests per second

``rtbench run`` calls :func:`check_slo` on the summary it wrote, prints
:func:`print_slo`'s table, writes ``slo.json`` and exits 1 when a limit is
violated. A cell without the figure (every repeat failed) violates the limit:
a missing number never passes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from loadgen.escape import term_plain
from loadgen.scenario_tables import SloSettings
from reports.termfit import print_fitting
from reports.termname import Name

SLO_FILE = "slo.json"

EXIT_OK = 0
EXIT_VIOLATED = 1


def _get(*keys: str) -> Callable[[dict[str, Any]], float | None]:
    def get(cell: dict[str, Any]) -> float | None:
        value: Any = cell
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return float(value) if isinstance(value, int | float) else None

    return get


#: key -> (what it limits, unit, how to read it from a summary cell, "max" or "min").
RULES: dict[str, tuple[str, str, Callable[[dict[str, Any]], float | None], str]] = {
    "p50_ms": ("latency p50", "ms", _get("latency_ms", "p50"), "max"),
    "p90_ms": ("latency p90", "ms", _get("latency_ms", "p90"), "max"),
    "p99_ms": ("latency p99", "ms", _get("latency_ms", "p99"), "max"),
    "p99_9_ms": ("latency p99.9", "ms", _get("latency_ms", "p99.9"), "max"),
    "max_ms": ("latency max", "ms", _get("latency_ms", "max"), "max"),
    "delivery_p50_ms": ("delivery p50", "ms", _get("delivery_latency_ms", "p50"), "max"),
    "delivery_p99_ms": ("delivery p99", "ms", _get("delivery_latency_ms", "p99"), "max"),
    "lost": ("lost deliveries", "", _get("deliveries", "lost"), "max"),
    "errors": ("errors", "", _get("errors"), "max"),
    "min_throughput_rps": ("throughput", "req/s", _get("throughput_rps"), "min"),
}

assert set(RULES) == set(SloSettings.model_fields), "slo.RULES and SloSettings disagree"


@dataclass(frozen=True)
class SloCheck:
    """One cell against one limit."""

    cell: str
    key: str
    what: str
    value: float | None
    limit: float
    bound: str  # "max": value <= limit; "min": value >= limit
    unit: str

    @property
    def ok(self) -> bool:
        if self.value is None:
            return False
        return self.value <= self.limit if self.bound == "max" else self.value >= self.limit

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


def check_slo(slo: SloSettings, summary: dict[str, Any]) -> list[SloCheck]:
    """Every (cell, limit) pair of ``summary`` against ``slo``."""
    checks = []
    limits = slo.limits()
    for cell in summary.get("cells", []):
        for key, limit in limits.items():
            what, unit, get, bound = RULES[key]
            checks.append(SloCheck(cell["cell"], key, what, get(cell), limit, bound, unit))
    return checks


def violations(checks: list[SloCheck]) -> list[SloCheck]:
    return [c for c in checks if not c.ok]


def exit_code(checks: list[SloCheck]) -> int:
    return EXIT_VIOLATED if violations(checks) else EXIT_OK


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "no data"
    text = f"{value:g}" if unit in ("", "req/s") else f"{value:.4g}"
    return f"{text} {unit}".strip()


def print_slo(checks: list[SloCheck], console: Console) -> None:
    """A table of every check (failures first), then one line with the verdict."""
    table = Table(title="SLO (\\[slo] in the scenario)", title_justify="left")
    for name in ("cell", "slo", "value", "limit", "result"):
        table.add_column(
            name,
            justify="right" if name in ("value", "limit") else "left",
            no_wrap=name != "cell",
            overflow="fold" if name == "cell" else "ellipsis",
        )
    for c in sorted(checks, key=lambda c: c.ok):
        sign = "≤" if c.bound == "max" else "≥"
        result = "[green]ok[/]" if c.ok else "[bold red]VIOLATED[/]"
        table.add_row(
            Name(term_plain(c.cell)),
            c.key,
            _fmt(c.value, c.unit),
            f"{sign} {_fmt(c.limit, c.unit)}",
            result,
        )
    print_fitting(console, [lambda: [table]])
    bad = violations(checks)
    if bad:
        console.print(f"[bold red]SLO violated: {len(bad)} of {len(checks)} checks[/]")
    else:
        console.print(f"[bold green]SLO met: {len(checks)} checks[/]")


def write_slo(out_dir: Path, checks: list[SloCheck]) -> Path:
    """``slo.json`` in the results folder: every check and whether it passed."""
    path = Path(out_dir) / SLO_FILE
    doc = {
        "ok": not violations(checks),
        "violations": len(violations(checks)),
        "checks": [c.as_dict() for c in checks],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path
