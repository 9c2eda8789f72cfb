"""locust's web UI driving one cell's users.

::

    code = run_web(spec, "127.0.0.1", 8089)   # until Ctrl-C or SIGTERM
"""

from __future__ import annotations

import signal
import sys
from typing import Any

import gevent
import gevent.pool
from gevent.event import Event
from locust import argument_parser
from locust import stats as locust_stats
from locust.env import Environment
from locust.event import Events

from loadgen.cellspec import CellRun
from loadgen.locust_engine.locustfile import user_class_for, user_count_for
from loadgen.locust_engine.world import World


def run_web(spec: CellRun, host: str, port: int) -> int:
    """locust's web UI with the cell's users, until Ctrl-C or SIGTERM."""
    cls = user_class_for(spec)
    count = user_count_for(spec)
    # locust's UI reads its own options (and parses sys.argv for extra ones): give it
    # the cell's as if from its command line.
    sys.argv = sys.argv[:1]
    options = argument_parser.get_parser().parse_args(
        ["--users", str(count), "--spawn-rate", str(count), "--host", spec.base_url]
    )
    env = Environment(
        user_classes=[cls], host=spec.base_url, events=Events(), parsed_options=options
    )
    runner = env.create_local_runner()
    world = World(spec, 0, 1, interactive=True)
    world.attach(env)
    web = env.create_web_ui(host, port)
    gevent.spawn(locust_stats.stats_history, runner)
    publishing: list[gevent.pool.Group] = []

    def on_test_start(**_kw: Any) -> None:
        if (group := world.start_interactive_publishers()) is not None:
            publishing.append(group)

    def on_test_stop(**_kw: Any) -> None:
        for group in publishing:
            group.kill(block=True, timeout=2.0)
        publishing.clear()
        world.stop_publishers()

    env.events.test_start.add_listener(on_test_start)
    env.events.test_stop.add_listener(on_test_stop)
    stop = Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, stop.set)
    sys.stderr.write(
        f"locust web UI for cell {spec.cell} on http://{host}:{port} "
        f"(one user is {'a connection' if spec.workload == 'echo' else 'a group of people'}; "
        f"the cell has {count}); Ctrl-C to stop\n"
    )
    stop.wait()
    runner.quit()
    web.stop()
    return 0
