"""What ``rtbench compare`` shows and writes: a rich table, ``compare.md`` and ``compare.json``.

::

    code = run_compare("ci", "results/RUN", specs=["p99:+15%"])   # prints, writes, returns 0/1/2

``compare.md`` is made for CI job summaries (GitHub's ``$GITHUB_STEP_SUMMARY``);
``compare.json`` holds the same rows for machines.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from loadgen.escape import md_block, md_code, md_text, term_name, term_plain
from reports.gate.baseline import BASELINES_DIR, BaselineError, resolve_run
from reports.gate.compare import compare_runs
from reports.gate.errors import EXIT_ERROR, CompareError
from reports.gate.limits import parse_specs
from reports.gate.metrics import METRICS
from reports.gate.result import (
    ERROR,
    IMPROVED,
    INSUFFICIENT,
    OK,
    REGRESSION,
    UNCLEAR,
    Comparison,
    Row,
)
from reports.gate.runs import load_run
from reports.termfit import print_fitting
from reports.termname import Name

COMPARE_MD = "compare.md"
COMPARE_JSON = "compare.json"

_STYLE = {
    REGRESSION: "bold red",
    ERROR: "bold red",
    UNCLEAR: "yellow",
    INSUFFICIENT: "yellow",
    IMPROVED: "green",
    OK: "green",
}

_MARK = {REGRESSION: "❌", ERROR: "⚠️", UNCLEAR: "❔", INSUFFICIENT: "❔", IMPROVED: "✅", OK: "✅"}


_METHODS = (
    "method: samples/deliveries = raw rows resampled within resampled repeats; repeats = "
    "per-repeat figures resampled (scipy); range/single = too few repeats, no interval; "
    "n = repeats baseline/current"
)


def fmt_value(value: float | None, unit: str) -> str:
    """A metric value with its unit, about 3 significant digits."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if unit == "ms":
        return f"{value:.3g} ms" if value < 1000 else f"{value:,.0f} ms"
    if unit == "rps":
        return f"{value:,.1f}/s"
    if unit == "cpu":
        return f"{value * 1e6:.3g} µs"
    if unit == "bytes":
        return f"{value:,.1f} B"
    return f"{value:g}"


#: What :func:`fmt_value` appends per unit; the narrow tables say it once, by the metric.
UNIT_SUFFIX = {"ms": " ms", "rps": "/s", "cpu": " µs", "bytes": " B"}


def fmt_bare(value: float | None, unit: str) -> str:
    """:func:`fmt_value` without its unit: ``0.669`` for ``0.669 ms``."""
    return fmt_value(value, unit).removesuffix(UNIT_SUFFIX.get(unit, "\0"))


def metric_label(metric: str, unit: str) -> str:
    """A metric with the unit its bare figures are in: ``p99 ms``, ``throughput /s``."""
    suffix = UNIT_SUFFIX.get(unit, "").strip()
    return f"{metric} {suffix}" if suffix else metric


def fmt_change(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f}%"


def fmt_interval(row: Row) -> str:
    if row.low is None or row.high is None:
        return "-"
    if row.method == "count":
        return "-"
    return f"[{_pct(row.low)}, {_pct(row.high)}]"


def _pct(value: float) -> str:
    return f"{value * 100:+.1f}%" if math.isfinite(value) else ("+∞" if value > 0 else "-∞")


def _limit(row: Row) -> str:
    return row.threshold.describe()


def _header(c: Comparison) -> list[str]:
    def run(label: str, r: Any) -> str:
        commit = f", commit {r.commit}" if r.commit else ""
        return f"{label}: {r.path} (run {r.run_id}{commit})"

    return [run("baseline", c.baseline), run("current ", c.current)]


def print_comparison(c: Comparison, console: Console) -> None:
    """The comparison as a rich table, with mismatches, notes and the verdict.

    The table is one row per cell and metric when the console is wide enough, else one
    table per cell (:func:`cell_tables`), else one block per check
    (:mod:`reports.termfit`).
    """
    for line in _header(c):
        console.print(term_name(line), highlight=False)
    print_fitting(console, [lambda: [comparison_table(c)], lambda: cell_tables(c)])
    for note, rows in _grouped_notes(c.rows).items():
        console.print(f"  [dim]{_which(rows, term_name)}:[/] {term_name(note)}", highlight=False)
    if c.mismatches:
        style = "yellow" if c.allow_env_mismatch else "bold red"
        head = "allowed by --allow-env-mismatch" if c.allow_env_mismatch else "not comparable"
        console.print(f"[{style}]environment or load mismatch ({head}):[/]")
        for m in c.mismatches:
            console.print(
                term_name(f"  {m.what}: baseline {m.baseline!r}, current {m.current!r}"),
                highlight=False,
            )
    for note in c.notes:
        console.print(f"[dim]note:[/] {term_name(note)}", highlight=False)
    code = c.exit_code()
    style = "bold red" if code else ("yellow" if c.regressions else "bold green")
    console.print(f"[{style}]{term_name(c.verdict())}[/] (exit {code})", highlight=False)


