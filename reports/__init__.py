"""rtbench reports: read results folders, judge the "3x faster" claim, render tables, charts, HTML.

::

    import reports
    run = reports.load("results/20261129-015000-quick")
    run.cells                                  # one row per cell (see reports.columns)
    run.deliveries                             # real-time runs: one row per delivery
    reports.part_names(run)                    # multi-part scenarios: ["echo", "messaging"]
    reports.select_part(run, "messaging")      # one part's rows as a Run
    verdicts = reports.verdict_table(run)      # HTTP/WS ratios, 95 % bootstrap CIs, verdicts
    reports.verdict_wide(verdicts)             # the same, one row per pair
    reports.verdict_matrix(verdicts, cells=run.cells)  # several links: a column per link
    reports.run_warnings(run)                  # why not to trust the numbers, if anything
    reports.sweep_table(run.cells)             # rate sweeps: highest rate under the p99 SLO
    reports.users_sweep_table(run.cells)       # users sweeps: most users under the delivery p99
    reports.ratio_table(run.cells)             # HTTP / WebSocket latency ratios (points only)
    reports.delivery_table(run.cells)          # real-time: delivery latency, counts, costs
    reports.write_report(run, "report.html")   # self-contained HTML
    reports.write_outputs(run, "out/")         # report.html, summary.md, verdict.csv(s)

Modules: ``load`` (files -> Run), ``columns`` (column names), ``stats`` (percentiles,
ratios, sweeps, costs), ``sweeps`` and ``users_sweeps`` (the knee of a rate or a users
sweep), ``bootstrap`` (confidence intervals), ``verdict`` (the claim's
verdict with bootstrap intervals), ``matrix`` (the verdicts pivoted by link profile),
``checks`` (warnings), ``table`` (rich tables), ``charts`` (matplotlib), ``html``
(report.html), ``markdown`` (summary.md, verdict.csv), ``cli_report`` (what
``rtbench report`` runs), ``gate`` (``rtbench compare``, baselines and the ``[slo]``
check: the CI gate over the same loaded results).
"""

from __future__ import annotations

from reports.checks import cell_caveats, repeat_spread, run_warnings
from reports.costs import cost_table
from reports.html import write_report
from reports.load import (
    ResultsError,
    Run,
    cell_scenario,
    load,
    load_many,
    part_names,
    scenario_label,
    select_part,
)
from reports.markdown import summary_markdown, write_outputs
from reports.matrix import matrix_pivot, verdict_matrix
from reports.pairs import matched_pairs
from reports.stats import delivery_ratio_table, delivery_table, ratio_table
from reports.sweeps import sweep_table
from reports.users_sweeps import users_sweep_table
from reports.verdict import (
    CLAIM_RATIO,
    METRICS,
    VERDICTS,
    headline_lines,
    verdict_counts,
    verdict_table,
    verdict_wide,
)

__all__ = [
    "CLAIM_RATIO",
    "METRICS",
    "VERDICTS",
    "ResultsError",
    "Run",
    "cell_caveats",
    "cell_scenario",
    "cost_table",
    "delivery_ratio_table",
    "delivery_table",
    "headline_lines",
    "load",
    "load_many",
    "matched_pairs",
    "matrix_pivot",
    "part_names",
    "ratio_table",
    "repeat_spread",
    "run_warnings",
    "scenario_label",
    "select_part",
    "summary_markdown",
    "sweep_table",
    "users_sweep_table",
    "verdict_counts",
    "verdict_matrix",
    "verdict_table",
    "verdict_wide",
    "write_outputs",
    "write_report",
]
