"""Self-contained HTML report: ``write_report(run, "results/X/report.html")``.

Echo cells get the request section (HTTP/WS latency ratios, summary, latency charts),
real-time cells the delivery section (polling/push ratios of delivery latency and bytes
per useful message, per-cell deliveries, delivery charts, bytes chart).

Everything is inline (CSS, charts as PNG data URIs); the page loads nothing from the
network. The template is ``reports/templates/report.html.j2``, rendered with autoescape
on, so strings from the results files (scenario names, errors) cannot inject markup.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from matplotlib.figure import Figure

from reports import charts
from reports.checks import run_warnings
from reports.fmt import fmt_bytes, fmt_ms, fmt_ratio
from reports.load import Run
from reports.stats import (
    bytes_per_useful_split,
    delivery_ratio_table,
    measured_deliveries,
    ratio_table,
    realtime_cells,
    request_cells,
)
from reports.table import (
    ACTIVITY_SUMMARY_COLUMNS,
    DELIVERY_SUMMARY_COLUMNS,
    SUMMARY_COLUMNS,
    activity_rows,
    delivery_rows,
    summary_rows,
)

TEMPLATE_DIR = Path(__file__).parent / "templates"
TEMPLATE_NAME = "report.html.j2"

#: Ratio at and above which a pair supports the "3x" claim (highlighted in the report).
CLAIM_RATIO = 3.0

#: Packages listed first in the environment section (all others are in a details box).
KEY_PACKAGES = ("websockets", "aiohttp", "httpx", "httpcore", "uvloop", "orjson", "psutil")


def write_report(run: Run, out_path: str | PathLike[str]) -> Path:
    """Render the report for ``run`` to ``out_path`` (parent folders created); return it."""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(run), encoding="utf-8")
    return out


def render_report(run: Run) -> str:
    """The report as an HTML string."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template(TEMPLATE_NAME).render(**report_context(run))


def report_context(run: Run) -> dict[str, Any]:
    """The template variables: plain strings, lists and dicts, already formatted.

    The request section (``has_requests``) covers echo cells, the delivery section
    (``has_deliveries``) real-time cells; a run shows whichever it has (the request
    section also when it has no cells at all).
    """
    echo = request_cells(run.cells)
    has_deliveries = not realtime_cells(run.cells).empty
    has_requests = not echo.empty or not has_deliveries
    multi = len(run.runs) > 1
    return {
        "title": f"rtbench report: {run.scenario_name}",
        "scenario_name": run.scenario_name,
        "run_id": run.run_id,
        "description": _description(run),
        "multi": multi,
        "complete": run.complete,
        "warnings": run_warnings(run),
        "claim_ratio": f"{CLAIM_RATIO:g}",
        "has_requests": has_requests,
        "has_deliveries": has_deliveries,
        "ratio_rows": _ratio_rows(echo) if has_requests else [],
        "summary_headers": ["Cell", *(c.header.replace("\n", " ") for c in SUMMARY_COLUMNS)],
        "summary_rows": summary_rows(run) if has_requests else [],
        "charts": _request_charts(run) if has_requests else [],
        "delivery_ratio_rows": _delivery_ratio_rows(run) if has_deliveries else [],
        "delivery_headers": [
            "Cell",
            *(c.header.replace("\n", " ") for c in DELIVERY_SUMMARY_COLUMNS),
        ],
        "delivery_rows": delivery_rows(run) if has_deliveries else [],
        "delivery_charts": _delivery_charts(run) if has_deliveries else [],
        "delivery_rows_measured": not measured_deliveries(run.deliveries).empty,
        "activity_headers": [
            "Cell",
            *(c.header.replace("\n", " ") for c in ACTIVITY_SUMMARY_COLUMNS),
        ],
        "activity_rows": activity_rows(run),
        "environments": [_environment(part) for part in run.runs],
    }


def _ratio_cell(
    http: object, ws: object, ratio: float, fmt: Callable[[object], str]
) -> dict[str, Any]:
    return {
        "http": fmt(http),
        "ws": fmt(ws),
        "ratio": fmt_ratio(ratio),
        "meets_claim": bool(ratio >= CLAIM_RATIO),
    }


