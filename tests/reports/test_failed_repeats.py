"""A repeat whose server died keeps its rows on disk, but not a say in the verdict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from reports_fixtures import CellSpec, make_run_dir

import reports
from loadgen.schema import SAMPLES_FILE, SUMMARY_FILE
from loadgen.summary import cell_summary
from reports.checks import cell_caveats, run_warnings
from reports.stats import completed_run, failed_repeats, measured_samples
from reports.verdict import verdict_table

HTTP = "http/aiohttp/keep-alive"
CELLS = (
    CellSpec("http", "aiohttp", "keep-alive", scale=4),
    CellSpec("ws-aiohttp", "aiohttp", "persistent", scale=1),
)
WHY = "server exited with code -9 during the run: Killed"


def _fail_repeat(folder: Path, repeat: int, *, structured: bool) -> None:
    """Mark the HTTP cell's ``repeat`` failed the way rtbench run does, and make its rows
    what a dying server leaves: a few very slow requests."""
    path = folder / SUMMARY_FILE
    summary = json.loads(path.read_text())
    cell = next(c for c in summary["cells"] if c["cell"] == HTTP)
    cell["failures"] = [f"repeat {repeat}: {WHY}"]
    cell["status"] = "error"
    cell["per_repeat"] = [r for r in cell["per_repeat"] if r["repeat"] != repeat]
    if structured:
        cell["failed_repeats"] = [repeat]
    path.write_text(json.dumps(summary))
    table = pq.read_table(folder / SAMPLES_FILE)
    mine = pc.and_(pc.equal(table["cell"], HTTP), pc.equal(table["repeat"], repeat))
    slow = pc.if_else(mine, pc.multiply(table["latency_ns"], 1000), table["latency_ns"])
    table = table.set_column(table.schema.get_field_index("latency_ns"), "latency_ns", slow)
    pq.write_table(table, folder / SAMPLES_FILE)


@pytest.mark.parametrize("structured", [True, False], ids=["failed_repeats", "older-summary"])
def test_verdict_leaves_failed_repeats_out(tmp_path: Path, structured: bool) -> None:
    folder = make_run_dir(tmp_path, CELLS, repeats=3, n=600)
    _fail_repeat(folder, 2, structured=structured)
    run = reports.load(folder)
    assert failed_repeats(run.cells) == {(run.run_id, HTTP, 2)}

    verdicts = verdict_table(run, n_resamples=200)
    p50 = verdicts[verdicts["metric"] == "p50"].iloc[0]
    kept = measured_samples(run.samples)
    kept = kept[(kept["cell"] == HTTP) & (kept["repeat"] != 2)]
    assert p50["n_http"] == len(kept)
    assert p50["http_value"] == pytest.approx(np.percentile(kept["latency_ns"] / 1e6, 50))
    assert p50["ci_high"] < 1000  # the slow rows would put HTTP ~1000x behind
    assert "failed repeat(s) 2 left out" in p50["caveats"]


def test_the_report_says_so(tmp_path: Path) -> None:
    folder = make_run_dir(tmp_path, CELLS, repeats=3, n=600)
    _fail_repeat(folder, 2, structured=True)
    run = reports.load(folder)
    assert "failed repeat(s) 2 left out" in cell_caveats(run)[(run.run_id, HTTP)]
    text = " ".join(run_warnings(run))
    assert f"repeat 2: {WHY}" in text
    assert "failed repeats are left out of its figures and the verdict" in text


def test_summary_lists_failed_repeats() -> None:
    cell = {"cell": "c", "transport": "http"}
    parts = [{"cell": "c", "repeat": 0, "failed": "could not start"}]
    summary = cell_summary(cell, parts)
    assert summary["failed_repeats"] == [0]
    assert summary["repeats_ok"] == 0


def test_the_charts_leave_failed_repeats_out_too(tmp_path: Path) -> None:
    folder = make_run_dir(tmp_path, CELLS, repeats=3, n=600)
    _fail_repeat(folder, 2, structured=True)
    run = reports.load(folder)
    kept = completed_run(run)
    http = kept.samples[kept.samples["cell"] == HTTP]
    assert sorted(http["repeat"].unique()) == [0, 1]
    assert len(kept.samples) < len(run.samples)  # the rows stay on disk and in run.samples
    assert sorted(kept.samples[kept.samples["cell"] != HTTP]["repeat"].unique()) == [0, 1, 2]