def comparison_table(c: Comparison) -> Table:
    """Every check in one table: cell, metric, both values, change, interval, limit,
    method and status."""
    level = f"{c.level * 100:g}%"
    table = Table(
        title="rtbench compare", title_justify="left", caption=_METHODS, caption_justify="left"
    )
    for name, justify in (
        ("cell", "left"),
        ("metric", "left"),
        ("baseline", "right"),
        ("current", "right"),
        ("change", "right"),
        (f"{level} CI", "right"),
        ("limit", "right"),
        ("method", "left"),
        ("status", "left"),
    ):
        table.add_column(
            name,
            justify=justify,  # type: ignore[arg-type]
            no_wrap=name != "cell",
            overflow="fold" if name == "cell" else "ellipsis",
        )
    for row in c.rows:
        table.add_row(
            Name(term_plain(row.cell)), row.metric, *_figures(row), _method(row), _status(row)
        )
    return table


def _figures(row: Row) -> list[str]:
    """A check's baseline, current value, change, interval and limit, as both tables show them."""
    unit = METRICS[row.metric].unit
    return [
        fmt_value(row.baseline, unit),
        fmt_value(row.current, unit),
        fmt_change(row.change),
        fmt_interval(row),
        _limit(row),
    ]


def cell_tables(c: Comparison) -> list[Table]:
    """The checks as one narrow table per cell (titled with the cell's name): the unit
    after the metric and the method under it, the current value under the baseline (bare
    figures), the interval under the change; the methods legend is the last table's
    caption."""
    level = f"{c.level * 100:g}%"
    by_cell: dict[str, list[Row]] = {}
    for row in c.rows:
        by_cell.setdefault(row.cell, []).append(row)
    tables: list[Table] = []
    for cell, rows in by_cell.items():
        table = Table(
            title=Text(term_plain(cell), style="bold"),
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
        )
        table.add_column("metric\nmethod", no_wrap=True)
        for name in ("baseline\ncurrent", f"change\n{level} CI", "limit"):
            table.add_column(name, justify="right", no_wrap=True)
        table.add_column("status", no_wrap=True)
        for row in rows:
            unit = METRICS[row.metric].unit
            table.add_row(
                Text.assemble(metric_label(row.metric, unit), "\n", (_method(row), "dim")),
                f"{fmt_bare(row.baseline, unit)}\n{fmt_bare(row.current, unit)}",
                f"{fmt_change(row.change)}\n{fmt_interval(row)}",
                _limit(row),
                _status(row),
            )
        tables.append(table)
    if not tables:
        return [comparison_table(c)]
    tables[-1].caption = Text(_METHODS, style="dim")
    tables[-1].caption_justify = "left"
    return tables


def _method(row: Row) -> str:
    return f"{row.method} {row.n_baseline}/{row.n_current}" if row.method else ""


def _status(row: Row) -> str:
    return f"[{_STYLE[row.status]}]{row.status}[/]"


def _grouped_notes(rows: list[Row]) -> dict[str, list[Row]]:
    """Rows by their note, so one explanation covers every row it applies to."""
    notes: dict[str, list[Row]] = {}
    for row in rows:
        if row.note:
            notes.setdefault(row.note, []).append(row)
    return notes


def _which(rows: list[Row], name: Callable[[str], str]) -> str:
    """The rows a note applies to (cells shown by ``name``): listed when few, else counted."""
    if len(rows) <= 3:
        return ", ".join(f"{name(r.cell)} {r.metric}" for r in rows)
    metrics = ", ".join(dict.fromkeys(r.metric for r in rows))
    return f"{len(rows)} checks ({metrics})"


