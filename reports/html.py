"""Self-contained HTML report: ``write_report(run, "results/X/report.html")``.

The page opens with the verdict on the "3x faster" claim: for a run over several link
profiles the verdict matrix first (:mod:`reports.matrix`: p50 and p99 verdicts of the
same-client pairs, one column per link), then :mod:`reports.verdict`'s table (one row per
HTTP/WebSocket pair with ratios, 95 % intervals and verdicts), the warnings that say
how far to trust the run, a chart of the verdicts and, for rate sweeps, each group's
highest rate under the p99 objective. Then one section per scenario (per results folder,
or per part of a multi-part scenario, with only that part's cells in its tables and charts):
echo cells get the request summary and charts (percentile spectrum, CDF, latency over
time, bytes, CPU, memory, the sweep's hockey stick), real-time cells the deliveries
summary, the header bytes per poll and per delivered item, the cost per connected user
and charts (delivery spectrum, CDF, over time, short-poll staleness, bytes, CPU, memory).
Last, each run's environment.

Everything is inline (CSS, charts as PNG data URIs); the page loads nothing from the
network and runs no script. The template is ``reports/templates/report.html.j2``,
rendered with autoescape on, so strings from the results files (scenario names, errors)
cannot inject markup.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

import reports.charts as charts
from reports.bootstrap import LEVEL, MAX_BOOTSTRAP_SAMPLES, N_RESAMPLES
from reports.checks import run_warnings
from reports.costs import cost_table
from reports.floor import floor_notes, floor_table, fmt_multiple
from reports.fmt import as_float, fmt_bytes, fmt_ms, fmt_ratio, fmt_text
from reports.header_bytes import HEADER_BYTES_HEADERS, HEADER_BYTES_NOTE, header_bytes_rows
from reports.html_charts import chart, delivery_charts, request_charts
from reports.html_environment import environment
from reports.load import Run, cell_scenario, part_names, scenario_label, select_part
from reports.matrix import matrix_pivot, matrix_profiles, verdict_matrix
from reports.pairs import OPTIONAL_CONDITION_COLUMNS, condition_text
from reports.stalls import STALL_HEADERS, STALL_NOTE, stall_rows
from reports.stats import (
    measured_delivery_mask,
    realtime_cells,
    request_cells,
)
from reports.sweeps import sweep_rows, sweep_table
from reports.table import (
    ACTIVITY_SUMMARY_COLUMNS,
    DELIVERY_SUMMARY_COLUMNS,
    SUMMARY_COLUMNS,
    activity_rows,
    delivery_rows,
    summary_rows,
)
from reports.user_costs import USER_COST_HEADERS, USER_COST_NOTE, user_cost_rows
from reports.users_sweeps import users_sweep_rows, users_sweep_table
from reports.verdict import (
    CLAIM_RATIO,
    METRICS,
    headline_lines,
    verdict_table,
    verdict_wide,
)

TEMPLATE_DIR = Path(__file__).parent / "templates"
TEMPLATE_NAME = "report.html.j2"


#: Where the claim comes from (two sentences), shown under the verdict table.
CLAIM_ORIGIN = (
    "The “3× faster” figure comes from Lubbers and Greco (2010), whose latency model has "
    "each HTTP poll pay a TCP connection set-up plus the message — 150 ms on their 50 ms "
    "path — against 50 ms for a WebSocket message on an already-open connection. It was a "
    "model, not a measurement: here every condition is measured, HTTP both with a new "
    "connection per request and with keep-alive."
)

#: What each verdict means.
VERDICT_MEANINGS: dict[str, str] = {
    "holds": "the whole 95 % confidence interval of HTTP ÷ WebSocket is at or above 3×",
    "refuted": "the whole interval is below 3× (WebSocket may still be faster, by less)",
    "inconclusive": "the interval straddles 3×: the data cannot tell",
    "n/a": "no interval (a cell had no measurements, or fewer than 2 repeats for bytes/CPU)",
}


def write_report(
    run: Run, out_path: str | PathLike[str], *, verdicts: pd.DataFrame | None = None
) -> Path:
    """Render the report for ``run`` to ``out_path`` (parent folders created); return it.

    ``verdicts`` is :func:`reports.verdict.verdict_table` output, computed when omitted.
    """
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(run, verdicts=verdicts), encoding="utf-8")
    return out


def render_report(run: Run, *, verdicts: pd.DataFrame | None = None) -> str:
    """The report as an HTML string."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template(TEMPLATE_NAME).render(**report_context(run, verdicts=verdicts))


