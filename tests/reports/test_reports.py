"""Tests for the reports package, on synthetic results folders (tests/reports_fixtures.py)."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from reports_fixtures import DEFAULT_CELLS, JUNK_NS, CellSpec, make_run_dir
from reports_reading import cell_row, console_buffer, printed_summary

import reports
from loadgen.schema import META_FILE, SAMPLES_FILE, SCHEMA_VERSION, SUMMARY_FILE
from reports import charts
from reports.checks import SATURATION_MESSAGE, run_warnings
from reports.cli_report import report
from reports.columns import CELL_COLUMNS, REPEAT_COLUMNS, latency_col
from reports.html import render_report, write_report
from reports.stats import measured_samples, ratio_table, sample_percentiles
from reports.table import summary_table


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run_dir(tmp_path)


# --- load -------------------------------------------------------------------------------


def test_load_round_trip(run_dir: Path) -> None:
    run = reports.load(run_dir)
    assert run.path == run_dir
    assert run.run_id == "20261129-015000-quick"
    assert run.complete
    assert run.scenario_name == "quick"
    assert list(run.cells.columns[: len(CELL_COLUMNS)]) == list(CELL_COLUMNS)
    assert list(run.repeats.columns[: len(REPEAT_COLUMNS)]) == list(REPEAT_COLUMNS)
    assert run.cells["cell"].tolist() == [spec.name for spec in DEFAULT_CELLS]
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    assert run.summary == summary
    assert run.meta == json.loads((run_dir / META_FILE).read_text())
    first = summary["cells"][0]
    row = run.cells.iloc[0]
    assert row["p50_ms"] == first["latency_ms"]["p50"]
    assert row["p99_9_ms"] == first["latency_ms"]["p99.9"]
    assert row["max_uncorrected_ms"] == first["latency_uncorrected_ms"]["max"]
    assert row["cpu_util_client"] == first["cpu_util"]["client"]
    assert row["cpu_s_per_request_server"] == first["cpu_s_per_request"]["server"]
    assert row["bytes_per_request_received"] == first["bytes_per_request"]["received"]
    assert row["rss_mb_server"] == first["rss_mb"]["server"]
    assert row["count"] == first["count"] and row["family"] == "http"
    assert math.isnan(row["target_rate"])
    assert len(run.repeats) == 2 * len(DEFAULT_CELLS)
    # 4 cells x (2 repeats x 50 warmup + 2000 measured)
    assert len(run.samples) == len(DEFAULT_CELLS) * (2 * 50 + 2000)
    assert run.samples.columns[0] == "run_id"
    assert set(run.samples["run_id"]) == {run.run_id}
    assert run.samples["latency_ns"].dtype == np.int64


def test_package_exports(run_dir: Path) -> None:
    from reports.load import ResultsError, load, load_many

    assert (reports.load, reports.load_many, reports.ResultsError) == (
        load,
        load_many,
        ResultsError,
    )
    assert repr(reports.load(run_dir)).startswith("Run(run_id='20261129-015000-quick', cells=4")


def test_empty_run_loads_and_renders(tmp_path: Path) -> None:
    run = reports.load(make_run_dir(tmp_path, cells=()))
    assert run.cells.empty and list(run.cells.columns) == list(CELL_COLUMNS)
    assert run.samples.empty
    assert ratio_table(run.cells).empty
    assert sample_percentiles(run.samples).empty
    assert any("no cells" in w for w in run_warnings(run))
    html = render_report(run)
    assert "No HTTP/WebSocket pair" in html


@pytest.mark.parametrize("name", [SAMPLES_FILE, SUMMARY_FILE, META_FILE])
def test_missing_file_names_file_and_folder(run_dir: Path, name: str) -> None:
    (run_dir / name).unlink()
    with pytest.raises(reports.ResultsError) as err:
        reports.load(run_dir)
    assert name in str(err.value)
    assert str(run_dir) in str(err.value)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(reports.ResultsError, match="does not exist"):
        reports.load(tmp_path / "nope")


@pytest.mark.parametrize("name", [SUMMARY_FILE, META_FILE])
def test_newer_schema_rejected(run_dir: Path, name: str) -> None:
    doc = json.loads((run_dir / name).read_text())
    doc["schema"] = SCHEMA_VERSION + 1
    (run_dir / name).write_text(json.dumps(doc))
    with pytest.raises(reports.ResultsError, match="upgrade rtbench") as err:
        reports.load(run_dir)
    assert name in str(err.value)


def test_missing_schema_version_rejected(run_dir: Path) -> None:
    doc = json.loads((run_dir / SUMMARY_FILE).read_text())
    del doc["schema"]
    (run_dir / SUMMARY_FILE).write_text(json.dumps(doc))
    with pytest.raises(reports.ResultsError, match="schema"):
        reports.load(run_dir)


def test_invalid_json_rejected(run_dir: Path) -> None:
    (run_dir / META_FILE).write_text("{not json")
    with pytest.raises(reports.ResultsError, match=META_FILE):
        reports.load(run_dir)


def test_raw_files_optional_or_skipped(run_dir: Path) -> None:
    full = reports.load(run_dir)
    for raw in ("optional", "none"):
        run = reports.load(run_dir, raw=raw)
        assert run.cells.equals(full.cells) and run.repeats.equals(full.repeats)
        assert list(run.samples.columns) == list(full.samples.columns)
    assert len(reports.load(run_dir, raw="optional").samples) == len(full.samples)
    assert reports.load(run_dir, raw="none").samples.empty
    (run_dir / SAMPLES_FILE).write_text("not parquet")
    with pytest.raises(reports.ResultsError, match=SAMPLES_FILE):
        reports.load(run_dir, raw="optional")
    assert reports.load(run_dir, raw="none").deliveries.empty
    (run_dir / SAMPLES_FILE).unlink()
    missing = reports.load(run_dir, raw="optional")
    assert missing.samples.empty and missing.cells.equals(full.cells)


def test_unnamed_cell_rejected(run_dir: Path) -> None:
    doc = json.loads((run_dir / SUMMARY_FILE).read_text())
    del doc["cells"][0]["cell"]
    (run_dir / SUMMARY_FILE).write_text(json.dumps(doc))
    with pytest.raises(reports.ResultsError, match="no list of cells"):
        reports.load(run_dir, raw="none")


def test_missing_columns_rejected(tmp_path: Path) -> None:
    folder = make_run_dir(tmp_path, drop_columns=("latency_ns", "warmup"))
    with pytest.raises(reports.ResultsError) as err:
        reports.load(folder)
    message = str(err.value)
    assert "latency_ns" in message and "warmup" in message and SAMPLES_FILE in message


def test_null_latency_cell_loads(tmp_path: Path) -> None:
    folder = make_run_dir(tmp_path)
    doc = json.loads((folder / SUMMARY_FILE).read_text())
    dead = doc["cells"][0]
    dead.update(status="error", failures=["ConnectionRefusedError"], count=0, errors=12)
    dead["latency_ms"] = dict.fromkeys(dead["latency_ms"])
    dead["latency_uncorrected_ms"] = None
    dead["cpu_util"] = {"server": None, "client": None}
    (folder / SUMMARY_FILE).write_text(json.dumps(doc))
    run = reports.load(folder)
    row = run.cells.iloc[0]
    assert math.isnan(row["p50_ms"]) and math.isnan(row["p99_uncorrected_ms"])
    assert row["count"] == 0
    ratios = ratio_table(run.cells)
    assert ratios[ratios["http_cell"] == dead["cell"]]["p50_ratio"].isna().all()
    warnings = run_warnings(run)
    assert any(dead["cell"] in w and "status error" in w for w in warnings)
    assert "–" in printed_summary(run)[1]
    assert "<html" in render_report(run)


def test_load_many_tags_run_ids(tmp_path: Path) -> None:
    a = make_run_dir(tmp_path, run_id="run-a")
    b = make_run_dir(tmp_path, run_id="run-b", seed=1)
    run = reports.load_many([a, b])
    assert run.run_ids == ["run-a", "run-b"]
    assert run.path == a and len(run.parts) == 2
    assert run.cells["run_id"].tolist() == ["run-a"] * 4 + ["run-b"] * 4
    assert run.samples["run_id"].value_counts().to_dict() == {"run-a": 8400, "run-b": 8400}
    ratios = ratio_table(run.cells)
    assert len(ratios) == 2 * 2 * 2  # per run: 2 HTTP cells x 2 WS cells
    assert set(ratios["run_id"]) == {"run-a", "run-b"}
    per_cell = sample_percentiles(run.samples)
    assert len(per_cell) == 8
    with pytest.raises(reports.ResultsError, match="twice"):
        reports.load_many([a, a])
    with pytest.raises(reports.ResultsError):
        reports.load_many([])


# --- stats ------------------------------------------------------------------------------


def test_measured_samples_drop_warmup_and_failures(tmp_path: Path) -> None:
    cells = (CellSpec("http", "httpx", "keep-alive", failed=5),)
    run = reports.load(make_run_dir(tmp_path, cells))
    measured = measured_samples(run.samples)
    assert len(measured) == 2000
    assert measured["ok"].all() and not measured["warmup"].any()
    assert measured["latency_ns"].max() < JUNK_NS


def test_sample_percentiles_match_summary(run_dir: Path) -> None:
    run = reports.load(run_dir)
    per_cell = sample_percentiles(run.samples).set_index("cell")
    for name in run.cells["cell"]:
        summary_row = cell_row(run, name)
        assert per_cell.loc[name, "count"] == 2000
        for label in ("p50", "p90", "p99", "p99.9", "max"):
            col = latency_col(label)
            assert per_cell.loc[name, col] == pytest.approx(summary_row[col], rel=1e-12)
    uncorrected = sample_percentiles(run.samples, corrected=False).set_index("cell")
    name = run.cells["cell"].iloc[0]
    assert uncorrected.loc[name, "p50_uncorrected_ms"] == pytest.approx(
        cell_row(run, name)["p50_uncorrected_ms"], rel=1e-12
    )


def test_ratio_table_known_ratios(run_dir: Path) -> None:
    run = reports.load(run_dir)
    for source in (run.cells, sample_percentiles(run.samples)):
        ratios = ratio_table(source).set_index(["http_cell", "ws_cell"])
        assert len(ratios) == 4  # 2 HTTP cells x 2 WS cells
        for ws in ("ws-aiohttp/aiohttp/persistent", "ws-websockets/websockets/persistent"):
            keep_alive = ratios.loc[("http/httpx/keep-alive", ws)]
            assert keep_alive["p50_ratio"] == pytest.approx(2.0, rel=1e-12)
            assert keep_alive["p99_ratio"] == pytest.approx(2.0, rel=1e-12)
            new_conn = ratios.loc[("http/aiohttp/new-connection", ws)]
            assert new_conn["p50_ratio"] == pytest.approx(6.0, rel=1e-12)
            assert new_conn["p99_ratio"] == pytest.approx(6.0, rel=1e-12)
    columns = list(ratio_table(run.cells).columns)
    assert columns == [
        "run_id",
        "http_cell",
        "ws_cell",
        "http_p50_ms",
        "ws_p50_ms",
        "p50_ratio",
        "http_p99_ms",
        "ws_p99_ms",
        "p99_ratio",
    ]


def test_ratio_table_without_ws_cells_is_empty(tmp_path: Path) -> None:
    run = reports.load(make_run_dir(tmp_path, (CellSpec("http", "httpx", "keep-alive"),)))
    ratios = ratio_table(run.cells)
    assert ratios.empty and "p50_ratio" in ratios.columns


# --- tables and warnings ----------------------------------------------------------------


def test_summary_table_has_a_row_per_cell(run_dir: Path) -> None:
    table = summary_table(reports.load(run_dir))
    assert table.row_count == len(DEFAULT_CELLS)
    headers = [str(c.header) for c in table.columns]
    assert headers[0] == "Cell" and any("p99.9" in h for h in headers)


@pytest.mark.parametrize("width", [80, 200])
def test_print_summary_never_truncates_numbers(run_dir: Path, width: int) -> None:
    run = reports.load(run_dir)
    warnings, out = printed_summary(run, width)
    assert warnings == []
    assert "…" not in out
    assert f"{cell_row(run, 'http/httpx/keep-alive')['p99_ms']:.3f}" in out


def test_saturation_warning(tmp_path: Path) -> None:
    cells = (
        CellSpec("http", "httpx", "keep-alive", scale=2, cpu_util_client=0.95),
        CellSpec("ws-websockets", "websockets", "persistent"),
    )
    run = reports.load(make_run_dir(tmp_path, cells))
    lines, out = printed_summary(run)
    assert any(SATURATION_MESSAGE in line and "http/httpx/keep-alive" in line for line in lines)
    assert "load generator saturated: results may measure the client" in out
    assert SATURATION_MESSAGE in render_report(run)


def test_no_saturation_warning_below_threshold(run_dir: Path) -> None:
    assert not any(SATURATION_MESSAGE in w for w in run_warnings(reports.load(run_dir)))


def test_incomplete_run_and_error_warnings(tmp_path: Path) -> None:
    cells = (
        CellSpec("http", "httpx", "keep-alive", failed=3, status="error"),
        CellSpec("ws-aiohttp", "aiohttp", "persistent"),
    )
    run = reports.load(make_run_dir(tmp_path, cells, complete=False))
    assert not run.complete
    lines = run_warnings(run)
    assert any("incomplete" in line for line in lines)
    assert any("http/httpx/keep-alive" in line and "6 errors" in line for line in lines)
    html = render_report(run)
    assert "incomplete" in html and "6 errors" in html


# --- charts -----------------------------------------------------------------------------


@pytest.mark.parametrize("make", [charts.percentile_spectrum, charts.cdf])
def test_charts_draw_a_line_per_cell(run_dir: Path, make) -> None:
    run = reports.load(run_dir)
    fig = make(run.samples)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == len(DEFAULT_CELLS)
    assert ax.get_title() and "ms" in (ax.get_xlabel() + ax.get_ylabel())
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [spec.name for spec in DEFAULT_CELLS]
    uri = charts.fig_to_data_uri(fig)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]).startswith(b"\x89PNG")


def test_spectrum_ticks_and_styles(run_dir: Path) -> None:
    fig = charts.percentile_spectrum(reports.load(run_dir).samples)
    fig.canvas.draw()
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["50%", "90%", "99%", "99.9%"]  # 2000 samples: up to 1 - 1/2000
    lines = {line.get_label(): line for line in ax.get_lines()}
    keep_alive, new_conn = lines["http/httpx/keep-alive"], lines["http/aiohttp/new-connection"]
    assert keep_alive.get_linestyle() != new_conn.get_linestyle()
    ws = lines["ws-aiohttp/aiohttp/persistent"]
    assert ws.get_color() != keep_alive.get_color()


def test_charts_without_samples(run_dir: Path) -> None:
    samples = reports.load(run_dir).samples.iloc[0:0]
    for make in (charts.percentile_spectrum, charts.cdf):
        fig = make(samples)
        assert not fig.axes[0].get_lines()
        assert charts.fig_to_data_uri(fig).startswith("data:image/png;base64,")


# --- HTML report and CLI ----------------------------------------------------------------


def test_report_html_is_self_contained(run_dir: Path, tmp_path: Path) -> None:
    path = write_report(reports.load(run_dir), tmp_path / "out" / "report.html")
    assert path == tmp_path / "out" / "report.html"
    html = path.read_text(encoding="utf-8")
    assert 'class="verdict"' in html and "p50 latency" in html and "p99 latency" in html
    assert "2.00×" in html and "6.00×" in html
    # the verdict chart, then spectrum, CDF, over time, bytes, CPU, memory
    assert html.count('<img src="data:image/png;base64,') == 7
    for alt in ("Verdict per pair", "Latency over time", "Bytes per request", "CPU per request"):
        assert f'alt="{alt}"' in html
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert "Lubbers" in html and "20261129-015000-quick" in html
    assert "Synthetic CPU @ 3.0GHz" in html and "f42e18e" in html and "13.1" in html
    assert "&#34;warmup_s&#34;: 1.0" in html or '"warmup_s": 1.0' in html
    # it opens with the verdict table, then the warnings, then the scenario sections
    order = [html.index(m) for m in ('id="verdict-table"', 'id="warnings"', 'id="scenario-1"')]
    assert order == sorted(order)
    assert html.index('id="environment"') > order[-1]


def test_report_html_escapes_results_strings(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script>'
    meta = {
        "scenario": {"name": evil, "duration_s": 1.0},
        "environment": {"hostname": "<b>host</b>", "packages": {}},
    }
    run = reports.load(make_run_dir(tmp_path, meta_overrides=meta))
    html = render_report(run)
    assert "<script" not in html and "<b>host" not in html
    assert "&lt;script&gt;alert(" in html and "&lt;b&gt;host&lt;/b&gt;" in html


def test_cli_report_writes_into_run_folder(run_dir: Path) -> None:
    console, buf = console_buffer()
    path = report([run_dir], console=console)
    assert path == run_dir / "report.html" and path.is_file()
    assert (run_dir / "summary.md").is_file() and (run_dir / "verdict.csv").is_file()
    out = buf.getvalue()
    assert "http/httpx/keep-alive" in out and "2.00×" in out and "6.00×" in out
    assert "Verdict" in out and "refuted" in out and "holds" in out
    assert "Report written to" in out and "summary.md" in out


def test_cli_report_out_and_several_runs(tmp_path: Path) -> None:
    a = make_run_dir(tmp_path, run_id="run-a")
    b = make_run_dir(tmp_path, run_id="run-b", cells=DEFAULT_CELLS[:1] + DEFAULT_CELLS[2:3])
    console, _ = console_buffer()
    target = tmp_path / "reports-out"
    target.mkdir()
    path = report([a, b], out=target, console=console)
    assert path == target / "report.html"
    assert (target / "summary.md").is_file() and (target / "verdict.csv").is_file()
    html = path.read_text(encoding="utf-8")
    assert "run-a" in html and "run-b" in html
    assert 'id="scenario-1"' in html and 'id="scenario-2"' in html
    assert report([a], out=tmp_path / "x.html", console=console) == tmp_path / "x.html"


def test_run_stage_extras(tmp_path: Path) -> None:
    """Keys the run stage adds (errors_by_code, nested scenario table) load sensibly."""
    meta = {"scenario": {"scenario": {"name": "nested", "description": "Echo <fast>"}}}
    folder = make_run_dir(tmp_path, meta_overrides=meta)
    doc = json.loads((folder / SUMMARY_FILE).read_text())
    doc["cells"][0].update(errors_by_code={"ECONNRESET": 3}, repeats_ok=2)
    (folder / SUMMARY_FILE).write_text(json.dumps(doc))
    run = reports.load(folder)
    assert run.scenario_name == "nested"
    assert run.cells.loc[0, "errors_by_code"] == {"ECONNRESET": 3}
    assert run.cells.loc[0, "repeats_ok"] == 2
    assert "Echo &lt;fast&gt;" in render_report(run)
