"""The verdict on the "3x faster" claim: HTTP/WebSocket ratios with bootstrap confidence intervals.

::

    import reports
    run = reports.load_many(["results/quick-run", "results/messaging-run"])
    verdicts = reports.verdict_table(run)          # tidy: one row per (pair, metric)
    wide = reports.verdict_wide(verdicts)          # one row per pair, a column group per metric
    verdicts.query("metric == 'p50' and headline")[["mode", "ratio", "ci_low", "verdict"]]
    reports.headline_lines(verdicts)               # the opening sentences of every output

Pairs. Within one run, every HTTP cell is paired with every WebSocket cell of the same
workload and load (open-loop rate, connections; a rate sweep's cells therefore pair at each
rate) and, when the cells have them, the same ``part`` of a multi-part scenario, network
``profile``, ``tls`` setting and ``server`` (a server_command's server). When the
condition has a WebSocket cell over the HTTP cell's own HTTP version (WebSocket over
HTTP/2, RFC 8441, beside an HTTP/2 cell), the HTTP cell pairs with those only
(:func:`reports.pairs.matched_pairs`).
Echo cells pair with echo cells (request latency); real-time HTTP polling cells with
WebSocket push cells (delivery latency, from an item's cause to its receipt). A pair whose
two cells use the same client library (aiohttp HTTP against aiohttp WebSocket) is a
*same-client* pair, the fair comparison. The *headline* pairs are the same-client pairs of
the lean client (:data:`HEADLINE_CLIENT`: no client library between the load generator and
the socket, so the ratio is the protocols'), or every same-client pair when a run has no
lean cells. The others are *mixed* pairs: their ratio and interval are reported, but their
verdict is ``n/a`` (the two client libraries differ, and that difference is in the ratio),
and they come after every same-client pair.

Metrics, each as HTTP / WebSocket (above 1: WebSocket faster or leaner):

- ``p50``, ``p99``: latency percentiles. The interval is a two-sample bootstrap
  (:func:`reports.bootstrap.percentile_ratio_ci`: ``scipy.stats.bootstrap``, percentile
  method, :data:`N_RESAMPLES` resamples, seeded)
  of the ratio of the two percentiles, resampling each cell's raw measured rows (echo:
  ``samples.parquet`` rows with ``kind == "request"``, ``ok``, not warmup; real-time:
  ``deliveries.parquet`` rows not warmup, deferred or duplicate) with replacement within
  the cell, its repeats pooled. A cell with more than :data:`MAX_BOOTSTRAP_SAMPLES` rows
  is resampled from a random subset of that size (the point estimate uses every row); the
  interval is then somewhat wider than the full data would give, never narrower. Spread
  *between* repeats is not in this interval: :func:`reports.checks.run_warnings` flags
  cells whose repeats disagree.
- ``bytes``: wire bytes per useful message (echo: request plus reply bytes per request;
  real-time: per delivery or accepted activity event).
- ``cpu``: server CPU time per useful message (the load generator's CPU is in the report's
  CPU chart, not in the verdict: it measures the client library).

  For ``bytes`` and ``cpu`` the ratio is of the cells' totals, and the interval a
  two-sample bootstrap of the ratio of the per-repeat means (``run.repeats``,
  :func:`reports.bootstrap.mean_ratio_ci`); it needs at
  least 2 repeats per cell (with 2 it is about the range of the per-repeat ratios).

Verdict per row (:func:`verdict_of`): **holds** when the interval's lower bound is at least
:data:`CLAIM_RATIO` (3), **refuted** when its upper bound is below 3, **inconclusive**
otherwise, **n/a** when there is no interval (see ``note``).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from reports.bootstrap import (
    LEVEL,
    MAX_BOOTSTRAP_SAMPLES,
    N_RESAMPLES,
    SEED,
    mean_ratio_ci,
    percentile_ratio_ci,
)
from reports.checks import cell_caveats
from reports.fmt import float_or_nan
from reports.groups import cell_groups
from reports.load import Run
from reports.pairs import (
    CONDITION_COLUMNS,
    HEADLINE_CLIENT,
    OPTIONAL_CONDITION_COLUMNS,
    matched_pairs,
)
from reports.stats import (
    measured_deliveries,
    measured_samples,
    realtime_mask,
    without_failed_repeats,
)

#: The claim: WebSocket is this many times faster than HTTP.
CLAIM_RATIO = 3.0


#: The note on a mixed pair's rows, which get no verdict of their own.
MIXED_NOTE = "the HTTP and WebSocket cells use different client libraries ({}): not judged"

#: Verdict labels, in display order.
HOLDS, REFUTED, INCONCLUSIVE, NOT_AVAILABLE = "holds", "refuted", "inconclusive", "n/a"
VERDICTS: tuple[str, ...] = (HOLDS, REFUTED, INCONCLUSIVE, NOT_AVAILABLE)

#: Metrics, in display order, with a short label.
METRICS: dict[str, str] = {
    "p50": "p50 latency",
    "p99": "p99 latency",
    "bytes": "bytes per message",
    "cpu": "server CPU per message",
}

#: Latency metrics: metric -> percentile.
LATENCY_METRICS: dict[str, float] = {"p50": 50.0, "p99": 99.0}


#: Columns of :func:`verdict_table` after the condition columns.
VERDICT_COLUMNS: tuple[str, ...] = (
    "same_client",
    "headline",
    "http_cell",
    "ws_cell",
    "metric",
    "http_value",
    "ws_value",
    "unit",
    "ratio",
    "ci_low",
    "ci_high",
    "verdict",
    "n_http",
    "n_ws",
    "method",
    "note",
    "caveats",
)

#: Per-metric columns of :func:`verdict_wide`: ``<metric>_<field>``.
WIDE_FIELDS: tuple[str, ...] = ("http_value", "ws_value", "ratio", "ci_low", "ci_high", "verdict")


def verdict_of(low: float, high: float, claim: float = CLAIM_RATIO) -> str:
    """``"holds"`` if ``low >= claim``, ``"refuted"`` if ``high < claim``, else
    ``"inconclusive"``; ``"n/a"`` when either bound is missing (NaN/None)."""
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return NOT_AVAILABLE
    if low >= claim:
        return HOLDS
    if high < claim:
        return REFUTED
    return INCONCLUSIVE


def seed_for(*parts: str, seed: int = SEED) -> np.random.Generator:
    """A generator seeded by ``seed`` and the names given (stable across runs and orders)."""
    return np.random.default_rng([seed, *(zlib.crc32(p.encode()) for p in parts)])


def verdict_table(
    run: Run,
    *,
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
    seed: int = SEED,
    max_samples: int = MAX_BOOTSTRAP_SAMPLES,
    claim: float = CLAIM_RATIO,
) -> pd.DataFrame:
    """The verdict on the claim, one row per (pair, metric) — tidy, for CSV and pandas.

    ``verdict_table(reports.load("results/X"))``. Columns: the condition columns of
    :func:`matched_pairs`, then :data:`VERDICT_COLUMNS`: ``same_client``, ``http_cell``,
    ``ws_cell``, ``metric`` (``p50``, ``p99``, ``bytes``, ``cpu``), ``http_value`` and
    ``ws_value`` (ms, bytes or µs per message: ``unit``), ``ratio`` (HTTP / WS), ``ci_low``
    and ``ci_high`` (the ``level`` interval), ``verdict`` (:func:`verdict_of`), ``n_http``
    and ``n_ws`` (measured rows, or repeats for bytes and CPU), ``method``, ``note`` (why
    a verdict is n/a) and ``caveats`` (warnings about either cell, see
    :func:`reports.checks.cell_caveats`). See the module docstring for the method.
    """
    pairs = matched_pairs(run)
    extras = [c for c in OPTIONAL_CONDITION_COLUMNS if c in pairs.columns]
    out_cols = [*CONDITION_COLUMNS, *extras, *VERDICT_COLUMNS]
    if pairs.empty:
        return pd.DataFrame(columns=out_cols)
    cells = run.cells.set_index(["run_id", "cell"], drop=False)
    latencies = _latency_values(run)
    repeats = _repeat_values(run)
    caveats = cell_caveats(run)
    rows = []
    for _, pair in pairs.iterrows():
        rid, hc, wc = pair["run_id"], pair["http_cell"], pair["ws_cell"]
        h, w = cells.loc[(rid, hc)], cells.loc[(rid, wc)]
        base = {k: pair[k] for k in (*CONDITION_COLUMNS, *extras, "same_client")}
        base |= {"http_cell": hc, "ws_cell": wc}
        notes = [
            f"{side}: {', '.join(caveats[key])}"
            for side, key in (("HTTP", (rid, hc)), ("WS", (rid, wc)))
            if caveats.get(key)
        ]
        base["caveats"] = "; ".join(notes)
        rows += _latency_rows(
            base,
            latencies.get((rid, hc), np.empty(0)),
            latencies.get((rid, wc), np.empty(0)),
            pair["kind"],
            rng=seed_for(rid, hc, wc, seed=seed),
            n_resamples=n_resamples,
            level=level,
            max_samples=max_samples,
            claim=claim,
        )
        live = pair["kind"] == "delivery"
        for metric in ("bytes", "cpu"):
            rows.append(
                _cost_row(
                    base,
                    metric,
                    _cost_value(h, metric, live),
                    _cost_value(w, metric, live),
                    repeats.get((rid, hc, metric), []),
                    repeats.get((rid, wc, metric), []),
                    live,
                    rng=seed_for(rid, hc, wc, metric, seed=seed),
                    n_resamples=n_resamples,
                    level=level,
                    claim=claim,
                )
            )
    table = pd.DataFrame(rows, columns=out_cols)
    table["headline"] = headline_mask(table)
    mixed = ~table["same_client"].astype(bool)
    if mixed.any():
        table.loc[mixed, "verdict"] = NOT_AVAILABLE
        table.loc[mixed, "note"] = [MIXED_NOTE.format(p) for p in table.loc[mixed, "pairing"]]
    return table


def headline_mask(verdicts: pd.DataFrame) -> pd.Series:
    """Which rows of :func:`verdict_table` output are headline pairs: same-client pairs of
    :data:`HEADLINE_CLIENT` when there are any, else every same-client pair."""
    if verdicts.empty:
        return pd.Series(dtype=bool)
    same = verdicts["same_client"].astype(bool)
    lean = same & verdicts["pairing"].astype(str).eq(HEADLINE_CLIENT)
    return lean if lean.any() else same


def headline_lines(verdicts: pd.DataFrame) -> list[str]:
    """The verdict's opening sentences, one per latency metric, over the headline pairs only:
    ``"p50 latency, lean client on both sides: refuted in 3, holds in 1 of 4 pairs (2 other
    same-client pairs: holds in 1 of 2; 6 mixed pairs not counted)"``; empty without pairs."""
    if verdicts.empty:
        return []
    head = verdicts[verdicts["headline"].astype(bool)]
    same = verdicts["same_client"].astype(bool)
    others = verdicts[same & ~verdicts["headline"].astype(bool)]
    mixed = verdicts[~same]
    lean = bool(len(head)) and (head["pairing"].astype(str) == HEADLINE_CLIENT).all()
    who = f"{HEADLINE_CLIENT} client on both sides" if lean else "same client on both sides"
    lines = []
    for metric in METRICS:
        mine = head[head["metric"] == metric]
        if not len(mine):
            continue
        counts = mine["verdict"].value_counts()
        parts = [f"{v} in {int(counts[v])}" for v in VERDICTS if counts.get(v, 0)]
        text = f"{METRICS[metric]}, {who}: {', '.join(parts)} of {len(mine)} pairs"
        extra = []
        theirs = others[others["metric"] == metric]
        if len(theirs):
            held = int((theirs["verdict"] == HOLDS).sum())
            extra.append(f"{len(theirs)} other same-client pairs: holds in {held}")
        n_mixed = int((mixed["metric"] == metric).sum())
        if n_mixed:
            extra.append(f"{n_mixed} mixed pairs not counted")
        lines.append(text + (f" ({'; '.join(extra)})" if extra else ""))
    return lines


