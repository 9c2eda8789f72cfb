"""When a locust run gives up: its timeouts, and the error it stops with.

::

    world.wait_ready(setup_timeout_s(spec))   # users spawned and set up by then
    deadline = go + result_deadline_s(spec)   # every worker has reported by then
    raise RunError("why")                      # stderr, exit code 1
"""

from __future__ import annotations

from loadgen.cellspec import CellRun
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.ramp import connect_ramp_s

#: Seconds between two progress events.
PROGRESS_EVERY_S = 0.5
#: How long the master waits for its workers to join, and a worker for the master's answer.
JOIN_TIMEOUT_S = 60.0
#: Extra seconds, beyond the cell's own timeline, before a silent worker counts as failed.
RESULT_GRACE_S = 20.0
#: A worker quits when it has not heard from its master for this long (locust's is 60 s).
MASTER_SILENCE_S = 15.0


class RunError(RuntimeError):
    """The run cannot go on; the message says why (printed on stderr, exit code 1)."""


def setup_timeout_s(spec: CellRun) -> float:
    """How long users may take to spawn and set up before the run is abandoned."""
    people, ramp = 0, 0.0
    if spec.realtime:
        people = int(spec.realtime.get("users", 20))  # type: ignore[call-overload]
        ramp = connect_ramp_s(RealtimeParams.model_validate(spec.realtime))
    return 30.0 + ramp + people / 50.0 + spec.connections / 100.0


def result_deadline_s(spec: CellRun) -> float:
    """Seconds after the clock starts by which every worker should have reported."""
    rt = spec.realtime or {}
    drain = float(rt.get("drain_s", 0.0)) if spec.workload != "echo" else 0.0  # type: ignore[arg-type]
    presence = float(rt.get("presence_timeout_s", 0.0)) + 3.0 if rt.get("churn_fraction") else 0.0  # type: ignore[arg-type]
    return (
        spec.warmup_s + spec.duration_s + spec.timeout_s + 2.0 + drain + presence + RESULT_GRACE_S
    )
