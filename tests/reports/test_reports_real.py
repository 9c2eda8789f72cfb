"""Every chart, the verdict and the report files from two tiny *real* runs.

``real_runs`` (tests/reports_fixtures.py) runs a two-cell echo scenario and a two-cell
messaging scenario (short polling against push) with ``rtbench run``, about a second per
cell and repeat, once per test session; test_notebook.py and test_report_browser.py reuse
them. Assertions are on the mechanics, never on timing: a shared machine may be slow.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure
from rich.console import Console

import reports
from reports import charts
from reports.cli_report import report
from reports.costs import bytes_per_useful_split, cost_table
from reports.verdict import METRICS, VERDICTS

try:
    from tests.reports_fixtures import RealRuns
except ImportError:  # tests/ is not a package: pytest puts tests/ itself on sys.path
    from reports_fixtures import RealRuns

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def echo(real_runs: RealRuns) -> reports.Run:
    return reports.load(real_runs.echo)


@pytest.fixture(scope="module")
def live(real_runs: RealRuns) -> reports.Run:
    return reports.load(real_runs.realtime)


def _check(fig: Figure) -> None:
    assert isinstance(fig, Figure) and fig.axes
    assert fig.axes[0].get_title() or fig.get_suptitle()
    assert charts.fig_to_png(fig).startswith(b"\x89PNG")


def _costs(run: reports.Run) -> pd.DataFrame:
    return cost_table(run.cells, {run.run_id: run.meta})


#: A spectrum, a CDF and an over-time chart of one table (samples or deliveries).
Trio = tuple[Callable[[pd.DataFrame], Figure], ...]


def _every_chart(
    costs: pd.DataFrame, data: pd.DataFrame, trio: Trio, **more: Figure
) -> dict[str, Figure]:
    """The ``trio`` of ``data``, the CPU and memory charts of ``costs`` and ``more``, by
    name, each passed through :func:`_check`."""
    spectrum, cdf, over_time = trio
    figures = {
        "spectrum": spectrum(data),
        "cdf": cdf(data),
        "over time": over_time(data),
        "cpu": charts.cpu_chart(costs),
        "memory": charts.memory_chart(costs),
        **more,
    }
    for fig in figures.values():
        _check(fig)
    return figures


def test_real_runs_are_complete(echo: reports.Run, live: reports.Run) -> None:
    assert echo.complete and live.complete
    assert len(echo.cells) == 2 and len(live.cells) == 2
    assert (echo.repeats.groupby("cell").size() == 2).all()
    assert not reports.stats.measured_deliveries(live.deliveries).empty


def test_every_echo_chart(echo: reports.Run) -> None:
    costs = _costs(echo)
    figures = _every_chart(
        costs,
        echo.samples,
        (charts.percentile_spectrum, charts.cdf, charts.latency_over_time),
        sweep=charts.sweep_chart(echo.cells),  # no sweep here: an empty, labelled chart
        bytes=charts.echo_bytes_chart(costs),
        verdict=charts.verdict_chart(reports.verdict_table(echo, n_resamples=300)),
    )
    assert len(figures["spectrum"].axes[0].get_lines()) == 2
    assert len([ax for ax in figures["over time"].axes if ax.get_visible()]) == 2
    assert costs["payload_bytes"].tolist() == [64.0, 64.0]
    assert (costs["bytes_total"] > 128).all() and (costs["rss_mb_per_connection"] > 0).all()


def test_every_delivery_chart(live: reports.Run) -> None:
    costs = _costs(live)
    figures = _every_chart(
        costs,
        live.deliveries,
        (charts.delivery_spectrum, charts.delivery_cdf, charts.delivery_over_time),
        staleness=charts.staleness_chart(live.deliveries, 100),
        bytes=charts.bytes_per_useful_chart(bytes_per_useful_split(live.samples, live.deliveries)),
    )
    stale = figures["staleness"].axes[0]
    assert [line.get_xdata()[0] for line in stale.get_lines()][-2:] == [100.0, 50.0]
    assert (costs["connections"] == 8).all()  # the scenario's users


def test_verdict_on_real_runs(real_runs: RealRuns) -> None:
    run = reports.load_many([real_runs.echo, real_runs.realtime])
    v = reports.verdict_table(run, n_resamples=300)
    assert len(v) == 2 * len(METRICS)  # one pair per run
    assert set(v["verdict"]) <= set(VERDICTS)
    assert v["same_client"].all() and set(v["pairing"]) == {"aiohttp"}
    latency = v[v["metric"].isin(["p50", "p99"])]
    assert latency["ratio"].notna().all() and latency["ci_low"].notna().all()
    assert (latency["ci_low"] <= latency["ci_high"]).all()
    short = v[(v["mode"] == "short-poll") & (v["metric"] == "p50")].iloc[0]
    assert short["ratio"] > 1  # polling every 100 ms is slower than push, at any machine speed


def test_report_command_on_real_runs(real_runs: RealRuns, tmp_path: Path) -> None:
    buf = io.StringIO()
    path = report(
        [real_runs.echo, real_runs.realtime],
        out=tmp_path / "report.html",
        console=Console(file=buf, width=140, color_system=None),
    )
    html = path.read_text(encoding="utf-8")
    assert html.index('id="verdict-table"') < html.index('id="scenario-1"')
    assert "tiny-echo" in html and "tiny-messaging" in html
    # verdict; echo: spectrum, CDF, over time, bytes, CPU, memory;
    # messaging: spectrum, CDF, over time, staleness, bytes, CPU, memory
    assert html.count('<img src="data:image/png;base64,') == 1 + 6 + 7
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert summary.startswith("## rtbench verdict") and "`http/aiohttp/keep-alive`" in summary
    csv = pd.read_csv(tmp_path / "verdict.csv")
    assert len(csv) == 2 * len(METRICS)
    assert "Verdict" in buf.getvalue()


def test_report_command_fits_80_columns(real_runs: RealRuns, tmp_path: Path) -> None:
    """``rtbench report`` as CI logs show it (COLUMNS=80): no line wider, no figure cut."""
    from typer.testing import CliRunner

    from loadgen.cli import app
    from reports.fmt import fmt_ms

    folders = [str(real_runs.echo), str(real_runs.realtime)]
    result = CliRunner().invoke(
        app, ["report", *folders, "--out", str(tmp_path)], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert max(len(line) for line in out.splitlines()) <= 80
    run = reports.load_many([real_runs.echo, real_runs.realtime])
    for _, cell in run.cells.iterrows():
        column = "p99_ms" if cell["delivery"] == "request" else "delivery_p99_ms"
        assert fmt_ms(cell[column]) in out, (cell["cell"], column)