def verdict_wide(verdicts: pd.DataFrame) -> pd.DataFrame:
    """:func:`verdict_table` output with one row per pair: the condition and cell columns,
    ``caveats``, then per metric ``<metric>_http_value``, ``<metric>_ws_value``,
    ``<metric>_ratio``, ``<metric>_ci_low``, ``<metric>_ci_high``, ``<metric>_verdict``."""
    ident = [
        c
        for c in verdicts.columns
        if c in (*CONDITION_COLUMNS, *OPTIONAL_CONDITION_COLUMNS, "same_client", "headline")
    ] + ["http_cell", "ws_cell", "caveats"]
    wide_cols = [f"{m}_{f}" for m in METRICS for f in WIDE_FIELDS]
    if verdicts.empty:
        return pd.DataFrame(columns=[*ident, *wide_cols])
    rows: dict[tuple, dict[str, object]] = {}
    for _, r in verdicts.iterrows():
        key = (r["run_id"], r["http_cell"], r["ws_cell"])
        row = rows.setdefault(key, {c: r[c] for c in ident})
        for f in WIDE_FIELDS:
            row[f"{r['metric']}_{f}"] = r[f]
    return pd.DataFrame(list(rows.values()), columns=[*ident, *wide_cols])


def verdict_counts(verdicts: pd.DataFrame) -> dict[str, dict[str, int]]:
    """``{metric: {verdict: count}}`` over the rows of :func:`verdict_table` (every verdict
    label present, zero when none)."""
    out: dict[str, dict[str, int]] = {}
    for metric in METRICS:
        mine = verdicts.loc[verdicts["metric"] == metric, "verdict"] if len(verdicts) else []
        counts = pd.Series(mine).value_counts()
        out[metric] = {v: int(counts.get(v, 0)) for v in VERDICTS}
    return out


