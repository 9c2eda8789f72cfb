"""The verdict matrix: the p50 and p99 verdicts of same-client pairs, one column per link profile.

::

    import reports
    from reports.matrix import matrix_pivot, verdict_matrix
    run = reports.load("results/20261129-043445-claim-matrix-quick")
    matrix = verdict_matrix(reports.verdict_table(run), cells=run.cells)   # tidy
    matrix_pivot(matrix, "p50")          # one row per condition, one column per link profile

    # or from the files rtbench report writes:
    matrix = pd.read_csv("results/X/verdict-matrix.csv")
    matrix.query("metric == 'p50'").pivot_table("ratio", "condition", "profile", sort=False)

A run over several ``[network]`` profiles measures every condition once per link, and the
verdict table (:func:`reports.verdict.verdict_table`) gives each (pair, metric) its own
row. The matrix folds the link into columns: a row is a condition without its link — the
scenario and part (or workload), the load, the HTTP mode (the connection mode for echo;
for real-time cells the delivery mode with its connection mode, ``"long-poll, new
connection"``) and TLS —, a column a link profile in the order the run measured them, and
a cell the ratio HTTP ÷ WebSocket with its confidence interval and verdict. Only
same-client pairs (``same_client``) are in it, and only latency (:data:`MATRIX_METRICS`).
Without at least two link profiles among those rows the matrix is empty.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from reports.fmt import as_float
from reports.pairs import condition_text

#: The file ``rtbench report`` writes the matrix to, beside verdict.csv.
MATRIX_CSV = "verdict-matrix.csv"

#: Metrics in the matrix, in display order.
MATRIX_METRICS: tuple[str, ...] = ("p50", "p99")

#: Columns of :func:`verdict_matrix`, one row per condition × profile × metric.
MATRIX_COLUMNS: tuple[str, ...] = (
    "condition",
    "scope",
    "http_mode",
    "run_id",
    "scenario",
    "part",
    "workload",
    "load",
    "mode",
    "conn_mode",
    "tls",
    "pairing",
    "profile",
    "metric",
    "ratio",
    "ci_low",
    "ci_high",
    "verdict",
    "http_cell",
    "ws_cell",
)

#: Connection modes in words inside an HTTP mode label.
_CONN_WORDS = {"new-connection": "new connection"}


def verdict_matrix(
    verdicts: pd.DataFrame,
    *,
    cells: pd.DataFrame | None = None,
    metrics: Sequence[str] = MATRIX_METRICS,
) -> pd.DataFrame:
    """The same-client latency verdicts of ``verdicts``, tidy, keyed by condition and link.

    ``verdict_matrix(reports.verdict_table(run), cells=run.cells)``, or
    ``verdict_matrix(pd.read_csv("results/X/verdict.csv"))``. ``cells`` (``run.cells``)
    gives each HTTP cell's connection mode; without it the mode is read from the cell's
    name (``http/aiohttp/new-connection/long-poll~wan``) when it has the default form.

    Returns one row per condition × profile × metric, with the columns
    :data:`MATRIX_COLUMNS`: ``condition`` (the row's label, unique: ``scope``,
    ``http_mode`` and TLS joined by " · "), ``scope`` (scenario and part or workload, plus
    the load where one part ran several, plus the run id where there are several runs),
    ``http_mode`` (``"keep-alive"``, ``"long-poll, new connection"``...), the verdict
    table's condition columns (``part`` and ``tls`` empty when the run has none),
    ``conn_mode``, ``profile``, ``metric``, ``ratio``, ``ci_low``, ``ci_high``,
    ``verdict``, ``http_cell`` and ``ws_cell``. Conditions come in the order of
    ``verdicts``, profiles in the order they first appear there (the order the run measured
    them), then metrics in ``metrics`` order. Empty (with those columns) unless the
    same-client rows of ``metrics`` span at least two distinct profiles.
    """
    empty = pd.DataFrame(columns=list(MATRIX_COLUMNS))
    needed = {"profile", "same_client", "metric", "http_cell", "ws_cell", "run_id"}
    if verdicts.empty or not needed <= set(verdicts.columns):
        return empty
    rows = verdicts[
        verdicts["same_client"].eq(True)
        & verdicts["metric"].isin(list(metrics))
        & verdicts["profile"].notna()
    ]
    profiles = matrix_profiles(rows)
    if len(profiles) < 2:
        return empty
    conn_modes = _conn_modes(cells)
    has_tls = "tls" in rows.columns and bool(rows["tls"].notna().any())
    records: list[dict[str, Any]] = []
    for _, r in rows.iterrows():
        profile = str(r["profile"])
        http_base = _without_profile(str(r["http_cell"]), profile)
        ws_base = _without_profile(str(r["ws_cell"]), profile)
        workload = _text(r.get("workload")) or "echo"
        mode = _text(r.get("mode"))
        conn = conn_modes.get((str(r["run_id"]), str(r["http_cell"]))) or _conn_from_name(http_base)
        records.append(
            {
                "_key": (str(r["run_id"]), http_base, ws_base),
                "_pair": f"{http_base} ÷ {ws_base}",
                "http_mode": http_mode_label(workload, mode, conn),
                "run_id": str(r["run_id"]),
                "scenario": _text(r.get("scenario")),
                "part": r.get("part") if _text(r.get("part")) else np.nan,
                "workload": workload,
                "load": _text(r.get("load")),
                "mode": mode,
                "conn_mode": conn or np.nan,
                "tls": r["tls"] if has_tls else np.nan,
                "pairing": _text(r.get("pairing")),
                "profile": profile,
                "metric": str(r["metric"]),
                "ratio": as_float(r.get("ratio")),
                "ci_low": as_float(r.get("ci_low")),
                "ci_high": as_float(r.get("ci_high")),
                "verdict": _text(r.get("verdict")),
                "http_cell": str(r["http_cell"]),
                "ws_cell": str(r["ws_cell"]),
            }
        )
    frame = pd.DataFrame(records)
    _label(frame, has_tls)
    key_order = {k: i for i, k in enumerate(dict.fromkeys(frame["_key"]))}
    profile_order = {p: i for i, p in enumerate(profiles)}
    metric_order = {m: i for i, m in enumerate(metrics)}
    frame = frame.assign(
        _k=frame["_key"].map(key_order),
        _p=frame["profile"].map(profile_order),
        _m=frame["metric"].map(metric_order),
    ).sort_values(["_k", "_p", "_m"], kind="stable")
    return frame[list(MATRIX_COLUMNS)].reset_index(drop=True)


def matrix_profiles(frame: pd.DataFrame) -> list[str]:
    """The distinct values of ``frame["profile"]`` in order of first appearance (missing
    ones left out): the columns of the matrix. ``matrix_profiles(verdict_matrix(v))``."""
    if frame.empty or "profile" not in frame.columns:
        return []
    return [str(p) for p in dict.fromkeys(frame["profile"].dropna())]


def matrix_pivot(
    matrix: pd.DataFrame,
    metric: str,
    cell: Callable[[pd.Series], Any] | None = None,
) -> pd.DataFrame:
    """One ``metric`` of :func:`verdict_matrix` output as a grid: a row per condition with
    ``scope``, ``http_mode`` and ``tls`` (in words: ``"TLS 1.3"``, ``"no TLS"``), then a
    column per profile holding ``cell(row)`` — by default :func:`cell_text`, e.g.
    ``"3.04× (3.01–3.07) holds"`` — or None where the condition was not measured on
    that link. ``matrix_pivot(verdict_matrix(verdicts), "p50")``."""
    cell = cell or cell_text
    profiles = matrix_profiles(matrix)
    mine = matrix[matrix["metric"] == metric] if len(matrix) else matrix
    out: list[dict[str, Any]] = []
    for _, group in mine.groupby("condition", sort=False):
        first = group.iloc[0]
        row: dict[str, Any] = {
            "scope": first["scope"],
            "http_mode": first["http_mode"],
            "tls": _tls_text(first["tls"]),
        }
        by_profile = {str(r["profile"]): r for _, r in group.iterrows()}
        for p in profiles:
            row[p] = cell(by_profile[p]) if p in by_profile else None
        out.append(row)
    return pd.DataFrame(out, columns=["scope", "http_mode", "tls", *profiles])


def cell_text(row: pd.Series) -> str:
    """A matrix cell in words: ``"3.04× (3.01–3.07) holds"``; ``"1.20× (no CI) n/a"``
    without an interval."""
    return f"{ratio_ci_text(row['ratio'], row['ci_low'], row['ci_high'])} {row['verdict']}"


def ratio_ci_text(ratio: object, low: object, high: object) -> str:
    """``"3.04× (3.01–3.07)"``; ``"3.04× (no CI)"`` without an interval; ``"–"`` without a
    ratio."""
    r = as_float(ratio)
    if r is None:
        return "–"
    lo, hi = as_float(low), as_float(high)
    ci = f"{short_number(lo)}–{short_number(hi)}" if lo is not None and hi is not None else "no CI"
    return f"{short_number(r)}× ({ci})"


def short_number(value: float) -> str:
    """Three significant digits or so: ``3.04``, ``12.3``, ``437``, ``1,204``."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def http_mode_label(workload: str, mode: str, conn_mode: str | None) -> str:
    """The HTTP side of a pair in words: echo cells by connection mode (``"keep-alive"``,
    ``"new-connection"``), real-time cells by delivery mode with their connection mode
    (``"long-poll, new connection"``, ``"sse, keep-alive"``).
    ``http_mode_label("messaging", "long-poll", "new-connection")``."""
    if workload == "echo" or not conn_mode:
        return mode or "–"
    return f"{mode}, {_CONN_WORDS.get(conn_mode, conn_mode)}"


