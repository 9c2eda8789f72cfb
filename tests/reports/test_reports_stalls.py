"""The "Stalls" table: recorded stalls loaded from stalls.parquet, laid over the
deliveries in flight, and written into summary.md and the HTML report with names escaped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given
from hypothesis import strategies as st
from reports_fixtures import CellSpec, edit_cell, make_realtime_run_dir, make_run_dir

import reports
from loadgen.schema import DELIVERIES_FILE, STALL_SCHEMA, STALLS_FILE
from reports.html import render_report
from reports.markdown import summary_markdown
from reports.stalls import STALL_HEADERS, overlaps, stall_rows, stall_table

WS = "ws-aiohttp/aiohttp/persistent"
MS = 1_000_000


def write_stalls(folder: Path, rows: list[dict[str, object]]) -> None:
    """stalls.parquet with ``rows`` (identity columns taken from deliveries.parquet)."""
    deliveries = pq.read_table(folder / DELIVERIES_FILE).to_pandas()
    first = deliveries.drop_duplicates("cell").set_index("cell")
    full = []
    for row in rows:
        cell = str(row["cell"])
        ident = first.loc[cell]
        full.append(
            {
                "cell": cell,
                "transport": ident["transport"],
                "client": ident["client"],
                "conn_mode": ident["conn_mode"],
                "delivery": ident["delivery"],
                "repeat": 0,
                "process": "server",
                "kind": "loop",
                "warmup": False,
                **row,
            }
        )
    pq.write_table(pa.Table.from_pylist(full, schema=STALL_SCHEMA), folder / STALLS_FILE)


def watched(folder: Path, cell: str, **figures: float) -> None:
    """Give ``cell`` summary.json's stalls block: the run watched its stalls."""
    block = {
        f"{process}_{name}": 0.0
        for process in ("server", "load_generator")
        for name in ("longest_gc_ms", "longest_loop_ms", "long_loop_stalled_ms")
    }
    block |= {"server_long_loop_stalls": 0, "load_generator_long_loop_stalls": 0}
    edit_cell(folder, cell, stalls=block | figures)


def measured(folder: Path, cell: str) -> pd.DataFrame:
    d = pq.read_table(folder / DELIVERIES_FILE).to_pandas()
    keep = (d["cell"] == cell) & ~d["warmup"] & ~d["deferred"] & ~d["duplicate"]
    return d[keep]


def test_a_folder_without_stalls_has_no_rows_and_no_section(tmp_path: Path) -> None:
    run = reports.load(make_realtime_run_dir(tmp_path))
    assert run.stalls.empty
    assert list(run.stalls.columns) == ["run_id", *STALL_SCHEMA.names]
    assert stall_rows(run) == []
    assert "### Stalls" not in summary_markdown(run)
    echo = reports.load(make_run_dir(tmp_path, (CellSpec("http", "aiohttp", "keep-alive"),)))
    assert echo.stalls.empty and stall_table(echo).empty