# --- internals ---------------------------------------------------------------------------


def _latency_values(run: Run) -> dict[tuple[str, str], np.ndarray]:
    """Measured latencies in ms per (run_id, cell): echo requests and real-time deliveries."""
    out: dict[tuple[str, str], np.ndarray] = {}
    # A failed repeat's rows (say, a server that died) are not a measurement of its cell.
    keep = ["run_id", "cell", "latency_ns"]
    samples = measured_samples(without_failed_repeats(run.samples, run.cells), columns=keep)
    for (rid, cell), group in cell_groups(samples, ["run_id", "cell"]):
        out[(str(rid), str(cell))] = group["latency_ns"].to_numpy(dtype="float64") / 1e6
    deliveries = measured_deliveries(
        without_failed_repeats(run.deliveries, run.cells), columns=keep
    )
    for (rid, cell), group in cell_groups(deliveries, ["run_id", "cell"]):
        # a real-time cell's latency is its deliveries', never its actions'
        out[(str(rid), str(cell))] = group["latency_ns"].to_numpy(dtype="float64") / 1e6
    return out


def _repeat_values(run: Run) -> dict[tuple[str, str, str], list[float]]:
    """Per-repeat bytes and server CPU per useful message, per (run_id, cell, metric)."""
    out: dict[tuple[str, str, str], list[float]] = {}
    reps = run.repeats
    if reps.empty:
        return out
    live = realtime_mask(reps)
    for i, r in reps.iterrows():
        for metric in ("bytes", "cpu"):
            value = _cost_value(r, metric, bool(live[i]))
            if np.isfinite(value):
                out.setdefault((str(r["run_id"]), str(r["cell"]), metric), []).append(value)
    return out


