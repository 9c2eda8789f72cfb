"""A locust worker joining a master (on this machine or another) and running its share.

::

    code = run_worker("10.0.0.5", 5557, connect_timeout_s=30.0)   # 0, or 1/2 on failure
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any

import gevent
import locust
import locust.runners
from gevent.event import Event
from locust.env import Environment
from locust.event import Events

from loadgen.cellspec import CellRun
from loadgen.locust_engine.compat import node_info
from loadgen.locust_engine.limits import JOIN_TIMEOUT_S, MASTER_SILENCE_S, PROGRESS_EVERY_S
from loadgen.locust_engine.locustfile import ALL_USER_CLASSES
from loadgen.locust_engine.world import World


def _watch_parent(parent_pid: int) -> None:
    while True:
        gevent.sleep(0.5)
        if os.getppid() != parent_pid:
            sys.stderr.write("the locust master process is gone; this worker stops\n")
            os._exit(3)


def run_worker(
    host: str,
    port: int,
    connect_timeout_s: float,
    parent_pid: int | None = None,
    advertise_version: str | None = None,
) -> int:
    """Join the master at ``host:port`` and run this worker's share of its cell."""
    env = Environment(user_classes=list(ALL_USER_CLASSES), events=Events())
    # Bound the wait for an unreachable master (locust retries for five minutes).
    locust.runners.CONNECT_TIMEOUT = 1
    locust.runners.CONNECT_RETRY_COUNT = max(1, math.ceil(connect_timeout_s))
    locust.runners.MASTER_HEARTBEAT_TIMEOUT = MASTER_SILENCE_S
    if parent_pid:
        gevent.spawn(_watch_parent, parent_pid)
    try:
        runner = env.create_worker_runner(host, port)
    except ConnectionError:
        sys.stderr.write(
            f"error: could not reach the locust master at {host}:{port} within "
            f"{connect_timeout_s:.0f}s; is it running, and listening on an address this "
            "machine can reach (--master-bind)?\n"
        )
        return 2
    state: dict[str, Any] = {}
    answered = Event()

    def on_spec(environment: Any, msg: Any, **_kw: Any) -> None:
        data = msg.data
        world = World(CellRun.from_dict(data["spec"]), int(data["index"]), int(data["workers"]))
        world.attach(environment)
        state["world"] = world
        state["setup_timeout_s"] = float(data["setup_timeout_s"])
        answered.set()

    def on_reject(environment: Any, msg: Any, **_kw: Any) -> None:
        state["reject"] = msg.data["reason"]
        answered.set()

    def on_go(environment: Any, msg: Any, **_kw: Any) -> None:
        state["world"].begin()

    runner.register_message("rtbench_spec", on_spec)
    runner.register_message("rtbench_reject", on_reject)
    runner.register_message("rtbench_go", on_go)
    runner.send_message("rtbench_hello", node_info(advertise_version or locust.__version__))
    if not answered.wait(JOIN_TIMEOUT_S):
        sys.stderr.write(f"error: the locust master at {host}:{port} did not answer\n")
        return 2
    if "reject" in state:
        sys.stderr.write(f"error: the locust master refused this worker: {state['reject']}\n")
        return 2
    world: World = state["world"]
    done = Event()

    def progress() -> None:
        while not done.wait(PROGRESS_EVERY_S):
            data = {"requests": world.requests, "errors": world.errors}
            runner.send_message("rtbench_progress", data)

    gevent.spawn(progress)
    info = world.wait_ready(state["setup_timeout_s"])
    runner.send_message("rtbench_ready", info)
    if info["error"]:
        sys.stderr.write(f"error: {info['error']}\n")
        runner.greenlet.join(timeout=30)
        return 1
    while not world.go.wait(0.5):
        if not runner.greenlet:
            sys.stderr.write("error: the master ended the run before it started\n")
            return 1
    result = world.finish()
    done.set()
    runner._send_stats()  # locust's statistics reach the master before the result
    runner.send_message("rtbench_result", result)
    world.finished.set()
    runner.greenlet.join()
    return 0


# -- web UI --------------------------------------------------------------------------------
