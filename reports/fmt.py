"""Number formatting shared by the terminal and HTML tables.

Every function takes anything (float, int, None, NaN, pd.NA) and returns a string;
missing values become :data:`MISSING`. ``fmt_ms(0.51234) == "0.512"``.
"""

from __future__ import annotations

import math

MISSING = "–"


def as_float(value: object) -> float | None:
    """``value`` as a finite-or-infinite float, or None if missing/not a number."""
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(result) else result


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
    v = as_float(value)
    return MISSING if v is None else f"{v:,.0f}"


def fmt_rate(value: object) -> str:
    """Requests per second: 823 or 12.5."""
    v = as_float(value)
    if v is None:
        return MISSING
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}"


def fmt_ratio(value: object) -> str:
    """A ratio: 2.00×."""
    v = as_float(value)
    return MISSING if v is None else f"{v:.2f}×"


def fmt_real(value: object) -> str:
    """A plain number with two decimals: 1.51."""
    v = as_float(value)
    return MISSING if v is None else f"{v:,.2f}"


def fmt_pct(fraction: object) -> str:
    """A fraction as a percentage: 0.97 -> 97%."""
    v = as_float(fraction)
    return MISSING if v is None else f"{v * 100:.0f}%"


def fmt_us(seconds: object) -> str:
    """Seconds as microseconds: 0.0001 -> 100.0."""
    v = as_float(seconds)
    return MISSING if v is None else f"{v * 1e6:,.1f}"


def fmt_bytes(value: object) -> str:
    """A byte count: 180."""
    v = as_float(value)
    return MISSING if v is None else f"{v:,.0f}"


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
    v = as_float(seconds)
    return MISSING if v is None else fmt_compact(v * 1e6)