def _cost_value(row: Mapping[str, object] | pd.Series, metric: str, live: bool) -> float:
    """Bytes or server CPU (µs) per useful message of a cell or repeat row."""
    if metric == "bytes":
        if live:
            return float_or_nan(row.get("bytes_per_useful_message"))
        sent, received = row.get("bytes_per_request_sent"), row.get("bytes_per_request_received")
        return float_or_nan(sent) + float_or_nan(received)
    column = "cpu_s_per_useful_message_server" if live else "cpu_s_per_request_server"
    return float_or_nan(row.get(column)) * 1e6


def _latency_rows(
    base: dict[str, object],
    http: np.ndarray,
    ws: np.ndarray,
    kind: str,
    *,
    rng: np.random.Generator,
    n_resamples: int,
    level: float,
    max_samples: int,
    claim: float,
) -> list[dict[str, object]]:
    qs = list(LATENCY_METRICS.values())
    ratio, low, high = percentile_ratio_ci(
        http, ws, qs, rng=rng, n_resamples=n_resamples, level=level, max_samples=max_samples
    )
    h_vals = np.percentile(http, qs) if len(http) else np.full(len(qs), np.nan)
    w_vals = np.percentile(ws, qs) if len(ws) else np.full(len(qs), np.nan)
    rows_label = "deliveries" if kind == "delivery" else "requests"
    method = f"bootstrap of {rows_label} within each cell"
    big = max(len(http), len(ws))
    if big > max_samples:
        method += f" (from {max_samples:,} of each cell's rows)"
    note = ""
    if len(http) < 2 or len(ws) < 2:
        side = "HTTP" if len(http) < 2 else "WebSocket"
        note = f"fewer than 2 measured {rows_label} in the {side} cell"
    rows = []
    for i, metric in enumerate(LATENCY_METRICS):
        rows.append(
            base
            | {
                "metric": metric,
                "http_value": float(h_vals[i]),
                "ws_value": float(w_vals[i]),
                "unit": "ms",
                "ratio": float(ratio[i]),
                "ci_low": float(low[i]),
                "ci_high": float(high[i]),
                "verdict": verdict_of(low[i], high[i], claim),
                "n_http": len(http),
                "n_ws": len(ws),
                "method": method,
                "note": note or ("" if np.isfinite(low[i]) else "WebSocket latency is zero"),
            }
        )
    return rows