def _ratio_rows(echo: pd.DataFrame) -> list[dict[str, Any]]:
    """Echo cells: HTTP/WS request latency ratios, formatted."""
    rows = []
    for _, r in ratio_table(echo, labels=("p50", "p99")).iterrows():
        row: dict[str, Any] = {
            "run_id": str(r["run_id"]) if "run_id" in r else "",
            "http_cell": str(r["http_cell"]),
            "ws_cell": str(r["ws_cell"]),
        }
        for label in ("p50", "p99"):
            row[label] = _ratio_cell(
                r[f"http_{label}_ms"], r[f"ws_{label}_ms"], r[f"{label}_ratio"], fmt_ms
            )
        rows.append(row)
    return rows


def _delivery_ratio_rows(run: Run) -> list[dict[str, Any]]:
    """Real-time cells: polling/push delivery latency and bytes-per-message ratios."""
    rows = []
    for _, r in delivery_ratio_table(run.cells, labels=("p50", "p99")).iterrows():
        row: dict[str, Any] = {
            "run_id": str(r["run_id"]) if "run_id" in r else "",
            "http_cell": str(r["http_cell"]),
            "ws_cell": str(r["ws_cell"]),
            "http_delivery": str(r["http_delivery"]),
        }
        for label in ("p50", "p99"):
            col = f"delivery_{label}_ms"
            row[label] = _ratio_cell(
                r[f"http_{col}"], r[f"ws_{col}"], r[f"delivery_{label}_ratio"], fmt_ms
            )
        row["bytes"] = _ratio_cell(
            r["http_bytes_per_useful_message"],
            r["ws_bytes_per_useful_message"],
            r["bytes_ratio"],
            fmt_bytes,
        )
        rows.append(row)
    return rows


def _chart(title: str, fig: Figure, caption: str) -> dict[str, str]:
    return {"title": title, "uri": charts.fig_to_data_uri(fig), "caption": caption}


def _request_charts(run: Run) -> list[dict[str, str]]:
    return [
        _chart(
            "Latency by percentile",
            charts.percentile_spectrum(run.samples),
            "Each line is one cell; further right is rarer. Lines stop at the highest "
            "percentile the cell's sample count supports.",
        ),
        _chart(
            "Cumulative distribution",
            charts.cdf(run.samples),
            "Share of requests completed within a given latency; further left is faster.",
        ),
    ]


def _delivery_charts(run: Run) -> list[dict[str, str]]:
    """Delivery latency charts (when any delivery was measured) and the bytes chart."""
    out = []
    if not measured_deliveries(run.deliveries).empty:
        out += [
            _chart(
                "Delivery latency by percentile",
                charts.delivery_spectrum(run.deliveries),
                "Time from an item's cause (a send, a publish, a user going on- or offline) "
                "to its receipt by each recipient, one line per cell; solid lines are "
                "WebSocket push, dashed long polling, dotted short polling. Warmup, duplicate "
                "and deferred (recipient offline) deliveries are left out.",
            ),
            _chart(
                "Cumulative distribution of delivery latency",
                charts.delivery_cdf(run.deliveries),
                "Share of deliveries that arrived within a given latency; further left is faster.",
            ),
        ]
    out.append(
        _chart(
            "Bytes per useful message",
            charts.bytes_per_useful_chart(bytes_per_useful_split(run.samples, run.deliveries)),
            "TCP payload bytes on the wire per useful message (a delivery, or an accepted "
            "activity event), split into what clients sent (polls, sends), replies they "
            "received (poll replies carry the items) and frames the server pushed.",
        )
    )
    return out


def _environment(run: Run) -> dict[str, Any]:
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
        ("Server CPUs", _cpus(pinning.get("server_cpus"))),
        ("Client CPUs", _cpus(pinning.get("client_cpus"))),
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


def _description(run: Run) -> str:
    """The scenario file's ``description`` (meta.json ``scenario.scenario.description``)."""
    scenario = run.meta.get("scenario")
    settings = scenario.get("scenario") if isinstance(scenario, dict) else None
    text = settings.get("description") if isinstance(settings, dict) else None
    return str(text) if text and len(run.runs) == 1 else ""


def _cpus(value: object) -> str | None:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return "not pinned" if value is None else str(value)
