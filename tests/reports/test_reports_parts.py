"""Reports on runs of multi-part scenarios (``[[parts]]``: several workloads in one run).

Synthetic runs merge the folders of tests/reports_fixtures.py into one with
``make_parts_run_dir``: an ``echo`` part (the :data:`DEFAULT_CELLS`) and a ``messaging``
part (the :data:`DEFAULT_RT_CELLS`) whose settings exist only in meta.json ``parts``. One
tiny *real* multi-part run (``real_parts_run``) checks the same against ``rtbench run``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from reports_fixtures import (
    DEFAULT_CELLS,
    DEFAULT_RT_CELLS,
    make_parts_run_dir,
    make_realtime_run_dir,
    make_run_dir,
    real_parts_run,
)

import reports
from loadgen.schema import META_FILE, SUMMARY_FILE
from reports import charts
from reports.costs import cost_table
from reports.html import render_report, report_context, scenario_runs
from reports.markdown import summary_markdown
from reports.pairs import load_label, matched_pairs
from reports.stats import delivery_ratio_table, ratio_table, request_cells
from reports.verdict import verdict_wide

MESSAGING_RT = {"users": 24, "message_rate": 1.0, "poll_interval_ms": 250}
ECHO_IDS = {f"echo:{c.name}" for c in DEFAULT_CELLS}
MESSAGING_IDS = {f"messaging:{c.name}" for c in DEFAULT_RT_CELLS}


@pytest.fixture(scope="module")
def parts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("parts")
    echo = make_run_dir(base / "src", n=400)
    live = make_realtime_run_dir(base / "src", n=200)
    return make_parts_run_dir(
        base,
        {"echo": echo, "messaging": live},
        realtime={"messaging": MESSAGING_RT},
        descriptions={"messaging": "Teams chatting"},
    )


@pytest.fixture(scope="module")
def run(parts_dir: Path) -> reports.Run:
    return reports.load(parts_dir)


# --- load -------------------------------------------------------------------------------


def test_cells_and_repeats_carry_their_part(run: reports.Run) -> None:
    cells = run.cells.set_index("cell")
    assert set(cells.index) == ECHO_IDS | MESSAGING_IDS
    for cell, row in cells.iterrows():
        assert row["part"] == str(cell).split(":")[0]
    assert set(run.repeats["part"]) == {"echo", "messaging"}
    assert set(cells.loc[list(MESSAGING_IDS), "workload"]) == {"messaging"}
    assert reports.part_names(run) == ["echo", "messaging"]


def test_ordinary_runs_have_no_part(tmp_path: Path) -> None:
    """Folders without ``part`` (older results, single-workload runs) load with None."""
    echo = reports.load(make_run_dir(tmp_path))
    nulls = make_run_dir(tmp_path, run_id="with-null-parts")
    summary = json.loads((nulls / SUMMARY_FILE).read_text())
    for entry in summary["cells"]:
        entry["part"] = None
    (nulls / SUMMARY_FILE).write_text(json.dumps(summary))
    for run in (echo, reports.load(nulls)):
        assert "part" in run.cells.columns and "part" in run.repeats.columns
        assert all(p is None for p in run.cells["part"])
        assert all(p is None for p in run.repeats["part"])
        assert reports.part_names(run) == []
    assert reports.scenario_label(echo) == "quick"


def test_cell_scenario_picks_the_part(run: reports.Run) -> None:
    assert reports.cell_scenario(run.meta, "messaging")["realtime"] == MESSAGING_RT
    assert reports.cell_scenario(run.meta, "echo")["realtime"] is None
    declared = run.meta["scenario"]
    for part in (None, "", float("nan"), "no-such-part"):
        assert reports.cell_scenario(run.meta, part) is declared
    assert reports.cell_scenario({}, "messaging") == {}
    ordinary = {"scenario": {"realtime": {"users": 3}}, "parts": {}}
    assert reports.cell_scenario(ordinary, "messaging")["realtime"] == {"users": 3}


def test_select_part_keeps_only_its_rows(run: reports.Run) -> None:
    live = reports.select_part(run, "messaging")
    assert live.part_name == "messaging" and live.meta is run.meta
    assert set(live.cells["cell"]) == MESSAGING_IDS
    assert set(live.samples["cell"]) == MESSAGING_IDS
    assert set(live.deliveries["cell"]) == MESSAGING_IDS
    assert set(live.repeats["cell"]) == MESSAGING_IDS
    echo = reports.select_part(run, "echo")
    assert set(echo.samples["cell"]) == ECHO_IDS and echo.deliveries.empty
    assert reports.scenario_label(live) == "claim-matrix · messaging"
    assert "part='messaging'" in repr(live)
    with pytest.raises(ValueError, match="no part 'chat'"):
        reports.select_part(run, "chat")
    with pytest.raises(ValueError, match="single run"):
        reports.select_part(reports.load_many([run.path, _copy(run.path)]), "echo")


def _copy(folder: Path) -> Path:
    """The same results under another run id, next to ``folder``."""
    copy = folder.with_name(folder.name + "-copy")
    if not copy.exists():
        shutil.copytree(folder, copy)
        for name in (SUMMARY_FILE, META_FILE):
            doc = json.loads((copy / name).read_text())
            doc["run_id"] = copy.name
            (copy / name).write_text(json.dumps(doc))
    return copy


# --- per-part settings ------------------------------------------------------------------


def test_load_label_of_a_part_cell(run: reports.Run) -> None:
    cells = run.cells.set_index("cell", drop=False)
    live = cells.loc[sorted(MESSAGING_IDS)[0]]
    assert load_label(live, run.meta) == "24 users, 1 msg/s each"
    assert load_label(cells.loc[sorted(ECHO_IDS)[0]], run.meta) == "closed loop, 8 connections"
    # without its part, a real-time cell has only the (empty) top-level settings
    assert load_label(live.drop("part"), run.meta) == "real-time"


def test_costs_use_the_parts_users(run: reports.Run) -> None:
    costs = cost_table(run.cells, {run.run_id: run.meta}).set_index("cell")
    assert (costs.loc[list(MESSAGING_IDS), "connections"] == 24).all()
    assert (costs.loc[list(ECHO_IDS), "connections"] == 8).all()
    assert (costs.loc[list(ECHO_IDS), "payload_bytes"] == 64).all()


def test_pairs_stay_inside_a_part(tmp_path: Path) -> None:
    """Two parts of the same workload and load: no HTTP cell meets the other part's WS."""
    a = make_run_dir(tmp_path / "src", run_id="a", n=200)
    b = make_run_dir(tmp_path / "src", run_id="b", n=200)
    run = reports.load(make_parts_run_dir(tmp_path, {"a": a, "b": b}))
    pairs = matched_pairs(run)
    assert len(pairs) == 2 * 2 * 2  # per part: 2 HTTP cells x 2 WS cells
    for _, p in pairs.iterrows():
        assert p["http_cell"].split(":")[0] == p["ws_cell"].split(":")[0] == p["part"]
    ratios = ratio_table(request_cells(run.cells))
    assert len(ratios) == 8 and (ratios["http_cell"].str[0] == ratios["ws_cell"].str[0]).all()
    ordinary = reports.load(a)
    assert "part" not in matched_pairs(ordinary).columns
    assert "part" not in ratio_table(ordinary.cells).columns


