"""Terminal tables (rich) of the verdict on the claim and of rate sweeps.

::

    from reports.verdict_tables import sweep_rich_table, verdict_rich_table
    console.print(verdict_rich_table(reports.verdict_table(run)))   # narrow=True: short headers
    console.print(sweep_rich_table(reports.sweeps.sweep_table(run.cells)))

Every name is shown as text (:func:`loadgen.escape.term_plain`), never as markup.
"""

from __future__ import annotations

import pandas as pd
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from loadgen.escape import term_plain
from reports.fmt import fmt_ms, fmt_ratio
from reports.pairs import OPTIONAL_CONDITION_COLUMNS, condition_text
from reports.table import flat_header, titled_table
from reports.termname import Name
from reports.verdict import CLAIM_RATIO, METRICS, verdict_wide

#: Rich styles per verdict.
VERDICT_STYLES: dict[str, str] = {
    "holds": "bold green",
    "refuted": "bold red",
    "inconclusive": "yellow",
    "n/a": "dim",
}


#: The verdict table's metric headers on a narrow terminal (explained in its caption).
VERDICT_SHORT: dict[str, str] = {
    "p50": "p50",
    "p99": "p99",
    "bytes": "bytes/\nmsg",
    "cpu": "CPU/\nmsg",
}


def verdict_rich_table(verdicts: pd.DataFrame, *, narrow: bool = False) -> Table:
    """:func:`reports.verdict.verdict_table` output as a rich Table, one row per pair: the
    pair (its condition, the two cells, the clients and any caveats), then per metric the
    ratio and verdict over the 95 % interval. ``narrow=True``: short metric headers
    (:data:`VERDICT_SHORT`, explained in the caption) and a narrower pair column."""
    caption = None
    if narrow:
        caption = "; ".join(
            f"{flat_header(VERDICT_SHORT[m])}: {label}"
            for m, label in METRICS.items()
            if flat_header(VERDICT_SHORT[m]) != label.split(" ")[0]
        )
    table = titled_table(
        "Verdict: HTTP ÷ WebSocket, then the verdict and the 95% CI — holds if the whole "
        f"interval is ≥ {CLAIM_RATIO:g}×, refuted if wholly below",
        caption,
    )
    wide = verdict_wide(verdicts)
    extras = [c for c in OPTIONAL_CONDITION_COLUMNS if c in wide.columns]
    table.add_column(
        "Pair (condition, cells, clients)", overflow="fold", min_width=None if narrow else 38
    )
    for metric, label in METRICS.items():
        header = VERDICT_SHORT[metric] if narrow else label.replace(" per ", "\nper ")
        table.add_column(header, justify="right", no_wrap=True)
    for _, r in wide.iterrows():
        condition = " · ".join(
            [
                str(r["scenario"]),
                str(r["mode"]),
                str(r["load"]),
                *(condition_text(c, r[c]) for c in extras),
            ]
        )
        lines: list[RenderableType] = [
            Text(term_plain(condition), style="dim"),
            Name(term_plain(r["http_cell"])),
            Name(f"÷ {term_plain(r['ws_cell'])}"),
            Text.assemble(
                (term_plain(r["pairing"]), "bold" if r["same_client"] else ""),
                (" (same client)" if r["same_client"] else " (mixed)", "dim"),
            ),
        ]
        if r["caveats"]:
            lines.append(Text(term_plain(r["caveats"]), style="yellow"))
        values: list[RenderableType] = [Group(*lines)]
        for metric in METRICS:
            verdict = str(r[f"{metric}_verdict"])
            low, high = r[f"{metric}_ci_low"], r[f"{metric}_ci_high"]
            ci = f"{_short(low)}–{_short(high)}" if pd.notna(low) and pd.notna(high) else "no CI"
            values.append(
                Text.assemble(
                    fmt_ratio(r[f"{metric}_ratio"]),
                    "\n",
                    (verdict, VERDICT_STYLES.get(verdict, "")),
                    "\n",
                    (ci, "dim"),
                )
            )
        table.add_row(*values)
    return table


def _short(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def sweep_rich_table(sweeps: pd.DataFrame) -> Table:
    """:func:`reports.sweeps.sweep_table` output as a rich Table."""
    table = titled_table("Rate sweeps: the highest rate with p99 under the objective")
    for header in ("Sweep group", "p99 objective", "Highest rate", "p99 there ms", "Stopped at"):
        table.add_column(header, overflow="fold")
    multi = "run_id" in sweeps.columns and sweeps["run_id"].nunique() > 1
    for _, s in sweeps.iterrows():
        top, failing = s["max_rate"], s["first_failing_rate"]
        table.add_row(
            Name(term_plain((f"{s['run_id']}: " if multi else "") + str(s["sweep_group"]))),
            Text(
                f"{s['slo_p99_ms']:g} ms" + (" (default)" if s["slo_source"] == "default" else "")
            ),
            Text(f"{top:,.0f} req/s" if pd.notna(top) else "none"),
            Text(fmt_ms(s["p99_at_max_ms"])),
            Text(
                f"{failing:,.0f} req/s: {s['failure']}"
                if pd.notna(failing)
                else "every rate passed"
            ),
        )
    return table
