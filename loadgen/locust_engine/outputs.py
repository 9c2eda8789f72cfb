"""locust's own outputs of a run: its CSV files and its HTML report.

::

    outputs = LocustOutputs(environment, out_prefix)   # CSVs written during the run
    files = outputs.close()                            # {"stats": "x.locust_stats.csv", ...}
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import gevent
from locust import stats as locust_stats
from locust.env import Environment
from locust.html import get_html_report

from loadgen.escape import csv_writer

log = logging.getLogger("rtbench.locust")


class LocustOutputs:
    """locust's own CSV files (updated during the run) and HTML report (at the end)."""

    def __init__(self, environment: Environment, out_prefix: Path) -> None:
        self.environment = environment
        self.base = str(out_prefix.with_suffix(".locust"))
        self.writer = locust_stats.StatsCSVFileWriter(
            environment, locust_stats.PERCENTILES_TO_REPORT, self.base, full_history=True
        )
        self.greenlets = [
            gevent.spawn(self.writer.stats_writer),
            gevent.spawn(locust_stats.stats_history, environment.runner),
        ]

    def close(self) -> dict[str, str]:
        """Write the final figures; returns the files' names."""
        gevent.killall(self.greenlets, block=True, timeout=2.0)
        with contextlib.suppress(Exception):
            locust_stats.update_stats_history(self.environment.runner)
        self.writer.close_files()
        final = locust_stats.StatsCSV(self.environment, locust_stats.PERCENTILES_TO_REPORT)
        files = {
            "stats": self.base + "_stats.csv",
            "stats_history": self.base + "_stats_history.csv",
            "failures": self.base + "_failures.csv",
            "exceptions": self.base + "_exceptions.csv",
            "html": self.base + ".html",
        }
        for key, method in (
            ("stats", final.requests_csv),
            ("failures", final.failures_csv),
            ("exceptions", final.exceptions_csv),
        ):
            with open(files[key], "w", newline="") as fh:
                method(csv_writer(fh))  # error messages and names: no spreadsheet formulas
        try:
            html = get_html_report(self.environment, show_download_link=False)
            Path(files["html"]).write_text(html)
        except Exception as exc:  # the report is a courtesy; the run's results are elsewhere
            log.warning("could not write locust's HTML report: %s", exc)
            del files["html"]
        return {k: Path(v).name for k, v in files.items()}