# --- internals ---------------------------------------------------------------------------


def _label(frame: pd.DataFrame, has_tls: bool) -> None:
    """Fill ``scope`` and ``condition`` in place, making every key's condition unique."""
    base = frame["scenario"] + " · " + frame["part"].where(frame["part"].notna(), frame["workload"])
    loads = frame.groupby([frame["run_id"], base], sort=False)["load"].transform("nunique")
    scope = base.where(loads <= 1, base + " · " + frame["load"])
    if frame["run_id"].nunique() > 1:
        scope = scope + " (run " + frame["run_id"] + ")"
    frame["scope"] = scope

    def condition(http_mode: pd.Series) -> pd.Series:
        parts = [frame["scope"], http_mode]
        if has_tls:
            parts.append(frame["tls"].map(_tls_text))
        return pd.concat(parts, axis=1).astype(str).agg(" · ".join, axis=1)

    frame["condition"] = condition(frame["http_mode"])
    # Two pairs in one condition (two WebSocket servers, or named cells): name the cells.
    clash = frame.groupby("condition")["_key"].transform("nunique") > 1
    frame["http_mode"] = frame["http_mode"].where(
        ~clash, frame["http_mode"] + " (" + frame["_pair"] + ")"
    )
    frame["condition"] = condition(frame["http_mode"])


