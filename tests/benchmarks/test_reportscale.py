"""benchmarks/reportscale.py: a synthetic run that reports.load reads, of the size asked."""

from __future__ import annotations

from pathlib import Path

import reports
from benchmarks.reportscale import CELLS, REPEATS, generate, row_count
from loadgen.schema import DELIVERIES_FILE, META_FILE, SAMPLES_FILE, SUMMARY_FILE


def test_generated_run_loads_with_the_rows_asked_for(tmp_path: Path) -> None:
    folder = generate(20_001, tmp_path / "run")
    names = {p.name for p in folder.iterdir()}
    assert names == {SAMPLES_FILE, DELIVERIES_FILE, SUMMARY_FILE, META_FILE}
    run = reports.load(folder)
    assert len(run.samples) == row_count(folder) == 20_001
    assert len(run.deliveries) == 20_001
    assert list(run.cells["cell"]) == [c["cell"] for c in CELLS]
    assert (run.cells["repeats_ok"] == REPEATS).all()
    assert (run.cells["status"] == "ok").all()
    measured = run.samples[~run.samples["warmup"]]
    assert int(run.cells["count"].sum()) == int(measured["kind"].eq("send").sum())


def test_same_seed_same_rows(tmp_path: Path) -> None:
    a = reports.load(generate(2_000, tmp_path / "a", seed=3)).samples
    b = reports.load(generate(2_000, tmp_path / "b", seed=3)).samples
    assert a["latency_ns"].tolist() == b["latency_ns"].tolist()
