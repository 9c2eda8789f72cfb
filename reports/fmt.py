"""Number formatting shared by the terminal and HTML tables.

Every function takes anything (float, int, None, NaN, pd.NA) and returns a string;
missing values become :data:`MISSING`. ``fmt_ms(0.51234) == "0.512"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

MISSING = "–"


def as_float(value: object) -> float | None:
    """``value`` as a finite-or-infinite float, or None if missing/not a number."""
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(result) else result


def float_or_nan(value: object) -> float:
    """``value`` as a float; NaN for None/NA/non-numbers (for arithmetic, not display)."""
    v = as_float(value)
    return math.nan if v is None else v


def _or_missing(value: object, show: Callable[[float], str]) -> str:
    """``show(value)`` of ``value`` as a float, or :data:`MISSING` when it is not a number."""
    v = as_float(value)
    return MISSING if v is None else show(v)


def fmt_ms(value: object) -> str:
    """Milliseconds with about three significant digits: 0.512, 12.35, 123.4, 1,234."""
    v = as_float(value)
    if v is None:
        return MISSING
    if abs(v) < 10:
        return f"{v:.3f}"
    if abs(v) < 100:
        return f"{v:.2f}"
    if abs(v) < 1000:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def fmt_int(value: object) -> str:
    """An integer with thousands separators: 12,345."""
    return _or_missing(value, lambda v: f"{v:,.0f}")


def fmt_rate(value: object) -> str:
    """Requests per second: 823 or 12.5."""
    return _or_missing(value, lambda v: f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}")


def fmt_ratio(value: object) -> str:
    """A ratio: 2.00×."""
    return _or_missing(value, lambda v: f"{v:.2f}×")


def fmt_real(value: object) -> str:
    """A plain number with two decimals: 1.51."""
    return _or_missing(value, lambda v: f"{v:,.2f}")


def fmt_pct(fraction: object) -> str:
    """A fraction as a percentage: 0.97 -> 97%."""
    return _or_missing(fraction, lambda v: f"{v * 100:.0f}%")


def fmt_us(seconds: object) -> str:
    """Seconds as microseconds: 0.0001 -> 100.0."""
    return _or_missing(seconds, lambda v: f"{v * 1e6:,.1f}")


def fmt_bytes(value: object) -> str:
    """A byte count: 180."""
    return _or_missing(value, lambda v: f"{v:,.0f}")


def fmt_text(value: object) -> str:
    """A label as is; missing values (None, NaN, pd.NA) become :data:`MISSING`."""
    if value is None or (not isinstance(value, str) and as_float(value) is None):
        return MISSING
    return str(value)


def fmt_compact(value: object) -> str:
    """Three significant digits with a k/M/G/T suffix, for narrow terminals:
    400, 80.5, 0.585, 1.5k, 12.3k, 1.2M. The unit goes in the column header."""
    v = as_float(value)
    if v is None:
        return MISSING
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    for suffix in ("", "k", "M", "G"):
        if abs(v) < 999.5:
            return f"{v:.3g}{suffix}"
        v /= 1000
    return f"{v:.3g}T"


def fmt_us_compact(seconds: object) -> str:
    """Seconds as microseconds, compact: 0.000148 -> 148, 0.00135 -> 1.35k."""
    return _or_missing(seconds, lambda v: fmt_compact(v * 1e6))