def report_context(run: Run, *, verdicts: pd.DataFrame | None = None) -> dict[str, Any]:
    """The template variables: plain strings, lists and dicts, already formatted."""
    verdicts = verdict_table(run) if verdicts is None else verdicts
    sweeps = sweep_table(run.cells)
    multi = len(run.runs) > 1
    extras = [c for c in OPTIONAL_CONDITION_COLUMNS if c in verdicts.columns]
    return {
        "title": f"rtbench report: {run.scenario_name}",
        "run_id": run.run_id,
        "multi": multi,
        "complete": run.complete,
        "claim_ratio": f"{CLAIM_RATIO:g}",
        "claim_origin": CLAIM_ORIGIN,
        "verdict_meanings": list(VERDICT_MEANINGS.items()),
        "method": _method_note(),
        "tallies": verdict_tallies(verdicts),
        "metrics": [(m, label) for m, label in METRICS.items()],
        "verdict_groups": _verdict_groups(verdicts, extras),
        "matrix": _matrix(verdict_matrix(verdicts, cells=run.cells)),
        "verdict_chart": (
            chart(
                "Verdict per pair",
                charts.verdict_chart(verdicts),
                "Each row is one HTTP cell against one WebSocket cell; the marker is the "
                "ratio, the bar its 95 % confidence interval, the colour the verdict. Right "
                f"of the red line WebSocket was at least {CLAIM_RATIO:g}× faster.",
            )
            if len(verdicts)
            else None
        ),
        "warnings": run_warnings(run),
        "floor": _floor(run, multi),
        "sweeps": sweep_rows(sweeps, multi),
        "users_sweeps": users_sweep_rows(users_sweep_table(run.cells), multi),
        "scenarios": [_scenario(part, i) for i, part in enumerate(scenario_runs(run), start=1)],
        "environments": [environment(part) for part in run.runs],
    }


def scenario_runs(run: Run) -> list[Run]:
    """What gets a scenario section: each single run of ``run``, or for a multi-part run
    each of its parts (:func:`reports.load.select_part`), in cell order."""
    out: list[Run] = []
    for single in run.runs:
        names = part_names(single)
        out += [select_part(single, name) for name in names] if names else [single]
    return out


def verdict_tallies(verdicts: pd.DataFrame) -> list[str]:
    """The headline sentences (:func:`reports.verdict.headline_lines`); empty without pairs."""
    return headline_lines(verdicts)


def _method_note() -> str:
    return (
        f"Latency intervals: a two-sample bootstrap ({N_RESAMPLES:,} resamples, seeded) of "
        "each cell's raw measured requests (echo) or deliveries (real-time), repeats "
        f"pooled; cells above {MAX_BOOTSTRAP_SAMPLES:,} rows are resampled from a random "
        f"{MAX_BOOTSTRAP_SAMPLES:,}. Bytes and server CPU per message: a bootstrap of the "
        "per-repeat values (needs 2 or more repeats; with 2 it is about the range of the "
        f"per-repeat ratios). Confidence level {LEVEL:.0%}. Same-client pairs compare "
        "like with like; mixed pairs also differ in client library."
    )


def _ci_text(low: object, high: object) -> str:
    lo, hi = as_float(low), as_float(high)
    if lo is None or hi is None:
        return "no interval"
    return f"{_ratio_short(lo)}–{_ratio_short(hi)}"


