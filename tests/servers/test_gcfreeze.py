"""Freezing long-lived objects out of the cyclic collector: ``servers.gcfreeze``."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers import gcfreeze
from servers.hub import Hub
from servers.realtime.config import RealtimeConfig

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """Every test starts and ends with nothing frozen, so the suite's objects stay collectable."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_freeze_now_collects_then_freezes_and_says_so() -> None:
    assert gcfreeze.freeze_now() is True
    state = gcfreeze.describe()
    assert state["freeze"] is True
    assert state["frozen"] == gc.get_freeze_count() > 0
    assert state["enabled"] is gc.isenabled()
    assert state["threshold"] == list(gc.get_threshold())
    assert state["full_collections"] >= 1


def test_env_zero_leaves_the_collector_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gcfreeze.ENV, "0")
    assert gcfreeze.freeze_now() is False
    settler = gcfreeze.Settler()
    gc.collect()
    assert settler.settle() is False
    assert gc.get_freeze_count() == 0
    assert gcfreeze.describe()["freeze"] is False


def test_full_policy_freezes_once_per_full_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gcfreeze.ENV, "full")
    settler = gcfreeze.Settler()
    assert settler.settle() is False  # no full collection since it was made
    assert gc.get_freeze_count() == 0
    gc.collect()  # a full collection: what is left is alive
    assert settler.settle() is True
    assert gc.get_freeze_count() > 0
    assert settler.settle() is False  # nothing new to freeze until the next one
    gc.collect(1)  # a younger collection does not count
    assert settler.settle() is False
    assert settler.freezes == 1


def test_default_policy_freezes_after_every_promoting_collection() -> None:
    settler = gcfreeze.Settler()
    assert settler.policy == "promoted" and gcfreeze.describe()["policy"] == "promoted"
    gc.collect(0)  # generation 0 only promotes into generation 1
    assert settler.settle() is False
    gc.collect(1)  # survivors move into the oldest generation
    assert settler.settle() is True
    assert gc.get_freeze_count() > 0
    assert settler.settle() is False
    gc.collect()
    assert settler.settle() is True
    assert settler.freezes == 2


@pytest.mark.parametrize(("value", "policy"), [("1", "promoted"), ("FULL", "full"), ("0", "off")])
def test_policy_values(monkeypatch: pytest.MonkeyPatch, value: str, policy: str) -> None:
    monkeypatch.setenv(gcfreeze.ENV, value)
    assert gcfreeze.policy() == policy


def test_an_unknown_policy_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(gcfreeze.ENV, "sometimes")
    with pytest.raises(ValueError, match="RTBENCH_GC_FREEZE='sometimes'"):
        gcfreeze.Settler()


async def test_keep_settled_settles_until_cancelled() -> None:
    settler = gcfreeze.Settler()
    task = asyncio.create_task(settler.keep_settled(period_s=0.01))
    gc.collect()
    for _ in range(100):
        await asyncio.sleep(0.01)
        if settler.freezes:
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert settler.freezes >= 1


async def test_the_hubs_sweeper_settles_the_collector() -> None:
    # presence_timeout_s / 10 = 0.05 s between sweeps.
    hub = Hub(realtime=RealtimeConfig(presence_timeout_s=0.5, open_signin=True))
    await hub.start()
    try:
        gc.collect()
        for _ in range(100):
            await asyncio.sleep(0.02)
            if hub.gc.freezes:
                break
    finally:
        await hub.stop()
    assert hub.gc.freezes >= 1
    assert gc.get_freeze_count() > 0


def test_rtbench_run_refuses_an_unknown_policy_before_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from loadgen.cli import app

    monkeypatch.setenv(gcfreeze.ENV, "sometimes")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(SCENARIOS / "quick.toml"), "--out", str(out)])
    assert result.exit_code == 2
    assert "RTBENCH_GC_FREEZE='sometimes'" in result.output
    assert not out.exists()
