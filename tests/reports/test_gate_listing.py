"""``rtbench baseline list``: a table at 80 columns, blocks when narrower, names as text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reports_reading import console_buffer

from reports.gate.listing import print_baselines

FOUND = [
    {
        "name": "[bold]ci\x1b[2J-a-baseline-name-long-enough-to-fold",
        "run_id": "20261206-184714-ci",
        "scenario": "ci",
        "saved_at": "2026-12-06T18:47:14+00:00",
    },
    {"name": "nightly", "path": "baselines/nightly"},  # an old baseline.json: no fields
]


@pytest.mark.parametrize("width", [40, 80])
def test_listing_fits_and_keeps_every_field(width: int) -> None:
    console, buf = console_buffer(width)
    print_baselines(FOUND, console)
    out = buf.getvalue()
    assert max(len(line) for line in out.splitlines()) <= width
    assert "\x1b" not in out and "[bold]ci\\x1b[2J" in out
    flat = "".join(line.strip() for line in out.splitlines())
    for field in ("20261206-184714-ci", "2026-12-06T18:47:14+00:00", "nightly", "ci"):
        assert field in flat


def test_baseline_list_command_at_80_columns(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from loadgen.cli import app
    from reports.gate.baseline import BASELINE_INFO

    saved = tmp_path / "baselines" / "ci"
    saved.mkdir(parents=True)
    (saved / "summary.json").write_text("{}")
    info = {k: v for k, v in FOUND[0].items() if k != "name"}
    (saved / BASELINE_INFO).write_text(json.dumps(info))
    result = CliRunner().invoke(
        app, ["baseline", "list", "--baselines", str(saved.parent)], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    for field in ("ci", "20261206-184714-ci", "2026-12-06T18:47:14+00:00"):
        assert field in result.output