def _ratio_short(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _value_text(value: object, metric: str) -> str:
    if metric in ("p50", "p99"):
        return fmt_ms(value)
    if metric == "bytes":
        return fmt_bytes(value)
    v = as_float(value)
    return "–" if v is None else f"{v:,.1f}"


_UNITS = {"p50": "ms", "p99": "ms", "bytes": "B", "cpu": "µs"}


def _verdict_groups(verdicts: pd.DataFrame, extras: list[str]) -> list[dict[str, Any]]:
    """Verdict rows grouped by scenario (run), formatted for the template."""
    wide = verdict_wide(verdicts)
    groups: list[dict[str, Any]] = []
    keys = ["run_id", "scenario", "workload", "load", *extras]
    for key, frame in wide.groupby(keys, sort=False, dropna=False):
        ident = dict(zip(keys, key, strict=True))
        part = ident.get("part")
        scenario = f"{ident['scenario']} · {part}" if isinstance(part, str) else ident["scenario"]
        rows = []
        for _, r in frame.iterrows():
            metrics = []
            for metric in METRICS:
                verdict = str(r[f"{metric}_verdict"])
                unit = _UNITS[metric]
                metrics.append(
                    {
                        "ratio": fmt_ratio(r[f"{metric}_ratio"]),
                        "ci": _ci_text(r[f"{metric}_ci_low"], r[f"{metric}_ci_high"]),
                        "verdict": verdict,
                        "css": "v-" + verdict.replace("/", ""),
                        "compared": (
                            f"{_value_text(r[f'{metric}_http_value'], metric)} ÷ "
                            f"{_value_text(r[f'{metric}_ws_value'], metric)} {unit}"
                        ),
                    }
                )
            rows.append(
                {
                    "mode": fmt_text(r["mode"]),
                    "same_client": bool(r["same_client"]),
                    "pairing": (
                        str(r["pairing"])
                        if r["same_client"]
                        else f"{r['pairing']} (different client libraries: not judged)"
                    ),
                    "http_cell": str(r["http_cell"]),
                    "ws_cell": str(r["ws_cell"]),
                    "metrics": metrics,
                    "caveats": str(r["caveats"] or ""),
                }
            )
        condition = [fmt_text(ident["workload"]), fmt_text(ident["load"])]
        condition += [condition_text(c, ident[c]) for c in extras if c != "part"]
        groups.append(
            {
                "title": f"{scenario} (run {ident['run_id']})",
                "condition": " · ".join(condition),
                "rows": rows,
            }
        )
    return groups


def _matrix(matrix: pd.DataFrame) -> dict[str, Any] | None:
    """The verdict matrix for the template (None when there is none): the link profiles,
    whether to show TLS, and per metric the conditions grouped by scope (with the scope's
    load when it ran one)."""
    if matrix.empty:
        return None
    loads = matrix.groupby("scope", sort=False)["load"].unique()

    def cell(row: pd.Series) -> dict[str, str]:
        verdict = str(row["verdict"])
        return {
            "ratio": fmt_ratio(row["ratio"]),
            "ci": _ci_text(row["ci_low"], row["ci_high"]),
            "verdict": verdict,
            "css": "v-" + verdict.replace("/", ""),
        }

    tables = []
    for metric in dict.fromkeys(matrix["metric"]):
        grid = matrix_pivot(matrix, str(metric), cell=cell)
        groups: list[dict[str, Any]] = []
        for scope, frame in grid.groupby("scope", sort=False):
            rows = [
                {"mode": g["http_mode"], "tls": g["tls"], "cells": [g[p] for p in grid.columns[3:]]}
                for _, g in frame.iterrows()
            ]
            load = loads.get(scope)
            condition = str(load[0]) if load is not None and len(load) == 1 and load[0] else ""
            groups.append({"title": str(scope), "condition": condition, "rows": rows})
        tables.append(
            {
                "metric": str(metric),
                "label": METRICS.get(str(metric), str(metric)),
                "groups": groups,
            }
        )
    return {
        "profiles": matrix_profiles(matrix),
        "show_tls": bool(matrix["tls"].notna().any()),
        "pairings": ", ".join(dict.fromkeys(matrix["pairing"].astype(str))),
        "tables": tables,
    }


def _floor(run: Run, multi: bool) -> dict[str, Any] | None:
    """The harness floor (:mod:`reports.floor`): its notes and each loopback echo cell's
    p50 as a multiple of it; None when meta.json has no floor."""
    notes = floor_notes(run)
    if not notes:
        return None
    rows = [
        {
            "cell": f"{r['run_id']}: {r['cell']}" if multi else str(r["cell"]),
            "p50": fmt_ms(r["p50_ms"]),
            "floor": fmt_ms(r["floor_p50_ms"]),
            "multiple": fmt_multiple(r["multiple"]),
        }
        for _, r in floor_table(run).iterrows()
    ]
    return {"notes": notes, "rows": rows}


def _scenario(part: Run, index: int) -> dict[str, Any]:
    """One scenario section: one results folder, or one part of a multi-part run."""
    echo = request_cells(part.cells)
    has_deliveries = not realtime_cells(part.cells).empty
    has_requests = not echo.empty or not has_deliveries
    costs = cost_table(part.cells, {part.run_id: part.meta})
    return {
        "anchor": f"scenario-{index}",
        "name": scenario_label(part),
        "run_id": part.run_id,
        "complete": part.complete,
        "description": _description(part),
        "has_requests": has_requests,
        "has_deliveries": has_deliveries,
        "summary_headers": ["Cell", *(c.header.replace("\n", " ") for c in SUMMARY_COLUMNS)],
        "summary_rows": summary_rows(part) if has_requests else [],
        "charts": request_charts(part, costs) if has_requests else [],
        "delivery_headers": [
            "Cell",
            *(c.header.replace("\n", " ") for c in DELIVERY_SUMMARY_COLUMNS),
        ],
        "delivery_rows": delivery_rows(part) if has_deliveries else [],
        "header_bytes_headers": list(HEADER_BYTES_HEADERS),
        "header_bytes_note": HEADER_BYTES_NOTE,
        "header_bytes_rows": header_bytes_rows(part),
        "user_cost_headers": list(USER_COST_HEADERS),
        "user_cost_note": USER_COST_NOTE,
        "user_cost_rows": user_cost_rows(part.cells),
        "stall_headers": list(STALL_HEADERS),
        "stall_note": STALL_NOTE,
        "stall_rows": stall_rows(part),
        "delivery_charts": delivery_charts(part, costs) if has_deliveries else [],
        "delivery_rows_measured": bool(measured_delivery_mask(part.deliveries).any()),
        "activity_headers": [
            "Cell",
            *(c.header.replace("\n", " ") for c in ACTIVITY_SUMMARY_COLUMNS),
        ],
        "activity_rows": activity_rows(part),
    }


def _description(run: Run) -> str:
    """The scenario file's ``description`` (meta.json ``scenario.scenario.description``; a
    part's own description, else the shared one, for a part's Run)."""
    settings = cell_scenario(run.meta, run.part_name).get("scenario")
    text = settings.get("description") if isinstance(settings, dict) else None
    return str(text) if text else ""
