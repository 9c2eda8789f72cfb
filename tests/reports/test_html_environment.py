"""reports/html_environment.py: a run's meta.json as the report's environment facts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from reports.html_environment import cpus_text, environment
from reports.load import Run


def _run(meta: dict) -> Run:
    empty = pd.DataFrame()
    summary = {"run_id": "r1", "complete": True}
    return Run(
        samples=empty,
        cells=empty,
        summary=summary,
        meta=meta,
        path=Path("results/r1"),
        repeats=empty,
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ([0], "0"),
        ([0, 1], "0, 1"),
        ([], "none"),  # pinned to nothing: the placement says why
        (None, "not pinned"),
        ("0-1", "0-1"),
    ],
)
def test_cpus_text(value: object, text: str) -> None:
    assert cpus_text(value) == text


def test_environment_lists_key_packages_first_and_marks_a_dirty_commit() -> None:
    meta = {
        "environment": {
            "packages": {"zlib-ng": "1", "aiohttp": "3.10", "websockets": "13"},
            "git_commit": "abc123",
            "git_dirty": True,
        },
        "pinning": {"server_cpus": [0], "client_cpus": [1]},
        "scenario": {"scenario": {"name": "<b>x</b>"}},
    }
    section = environment(_run(meta))
    assert section["key_packages"] == [("websockets", "13"), ("aiohttp", "3.10")]
    assert section["other_packages"] == [("zlib-ng", "1")]
    facts = dict(section["facts"])
    assert facts["Git commit"] == "abc123 (with uncommitted changes)"
    assert (facts["Server CPUs"], facts["Client CPUs"]) == ("0", "1")
    assert '"<b>x</b>"' in section["scenario_json"]  # escaping is the template's job


def test_environment_of_a_meta_without_blocks_leaves_the_facts_out() -> None:
    section = environment(_run({"environment": "garbled", "pinning": None}))
    facts = dict(section["facts"])
    assert "Python" not in facts and "Git commit" not in facts
    assert facts["Server CPUs"] == "not pinned"
    assert section["key_packages"] == [] == section["other_packages"]
