"""The verdict matrix: same-client p50/p99 verdicts pivoted by link profile.

The pivot is checked on synthetic verdict frames shaped like ``verdict_table`` output; the
files on a real two-profile run (loopback and a 20 ms link through ``rtbench run`` and
``rtbench report``).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cli_runs import run_toml
from reports_fixtures import CellSpec, make_run_dir
from scenario_toml import one_repeat_toml
from typer.testing import CliRunner

import reports
from loadgen.cli import app
from reports.markdown import summary_markdown, write_outputs
from reports.matrix import (
    MATRIX_COLUMNS,
    MATRIX_CSV,
    cell_text,
    http_mode_label,
    matrix_pivot,
    matrix_profiles,
    verdict_matrix,
)
from reports.pairs import CONDITION_COLUMNS
from reports.verdict import VERDICT_COLUMNS

RUN = "20261129-043445-claim-matrix"

#: (part, workload, delivery or None for echo, conn_mode) of the HTTP cells.
HTTP_CELLS = (
    ("echo", "echo", None, "keep-alive"),
    ("echo", "echo", None, "new-connection"),
    ("messaging", "messaging", "long-poll", "keep-alive"),
    ("messaging", "messaging", "long-poll", "new-connection"),
    ("messaging", "messaging", "sse", "keep-alive"),
)
LOADS = {"echo": "open loop 40 req/s, 32 connections", "messaging": "24 users, 1 msg/s each"}


def _cell(part: str, transport: str, client: str, conn: str, delivery: str | None) -> str:
    name = f"{part}:{transport}/{client}/{conn}"
    return name + (f"/{delivery}" if delivery and delivery != "push" else "")


def _ratio(part: str, delivery: str | None, conn: str, tls: object, profile: str) -> float:
    """A distinct, recognisable ratio per condition and link."""
    base = {"keep-alive": 1.5, "new-connection": 3.5}[conn] + (0.25 if delivery == "sse" else 0)
    return base + (0.5 if tls else 0) + {"loopback": 0.0, "wan": 0.01, "lan": 0.02}[profile]


def synthetic_verdicts(
    profiles: tuple[str, ...] = ("wan", "loopback"), *, mixed: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(verdicts, cells)``: every HTTP cell of :data:`HTTP_CELLS`, with and without TLS,
    on every profile, paired with a same-client aiohttp WebSocket cell (and, with
    ``mixed``, a websockets one); all four metrics, as ``verdict_table`` would give them."""
    rows: list[dict[str, Any]] = []
    cells: list[dict[str, Any]] = []
    for profile, (part, workload, delivery, conn), tls in itertools.product(
        profiles, HTTP_CELLS, (np.nan, "1.3")
    ):
        suffix = ("+tls" if isinstance(tls, str) else "") + f"~{profile}"
        http = _cell(part, "http", "aiohttp", conn, delivery) + suffix
        cells.append({"run_id": RUN, "cell": http, "conn_mode": conn})
        ws_cells = [(_cell(part, "ws-aiohttp", "aiohttp", "persistent", None) + suffix, True)]
        if mixed:
            ws = _cell(part, "ws-websockets", "websockets", "persistent", None) + suffix
            ws_cells.append((ws, False))
        for ws, same in ws_cells:
            ratio = _ratio(part, delivery, conn, isinstance(tls, str), profile)
            if not same:
                ratio += 10  # never to be seen in the matrix
            for metric in ("p50", "p99", "bytes", "cpu"):
                r = (
                    ratio
                    + (1 if metric == "p99" else 0)
                    + (20 if metric in ("bytes", "cpu") else 0)
                )
                low, high = r - 0.03, r + 0.03
                rows.append(
                    {
                        "run_id": RUN,
                        "scenario": "claim-matrix",
                        "workload": workload,
                        "mode": delivery or conn,
                        "pairing": "aiohttp" if same else "aiohttp vs websockets",
                        "load": LOADS[part],
                        "part": part,
                        "profile": profile,
                        "tls": tls,
                        "same_client": same,
                        "http_cell": http,
                        "ws_cell": ws,
                        "metric": metric,
                        "ratio": r,
                        "ci_low": low,
                        "ci_high": high,
                        "verdict": reports.verdict.verdict_of(low, high),
                    }
                )
    frame = pd.DataFrame(rows)
    for column in (*CONDITION_COLUMNS, *VERDICT_COLUMNS):
        if column not in frame.columns:
            frame[column] = ""
    return frame, pd.DataFrame(cells)