def test_deliveries_in_flight_during_a_long_stall_are_counted_apart(tmp_path: Path) -> None:
    folder = make_realtime_run_dir(tmp_path)
    d = measured(folder, WS)
    d = d[d["repeat"] == 0].sort_values("origin_ns")
    start = int(d["origin_ns"].iloc[len(d) // 2])
    write_stalls(
        folder,
        [
            # A 60 ms stall of the server: counted; a 20 ms one: too short to count.
            {"cell": WS, "start_ns": start, "duration_ns": 60 * MS},
            {"cell": WS, "start_ns": start + 10**9, "duration_ns": 20 * MS},
            {"cell": WS, "kind": "gc2", "start_ns": start, "duration_ns": 45 * MS},
            {
                "cell": WS,
                "process": "load generator",
                "kind": "gc1",
                "start_ns": start,
                "duration_ns": 7 * MS,
            },
        ],
    )
    watched(
        folder,
        WS,
        server_longest_gc_ms=45.0,
        server_longest_loop_ms=60.0,
        server_long_loop_stalls=1,
        load_generator_longest_gc_ms=7.0,
        load_generator_longest_loop_ms=3.0,
    )
    run = reports.load(folder)
    assert len(run.stalls) == 4
    table = stall_table(run)
    assert list(table["cell"]) == [WS]  # the other cells did not watch
    row = table.set_index("cell").loc[WS]
    received = d["origin_ns"] + d["latency_ns"]
    held = (d["origin_ns"] <= start + 60 * MS) & (received >= start)
    assert row["in_stall"] == int(held.sum()) > 0
    everyone = measured(folder, WS)
    assert row["deliveries"] == len(everyone)
    others = everyone.drop(index=d[held].index)["latency_ns"].to_numpy() / 1e6
    assert row["p99_outside_ms"] == np.percentile(others, 99)
    assert row["server_gc_max_ms"] == 45.0
    assert row["server_loop_max_ms"] == 60.0
    assert row["client_gc_max_ms"] == 7.0
    assert row["client_loop_max_ms"] == 3.0
    assert row["long_stalls"] == 1
    shown = dict(zip(STALL_HEADERS, stall_rows(run)[0], strict=True))
    # Under the recorders' 5 ms, nothing was kept: said as such.
    assert shown["Load generator: longest loop stall ms"] == "< 5"
    assert shown["Server: longest loop stall ms"] == "60.00"


def test_a_watched_cell_without_any_long_stall_has_a_row(tmp_path: Path) -> None:
    folder = make_realtime_run_dir(tmp_path)
    watched(folder, WS)
    (row,) = stall_table(reports.load(folder)).to_dict("records")
    assert row["in_stall"] == 0 and row["p99_ms"] == row["p99_outside_ms"]


def test_the_table_reaches_both_reports_escaped(tmp_path: Path) -> None:
    folder = make_realtime_run_dir(tmp_path)
    start = int(measured(folder, WS)["origin_ns"].iloc[0])
    write_stalls(folder, [{"cell": WS, "start_ns": start, "duration_ns": 80 * MS}])
    watched(folder, WS, server_longest_loop_ms=80.0, server_long_loop_stalls=1)
    run = reports.load(folder)
    (row,) = stall_rows(run)
    assert len(row) == len(STALL_HEADERS) and row[0] == WS
    md = summary_markdown(run)
    assert "### Stalls" in md and f"`{WS}`" in md
    html = render_report(run)
    assert "<h3>Stalls</h3>" in html and "Delivery p99 ms" in html


def test_hostile_cell_names_are_escaped(tmp_path: Path) -> None:
    folder = make_realtime_run_dir(tmp_path)
    start = int(measured(folder, WS)["origin_ns"].iloc[0])
    write_stalls(folder, [{"cell": WS, "start_ns": start, "duration_ns": 80 * MS}])
    table = pq.read_table(folder / STALLS_FILE).to_pandas()
    evil = "ws|<b>*x*</b>"
    d = pq.read_table(folder / DELIVERIES_FILE).to_pandas()
    d.loc[d["cell"] == WS, "cell"] = evil
    pq.write_table(pa.Table.from_pandas(d, preserve_index=False), folder / DELIVERIES_FILE)
    table["cell"] = evil
    pq.write_table(pa.Table.from_pandas(table, schema=STALL_SCHEMA), folder / STALLS_FILE)
    watched(folder, WS)
    edit_cell(folder, WS, cell=evil)
    run = reports.load(folder)
    assert stall_rows(run)[0][0] == evil
    assert "<b>*x*</b>" not in render_report(run)
    assert "ws|<b>" not in summary_markdown(run)


spans = st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 100)), min_size=0, max_size=30)


@given(spans, spans)
def test_overlaps_matches_a_pairwise_check(deliveries: list, stalls: list) -> None:
    origin = np.array([a for a, _ in deliveries], dtype="int64")
    received = origin + np.array([b for _, b in deliveries], dtype="int64")
    start = np.array([a for a, _ in stalls], dtype="int64")
    end = start + np.array([b for _, b in stalls], dtype="int64")
    want = [
        any(o <= e and r >= s for s, e in zip(start, end, strict=True))
        for o, r in zip(origin, received, strict=True)
    ]
    assert overlaps(origin, received, start, end).tolist() == want