def _cost_row(
    base: dict[str, object],
    metric: str,
    http_value: float,
    ws_value: float,
    http_reps: Sequence[float],
    ws_reps: Sequence[float],
    live: bool,
    *,
    rng: np.random.Generator,
    n_resamples: int,
    level: float,
    claim: float,
) -> dict[str, object]:
    ratio = http_value / ws_value if ws_value > 0 else float("nan")
    low, high = mean_ratio_ci(http_reps, ws_reps, rng=rng, n_resamples=n_resamples, level=level)
    note = ""
    if not np.isfinite(ratio):
        note = "no value for one of the cells"
        low = high = float("nan")
    elif not np.isfinite(low):
        fewest = min(len(http_reps), len(ws_reps))
        note = f"{fewest} repeat(s) in a cell: an interval needs at least 2 per cell"
    per = "message" if live else "request"
    return base | {
        "metric": metric,
        "http_value": http_value,
        "ws_value": ws_value,
        "unit": f"bytes/{per}" if metric == "bytes" else f"µs/{per}",
        "ratio": ratio,
        "ci_low": low,
        "ci_high": high,
        "verdict": verdict_of(low, high, claim),
        "n_http": len(http_reps),
        "n_ws": len(ws_reps),
        "method": "bootstrap of per-repeat values",
        "note": note,
    }