def test_matrix_is_tidy_same_client_latency_only() -> None:
    verdicts, cells = synthetic_verdicts()
    m = verdict_matrix(verdicts, cells=cells)
    assert list(m.columns) == list(MATRIX_COLUMNS)
    # 5 HTTP cells x 2 TLS settings = 10 conditions, x 2 profiles x 2 metrics
    assert len(m) == 10 * 2 * 2 and m["condition"].nunique() == 10
    assert set(m["metric"]) == {"p50", "p99"} and set(m["pairing"]) == {"aiohttp"}
    assert not m.duplicated(["condition", "profile", "metric"]).any()
    # links in the order they ran (first appearance), not alphabetical
    assert matrix_profiles(m) == ["wan", "loopback"]
    first = m.iloc[:4]
    assert first["profile"].tolist() == ["wan", "wan", "loopback", "loopback"]
    assert first["metric"].tolist() == ["p50", "p99", "p50", "p99"]
    assert first["condition"].unique().tolist() == ["claim-matrix · echo · keep-alive · no TLS"]
    assert m["http_mode"].unique().tolist() == [
        "keep-alive",
        "new-connection",
        "long-poll, keep-alive",
        "long-poll, new connection",
        "sse, keep-alive",
    ]
    row = m.query(
        "http_mode == 'long-poll, new connection' and tls == '1.3' and profile == 'loopback'"
        " and metric == 'p50'"
    ).iloc[0]
    assert row["condition"] == "claim-matrix · messaging · long-poll, new connection · TLS 1.3"
    assert row["scope"] == "claim-matrix · messaging"
    assert (row["mode"], row["conn_mode"], row["part"]) == (
        "long-poll",
        "new-connection",
        "messaging",
    )
    assert row["ratio"] == pytest.approx(4.0) and row["verdict"] == "holds"
    assert row["http_cell"] == "messaging:http/aiohttp/new-connection/long-poll+tls~loopback"


def test_pivot_gives_one_row_per_condition_and_a_column_per_link() -> None:
    verdicts, cells = synthetic_verdicts()
    m = verdict_matrix(verdicts, cells=cells)
    grid = matrix_pivot(m, "p50")
    assert list(grid.columns) == ["scope", "http_mode", "tls", "wan", "loopback"]
    assert len(grid) == 10
    echo_nc_tls = grid[(grid["http_mode"] == "new-connection") & (grid["tls"] == "TLS 1.3")]
    assert echo_nc_tls[["wan", "loopback"]].values.tolist() == [
        ["4.01× (3.98–4.04) holds", "4.00× (3.97–4.03) holds"]
    ]
    assert grid.loc[0, "loopback"] == "1.50× (1.47–1.53) refuted"
    p99 = matrix_pivot(m, "p99", cell=lambda r: r["ratio"])
    assert p99.loc[0, "loopback"] == pytest.approx(2.5)


def test_a_condition_missing_on_a_link_is_an_empty_cell() -> None:
    verdicts, cells = synthetic_verdicts()
    gone = (verdicts["profile"] == "wan") & (verdicts["mode"] == "sse")
    m = verdict_matrix(verdicts[~gone], cells=cells)
    grid = matrix_pivot(m, "p50")
    sse = grid[grid["http_mode"] == "sse, keep-alive"]
    assert len(sse) == 2 and sse["wan"].isna().all() and sse["loopback"].notna().all()


@pytest.mark.parametrize("profiles", [("lan",), ()])
def test_no_matrix_without_two_link_profiles(profiles: tuple[str, ...]) -> None:
    verdicts, cells = synthetic_verdicts(profiles or ("lan",))
    if not profiles:
        verdicts = verdicts.assign(profile=np.nan)
    m = verdict_matrix(verdicts, cells=cells)
    assert m.empty and list(m.columns) == list(MATRIX_COLUMNS)
    assert verdict_matrix(verdicts.drop(columns="profile")).empty
    assert verdict_matrix(verdicts.iloc[:0]).empty


def test_two_profiles_on_mixed_pairs_only_make_no_matrix() -> None:
    verdicts, cells = synthetic_verdicts(("lan", "wan"))
    # same-client pairs on one link only: the matrix would have a single column
    verdicts = verdicts[~(verdicts["same_client"] & (verdicts["profile"] == "wan"))]
    assert verdict_matrix(verdicts, cells=cells).empty


def test_connection_mode_from_the_cell_name_without_cells() -> None:
    verdicts, cells = synthetic_verdicts()
    with_cells = verdict_matrix(verdicts, cells=cells)
    without = verdict_matrix(verdicts)
    pd.testing.assert_frame_equal(with_cells, without)


def test_csv_round_trip_gives_the_same_matrix(tmp_path: Path) -> None:
    verdicts, cells = synthetic_verdicts()
    path = tmp_path / "verdict.csv"
    verdicts.to_csv(path, index=False)
    again = verdict_matrix(pd.read_csv(path), cells=cells)
    m = verdict_matrix(verdicts, cells=cells)
    assert again["condition"].tolist() == m["condition"].tolist()
    assert again["verdict"].tolist() == m["verdict"].tolist()
    saved = tmp_path / MATRIX_CSV
    m.to_csv(saved, index=False)
    p50 = pd.read_csv(saved).query("metric == 'p50'")
    wide = p50.pivot_table("ratio", "condition", "profile", sort=False)
    assert wide.shape == (10, 2)
    assert wide.loc["claim-matrix · echo · keep-alive · no TLS", "wan"] == pytest.approx(1.51)


