"""The relay's scheduler: callbacks fire in time order, never early, and cancel cleanly."""

from __future__ import annotations

import asyncio
import time

import pytest

from loadgen.link.scheduler import Scheduler

pytestmark = pytest.mark.timeout(20)


@pytest.mark.parametrize("precise", [True, False])
async def test_callbacks_fire_in_time_order_and_never_early(precise: bool) -> None:
    scheduler = Scheduler(asyncio.get_running_loop(), precise)
    assert scheduler.kind in (("timerfd", "loop.call_later") if precise else ("loop.call_later",))
    fired: list[tuple[str, float, float]] = []
    done = asyncio.Event()
    start = time.monotonic()
    try:
        for name, offset in (("c", 0.030), ("a", 0.010), ("b", 0.020)):
            when = start + offset

            def record(name: str = name, when: float = when) -> None:
                fired.append((name, when, time.monotonic()))
                if len(fired) == 3:
                    done.set()

            scheduler.call_at(when, record)
        await asyncio.wait_for(done.wait(), 5)
    finally:
        scheduler.close()
    assert [name for name, _, _ in fired] == ["a", "b", "c"]
    assert all(at >= when for _, when, at in fired)


async def test_a_cancelled_callback_never_fires_and_a_failing_one_stops_no_other() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    scheduler = Scheduler(loop)
    fired: list[str] = []
    done = asyncio.Event()
    now = time.monotonic()

    def boom() -> None:
        raise RuntimeError("one connection failed")

    try:
        cancelled = scheduler.call_at(now + 0.005, lambda: fired.append("cancelled"))
        scheduler.call_at(now + 0.005, boom)
        scheduler.call_at(now + 0.010, lambda: (fired.append("after"), done.set()))
        Scheduler.cancel(cancelled)
        Scheduler.cancel(None)
        await asyncio.wait_for(done.wait(), 5)
    finally:
        scheduler.close()
        loop.set_exception_handler(None)
    assert fired == ["after"]
    assert [str(e["exception"]) for e in errors] == ["one connection failed"]


async def test_nothing_fires_after_close() -> None:
    scheduler = Scheduler(asyncio.get_running_loop())
    fired: list[str] = []
    scheduler.call_at(time.monotonic() + 0.005, lambda: fired.append("late"))
    scheduler.close()
    scheduler.call_at(time.monotonic(), lambda: fired.append("after close"))
    await asyncio.sleep(0.03)
    assert fired == []
