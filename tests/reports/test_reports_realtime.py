"""Reports on real-time runs (deliveries), schema 1 compatibility and mixed runs.

Synthetic folders come from tests/reports_fixtures.py: ``make_realtime_run_dir`` writes a
messaging run whose short-poll cell delivers exactly 10x slower than the ws-aiohttp push
cell, with exactly 10x the bytes per useful message.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from reports_fixtures import (
    DEFAULT_CELLS,
    DEFAULT_RT_CELLS,
    HTTP_BYTES_PER_MESSAGE,
    JUNK_NS,
    WS_BYTES_PER_MESSAGE,
    CellSpec,
    RtCellSpec,
    make_realtime_run_dir,
    make_run_dir,
)
from reports_reading import cell_row, console_buffer, printed_summary

import reports
from loadgen.schema import DELIVERIES_FILE, DELIVERY_COLUMNS, SAMPLES_FILE, SUMMARY_FILE
from reports import charts
from reports.checks import run_warnings
from reports.cli_report import report
from reports.columns import CELL_COLUMNS, REALTIME_COLUMNS, REPEAT_COLUMNS, delivery_col
from reports.costs import BYTES_SPLIT_COLUMNS, bytes_per_useful_split
from reports.html import render_report, write_report
from reports.stats import (
    delivery_percentiles,
    delivery_ratio_table,
    delivery_table,
    measured_deliveries,
    ratio_table,
    realtime_cells,
    request_cells,
)
from reports.table import delivery_summary_table

SHORT = "http/aiohttp/keep-alive/short-poll"
LONG = "http/aiohttp/keep-alive/long-poll"
WS_A = "ws-aiohttp/aiohttp/persistent"
WS_W = "ws-websockets/websockets/persistent"


@pytest.fixture
def rt_dir(tmp_path: Path) -> Path:
    return make_realtime_run_dir(tmp_path)


def _summary(folder: Path) -> dict:
    return json.loads((folder / SUMMARY_FILE).read_text())


# --- load -------------------------------------------------------------------------------


def test_realtime_run_loads_deliveries_and_cell_fields(rt_dir: Path) -> None:
    run = reports.load(rt_dir)
    assert list(run.deliveries.columns) == ["run_id", *DELIVERY_COLUMNS]
    # 4 cells x 2 repeats x (20 warmup + 500 measured)
    assert len(run.deliveries) == 4 * 2 * 520
    assert set(run.deliveries["run_id"]) == {run.run_id}
    assert run.deliveries["latency_ns"].dtype == np.int64
    assert repr(run).startswith(f"Run(run_id={run.run_id!r}, cells=4, samples=")
    assert "deliveries=4,160" in repr(run)
    assert list(run.cells.columns[: len(CELL_COLUMNS)]) == list(CELL_COLUMNS)
    assert list(run.repeats.columns[: len(REPEAT_COLUMNS)]) == list(REPEAT_COLUMNS)

    entry = _summary(rt_dir)["cells"][0]
    row = cell_row(run, SHORT)
    assert row["delivery"] == "short-poll" and row["workload"] == "messaging"
    assert row["deliveries_expected"] == entry["deliveries"]["expected"] == 1000
    assert row["deliveries_lost"] == 0 and row["deliveries_out_of_order"] == 0
    assert row["delivery_p50_ms"] == entry["delivery_latency_ms"]["p50"]
    assert row["delivery_p99_9_ms"] == entry["delivery_latency_ms"]["p99.9"]
    assert row["delivery_max_ms"] == entry["delivery_latency_ms"]["max"]
    assert row["message_p99_ms"] == entry["delivery_latency_by_type_ms"]["message"]["p99"]
    assert row["bytes_per_useful_message"] == HTTP_BYTES_PER_MESSAGE
    assert row["requests_per_useful_message"] == entry["per_useful_message"]["requests"]
    assert row["cpu_s_per_useful_message_server"] == entry["per_useful_message"]["cpu_s_server"]
    assert row["cpu_s_per_useful_message_client"] == entry["per_useful_message"]["cpu_s_client"]
    assert row["useful_messages"] == 1000 and row["polls"] == 2000 and row["empty_polls"] == 1000
    assert row["empty_poll_ratio"] == 0.5
    assert row["reconnects"] == 0 and row["slow_consumer_closes"] == 0
    assert math.isnan(row["activity_mean_abs_diff_ms"]) and "activity" not in run.cells.columns
    assert math.isnan(cell_row(run, WS_A)["empty_poll_ratio"])
    assert run.cells["deliveries_lost"].dtype == "Int64"
    assert run.cells["delivery_p50_ms"].dtype == "float64"
    assert run.cells["message_p50_ms"].dtype == "float64"
    reps = run.repeats[run.repeats["cell"] == SHORT]
    assert reps["deliveries_expected"].tolist() == [500, 500]
    assert reps["delivery"].tolist() == ["short-poll"] * 2
    assert (reps["bytes_per_useful_message"] == HTTP_BYTES_PER_MESSAGE).all()
    assert len(realtime_cells(run.cells)) == 4 and request_cells(run.cells).empty


def test_presence_and_activity_columns(tmp_path: Path) -> None:
    cells = (
        RtCellSpec("http", "aiohttp", "keep-alive", "long-poll", item_type="presence-online"),
        RtCellSpec("ws-aiohttp", "aiohttp", "persistent", "push", item_type="presence-online"),
    )
    folder = make_realtime_run_dir(tmp_path, cells, workload="presence")
    doc = _summary(folder)
    doc["cells"][0]["activity"] = {
        "users": 4,
        "server_ms": 1000.0,
        "client_ms": 1003.0,
        "mean_abs_diff_ms": 0.75,
        "max_abs_diff_ms": 2.5,
    }
    (folder / SUMMARY_FILE).write_text(json.dumps(doc))
    run = reports.load(folder)
    row = run.cells.iloc[0]
    assert row["presence_online_p50_ms"] == doc["cells"][0]["delivery_latency_ms"]["p50"]
    assert row["activity_users"] == 4 and row["activity_mean_abs_diff_ms"] == 0.75
    assert pd.isna(run.cells.iloc[1]["activity_users"])
    assert set(run.cells["workload"]) == {"presence"}


def test_echo_run_has_empty_deliveries(tmp_path: Path) -> None:
    run = reports.load(make_run_dir(tmp_path))
    assert run.deliveries.empty
    assert list(run.deliveries.columns) == ["run_id", *DELIVERY_COLUMNS]
    assert run.deliveries["latency_ns"].dtype == np.int64
    assert set(run.cells["delivery"]) == {"request"} and set(run.cells["workload"]) == {"echo"}
    assert run.cells["deliveries_expected"].isna().all()
    assert all(c in run.cells.columns for c in REALTIME_COLUMNS)
    assert realtime_cells(run.cells).empty and len(request_cells(run.cells)) == 4
    assert delivery_table(run.cells).empty and delivery_ratio_table(run.cells).empty
    assert bytes_per_useful_split(run.samples, run.deliveries).empty
    assert delivery_percentiles(run.deliveries).empty


def test_schema_1_run_loads(tmp_path: Path) -> None:
    cells = (*DEFAULT_CELLS[:2], CellSpec("ws-aiohttp", "aiohttp", "persistent", failed=4))
    folder = make_run_dir(tmp_path, cells, schema=1)
    assert _summary(folder)["schema"] == 1 and "delivery" not in _summary(folder)["cells"][0]
    run = reports.load(folder)
    assert "items" in run.samples.columns
    assert run.samples["items"].dtype == np.int32
    ok = run.samples["ok"] & run.samples["kind"].eq("request")
    assert (run.samples.loc[ok, "items"] == 1).all()
    assert (run.samples.loc[~run.samples["ok"], "items"] == 0).all()
    assert run.deliveries.empty
    assert set(run.cells["delivery"]) == {"request"} and set(run.cells["workload"]) == {"echo"}
    ratios = ratio_table(request_cells(run.cells)).set_index(["http_cell", "ws_cell"])
    assert ratios.loc[("http/httpx/keep-alive", cells[2].name), "p50_ratio"] == pytest.approx(2.0)
    html = render_report(run)
    assert 'class="summary"' in html and 'class="deliveries"' not in html
    assert "2.00×" in html


def test_schema_2_samples_need_items(tmp_path: Path) -> None:
    folder = make_run_dir(tmp_path, drop_columns=("items",))
    with pytest.raises(reports.ResultsError) as err:
        reports.load(folder)
    assert "items" in str(err.value) and SAMPLES_FILE in str(err.value)


def test_missing_delivery_columns_rejected(tmp_path: Path) -> None:
    folder = make_realtime_run_dir(tmp_path, drop_delivery_columns=("latency_ns", "via"))
    with pytest.raises(reports.ResultsError) as err:
        reports.load(folder)
    message = str(err.value)
    assert "latency_ns" in message and "via" in message and DELIVERIES_FILE in message
    assert str(folder) in message


def test_unreadable_deliveries_file_rejected(rt_dir: Path) -> None:
    (rt_dir / DELIVERIES_FILE).write_bytes(b"not parquet")
    with pytest.raises(reports.ResultsError, match=DELIVERIES_FILE):
        reports.load(rt_dir)


def test_realtime_cell_without_delivery_key(tmp_path: Path) -> None:
    """A real-time cell missing ``delivery`` gets it from its transport and name."""
    folder = make_realtime_run_dir(tmp_path)
    doc = _summary(folder)
    for entry in doc["cells"]:
        del entry["delivery"], entry["workload"]
    (folder / SUMMARY_FILE).write_text(json.dumps(doc))
    run = reports.load(folder)
    assert run.cells["delivery"].tolist() == ["short-poll", "long-poll", "push", "push"]
    assert len(delivery_ratio_table(run.cells)) == 4


def test_load_many_tags_deliveries(tmp_path: Path) -> None:
    a = make_realtime_run_dir(tmp_path, run_id="rt-a")
    b = make_run_dir(tmp_path, run_id="echo-b")
    run = reports.load_many([a, b])
    assert run.deliveries["run_id"].value_counts().to_dict() == {"rt-a": 4160, "echo-b": 0}
    assert list(run.deliveries["run_id"].cat.categories) == ["rt-a", "echo-b"]
    assert len(realtime_cells(run.cells)) == 4 and len(request_cells(run.cells)) == 4


# --- stats ------------------------------------------------------------------------------


def test_delivery_ratio_table_known_values(rt_dir: Path) -> None:
    run = reports.load(rt_dir)
    for source in (run.cells, delivery_table(run.cells)):
        ratios = delivery_ratio_table(source).set_index(["http_cell", "ws_cell"])
        assert len(ratios) == 4  # 2 polling cells x 2 push cells
        expected = {(SHORT, WS_A): 10.0, (SHORT, WS_W): 5.0, (LONG, WS_A): 3.0, (LONG, WS_W): 1.5}
        for pair, ratio in expected.items():
            assert ratios.loc[pair, "delivery_p50_ratio"] == pytest.approx(ratio, rel=1e-12)
            assert ratios.loc[pair, "delivery_p99_ratio"] == pytest.approx(ratio, rel=1e-12)
            assert ratios.loc[pair, "bytes_ratio"] == pytest.approx(
                HTTP_BYTES_PER_MESSAGE / WS_BYTES_PER_MESSAGE
            )
        assert ratios.loc[(SHORT, WS_A), "http_delivery"] == "short-poll"
        assert ratios.loc[(LONG, WS_A), "http_delivery"] == "long-poll"
    assert list(delivery_ratio_table(run.cells).columns) == [
        "run_id",
        "workload",
        "http_cell",
        "ws_cell",
        "http_delivery",
        "http_delivery_p50_ms",
        "ws_delivery_p50_ms",
        "delivery_p50_ratio",
        "http_delivery_p99_ms",
        "ws_delivery_p99_ms",
        "delivery_p99_ratio",
        "http_bytes_per_useful_message",
        "ws_bytes_per_useful_message",
        "bytes_ratio",
    ]


def test_delivery_ratio_pairs_within_run_and_workload(tmp_path: Path) -> None:
    a = make_realtime_run_dir(tmp_path, run_id="rt-a")
    b = make_realtime_run_dir(tmp_path, run_id="rt-b", workload="notifications", seed=3)
    c = make_run_dir(tmp_path, run_id="echo-c")
    run = reports.load_many([a, b, c])
    ratios = delivery_ratio_table(run.cells)
    assert len(ratios) == 8
    assert ratios.groupby("run_id")["workload"].unique().map(list).to_dict() == {
        "rt-a": ["messaging"],
        "rt-b": ["notifications"],
    }
    echo = ratio_table(request_cells(run.cells))
    assert len(echo) == 4 and set(echo["run_id"]) == {"echo-c"}
    # a cell of another workload in the same run is not paired
    cells = reports.load(a).cells.copy()
    cells.loc[cells["cell"] == WS_W, "workload"] = "presence"
    assert set(delivery_ratio_table(cells)["ws_cell"]) == {WS_A}


def test_delivery_table_columns(rt_dir: Path) -> None:
    table = delivery_table(reports.load(rt_dir).cells)
    assert table["cell"].tolist() == [spec.name for spec in DEFAULT_RT_CELLS]
    assert table["delivery"].tolist() == ["short-poll", "long-poll", "push", "push"]
    for col in (
        "delivery_p50_ms",
        "delivery_p99_ms",
        "delivery_max_ms",
        "deliveries_expected",
        "deliveries_delivered",
        "deliveries_lost",
        "deliveries_duplicated",
        "deliveries_out_of_order",
        "bytes_per_useful_message",
        "requests_per_useful_message",
        "cpu_s_per_useful_message_server",
        "cpu_s_per_useful_message_client",
        "empty_poll_ratio",
    ):
        assert col in table.columns


def test_delivery_percentiles_skip_warmup_deferred_duplicates(tmp_path: Path) -> None:
    cells = (
        RtCellSpec("http", "aiohttp", "keep-alive", "long-poll", scale=3, deferred=4),
        RtCellSpec("ws-aiohttp", "aiohttp", "persistent", "push", duplicated=2),
    )
    run = reports.load(make_realtime_run_dir(tmp_path, cells))
    measured = measured_deliveries(run.deliveries)
    assert len(measured) == 2 * 1000
    assert measured["latency_ns"].max() < JUNK_NS
    per_cell = delivery_percentiles(run.deliveries).set_index("cell")
    for name in run.cells["cell"]:
        assert per_cell.loc[name, "count"] == 1000
        for label in ("p50", "p90", "p99", "p99.9", "max"):
            col = delivery_col(label)
            assert per_cell.loc[name, col] == pytest.approx(cell_row(run, name)[col], rel=1e-12)
    assert per_cell.loc[cells[0].name, "delivery"] == "long-poll"


def test_bytes_split_matches_summary(rt_dir: Path) -> None:
    run = reports.load(rt_dir)
    split = bytes_per_useful_split(run.samples, run.deliveries).set_index("cell")
    assert list(split.columns[-len(BYTES_SPLIT_COLUMNS) :]) == list(BYTES_SPLIT_COLUMNS)
    for name in run.cells["cell"]:
        assert split.loc[name, "total_bytes"] == pytest.approx(
            cell_row(run, name)["bytes_per_useful_message"], rel=1e-12
        )
        assert split.loc[name, "useful_messages"] == 1000
    # polls: 150 sent each, two per message; send 200 per two messages -> 400 sent
    assert split.loc[SHORT, ["request_bytes", "reply_bytes", "push_bytes"]].tolist() == [
        400.0,
        400.0,
        0.0,
    ]
    assert split.loc[WS_A, ["request_bytes", "reply_bytes", "push_bytes"]].tolist() == [
        30.0,
        10.0,
        40.0,
    ]


# --- warnings ---------------------------------------------------------------------------


def test_lost_and_duplicated_delivery_warnings(tmp_path: Path) -> None:
    cells = (
        RtCellSpec("http", "aiohttp", "keep-alive", "short-poll", scale=10, lost=3),
        RtCellSpec("ws-aiohttp", "aiohttp", "persistent", "push", duplicated=2),
        RtCellSpec("ws-websockets", "websockets", "persistent", "push"),
    )
    run = reports.load(make_realtime_run_dir(tmp_path, cells))
    lines = run_warnings(run)
    assert f"lost 6 of 1,006 deliveries in cell {SHORT}" in lines
    assert any(f"duplicated 4 of 1,000 deliveries in cell {WS_A}" in line for line in lines)
    assert not any(WS_W in line for line in lines)
    html = render_report(run)
    assert f"lost 6 of 1,006 deliveries in cell {SHORT}" in html
    assert "lost 6 of 1,006 deliveries" in printed_summary(run)[1]


def test_slow_consumer_and_reconnect_warnings(tmp_path: Path) -> None:
    cells = (
        RtCellSpec("http", "aiohttp", "keep-alive", "long-poll", reconnects=2),
        RtCellSpec(
            "ws-aiohttp", "aiohttp", "persistent", "push", slow_consumer_closes=3, late_steps=5
        ),
    )
    lines = run_warnings(reports.load(make_realtime_run_dir(tmp_path, cells)))
    assert any(line.startswith("2 reconnects in cell " + cells[0].name) for line in lines)
    assert any(line.startswith("3 slow-consumer closes in cell " + WS_A) for line in lines)
    late = f"5 scheduled actions in cell {WS_A} started more than 100 ms late (up to 420 ms)"
    assert any(line.startswith(late) for line in lines)
    assert not any("late" in line and cells[0].name in line for line in lines)


def test_realtime_cell_with_deliveries_but_no_actions_is_not_flagged(rt_dir: Path) -> None:
    doc = _summary(rt_dir)
    doc["cells"][0].update(count=0, throughput_rps=0.0)
    doc["cells"][0]["latency_ms"] = dict.fromkeys(doc["cells"][0]["latency_ms"])
    (rt_dir / SUMMARY_FILE).write_text(json.dumps(doc))
    assert run_warnings(reports.load(rt_dir)) == []


def test_realtime_cell_with_nothing_is_flagged(rt_dir: Path) -> None:
    doc = _summary(rt_dir)
    dead = doc["cells"][0]
    dead.update(count=0, status="error", useful_messages=0)
    dead["deliveries"] = dict.fromkeys(dead["deliveries"], 0)
    (rt_dir / SUMMARY_FILE).write_text(json.dumps(doc))
    lines = run_warnings(reports.load(rt_dir))
    assert any(SHORT in line and "nothing delivered" in line for line in lines)
    assert any(f"no useful messages in cell {SHORT}" in line for line in lines)


def test_missing_deliveries_file(tmp_path: Path) -> None:
    run = reports.load(make_realtime_run_dir(tmp_path, write_deliveries=False))
    assert run.deliveries.empty and list(run.deliveries.columns) == ["run_id", *DELIVERY_COLUMNS]
    lines = run_warnings(run)
    assert sum("deliveries.parquet has no rows for cell" in line for line in lines) == 4
    # the summary still gives the delivery tables
    assert len(delivery_ratio_table(run.cells)) == 4
    html = render_report(run)
    # the verdict chart (bytes and CPU ratios remain), bytes, CPU and memory per message
    assert html.count('<img src="data:image/png;base64,') == 4
    assert "No measured deliveries to chart" in html
    assert "10.00×" in html


# --- charts -----------------------------------------------------------------------------


@pytest.mark.parametrize("make", [charts.delivery_spectrum, charts.delivery_cdf])
def test_delivery_charts_draw_a_line_per_cell(rt_dir: Path, make) -> None:
    run = reports.load(rt_dir)
    fig = make(run.deliveries)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == len(DEFAULT_RT_CELLS)
    assert "4,000 deliveries" in ax.get_title()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [spec.name for spec in DEFAULT_RT_CELLS]
    lines = {line.get_label(): line for line in ax.get_lines()}
    styles = {name: lines[name].get_linestyle() for name in (SHORT, LONG, WS_A)}
    assert len(set(styles.values())) == 3  # short poll, long poll and push differ
    assert lines[SHORT].get_color() == lines[LONG].get_color()  # same transport and client
    assert lines[WS_A].get_color() != lines[WS_W].get_color() != lines[SHORT].get_color()
    data = lines[WS_A].get_xdata() if make is charts.delivery_cdf else lines[WS_A].get_ydata()
    assert np.nanmax(data) < JUNK_NS / 1e6  # warmup rows left out
    uri = charts.fig_to_data_uri(fig)
    assert base64.b64decode(uri.split(",", 1)[1]).startswith(b"\x89PNG")


def test_bytes_chart(rt_dir: Path) -> None:
    run = reports.load(rt_dir)
    fig = charts.bytes_per_useful_chart(bytes_per_useful_split(run.samples, run.deliveries))
    ax = fig.axes[0]
    assert len(ax.patches) == 3 * len(DEFAULT_RT_CELLS)  # request, reply, push per cell
    assert [t.get_text() for t in ax.get_yticklabels()] == [s.name for s in DEFAULT_RT_CELLS]
    totals = sorted(t.get_text() for t in ax.texts)
    assert totals == ["80", "80", "800", "800"]
    assert len(ax.get_legend().get_texts()) == 3
    assert charts.fig_to_data_uri(fig).startswith("data:image/png;base64,")


def test_delivery_charts_without_deliveries(tmp_path: Path) -> None:
    run = reports.load(make_run_dir(tmp_path))
    for make in (charts.delivery_spectrum, charts.delivery_cdf):
        fig = make(run.deliveries)
        assert not fig.axes[0].get_lines()
        assert charts.fig_to_data_uri(fig).startswith("data:image/png;base64,")
    fig = charts.bytes_per_useful_chart(bytes_per_useful_split(run.samples, run.deliveries))
    assert not fig.axes[0].patches
    assert charts.fig_to_data_uri(fig).startswith("data:image/png;base64,")


# --- tables, HTML, CLI ------------------------------------------------------------------


@pytest.mark.parametrize("width", [80, 200])
def test_print_summary_realtime(rt_dir: Path, width: int) -> None:
    run = reports.load(rt_dir)
    warnings, out = printed_summary(run, width)
    assert warnings == []
    assert "…" not in out
    assert f"{cell_row(run, SHORT)['delivery_p50_ms']:.3f}" in out
    assert "short-poll" in out and "50%" in out and "800" in out
    assert "Throughput" not in out  # no echo table for a real-time-only run


def test_delivery_summary_table_rows(rt_dir: Path) -> None:
    table = delivery_summary_table(reports.load(rt_dir))
    assert table.row_count == len(DEFAULT_RT_CELLS)
    headers = [str(c.header) for c in table.columns]
    assert headers[:2] == ["Cell", "Delivery"] and any("Lost" in h for h in headers)


def test_realtime_report_html(rt_dir: Path, tmp_path: Path) -> None:
    path = write_report(reports.load(rt_dir), tmp_path / "out" / "report.html")
    html = path.read_text(encoding="utf-8")
    assert 'class="verdict"' in html and 'class="deliveries"' in html
    assert 'class="summary"' not in html
    assert "10.00×" in html  # short poll against ws-aiohttp, latency and bytes
    assert "1.50×" in html and "short-poll" in html and "long-poll" in html
    # verdict; delivery spectrum, CDF, over time, staleness; bytes, CPU, memory per message
    assert html.count('<img src="data:image/png;base64,') == 8
    assert 'alt="Bytes per useful message"' in html
    assert 'alt="Delivery latency by percentile"' in html
    assert 'alt="Short polling: staleness against the poll interval"' in html
    assert "No measured deliveries to chart" not in html
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html and "<link" not in html


def test_mixed_report_has_both_sections(tmp_path: Path) -> None:
    a = make_realtime_run_dir(tmp_path, run_id="rt-a")
    b = make_run_dir(tmp_path, run_id="echo-b")
    console, buf = console_buffer()
    path = report([a, b], out=tmp_path / "mixed.html", console=console)
    html = path.read_text(encoding="utf-8")
    assert 'class="deliveries"' in html and 'class="summary"' in html
    assert html.count('<img src="data:image/png;base64,') == 1 + 7 + 6
    assert "messaging-quick (run rt-a)" in html and "quick (run echo-b)" in html
    out = buf.getvalue()
    assert "Verdict" in out and "10.00×" in out and "6.00×" in out


def test_realtime_report_escapes_strings(tmp_path: Path) -> None:
    evil = '<img src=x onerror="alert(1)">'
    folder = make_realtime_run_dir(tmp_path, workload=evil)
    doc = _summary(folder)
    doc["cells"][0]["delivery"] = evil
    (folder / SUMMARY_FILE).write_text(json.dumps(doc))
    html = render_report(reports.load(folder))
    assert "<img src=x" not in html
    assert '<td class="mode">&lt;img src=x onerror=&#34;alert(1)&#34;&gt;</td>' in html


def test_cli_report_realtime(rt_dir: Path) -> None:
    console, buf = console_buffer()
    path = report([rt_dir], console=console)
    assert path == rt_dir / "report.html" and path.is_file()
    out = buf.getvalue()
    assert "Verdict" in out and "10.00×" in out and "3.00×" in out
    assert "short-poll" in out and "long-poll" in out


def _activity_run(folder: Path) -> Path:
    """Turn a synthetic messaging run into an activity one: sends become activity events,
    nothing is delivered, and the summary carries a time-on-site check."""
    (folder / DELIVERIES_FILE).unlink()
    samples = pd.read_parquet(folder / SAMPLES_FILE)
    samples["kind"] = samples["kind"].replace({"send": "activity"})
    samples.to_parquet(folder / SAMPLES_FILE)
    doc = _summary(folder)
    for entry in doc["cells"]:
        entry["workload"] = "activity"
        entry["deliveries"] = dict.fromkeys(entry["deliveries"], 0)
        entry["delivery_latency_ms"] = dict.fromkeys(entry["delivery_latency_ms"])
        entry["delivery_latency_by_type_ms"] = {}
        entry["useful_messages"] = 500
        entry["activity"] = {
            "users": 24,
            "server_ms": 96000.0,
            "client_ms": 96012.5,
            "mean_abs_diff_ms": 0.52,
            "max_abs_diff_ms": 3.25,
        }
    (folder / SUMMARY_FILE).write_text(json.dumps(doc))
    return folder


def test_activity_run(tmp_path: Path) -> None:
    run = reports.load(_activity_run(make_realtime_run_dir(tmp_path, workload="activity")))
    assert run.deliveries.empty and len(realtime_cells(run.cells)) == 4
    assert run_warnings(run) == []  # nothing to deliver is normal here
    split = bytes_per_useful_split(run.samples, run.deliveries).set_index("cell")
    assert split.index.tolist() == [spec.name for spec in DEFAULT_RT_CELLS]
    assert (split["useful_messages"] == 500).all()  # the measured activity events
    measured = run.samples[~run.samples["warmup"] & run.samples["cell"].eq(WS_A)]
    wire = measured["bytes_sent"].sum() + measured["bytes_received"].sum()
    assert split.loc[WS_A, "total_bytes"] == pytest.approx(wire / 500)
    assert split.loc[WS_A, "push_bytes"] == 0
    out = printed_summary(run)[1]
    assert "time on site" in out and "0.520" in out and "3.250" in out
    html = render_report(run)
    assert 'class="activity"' in html and "Mean |diff| ms/user" in html
    # the verdict chart (bytes and CPU only), bytes, CPU and memory per message
    assert html.count('<img src="data:image/png;base64,') == 4
    assert 'alt="Bytes per useful message"' in html


def test_no_activity_table_without_activity(rt_dir: Path) -> None:
    run = reports.load(rt_dir)
    assert 'class="activity"' not in render_report(run)
    assert "time on site" not in printed_summary(run)[1]


def test_activity_summary_fits_80_columns(tmp_path: Path) -> None:
    run = reports.load(_activity_run(make_realtime_run_dir(tmp_path, workload="activity")))
    out = printed_summary(run, 80)[1]
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "time on site" in out and "0.520" in out and "3.250" in out and "96,000" in out