def test_two_websocket_servers_in_one_condition_name_their_cells() -> None:
    verdicts, cells = synthetic_verdicts(mixed=False)
    other = verdicts.assign(
        ws_cell=verdicts["ws_cell"].str.replace("ws-aiohttp/", "ws-websockets/", regex=False),
        ratio=verdicts["ratio"] + 0.1,
    )
    m = verdict_matrix(pd.concat([verdicts, other], ignore_index=True), cells=cells)
    assert m["condition"].nunique() == 20
    modes = m.loc[m["scope"] == "claim-matrix · echo", "http_mode"].unique().tolist()
    assert len(modes) == 8
    assert modes[0] == (
        "keep-alive (echo:http/aiohttp/keep-alive ÷ echo:ws-aiohttp/aiohttp/persistent)"
    )
    assert (
        "keep-alive (echo:http/aiohttp/keep-alive ÷ echo:ws-websockets/aiohttp/persistent)"
    ) in modes


def test_scope_names_the_load_and_run_only_when_needed() -> None:
    verdicts, cells = synthetic_verdicts(mixed=False)
    faster = verdicts.assign(
        load="open loop 400 req/s, 32 connections",
        http_cell=verdicts["http_cell"] + "@400rps",
        ws_cell=verdicts["ws_cell"] + "@400rps",
    )
    echo = pd.concat([verdicts, faster[faster["workload"] == "echo"]], ignore_index=True)
    m = verdict_matrix(echo, cells=cells)
    assert set(m["scope"]) == {
        "claim-matrix · echo · open loop 40 req/s, 32 connections",
        "claim-matrix · echo · open loop 400 req/s, 32 connections",
        "claim-matrix · messaging",
    }
    second = verdicts.assign(run_id="20261130-000000-claim-matrix")
    both = verdict_matrix(pd.concat([verdicts, second], ignore_index=True), cells=cells)
    assert "claim-matrix · messaging (run 20261130-000000-claim-matrix)" in set(both["scope"])
    assert both["condition"].nunique() == 20


def test_labels_and_cell_text() -> None:
    assert http_mode_label("echo", "new-connection", "new-connection") == "new-connection"
    assert http_mode_label("messaging", "long-poll", "new-connection") == (
        "long-poll, new connection"
    )
    assert http_mode_label("notifications", "sse", None) == "sse"
    row = pd.Series({"ratio": 3.04, "ci_low": 3.011, "ci_high": 3.07, "verdict": "holds"})
    assert cell_text(row) == "3.04× (3.01–3.07) holds"
    row = pd.Series({"ratio": 437.07, "ci_low": np.nan, "ci_high": np.nan, "verdict": "n/a"})
    assert cell_text(row) == "437× (no CI) n/a"


def test_single_link_report_is_unchanged_and_drops_a_stale_matrix(tmp_path: Path) -> None:
    cells = (
        CellSpec("http", "aiohttp", "keep-alive", scale=4),
        CellSpec("ws-aiohttp", "aiohttp", "persistent"),
    )
    run = reports.load(make_run_dir(tmp_path, cells, n=400))
    out = tmp_path / "out"
    out.mkdir()
    (out / MATRIX_CSV).write_text("stale\n")
    written = write_outputs(run, out)
    assert "matrix_csv" not in written and not (out / MATRIX_CSV).exists()
    text = (out / "summary.md").read_text()
    assert "Verdict matrix" not in text and "### Verdict counts" not in text
    assert "Verdict matrix" not in written["html"].read_text()


def test_rtbench_report_writes_the_matrix_for_a_two_link_run(tmp_path: Path) -> None:
    profiles = ["loopback", {"name": "rtt20", "rtt_ms": 20}]
    cells = ("http/aiohttp/new-connection", "ws-aiohttp/aiohttp")
    text = one_repeat_toml("links", 20, *cells, network={"profiles": profiles})
    ran, results = run_toml(tmp_path, "links", text, out="results")
    runner = CliRunner()
    assert ran.exit_code == 0, ran.output
    out = tmp_path / "report"
    reported = runner.invoke(app, ["report", str(results), "--out", str(out)])
    assert reported.exit_code == 0, reported.output
    assert MATRIX_CSV in reported.output

    m = pd.read_csv(out / MATRIX_CSV)
    assert list(m.columns) == list(MATRIX_COLUMNS)
    assert m["profile"].tolist() == ["loopback", "loopback", "rtt20", "rtt20"]
    assert m["metric"].tolist() == ["p50", "p99", "p50", "p99"]
    assert set(m["condition"]) == {"links · echo · new-connection"}
    assert set(m["verdict"]) <= {"holds", "refuted", "inconclusive"}
    assert (m["ci_low"] <= m["ratio"]).all() and (m["ratio"] <= m["ci_high"]).all()

    summary = (out / "summary.md").read_text()
    top = summary.index("### Verdict matrix by link")
    assert top < summary.index("### Verdict counts") < summary.index("### Verdict per condition")
    assert "| Scenario | HTTP mode | loopback | rtt20 |" in summary
    assert "| links · echo | new-connection | " in summary
    html = (out / "report.html").read_text()
    assert html.index('id="verdict-matrix-p50"') < html.index('id="verdict-table"')
    assert 'id="verdict-matrix-p99"' in html
    run = reports.load(results)
    assert summary == summary_markdown(run)