def _conn_modes(cells: pd.DataFrame | None) -> dict[tuple[str, str], str]:
    """``{(run_id, cell): conn_mode}`` from ``run.cells``."""
    if cells is None or cells.empty or not {"run_id", "cell", "conn_mode"} <= set(cells.columns):
        return {}
    return {
        (str(r), str(c)): m
        for r, c, m in zip(cells["run_id"], cells["cell"], cells["conn_mode"], strict=True)
        if isinstance(m, str) and m
    }


def _conn_from_name(cell: str) -> str | None:
    """The connection mode in a default cell name: ``part:transport/client/conn_mode[/...]``
    with optional ``+h2``, ``+tls`` and ``@<rate>rps`` or ``@<users>u``; None for other names."""
    name = re.sub(r"@[0-9.]+(rps|u)$", "", cell.split(":", 1)[-1])
    fields = name.split("/")
    if len(fields) < 3:
        return None
    return fields[2].split("+", 1)[0] or None


def _without_profile(cell: str, profile: str) -> str:
    return cell.removesuffix(f"~{profile}")


def _tls_text(value: object) -> str:
    """``condition_text("tls", value)`` for NumPy scalars too (``np.True_`` -> ``"TLS"``)."""
    return condition_text("tls", value.item() if isinstance(value, np.generic) else value)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