def _md_status(status: str) -> str:
    return f"**{status}**" if status in (REGRESSION, ERROR) else status


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def comparison_markdown(c: Comparison) -> str:
    """``compare.md``: a verdict line, the table, mismatches and notes."""
    code = c.exit_code()
    mark = "❌" if code == 1 or c.errors or c.blocked_by_env else "✅"
    if c.regressions and c.report_only:
        mark = "⚠️"
    lines = [f"## {mark} rtbench compare: {c.verdict()}", ""]
    lines += [f"- {_md_escape(md_text(line.strip()))}" for line in _header(c)]
    limits = ", ".join(md_code(t.spec) for t in c.thresholds)
    which = "default limits" if all(t.default for t in c.thresholds) else "limits"
    lines += [f"- {which}: {limits}", ""]
    level = f"{c.level * 100:g}%"
    lines.append(f"| cell | metric | baseline | current | change | {level} CI | limit | status |")
    lines.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in c.rows:
        cells = [
            md_code(row.cell),
            row.metric,
            *_figures(row),
            f"{_MARK[row.status]} {_md_status(row.status)}",
        ]
        lines.append("| " + " | ".join(_md_escape(x) for x in cells) + " |")
    lines.append("")
    notes = _grouped_notes(c.rows)
    if notes:
        for note, rows in notes.items():
            lines.append(f"- {_which(rows, md_code)}: {_md_escape(md_text(note))}")
        lines.append("")
    if c.mismatches:
        head = (
            "allowed by `--allow-env-mismatch`"
            if c.allow_env_mismatch
            else "the runs are not comparable; exit 2"
        )
        lines += [f"**Environment or load mismatch** ({head}):", ""]
        lines += [
            f"- {_md_escape(md_text(m.what))}: baseline {md_code(m.baseline)}, "
            f"current {md_code(m.current)}"
            for m in c.mismatches
        ]
        lines.append("")
    if c.notes:
        lines += [f"- note: {_md_escape(md_text(n))}" for n in c.notes]
        lines.append("")
    lines += [
        "<details><summary>How to read this</summary>",
        "",
        f"*change* is current / baseline - 1, with a {level} bootstrap confidence interval. "
        "Latency percentiles are resampled from the raw requests within resampled repeats; "
        "other metrics from the per-repeat figures. A check fails only when the **whole** "
        "interval is beyond its limit, so noise alone does not fail the build; *unclear* "
        "means the interval reaches past the limit without being wholly beyond it, "
        "*improved* that it lies wholly beyond the limit on the better side. With "
        "fewer than 3 repeats there is no interval (*insufficient repeats*): the check "
        "fails only when every pairing of repeats is beyond the limit. `lost` and `errors` "
        "are absolute counts in the current run.",
        "",
        "</details>",
        "",
    ]
    return "\n".join(lines)


def write_outputs(c: Comparison, out_dir: Path) -> tuple[Path, Path]:
    """Write ``compare.md`` and ``compare.json`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / COMPARE_MD, out_dir / COMPARE_JSON
    md.write_text(comparison_markdown(c))
    js.write_text(json.dumps(c.as_dict(), indent=2, default=str) + "\n")
    return md, js


def _write_error(out_dir: Path | None, message: str, baseline: str, current: str) -> None:
    """Put a data error where CI expects compare.md, so the job summary says what went wrong."""
    if out_dir is None:
        return
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / COMPARE_MD).write_text(
            f"## ⚠️ rtbench compare: error (exit 2)\n\n- baseline: {md_code(baseline)}\n"
            f"- current: {md_code(current)}\n\n{md_block(message)}\n"
        )
        (out_dir / COMPARE_JSON).write_text(
            json.dumps(
                {
                    "compare_schema": 1,
                    "baseline": {"path": baseline},
                    "current": {"path": current},
                    "error": message,
                    "verdict": "error",
                    "exit_code": EXIT_ERROR,
                },
                indent=2,
            )
            + "\n"
        )
    except OSError:
        pass


def run_compare(
    baseline: str,
    current: str,
    specs: Sequence[str] | None = None,
    cells: Sequence[str] | None = None,
    allow_env_mismatch: bool = False,
    report_only: bool = False,
    out: Path | None = None,
    baselines_dir: Path = BASELINES_DIR,
    seed: int = 0,
    console: Console | None = None,
    err: Console | None = None,
) -> int:
    """The whole ``rtbench compare`` command; returns its exit code."""
    console = console or Console()
    err = err or Console(stderr=True)
    out_dir = out
    try:
        thresholds = parse_specs(specs)
        base_path = resolve_run(baseline, baselines_dir)
        cur_path = resolve_run(current, baselines_dir)
        out_dir = out or cur_path
        comparison = compare_runs(
            load_run(base_path),
            load_run(cur_path),
            thresholds,
            cells=cells,
            allow_env_mismatch=allow_env_mismatch,
            report_only=report_only,
            seed=seed,
        )
    except (CompareError, BaselineError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        if out_dir is None and Path(current).is_dir():
            out_dir = Path(current)
        _write_error(out_dir, str(exc), baseline, current)
        return EXIT_ERROR
    print_comparison(comparison, console)
    md, js = write_outputs(comparison, out_dir)
    err.print(escape(f"wrote {md} and {js}"), highlight=False)
    return comparison.exit_code()
