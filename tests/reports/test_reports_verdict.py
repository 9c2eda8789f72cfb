"""The verdict on the "3x faster" claim, trust warnings, rate sweeps and summary.md.

Statistics are checked on synthetic samples with known answers; the report outputs on the
synthetic results folders of tests/reports_fixtures.py, where every cell's latencies are one
shared base times the cell's scale (so a point ratio is exactly the ratio of the scales).
``RTBENCH_UPDATE_GOLDEN=1 pytest tests/test_reports_verdict.py`` rewrites
tests/data/golden/summary.md: do it only after a deliberate change, and read the diff.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from reports_fixtures import (
    SSE_BYTES_PER_MESSAGE,
    CellSpec,
    RtCellSpec,
    edit_cell,
    make_realtime_run_dir,
    make_run_dir,
    sweep_cells,
)
from rich.console import Console

import reports
from loadgen.schema import SUMMARY_FILE
from reports import charts
from reports.bootstrap import mean_ratio_ci, percentile_ratio_ci
from reports.checks import SPREAD_MESSAGE, cell_caveats, repeat_spread, run_warnings
from reports.cli_report import report
from reports.costs import bytes_per_useful_split
from reports.html import render_report
from reports.markdown import summary_markdown, write_outputs
from reports.pairs import CONDITION_COLUMNS, matched_pairs
from reports.sweeps import DEFAULT_SWEEP_SLO_P99_MS, sweep_table
from reports.verdict import (
    VERDICT_COLUMNS,
    verdict_of,
    verdict_table,
    verdict_wide,
)
from reports.verdict_tables import verdict_rich_table

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "summary.md"

HTTP_A = "http/aiohttp/keep-alive"
HTTP_X = "http/httpx/new-connection"
WS_A = "ws-aiohttp/aiohttp/persistent"
WS_W = "ws-websockets/websockets/persistent"

#: Four times slower HTTP, 1.2 times slower HTTP, and two WebSocket cells (aiohttp first).
CLAIM_CELLS = (
    CellSpec("http", "aiohttp", "keep-alive", scale=4),
    CellSpec("http", "httpx", "new-connection", scale=1.2),
    CellSpec("ws-aiohttp", "aiohttp", "persistent", scale=1),
    CellSpec("ws-websockets", "websockets", "persistent", scale=1),
)


def _rng(seed: int = 7) -> np.random.Generator:
    return np.random.default_rng(seed)


def _verdicts(ratio, low, high) -> list[str]:
    return [verdict_of(lo, hi) for lo, hi in zip(low, high, strict=True)]


# --- statistics with known answers ------------------------------------------------------


def test_four_times_with_tight_spread_holds() -> None:
    ws = _rng(1).normal(1.0, 0.01, 3000)
    http = _rng(2).normal(4.0, 0.04, 3000)
    ratio, low, high = percentile_ratio_ci(http, ws, (50, 99))
    assert ratio == pytest.approx([4.0, 4.0], rel=0.02)
    assert (low < ratio).all() and (ratio < high).all()
    assert (low > 3.8).all() and (high < 4.2).all()
    assert _verdicts(ratio, low, high) == ["holds", "holds"]


def test_one_point_two_times_is_refuted() -> None:
    ws = _rng(3).normal(1.0, 0.02, 3000)
    http = _rng(4).normal(1.2, 0.024, 3000)
    ratio, low, high = percentile_ratio_ci(http, ws, (50, 99))
    assert ratio == pytest.approx([1.2, 1.2], rel=0.02)
    assert (high < 1.3).all()
    assert _verdicts(ratio, low, high) == ["refuted", "refuted"]


def test_overlapping_noisy_samples_are_inconclusive() -> None:
    # 50 widely spread values, and the same values three times larger in another order:
    # the percentiles are exactly 3x apart, but the samples overlap and the data are few.
    ws = _rng(5).lognormal(np.log(1.0), 1.0, 50)
    http = 3.0 * _rng(6).permutation(ws)
    ratio, low, high = percentile_ratio_ci(http, ws, (50, 99))
    assert ratio == pytest.approx([3.0, 3.0])
    assert (low < 2.5).all() and (high > 3.5).all()
    assert _verdicts(ratio, low, high) == ["inconclusive", "inconclusive"]


def test_verdict_of_bounds() -> None:
    assert verdict_of(3.0, 3.5) == "holds"  # a lower bound of exactly 3 supports the claim
    assert verdict_of(2.0, 2.99) == "refuted"
    assert verdict_of(2.99, 3.0) == "inconclusive"
    assert verdict_of(float("nan"), 4.0) == "n/a"
    assert verdict_of(None, None) == "n/a"  # type: ignore[arg-type]
    assert verdict_of(1.5, 1.9, claim=1.2) == "holds"


def test_bootstrap_is_seeded_and_subsamples_large_cells() -> None:
    http = _rng(8).lognormal(np.log(4.0), 0.3, 50_000)
    ws = _rng(9).lognormal(np.log(1.0), 0.3, 50_000)
    first = percentile_ratio_ci(http, ws, (50, 99), rng=np.random.default_rng(1))
    again = percentile_ratio_ci(http, ws, (50, 99), rng=np.random.default_rng(1))
    np.testing.assert_array_equal(np.array(first), np.array(again))
    small = percentile_ratio_ci(http, ws, (50,), max_samples=2_000, n_resamples=500)
    full = percentile_ratio_ci(http, ws, (50,), max_samples=20_000, n_resamples=500)
    assert small[0][0] == full[0][0]  # the point estimate always uses every value
    # a smaller subsample never gives a narrower interval than a larger one would
    assert small[2][0] - small[1][0] > full[2][0] - full[1][0]


def test_too_few_values_give_no_interval() -> None:
    ratio, low, high = percentile_ratio_ci(np.array([1.0]), np.array([1.0, 2.0]), (50,))
    assert np.isnan(ratio).all() and np.isnan(low).all() and np.isnan(high).all()
    assert all(np.isnan(mean_ratio_ci([4.0], [1.0, 1.1])))
    low, high = mean_ratio_ci([4.0, 4.4, 3.6], [1.0, 1.1, 0.9])
    assert low < 4.0 < high


# --- the verdict table on synthetic runs ------------------------------------------------


@pytest.fixture(scope="module")
def claim_run(tmp_path_factory: pytest.TempPathFactory) -> reports.Run:
    return reports.load(make_run_dir(tmp_path_factory.mktemp("claim"), CLAIM_CELLS))


@pytest.fixture(scope="module")
def claim_verdicts(claim_run: reports.Run) -> pd.DataFrame:
    return verdict_table(claim_run)


def test_verdict_table_known_ratios(claim_verdicts: pd.DataFrame) -> None:
    v = claim_verdicts.set_index(["http_cell", "ws_cell", "metric"])
    assert list(claim_verdicts.columns) == [*CONDITION_COLUMNS, *VERDICT_COLUMNS]
    for ws in (WS_A, WS_W):
        for metric in ("p50", "p99"):
            four, slow = v.loc[(HTTP_A, ws, metric)], v.loc[(HTTP_X, ws, metric)]
            assert four["ratio"] == pytest.approx(4.0, rel=1e-9)
            assert slow["ratio"] == pytest.approx(1.2, rel=1e-5)  # ns rounding
            # httpx against either WebSocket client: a mixed pair, its ratio shown, not judged
            assert slow["verdict"] == "n/a" and "different client libraries" in slow["note"]
            assert slow["ci_low"] < 1.2 < slow["ci_high"]
            assert four["ci_low"] < 4.0 < four["ci_high"]
            assert four["n_http"] == four["n_ws"] == 2000
            assert four["unit"] == "ms"
        judged = "holds" if ws == WS_A else "n/a"  # aiohttp ÷ aiohttp, or a mixed pair
        assert v.loc[(HTTP_A, ws, "p50"), "verdict"] == judged
        # per-repeat bytes are identical in the fixture: a zero-width interval
        bytes_row = v.loc[(HTTP_A, ws, "bytes")]
        assert bytes_row["ratio"] == pytest.approx(350 / 58)
        assert bytes_row["ci_low"] == pytest.approx(bytes_row["ci_high"])
        assert bytes_row["verdict"] == judged and bytes_row["unit"] == "bytes/request"
        cpu_row = v.loc[(HTTP_A, ws, "cpu")]
        assert cpu_row["ratio"] == pytest.approx(4.0) and cpu_row["http_value"] == 400.0
        assert cpu_row["n_http"] == 2 and cpu_row["method"] == "bootstrap of per-repeat values"
    same = claim_verdicts["same_client"].astype(bool)
    assert set(claim_verdicts.loc[same, "note"]) == {""}
    assert claim_verdicts.loc[~same, "note"].str.contains("different client libraries").all()
    # No lean cells here: the headline is every same-client pair.
    assert claim_verdicts["headline"].tolist() == same.tolist()


def test_pairs_same_client_first(claim_run: reports.Run) -> None:
    pairs = matched_pairs(claim_run)
    assert len(pairs) == 4
    assert pairs.iloc[0][["http_cell", "ws_cell", "pairing"]].tolist() == [HTTP_A, WS_A, "aiohttp"]
    assert pairs["same_client"].tolist() == [True, False, False, False]
    assert set(pairs.loc[~pairs["same_client"], "pairing"]) == {
        "aiohttp vs websockets",
        "httpx vs aiohttp",
        "httpx vs websockets",
    }
    assert set(pairs["mode"]) == {"keep-alive", "new-connection"}
    assert set(pairs["load"]) == {"closed loop, 8 connections"}
    assert set(pairs["kind"]) == {"request"} and set(pairs["scenario"]) == {"quick"}


def test_verdict_wide_one_row_per_pair(claim_verdicts: pd.DataFrame) -> None:
    wide = verdict_wide(claim_verdicts)
    assert len(wide) == 4
    assert {"p50_ratio", "p99_ci_low", "bytes_verdict", "cpu_ws_value"} <= set(wide.columns)
    row = wide.set_index(["http_cell", "ws_cell"]).loc[(HTTP_A, WS_A)]
    assert row["p50_verdict"] == "holds" and row["p50_ratio"] == pytest.approx(4.0)


def test_realtime_pairs_use_deliveries(tmp_path: Path) -> None:
    run = reports.load(make_realtime_run_dir(tmp_path))
    v = verdict_table(run).set_index(["http_cell", "ws_cell", "metric"])
    short = "http/aiohttp/keep-alive/short-poll"
    long_ = "http/aiohttp/keep-alive/long-poll"
    assert v.loc[(short, WS_A, "p50"), "ratio"] == pytest.approx(10.0)
    assert v.loc[(long_, WS_W, "p99"), "ratio"] == pytest.approx(1.5)
    assert v.loc[(short, WS_A, "bytes"), "ratio"] == pytest.approx(10.0)
    assert v.loc[(short, WS_A, "p50"), "n_http"] == 1000  # deliveries, not sends
    assert v.loc[(short, WS_A, "bytes"), "unit"] == "bytes/message"
    assert set(v["mode"]) == {"short-poll", "long-poll"}
    assert set(v["method"]) >= {"bootstrap of deliveries within each cell"}


def test_sse_cells_pair_with_push(tmp_path: Path) -> None:
    cells = (
        RtCellSpec("http", "aiohttp", "keep-alive", "sse", scale=2),
        RtCellSpec("ws-aiohttp", "aiohttp", "persistent", "push", scale=1),
    )
    run = reports.load(make_realtime_run_dir(tmp_path, cells))
    v = verdict_table(run, n_resamples=300).set_index("metric")
    assert set(v["mode"]) == {"sse"} and set(v["http_cell"]) == {"http/aiohttp/keep-alive/sse"}
    assert v.loc["p50", "ratio"] == pytest.approx(2.0)
    assert v.loc["bytes", "ratio"] == pytest.approx(SSE_BYTES_PER_MESSAGE / 80.0)
    split = bytes_per_useful_split(run.samples, run.deliveries).set_index("cell")
    sse = split.loc["http/aiohttp/keep-alive/sse"]
    assert sse["push_bytes"] == 40 and sse["total_bytes"] == pytest.approx(SSE_BYTES_PER_MESSAGE)
    ratios = reports.delivery_ratio_table(run.cells)
    assert ratios["http_delivery"].tolist() == ["sse"]
    html = render_report(run, verdicts=verdict_table(run, n_resamples=300))
    assert "sse" in html and 'alt="Short polling: staleness against the poll interval"' not in html


def test_conditions_split_by_load_profile_and_tls(tmp_path: Path) -> None:
    """Cells differing in rate, network profile or TLS are never paired."""
    cells = (
        CellSpec("http", "aiohttp", "keep-alive", scale=4),
        CellSpec("http", "aiohttp", "new-connection", scale=5),
        CellSpec("ws-aiohttp", "aiohttp", "persistent"),
        CellSpec("ws-websockets", "aiohttp", "persistent"),
    )
    folder = make_run_dir(tmp_path, cells)
    doc = json.loads((folder / SUMMARY_FILE).read_text())
    profiles = ["lan", "wan", "lan", "wan"]
    for entry, profile in zip(doc["cells"], profiles, strict=True):
        entry.update(profile=profile, tls=profile == "wan")
    (folder / SUMMARY_FILE).write_text(json.dumps(doc))
    run = reports.load(folder)
    pairs = matched_pairs(run)
    assert list(pairs.columns[: len(CONDITION_COLUMNS) + 2]) == [
        *CONDITION_COLUMNS,
        "profile",
        "tls",
    ]
    assert pairs[["http_cell", "ws_cell", "profile"]].values.tolist() == [
        [HTTP_A, WS_A, "lan"],
        ["http/aiohttp/new-connection", "ws-websockets/aiohttp/persistent", "wan"],
    ]
    v = verdict_table(run, n_resamples=200)
    assert {"profile", "tls"} <= set(v.columns) and len(v) == 2 * 4
    html = render_report(run, verdicts=v)
    assert "lan link" in html and "TLS True" not in html and "no TLS" in html


def test_http2_pairs_with_websocket_over_http2_when_there_is_one(tmp_path: Path) -> None:
    """HTTP/2 against WebSocket over HTTP/2 (RFC 8441), HTTP/1.1 against WebSocket over
    HTTP/1.1; without a WebSocket over HTTP/2 an HTTP/2 cell pairs with the others."""
    h1, h2, ws1, ws2 = (
        "http-hypercorn/lean/keep-alive",
        "http-hypercorn/lean/keep-alive+h2",
        "ws-hypercorn/lean/persistent",
        "ws-hypercorn/lean/persistent+h2",
    )
    cells = (
        CellSpec("http-hypercorn", "lean", "keep-alive", scale=3),
        CellSpec("http-hypercorn", "lean", "keep-alive", scale=2, label=h2),
        CellSpec("ws-hypercorn", "lean", "persistent"),
        CellSpec("ws-hypercorn", "lean", "persistent", label=ws2),
    )
    folder = make_run_dir(tmp_path / "all", cells)
    for name, version in ((h1, "1.1"), (h2, "2"), (ws2, "2")):
        edit_cell(folder, name, http_version=version)
    pairs = matched_pairs(reports.load(folder))
    assert pairs[["http_cell", "ws_cell", "mode"]].values.tolist() == [
        [h1, ws1, "keep-alive"],
        [h2, ws2, "keep-alive over HTTP/2 vs WebSocket over HTTP/2"],
    ]
    v = verdict_table(reports.load(folder), n_resamples=200)
    assert "keep-alive over HTTP/2 vs WebSocket over HTTP/2" in set(v["mode"])

    folder = make_run_dir(tmp_path / "no-ws-h2", cells[:3])
    for name, version in ((h1, "1.1"), (h2, "2")):
        edit_cell(folder, name, http_version=version)
    pairs = matched_pairs(reports.load(folder))
    assert pairs[["http_cell", "ws_cell", "mode"]].values.tolist() == [
        [h1, ws1, "keep-alive"],
        [h2, ws1, "keep-alive over HTTP/2"],
    ]


def test_no_pairs_without_both_families(tmp_path: Path) -> None:
    run = reports.load(make_run_dir(tmp_path, CLAIM_CELLS[:2]))
    v = verdict_table(run)
    assert v.empty and list(v.columns) == [*CONDITION_COLUMNS, *VERDICT_COLUMNS]
    assert verdict_wide(v).empty
    assert "No HTTP/WebSocket pair to judge" in summary_markdown(run, verdicts=v)
    assert "No HTTP/WebSocket pair to judge" in render_report(run, verdicts=v)


def test_failed_cell_is_not_available(tmp_path: Path) -> None:
    folder = make_run_dir(tmp_path, CLAIM_CELLS)
    doc = json.loads((folder / SUMMARY_FILE).read_text())
    doc["cells"][0]["per_repeat"] = doc["cells"][0]["per_repeat"][:1]  # one repeat left
    (folder / SUMMARY_FILE).write_text(json.dumps(doc))
    v = verdict_table(reports.load(folder), n_resamples=200).set_index(
        ["http_cell", "ws_cell", "metric"]
    )
    row = v.loc[(HTTP_A, WS_A, "bytes")]
    assert row["verdict"] == "n/a" and np.isfinite(row["ratio"])
    assert "repeat" in row["note"]


# --- trust warnings and caveats ---------------------------------------------------------


def test_spread_across_repeats_is_flagged(tmp_path: Path) -> None:
    folder = make_run_dir(tmp_path, CLAIM_CELLS)
    doc = json.loads((folder / SUMMARY_FILE).read_text())
    noisy = doc["cells"][2]  # ws-aiohttp: repeats 0.2 ms and 0.4 ms apart (CV 47 %)
    noisy["per_repeat"][0]["latency_ms"]["p50"] = 0.2
    noisy["per_repeat"][1]["latency_ms"]["p50"] = 0.4
    (folder / SUMMARY_FILE).write_text(json.dumps(doc))
    run = reports.load(folder)
    spread = repeat_spread(run).set_index(["cell", "label"])
    assert spread.loc[(WS_A, "p50"), "cv"] == pytest.approx(np.std([0.2, 0.4], ddof=1) / 0.3)
    assert spread.loc[(HTTP_A, "p50"), "cv"] < 0.2 and spread.loc[(WS_A, "p99"), "cv"] < 0.5
    lines = [w for w in run_warnings(run) if SPREAD_MESSAGE in w]
    assert len(lines) == 1 and WS_A in lines[0] and "47%" in lines[0] and "p50" in lines[0]
    assert HTTP_A not in lines[0]
    assert cell_caveats(run)[(run.run_id, WS_A)] == ["repeats disagree at p50 (CV 47%)"]
    v = verdict_table(run, n_resamples=200)
    caveat = "WS: repeats disagree at p50 (CV 47%)"
    assert (v.loc[v["ws_cell"] == WS_A, "caveats"] == caveat).all()
    assert (v.loc[v["ws_cell"] == WS_W, "caveats"] == "").all()


def test_tail_spread_across_repeats_is_flagged(tmp_path: Path) -> None:
    """Repeats that agree on the median but not on the tail: the p99 verdict is doubtful."""
    folder = make_run_dir(tmp_path, CLAIM_CELLS)
    doc = json.loads((folder / SUMMARY_FILE).read_text())
    doc["cells"][0]["per_repeat"][0]["latency_ms"]["p99"] = 4.7
    doc["cells"][0]["per_repeat"][1]["latency_ms"]["p99"] = 0.38
    (folder / SUMMARY_FILE).write_text(json.dumps(doc))
    run = reports.load(folder)
    lines = [w for w in run_warnings(run) if SPREAD_MESSAGE in w]
    assert len(lines) == 1 and "per-repeat p99" in lines[0] and HTTP_A in lines[0]
    assert "4.700, 0.380 ms" in lines[0]
    assert cell_caveats(run)[(run.run_id, HTTP_A)] == ["repeats disagree at p99 (CV 120%)"]


def test_caveats_name_saturation_errors_and_rate(tmp_path: Path) -> None:
    cells = (
        CellSpec("http", "aiohttp", "keep-alive", scale=4, cpu_util_client=0.97, failed=2),
        CellSpec("ws-aiohttp", "aiohttp", "persistent", rate=None),
    )
    folder = make_run_dir(tmp_path, cells, complete=False)
    doc = json.loads((folder / SUMMARY_FILE).read_text())
    doc["cells"][1].update(offered_rps=1000, throughput_rps=500)
    (folder / SUMMARY_FILE).write_text(json.dumps(doc))
    run = reports.load(folder)
    caveats = cell_caveats(run)
    http = caveats[(run.run_id, HTTP_A)]
    assert http[0] == "run incomplete" and "4 errors" in http and "client CPU 97%" in http
    assert "rate not reached (500 of 1,000 req/s)" in caveats[(run.run_id, WS_A)]
    warnings = run_warnings(run)
    assert any("incomplete" in w for w in warnings)
    assert any("saturated" in w and HTTP_A in w for w in warnings)
    assert any("open-loop rate not reached" in w and WS_A in w for w in warnings)
    text = summary_markdown(run)
    assert "client CPU 97%" in text and "### Warnings" in text


# --- rate sweeps ------------------------------------------------------------------------

SWEEP_SCALES = {
    # p99 about 0.96 ms x scale: HTTP passes 5 ms at 1000 and 2000 req/s, fails at 4000
    "http/aiohttp/keep-alive": (1, 2, 8, 40),
    # WebSocket stays under 5 ms at every rate
    "ws-aiohttp/aiohttp/persistent": (1, 1, 2, 4),
}


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory: pytest.TempPathFactory) -> reports.Run:
    folder = make_run_dir(
        tmp_path_factory.mktemp("sweep"),
        sweep_cells(SWEEP_SCALES),
        run_id="20261201-120000-sweep",
        scenario_name="sweep-quick",
        n=1000,
    )
    return reports.load(folder)


def test_sweep_table_finds_the_knee(sweep_run: reports.Run) -> None:
    sweeps = sweep_table(sweep_run.cells).set_index("sweep_group")
    http, ws = sweeps.loc["http/aiohttp/keep-alive"], sweeps.loc[WS_A]
    assert http["max_rate"] == 2000 and http["first_failing_rate"] == 4000
    assert http["failure"].startswith("p99 ") and http["slo_source"] == "scenario"
    assert http["rates"] == [1000, 2000, 4000, 8000] and http["slo_p99_ms"] == 5.0
    assert ws["max_rate"] == 8000 and np.isnan(ws["first_failing_rate"]) and ws["failure"] == ""
    assert ws["p99_at_max_ms"] < 5.0


def test_sweep_default_slo_and_rate_not_reached(tmp_path: Path) -> None:
    cells = sweep_cells(
        {"http/aiohttp/keep-alive": (1, 2, 4, 8)},
        slo_p99_ms=None,
        reached={("http/aiohttp/keep-alive", 4000): 0.8},
    )
    run = reports.load(make_run_dir(tmp_path, cells, n=1000))
    s = sweep_table(run.cells).iloc[0]
    assert s["slo_source"] == "default" and s["slo_p99_ms"] == DEFAULT_SWEEP_SLO_P99_MS
    assert s["max_rate"] == 2000 and s["first_failing_rate"] == 4000
    assert s["failure"] == "rate not reached (3,200 req/s)"
    assert sweep_table(run.cells, default_slo_ms=0.5)["max_rate"].isna().all()


def test_sweep_pairs_at_each_rate(sweep_run: reports.Run) -> None:
    pairs = matched_pairs(sweep_run)
    assert len(pairs) == 4
    assert pairs["load"].tolist() == [
        f"open loop {r:,} req/s, 8 connections" for r in (1000, 2000, 4000, 8000)
    ]
    assert pairs["http_cell"].str.endswith(("@1000rps", "@2000rps", "@4000rps", "@8000rps")).all()
    assert (
        pairs["http_cell"].str.split("@").str[1] == pairs["ws_cell"].str.split("@").str[1]
    ).all()


def test_sweep_chart_marks_the_knee(sweep_run: reports.Run) -> None:
    fig = charts.sweep_chart(sweep_run.cells)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 2 * 2 + 1  # p99 and p50 per group, the objective line
    texts = [t.get_text() for t in ax.texts]
    assert "knee: 2,000 req/s" in texts and "knee: 8,000 req/s" in texts
    assert any("p99 objective 5 ms (scenario)" in t for t in texts)
    assert charts.fig_to_data_uri(fig).startswith("data:image/png;base64,")
    empty = charts.sweep_chart(sweep_run.cells.iloc[0:0])
    assert [t.get_text() for t in empty.axes[0].texts] == ["no rate sweep in this run"]


def test_sweep_in_report_and_summary(sweep_run: reports.Run) -> None:
    html = render_report(sweep_run)
    assert 'class="sweeps"' in html and "2,000 req/s" in html and "every rate passed" in html
    assert 'alt="Throughput against latency over the rate sweep"' in html
    text = summary_markdown(sweep_run)
    assert "### Rate sweeps" in text and "| `http/aiohttp/keep-alive` | 5 ms | 2,000 req/s" in text


# --- outputs ----------------------------------------------------------------------------


def test_write_outputs_and_csv(claim_run: reports.Run, tmp_path: Path) -> None:
    written = write_outputs(claim_run, tmp_path / "out")
    assert set(written) == {"html", "markdown", "csv"}
    assert all(p.parent == tmp_path / "out" for p in written.values())
    csv = pd.read_csv(written["csv"])
    assert list(csv.columns) == [*CONDITION_COLUMNS, *VERDICT_COLUMNS]
    assert len(csv) == 4 * 4 and set(csv["metric"]) == {"p50", "p99", "bytes", "cpu"}
    assert written["markdown"].read_text(encoding="utf-8").startswith("## rtbench verdict")


def test_rich_verdict_table(claim_verdicts: pd.DataFrame) -> None:
    buf = io.StringIO()
    Console(file=buf, width=120, color_system=None).print(verdict_rich_table(claim_verdicts))
    out = buf.getvalue()
    assert "4.00×" in out and "1.20×" in out and "holds" in out and "refuted" in out
    assert "aiohttp (same client)" in out and "(mixed)" in out


def test_verdict_chart(claim_verdicts: pd.DataFrame) -> None:
    fig = charts.verdict_chart(claim_verdicts)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0] == f"{HTTP_A}\n÷ {WS_A}" and len(labels) == 4
    assert charts.fig_to_png(fig).startswith(b"\x89PNG")


def test_cli_report_prints_verdict_before_warnings(tmp_path: Path) -> None:
    cells = (*CLAIM_CELLS[:1], CellSpec("ws-aiohttp", "aiohttp", "persistent", failed=1))
    folder = make_run_dir(tmp_path, cells)
    buf = io.StringIO()
    report([folder], console=Console(file=buf, width=160, color_system=None))
    out = buf.getvalue()
    assert out.index("Verdict") < out.index("WARNING:") < out.index("Report written to")


def test_summary_markdown_golden(tmp_path: Path) -> None:
    """summary.md of fixed synthetic input is byte-for-byte the golden file."""
    echo = make_run_dir(tmp_path, CLAIM_CELLS, run_id="golden-echo", n=1000)
    live = make_realtime_run_dir(tmp_path, run_id="golden-messaging", n=400)
    sweep = make_run_dir(
        tmp_path,
        sweep_cells(SWEEP_SCALES, rates=(1000, 4000)),
        run_id="golden-sweep",
        scenario_name="sweep-quick",
        n=400,
    )
    text = summary_markdown(reports.load_many([echo, live, sweep]))
    if os.environ.get("RTBENCH_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text, encoding="utf-8")
    assert GOLDEN.is_file(), "run once with RTBENCH_UPDATE_GOLDEN=1 to create the golden file"
    assert text == GOLDEN.read_text(encoding="utf-8")


# --- the headline: the lean client's same-client pairs --------------------------------------

LEAN_CELLS = (
    CellSpec("http", "aiohttp", "keep-alive", scale=4),
    CellSpec("http", "lean", "keep-alive", scale=1.2),
    CellSpec("ws-aiohttp", "aiohttp", "persistent", scale=1),
    CellSpec("ws-aiohttp", "lean", "persistent", scale=1),
)


def test_headline_is_the_lean_pair_and_mixed_pairs_are_not_counted(tmp_path: Path) -> None:
    run = reports.load(make_run_dir(tmp_path, LEAN_CELLS))
    verdicts = verdict_table(run)
    head = verdicts[verdicts["headline"]]
    assert set(head["pairing"]) == {"lean"}
    assert set(head["http_cell"]) == {"http/lean/keep-alive"}
    # The pairs table opens with the lean pair; mixed pairs come after every same-client one.
    pairs = matched_pairs(run)
    assert pairs.iloc[0]["pairing"] == "lean"
    assert pairs["same_client"].tolist() == [True, True, False, False]
    lines = reports.headline_lines(verdicts)
    p50 = next(line for line in lines if line.startswith("p50 latency"))
    assert p50.startswith("p50 latency, lean client on both sides: refuted in 1 of 1 pairs")
    assert "1 other same-client pairs: holds in 1" in p50  # aiohttp ÷ aiohttp, 4x
    assert "2 mixed pairs not counted" in p50
    mixed = verdicts[~verdicts["same_client"].astype(bool)]
    assert (mixed["verdict"] == "n/a").all() and mixed["ratio"].notna().all()


def test_every_output_opens_with_the_headline(tmp_path: Path) -> None:
    folder = make_run_dir(tmp_path, LEAN_CELLS)
    buf = io.StringIO()
    report([folder], console=Console(file=buf, width=160, color_system=None))
    out = buf.getvalue()
    assert out.startswith("Verdict: p50 latency, lean client on both sides")
    md = (folder / "summary.md").read_text(encoding="utf-8")
    assert md.index("lean client on both sides") < md.index("| metric")
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert html.index('id="headline"') < html.index('id="verdict-table"')
    assert "different client libraries: not judged" in html
