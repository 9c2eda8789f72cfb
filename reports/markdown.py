"""``summary.md``: the verdict, the warnings and key figures as Markdown, for CI job summaries.

::

    text = summary_markdown(run)                  # or pass verdicts/warnings already computed
    Path("summary.md").write_text(text)
    write_outputs(run, Path("results/X"))         # report.html, summary.md, verdict.csv
                                                  # (and verdict-matrix.csv over several links)

Pure text with no timestamps or paths, so the same results always give the same file
(``tests/data/golden/summary.md`` checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path

import pandas as pd

from loadgen.escape import csv_frame, md_code, md_text
from reports.bootstrap import LEVEL
from reports.checks import run_warnings
from reports.floor import floor_notes, floor_table, fmt_multiple
from reports.fmt import as_float, fmt_bytes, fmt_ms, fmt_pct, fmt_rate, fmt_us
from reports.header_bytes import (
    HEADER_BYTES_HEADERS,
    HEADER_BYTES_NOTE,
    header_bytes_display,
    header_bytes_table,
)
from reports.html import write_report
from reports.load import Run, scenario_label
from reports.matrix import MATRIX_CSV, matrix_pivot, matrix_profiles, ratio_ci_text, verdict_matrix
from reports.pairs import OPTIONAL_CONDITION_COLUMNS, condition_text
from reports.stalls import STALL_HEADERS, STALL_NOTE, stall_rows
from reports.stats import realtime_mask
from reports.sweeps import sweep_table
from reports.user_costs import USER_COST_HEADERS, USER_COST_NOTE, user_cost_rows
from reports.verdict import (
    CLAIM_RATIO,
    METRICS,
    VERDICTS,
    headline_lines,
    verdict_counts,
    verdict_table,
    verdict_wide,
)

SUMMARY_FILE = "summary.md"
VERDICT_CSV = "verdict.csv"
REPORT_FILE = "report.html"

#: How the verdict is written in Markdown (bold for the decisive ones).
_VERDICT_MD = {
    "holds": "**holds**",
    "refuted": "**refuted**",
    "inconclusive": "inconclusive",
    "n/a": "n/a",
}


def summary_markdown(
    run: Run,
    *,
    verdicts: pd.DataFrame | None = None,
    warnings: Sequence[str] | None = None,
) -> str:
    """The Markdown summary of ``run``: the verdict matrix (when the pairs span two or more
    link profiles, :func:`reports.matrix.verdict_matrix`), verdict counts, the verdict per
    pair, warnings, rate sweeps (if any), the harness floor with each loopback echo cell's
    p50 as a multiple of it (when meta.json has one), key figures per cell and, for runs
    with real-time cells, the header bytes per poll and per delivered item
    (:mod:`reports.header_bytes`), the cost per connected user (:mod:`reports.user_costs`)
    and the stalls of their processes (:mod:`reports.stalls`)."""
    verdicts = verdict_table(run) if verdicts is None else verdicts
    warnings = run_warnings(run) if warnings is None else warnings
    claim = f"{CLAIM_RATIO:g}×"
    runs = ", ".join(f"{md_code(p.run_id)} ({md_text(p.scenario_name)})" for p in run.runs)
    lines = [
        f"## rtbench verdict: is WebSocket {claim} faster than HTTP?",
        "",
        f"Runs: {runs}. Each HTTP cell is paired with each WebSocket cell measured in the "
        f"same condition; the table gives HTTP ÷ WebSocket with its {LEVEL:.0%} bootstrap "
        f"confidence interval. The claim **holds** where the whole interval is at or above "
        f"{claim}, is **refuted** where it is wholly below, and is inconclusive where the "
        "interval straddles it. (The 3× figure is Lubbers & Greco's 2010 latency model of "
        "polling over new connections, not a measurement.)",
        "",
    ]
    if verdicts.empty:
        lines += ["No HTTP/WebSocket pair to judge.", ""]
    else:
        lines += [f"- {_md(line)}" for line in headline_lines(verdicts)]
        lines += [""]
        matrix = _matrix_lines(verdict_matrix(verdicts, cells=run.cells))
        if matrix:
            lines += [*matrix, "### Verdict counts", ""]
        lines += _counts_table(verdicts)
        lines += ["", "### Verdict per condition", ""]
        lines += _verdict_lines(verdicts)
    lines += ["", "### Warnings", ""]
    lines += [f"- {_md(md_text(w))}" for w in warnings] if warnings else ["None."]
    sweeps = sweep_table(run.cells)
    if not sweeps.empty:
        lines += ["", "### Rate sweeps: highest rate with p99 under the objective", ""]
        lines += _sweep_lines(sweeps, multi=len(run.runs) > 1)
    lines += _floor_lines(run)
    lines += ["", "### Key figures", ""]
    lines += _key_figures(run)
    lines += [
        "",
        "Latency is request latency for echo cells and delivery latency (cause to receipt) "
        "for real-time cells; Rate/s is requests/s or deliveries/s; bytes and CPU are per "
        "request or per useful message; Client CPU is the load generator's utilisation.",
    ]
    lines += _header_bytes_lines(run)
    lines += _user_cost_lines(run)
    lines += _stall_lines(run)
    return "\n".join(lines).rstrip() + "\n"


def write_outputs(
    run: Run,
    folder: str | PathLike[str],
    *,
    html_name: str = REPORT_FILE,
    verdicts: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Write ``report.html`` (or ``html_name``), ``summary.md`` and ``verdict.csv`` into
    ``folder``, and ``verdict-matrix.csv`` (:func:`reports.matrix.verdict_matrix`) when the
    pairs span two or more link profiles (else an old one there is removed); return their
    paths by kind (``"html"``, ``"markdown"``, ``"csv"``, and ``"matrix_csv"``)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    verdicts = verdict_table(run) if verdicts is None else verdicts
    warnings = run_warnings(run)
    html = write_report(run, out / html_name, verdicts=verdicts)
    md = out / SUMMARY_FILE
    md.write_text(summary_markdown(run, verdicts=verdicts, warnings=warnings), encoding="utf-8")
    csv = out / VERDICT_CSV
    csv_frame(verdicts).to_csv(csv, index=False, float_format="%.6g")
    written = {"html": html, "markdown": md, "csv": csv}
    matrix = verdict_matrix(verdicts, cells=run.cells)
    matrix_csv = out / MATRIX_CSV
    if matrix.empty:
        matrix_csv.unlink(missing_ok=True)
    else:
        csv_frame(matrix).to_csv(matrix_csv, index=False, float_format="%.6g")
        written["matrix_csv"] = matrix_csv
    return written


def ratio_with_ci(ratio: object, low: object, high: object) -> str:
    """``"4.12× (3.80–4.45)"``; ``"4.12× (no CI)"`` without an interval; ``"–"`` without a
    ratio."""
    return ratio_ci_text(ratio, low, high)


def _matrix_lines(matrix: pd.DataFrame) -> list[str]:
    """The verdict matrix, one table per metric; nothing when ``matrix`` is empty."""
    if matrix.empty:
        return []
    profiles = matrix_profiles(matrix)
    pairings = ", ".join(dict.fromkeys(matrix["pairing"].astype(str)))
    lines = [
        "### Verdict matrix by link",
        "",
        f"Same-client pairs ({_md(md_text(pairings))}) only, one column per link profile in "
        "the order they ran; each cell is HTTP ÷ WebSocket with its "
        f"{LEVEL:.0%} confidence interval and the verdict. Every pair is in the table further "
        "down.",
    ]
    for metric in dict.fromkeys(matrix["metric"]):
        grid = matrix_pivot(matrix, str(metric), cell=_matrix_cell)
        tls = ["TLS"] if matrix["tls"].notna().any() else []
        head = ["Scenario", "HTTP mode", *tls, *(md_text(p) for p in profiles)]
        lines += ["", f"**{METRICS.get(str(metric), metric)}**", ""]
        lines += ["| " + " | ".join(_md(h) for h in head) + " |", "|" + "---|" * len(head)]
        for _, g in grid.iterrows():
            values = [md_text(g["scope"]), md_text(g["http_mode"])]
            values += [md_text(g["tls"]) for _ in tls]
            values += [g[p] if g[p] is not None else "–" for p in profiles]
            lines.append("| " + " | ".join(_md(v) for v in values) + " |")
    return [*lines, ""]


def _matrix_cell(row: pd.Series) -> str:
    text = ratio_ci_text(row["ratio"], row["ci_low"], row["ci_high"])
    return f"{text} {_VERDICT_MD.get(str(row['verdict']), '')}".strip()


def _counts_table(verdicts: pd.DataFrame) -> list[str]:
    """Verdict counts over the headline pairs; the other pairs beside them."""
    head = verdicts["headline"].astype(bool)
    same = verdicts["same_client"].astype(bool)
    counts = verdict_counts(verdicts[head])
    others = verdict_counts(verdicts[same & ~head])
    mixed = verdict_counts(verdicts[~same])
    lines = [
        "| metric (HTTP ÷ WebSocket), headline pairs | "
        + " | ".join(VERDICTS)
        + " | other same-client pairs holding | mixed pairs (not judged) |",
        "|---|" + "---:|" * (len(VERDICTS) + 2),
    ]
    for metric, label in METRICS.items():
        total_others = sum(others[metric].values())
        held = f"{others[metric]['holds']} of {total_others}" if total_others else "–"
        cells = " | ".join(str(counts[metric][v]) for v in VERDICTS)
        lines.append(f"| {label} | {cells} | {held} | {sum(mixed[metric].values())} |")
    return lines


def _verdict_lines(verdicts: pd.DataFrame) -> list[str]:
    wide = verdict_wide(verdicts)
    extras = [c for c in OPTIONAL_CONDITION_COLUMNS if c in wide.columns]
    names = {"part": "Part", "profile": "Link", "tls": "TLS", "server": "Server"}
    head = ["Scenario", "Mode", "Clients", "Load", *(names.get(c, c) for c in extras)]
    head += ["HTTP cell", "WebSocket cell"]
    head += [f"{label}" for label in METRICS.values()]
    head += ["Caveats"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in wide.iterrows():
        pairing = md_text(r["pairing"])
        clients = (
            f"**{pairing}**"
            if r["same_client"]
            else f"{pairing} (different client libraries: not judged)"
        )
        values = [
            md_text(r["scenario"]),
            md_text(r["mode"]),
            clients,
            md_text(r["load"]),
            *(md_text(condition_text(c, r[c])) for c in extras),
            md_code(r["http_cell"]),
            md_code(r["ws_cell"]),
        ]
        for metric in METRICS:
            text = ratio_with_ci(
                r[f"{metric}_ratio"], r[f"{metric}_ci_low"], r[f"{metric}_ci_high"]
            )
            values.append(f"{text} {_VERDICT_MD.get(str(r[f'{metric}_verdict']), '')}".strip())
        values.append(md_text(r["caveats"] or ""))
        lines.append("| " + " | ".join(_md(v) for v in values) + " |")
    return lines


def _sweep_lines(sweeps: pd.DataFrame, *, multi: bool) -> list[str]:
    lines = [
        "| Sweep group | p99 objective | Highest rate | p99 there (ms) | Stopped at |",
        "|---|---|---:|---:|---|",
    ]
    for _, s in sweeps.iterrows():
        group = (f"{s['run_id']}: " if multi else "") + str(s["sweep_group"])
        slo = f"{s['slo_p99_ms']:g} ms" + (" (default)" if s["slo_source"] == "default" else "")
        top = as_float(s["max_rate"])
        failing = as_float(s["first_failing_rate"])
        stop = f"{failing:,.0f} req/s: {s['failure']}" if failing else "every rate passed"
        values = [
            md_code(group),
            slo,
            f"{top:,.0f} req/s" if top else "none",
            fmt_ms(s["p99_at_max_ms"]),
            md_text(stop),
        ]
        lines.append("| " + " | ".join(_md(v) for v in values) + " |")
    return lines


def _floor_lines(run: Run) -> list[str]:
    """The harness floor and each loopback echo cell's p50 as a multiple of it; nothing
    when no floor was recorded."""
    notes = floor_notes(run)
    if not notes:
        return []
    lines = ["", "### Harness floor: the load generator's own round trip", ""]
    lines += [f"- {_md(md_text(n))}" for n in notes]
    table = floor_table(run)
    if not table.empty:
        lines += ["", "| Cell | p50 ms | floor p50 ms | p50 ÷ floor |", "|---|---:|---:|---:|"]
        multi = len(run.runs) > 1
        for _, r in table.iterrows():
            name = f"{r['run_id']}: {r['cell']}" if multi else str(r["cell"])
            values = [md_code(name), fmt_ms(r["p50_ms"]), fmt_ms(r["floor_p50_ms"])]
            lines.append(
                "| " + " | ".join(_md(v) for v in [*values, fmt_multiple(r["multiple"])]) + " |"
            )
    return lines


def _key_figures(run: Run) -> list[str]:
    head = [
        "Scenario",
        "Cell",
        "Latency",
        "p50 ms",
        "p99 ms",
        "Rate/s",
        "Bytes/msg",
        "Server CPU µs/msg",
        "Client CPU",
    ]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---|" + "---:|" * (len(head) - 3)]
    for part in run.runs:
        cells = part.cells
        live = realtime_mask(cells)
        for i, c in cells.iterrows():
            if live[i]:
                kind, p50, p99 = "delivery", c.get("delivery_p50_ms"), c.get("delivery_p99_ms")
                bytes_ = c.get("bytes_per_useful_message")
                cpu = c.get("cpu_s_per_useful_message_server")
                delivered, window = (
                    as_float(c.get("deliveries_delivered")),
                    as_float(c.get("duration_s")),
                )
                rate = delivered / window if delivered is not None and window else None
            else:
                kind, p50, p99 = "request", c.get("p50_ms"), c.get("p99_ms")
                sent = as_float(c.get("bytes_per_request_sent"))
                received = as_float(c.get("bytes_per_request_received"))
                bytes_ = sent + received if sent is not None and received is not None else None
                cpu = c.get("cpu_s_per_request_server")
                rate = c.get("throughput_rps")
            values = [
                md_text(scenario_label(part, c.get("part"))),
                md_code(c["cell"]),
                kind,
                fmt_ms(p50),
                fmt_ms(p99),
                fmt_rate(rate),
                fmt_bytes(bytes_),
                fmt_us(cpu),
                fmt_pct(c.get("cpu_util_client")),
            ]
            lines.append("| " + " | ".join(_md(v) for v in values) + " |")
    return lines


def _header_bytes_lines(run: Run) -> list[str]:
    """HTTP header bytes per poll and per delivered item, beside WebSocket framing; nothing
    without a polling or push cell."""
    rows = []
    for part in run.runs:
        frame = header_bytes_table(part)
        rows += [
            (scenario_label(part, r["part"]), row)
            for (_, r), row in zip(frame.iterrows(), header_bytes_display(frame), strict=True)
        ]
    if not rows:
        return []
    head = ["Scenario", *HEADER_BYTES_HEADERS]
    lines = ["", "### Header bytes per poll and per delivered item", "", HEADER_BYTES_NOTE, ""]
    lines += ["| " + " | ".join(head) + " |", "|---|---|---|---|" + "---:|" * (len(head) - 4)]
    for scenario, (cell, protocol, delivery, *figures) in rows:
        values = [md_text(scenario), md_code(cell), md_text(protocol), md_text(delivery)]
        lines.append("| " + " | ".join(_md(v) for v in [*values, *figures]) + " |")
    return lines


def _user_cost_lines(run: Run) -> list[str]:
    """The cost per connected user of every real-time cell; nothing without one."""
    rows = [(part, row) for part in run.runs for row in user_cost_rows(part.cells)]
    if not rows:
        return []
    head = ["Scenario", *USER_COST_HEADERS]
    lines = ["", "### Cost per connected user", "", USER_COST_NOTE, ""]
    lines += ["| " + " | ".join(head) + " |", "|---|---|---|---|" + "---:|" * (len(head) - 4)]
    for part, (cell, transport, delivery, *figures) in rows:
        values = [
            md_text(scenario_label(part)),
            md_code(cell),
            md_text(transport),
            md_text(delivery),
            *figures,
        ]
        lines.append("| " + " | ".join(_md(v) for v in values) + " |")
    return lines


def _stall_lines(run: Run) -> list[str]:
    """What stalled the server or load generator in each real-time cell; nothing when no
    cell recorded stalls."""
    rows = [(part, row) for part in run.runs for row in stall_rows(part)]
    if not rows:
        return []
    head = ["Scenario", *STALL_HEADERS]
    lines = ["", "### Stalls", "", STALL_NOTE, ""]
    lines += ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for part, (cell, *figures) in rows:
        values = [md_text(scenario_label(part)), md_code(cell), *figures]
        lines.append("| " + " | ".join(_md(v) for v in values) + " |")
    return lines


def _md(text: object) -> str:
    """Text safe inside a Markdown table cell: pipes escaped, newlines flattened."""
    return str(text).replace("|", "\\|").replace("\n", " ")