def test_verdict_names_the_part(run: reports.Run) -> None:
    wide = verdict_wide(reports.verdict_table(run, n_resamples=200))
    assert set(wide["part"]) == {"echo", "messaging"}
    live = wide[wide["part"] == "messaging"]
    assert set(live["load"]) == {"24 users, 1 msg/s each"}
    assert set(delivery_ratio_table(run.cells)["part"]) == {"messaging"}


# --- report.html and summary.md ---------------------------------------------------------


def test_one_html_section_per_part(run: reports.Run) -> None:
    sections = report_context(run)["scenarios"]
    assert [s["name"] for s in sections] == ["claim-matrix · echo", "claim-matrix · messaging"]
    echo, live = sections
    assert echo["has_requests"] and not echo["has_deliveries"]
    assert live["has_deliveries"] and not live["has_requests"]
    assert {r[0] for r in echo["summary_rows"]} == ECHO_IDS
    assert {r[0] for r in live["delivery_rows"]} == MESSAGING_IDS
    assert live["description"] == "Teams chatting" and echo["description"] == ""
    html = render_report(run)
    assert html.count('<section class="scenario"') == 2
    assert "Scenario claim-matrix · messaging" in html
    assert "claim-matrix · messaging (run 20261201-090000-claim-matrix)" in html


