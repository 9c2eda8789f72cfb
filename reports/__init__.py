"""rtbench reports: read results folders, compute statistics, render tables, charts and HTML.

::

    import reports
    run = reports.load("results/20261129-015000-quick")
    run.cells                                  # one row per cell (see reports.columns)
    run.deliveries                             # real-time runs: one row per delivery
    reports.ratio_table(run.cells)             # HTTP / WebSocket latency ratios
    reports.delivery_table(run.cells)          # real-time: delivery latency, counts, costs
    reports.delivery_ratio_table(run.cells)    # polling / push delivery and bytes ratios
    reports.write_report(run, "report.html")   # self-contained HTML

Modules: ``load`` (files -> Run), ``columns`` (column names), ``stats`` (percentiles,
ratios), ``checks`` (warnings), ``table`` (rich tables), ``charts`` (matplotlib),
``html`` (report.html), ``cli_report`` (what ``rtbench report`` runs).
"""

from __future__ import annotations

from reports.html import write_report
from reports.load import ResultsError, Run, load, load_many
from reports.stats import delivery_ratio_table, delivery_table, ratio_table

__all__ = [
    "ResultsError",
    "Run",
    "delivery_ratio_table",
    "delivery_table",
    "load",
    "load_many",
    "ratio_table",
    "write_report",
]
