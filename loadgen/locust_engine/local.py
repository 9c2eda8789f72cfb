"""A locust run in one process (locust's LocalRunner).

::

    part = run_local(spec, out_prefix)   # the part, its files written at out_prefix
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event
from locust.env import Environment
from locust.event import Events

from loadgen.cellspec import CellRun
from loadgen.locust_engine.limits import PROGRESS_EVERY_S, RunError, setup_timeout_s
from loadgen.locust_engine.locustfile import user_class_for, user_count_for
from loadgen.locust_engine.outputs import LocustOutputs
from loadgen.locust_engine.part import finish_part, part_extra
from loadgen.locust_engine.world import World
from loadgen.worker import emit


def _progress_loop(totals: Any, stop: Event) -> None:
    while not stop.wait(PROGRESS_EVERY_S):
        requests, errors = totals()
        emit("progress", requests=requests, errors=errors)


def run_local(spec: CellRun, out_prefix: Path) -> dict[str, Any]:
    """Run the cell in this process with locust's LocalRunner."""
    cls = user_class_for(spec)
    count = user_count_for(spec)
    env = Environment(user_classes=[cls], host=spec.base_url, events=Events())
    runner = env.create_local_runner()
    world = World(spec, 0, 1)
    world.attach(env)
    world.on_phase = lambda phase: emit("phase", phase=phase)
    if world.fd_error is not None:
        # Before any user connects: too few open files would fail them one by one.
        raise RunError(world.fd_error)
    outputs = LocustOutputs(env, out_prefix)
    done = Event()
    progress = gevent.spawn(_progress_loop, lambda: (world.requests, world.errors), done)
    try:
        runner.start(count, spawn_rate=max(1, count))
        info = world.wait_ready(setup_timeout_s(spec))
        if info["error"]:
            raise RunError(info["error"])
        world.begin()
        result = world.finish()
    finally:
        world.finished.set()
        done.set()
        progress.kill()
    runner.quit()
    files = outputs.close()
    extra = part_extra(spec, "local", 1, [result], [], files)
    return finish_part(spec, out_prefix, [result], [], extra)