def test_part_charts_see_only_their_rows(run: reports.Run, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, list[Any]] = {}

    def spy(name: str) -> Any:
        real = getattr(charts, name)

        def wrapper(frame: pd.DataFrame, *args: Any, **kwargs: Any) -> Any:
            seen.setdefault(name, []).append((set(frame["cell"].astype(str)), *args))
            return real(frame, *args, **kwargs)

        return wrapper

    for name in ("percentile_spectrum", "latency_over_time", "delivery_cdf", "staleness_chart"):
        monkeypatch.setattr(charts, name, spy(name))
    report_context(run)
    assert [cells for cells, *_ in seen["percentile_spectrum"]] == [ECHO_IDS]
    assert [cells for cells, *_ in seen["latency_over_time"]] == [ECHO_IDS]
    assert [cells for cells, *_ in seen["delivery_cdf"]] == [MESSAGING_IDS]
    [(cells, interval)] = seen["staleness_chart"]
    assert cells == MESSAGING_IDS and interval == 250  # the part's poll interval


def test_scenario_runs_of_ordinary_and_combined_runs(run: reports.Run, tmp_path: Path) -> None:
    echo = reports.load(make_run_dir(tmp_path))
    assert scenario_runs(echo) == [echo]
    both = reports.load_many([echo.path, run.path])
    labels = [reports.scenario_label(r) for r in scenario_runs(both)]
    assert labels == ["quick", "claim-matrix · echo", "claim-matrix · messaging"]


def test_summary_markdown_labels_part_cells(run: reports.Run) -> None:
    text = summary_markdown(run)
    assert "| Part |" in text and "part messaging" in text
    for cell in MESSAGING_IDS:
        assert f"| claim-matrix · messaging | `{cell}` | delivery |" in text
    for cell in ECHO_IDS:
        assert f"| claim-matrix · echo | `{cell}` | request |" in text


# --- a real multi-part run --------------------------------------------------------------


@pytest.mark.timeout(240)
def test_real_multi_part_run(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    folder = real_parts_run(tmp_path_factory.getbasetemp())
    run = reports.load(folder)
    assert reports.part_names(run) == ["echo", "messaging"]
    for _, cell in run.cells.iterrows():
        assert cell["cell"].startswith(f"{cell['part']}:")
    live = run.cells[run.cells["part"] == "messaging"].iloc[0]
    assert load_label(live, run.meta) == "6 users, 4 msg/s each"
    costs = cost_table(run.cells, {run.run_id: run.meta})
    assert (costs.loc[costs["per"] == "message", "connections"] == 6).all()
    sections = report_context(run)["scenarios"]
    assert [s["name"] for s in sections] == ["tiny-parts · echo", "tiny-parts · messaging"]
    assert sections[1]["description"] == "Short polling against push"
    paths = reports.write_outputs(run, tmp_path)
    html = paths["html"].read_text(encoding="utf-8")
    # verdict; echo: spectrum, CDF, over time, bytes, CPU, memory;
    # messaging: spectrum, CDF, over time, staleness, bytes, CPU, memory
    assert html.count('<img src="data:image/png;base64,') == 1 + 6 + 7
    assert "tiny-parts · messaging" in paths["markdown"].read_text(encoding="utf-8")
