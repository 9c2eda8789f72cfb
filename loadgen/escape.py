"""Free text (cell, part, scenario and run names, error messages) made inert for each output.

Names come from scenario files and results folders, so they are untrusted everywhere they
are shown. One function per kind of output; call it where a name enters that output::

    ax.set_title(chart_text(cell))             # matplotlib: "$" is not mathtext
    f"| {md_text(scenario)} | {md_code(cell)} |"  # Markdown: no markup, no raw HTML
    csv_frame(verdicts).to_csv(path)           # CSV: no spreadsheet formulas
    writer = csv_writer(fh)                    # the same for csv.writer rows
    console.print(term_text(cell))             # rich: "[...]" is not markup

HTML needs no function here: the report's template is rendered with autoescape on.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any

from rich.markup import escape as _rich_escape

if TYPE_CHECKING:
    import pandas as pd

# --- charts (matplotlib) ---------------------------------------------------------------------


def chart_text(text: object) -> str:
    """``text`` for a matplotlib label: every ``$`` escaped, so it never starts mathtext
    (a name like ``a$\\x$`` would otherwise fail to render, and the whole report with it),
    and control characters but line breaks shown as ``\\xNN`` (no font draws them)."""
    return _show_controls(text, _CHART_CONTROL).replace("$", r"\$")


#: Control characters but the line break (chart labels fold on purpose).
_CHART_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


# --- Markdown --------------------------------------------------------------------------------

#: Characters that can start Markdown or HTML markup inside a line (CommonMark lets a
#: backslash escape any ASCII punctuation); "|" is left to the caller's table-cell escaping.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>&~])")


def md_text(text: object) -> str:
    """``text`` as literal Markdown: markup characters backslash-escaped, on one line."""
    return _MD_SPECIAL.sub(r"\\\1", _one_line(text))


def md_code(text: object) -> str:
    """``text`` as an inline code span, whatever backticks it holds (a longer fence)."""
    flat = _one_line(text)
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") or not flat.strip() else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def md_block(text: object) -> str:
    """``text`` as a fenced code block (lines kept), whatever backticks it holds."""
    body = str(text)
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{body}\n{fence}"


def _one_line(text: object) -> str:
    return " ".join(str(text).splitlines())


# --- CSV -------------------------------------------------------------------------------------

#: A spreadsheet reads a cell starting with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_cell(value: Any) -> Any:
    """A text value that a spreadsheet would run as a formula, prefixed with ``'``; any
    other value (numbers included) unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with :func:`csv_cell` applied to every text cell and header."""
    import pandas as pd

    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or isinstance(out[column].dtype, pd.StringDtype):
            out[column] = out[column].map(csv_cell)
    out.columns = [csv_cell(c) for c in out.columns]
    return out


class _SafeWriter:
    """A ``csv.writer`` whose rows go through :func:`csv_cell`."""

    def __init__(self, fh: IO[str], **kwargs: Any) -> None:
        self._writer = csv.writer(fh, **kwargs)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([csv_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(fh: IO[str], **kwargs: Any) -> Any:
    """``csv.writer(fh, **kwargs)`` that neutralises formulas in every row it writes."""
    return _SafeWriter(fh, **kwargs)


# --- terminal (rich) -------------------------------------------------------------------------


def term_text(text: object) -> str:
    """``text`` for rich output: ``[...]`` shown as is, never read as markup."""
    return _rich_escape(str(text))


#: C0 and C1 control characters (ESC among them): a name holding one could move the
#: cursor, recolour or clear the terminal, or break a table row in two.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def term_plain(text: object) -> str:
    """``text`` with every control character shown as ``\\xNN``, on one line.

    For a :class:`rich.text.Text` (which reads no markup): ``Text(term_plain(cell))``.
    """
    return _show_controls(text, _CONTROL)


def _show_controls(text: object, controls: re.Pattern[str]) -> str:
    """``text`` with every character ``controls`` matches shown as ``\\xNN``."""
    return controls.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def term_name(text: object) -> str:
    """A name for a rich markup string: control characters visible (:func:`term_plain`)
    and ``[...]`` shown as is: ``console.print(f"ok {term_name(path)}")``."""
    return _rich_escape(term_plain(text))
