"""Limits: ``METRIC[@CELL]:LIMIT`` specs (``--max-regression``) parsed and checked.

::

    thresholds = parse_specs(["p99:+15%", "lost:0"])   # DEFAULT_SPECS when given none
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from reports.gate.errors import CompareError
from reports.gate.metrics import METRICS, Metric

#: Limits used when no ``--max-regression`` is given.
DEFAULT_SPECS = ("p50:+20%", "p99:+30%", "throughput:-15%", "lost:0")

_LIMIT = re.compile(r"^([+-]?)(\d+(?:\.\d+)?)%$")


@dataclass(frozen=True)
class Threshold:
    """One limit: a relative change (``limit`` as a fraction) or an absolute count."""

    metric: str
    limit: float
    cell: str | None = None
    spec: str = ""
    default: bool = False

    @property
    def info(self) -> Metric:
        return METRICS[self.metric]

    def describe(self) -> str:
        if self.info.count:
            return f"≤ {self.limit:g}"
        sign = "+" if self.info.worse > 0 else "-"
        return f"{sign}{self.limit * 100:g}%"


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.5)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def parse_spec(text: str, default: bool = False) -> Threshold:
    """``METRIC[@CELL]:LIMIT`` as a :class:`Threshold`; raises CompareError if malformed."""
    known = ", ".join(METRICS)
    head, sep, limit_text = text.strip().rpartition(":")
    if not sep or not head or not limit_text:
        raise CompareError(
            f"--max-regression {text!r}: expected METRIC[@CELL]:LIMIT, e.g. 'p99:+15%', "
            f"'throughput:-10%' or 'lost:0' (metrics: {known})"
        )
    name, _, cell = head.partition("@")
    name = name.strip()
    if name not in METRICS:
        raise CompareError(
            f"--max-regression {text!r}: unknown metric {name!r}{suggest(name, METRICS)}; "
            f"known metrics: {known}"
        )
    metric = METRICS[name]
    limit_text = limit_text.strip()
    if metric.count:
        if not re.fullmatch(r"\d+", limit_text):
            raise CompareError(
                f"--max-regression {text!r}: {name} is a count; give a whole number "
                f"of {name} allowed in the current run, e.g. '{name}:0'"
            )
        limit = float(limit_text)
    else:
        match = _LIMIT.match(limit_text)
        if not match:
            raise CompareError(
                f"--max-regression {text!r}: give the limit as a percentage, "
                f"e.g. '{name}:{'+' if metric.worse > 0 else '-'}15%'"
            )
        sign, number = match.groups()
        wrong = "-" if metric.worse > 0 else "+"
        if sign == wrong and float(number) != 0:
            direction = "grows" if metric.worse > 0 else "drops"
            raise CompareError(
                f"--max-regression {text!r}: {name} regresses when it {direction}; "
                f"write '{name}:{'+' if metric.worse > 0 else '-'}{number}%'"
            )
        limit = float(number) / 100.0
    return Threshold(name, limit, cell.strip() or None, text.strip(), default)


def parse_specs(specs: Sequence[str] | None) -> list[Threshold]:
    """The given specs, or :data:`DEFAULT_SPECS` when there are none."""
    if not specs:
        return [parse_spec(s, default=True) for s in DEFAULT_SPECS]
    parsed = [parse_spec(s) for s in specs]
    seen: dict[tuple[str, str | None], str] = {}
    for t in parsed:
        key = (t.metric, t.cell)
        if key in seen:
            raise CompareError(
                f"--max-regression {t.spec!r} and {seen[key]!r} set the same limit twice"
            )
        seen[key] = t.spec
    return parsed
