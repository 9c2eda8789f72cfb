"""The load-generator process: runs one repeat of one cell and writes its part files.

Started by the orchestrator as::

    python -m loadgen.worker SPEC.json OUT_PREFIX [--loop uvloop|asyncio]

It prints one JSON event per line on stdout (``{"event": "phase", ...}``,
``{"event": "progress", ...}``, ``{"event": "done", ...}``; one of several
processes of a cell also ``{"event": "ready"}``, then waits for SIGUSR1 before its
clock starts: :func:`wait_for_start`) and writes
``OUT_PREFIX.parquet`` (raw samples) and ``OUT_PREFIX.json`` (histograms and
counters). Errors go to stderr and exit code 1. A target it may not dial
(anything but loopback, or the kernel link's server address from inside an
rtbench network namespace: :func:`loadgen.targets.check_target`) exits 2 before any traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path

import orjson
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loadgen.cellspec import CellRun
from loadgen.engine import EngineStats, run_cell
from loadgen.events import EventHook
from loadgen.footprint import make_room, process_share
from loadgen.pacer import lag_block
from loadgen.realtime.engine import run_realtime
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.part import ACTION_KINDS, delivery_record, delivery_table
from loadgen.realtime.stats import RealtimeStats
from loadgen.realtime.tracker import Tracker
from loadgen.recorder import LatencyHistograms, RawRecorder, Sample
from loadgen.targets import check_target
from loadgen.tls import configure_client
from loadgen.wire import close_loop, loop_name, new_event_loop

EXIT_REFUSED = 2


def emit(event: str, **fields: object) -> None:
    """Print one machine-readable event line."""
    sys.stdout.write(orjson.dumps({"event": event, **fields}).decode() + "\n")
    sys.stdout.flush()


def exit_with_part(run_part: Callable[[], Mapping[str, object]]) -> int:
    """Call ``run_part`` and report its end to the orchestrator; return the exit status.

    ``return exit_with_part(lambda: run(spec, out_prefix))``: success emits the
    ``done`` event (0); any failure is one line on stderr (1). KeyboardInterrupt
    passes through, for the caller to clean up its own way.
    """
    try:
        part = run_part()
    except Exception as exc:  # report any failure to the orchestrator as one line
        sys.stderr.write(f"load generator failed: {type(exc).__name__}: {exc}\n")
        return 1
    emit("done", count=part["count"], errors=part["errors"], loop=part["loop"])
    return 0


class _Progress:
    """Counts samples and reports every ``every_s`` seconds."""

    def __init__(self, every_s: float = 0.5) -> None:
        self.count = 0
        self.errors = 0
        self.every_ns = int(every_s * 1e9)
        self.next_ns = time.perf_counter_ns() + self.every_ns

    def record(self, sample: Sample) -> None:
        self.count += 1
        if not sample.ok:
            self.errors += 1
        now = time.perf_counter_ns()
        if now >= self.next_ns:
            self.next_ns = now + self.every_ns
            emit("progress", requests=self.count, errors=self.errors)


#: How long a worker of several waits for the others to be ready before it gives up.
START_TIMEOUT_S = 120.0


async def wait_for_start(timeout_s: float = START_TIMEOUT_S) -> None:
    """Print ``{"event": "ready"}`` and wait for SIGUSR1: the start barrier of a cell run
    over several processes (the orchestrator signals each once all are ready)."""
    loop = asyncio.get_running_loop()
    go = asyncio.Event()
    # Installed before "ready" is printed: SIGUSR1's default action would end the process.
    loop.add_signal_handler(signal.SIGUSR1, go.set)
    emit("ready")
    try:
        await asyncio.wait_for(go.wait(), timeout_s)
    except TimeoutError:
        raise RuntimeError(f"no start signal within {timeout_s:.0f} s") from None
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)


def _part_record(
    spec: CellRun,
    loop: asyncio.AbstractEventLoop,
    stats: EngineStats | RealtimeStats,
    window_ns: int,
    hist: LatencyHistograms,
    cpu: float,
    lags: list[int],
    fd_limit: dict[str, object],
) -> dict[str, object]:
    """The part-record keys every cell has: spec, loop, engine stats, window, histograms,
    and the open-files limit each process set (one here)."""
    return {
        "spec": spec.to_dict(),
        "loop": loop_name(loop),
        "stats": asdict(stats),
        "window_s": window_ns / 1e9,
        **hist.as_record(),
        "send_lag_ms": lag_block(lags),
        "client_cpu_s_total": cpu,
        "fd_limits": [fd_limit],
    }


def run(spec: CellRun, out_prefix: Path, use_uvloop: bool = True) -> dict[str, object]:
    """Run ``spec`` in a fresh counting event loop and write the part files.

    First the open-files limit is raised for this process's share of the cell
    (:func:`loadgen.footprint.make_room`; FdLimitTooLow when the hard limit is too low).
    """
    fd_limit = make_room(spec, process_share(spec))
    if spec.workload != "echo":
        return run_realtime_part(spec, out_prefix, use_uvloop, fd_limit)
    raw, hist, progress = RawRecorder(), LatencyHistograms(), _Progress()
    hook = EventHook()
    hook.add_listener(raw.record)
    hook.add_listener(hist.record)
    hook.add_listener(progress.record)
    loop = new_event_loop(use_uvloop)
    cpu0 = time.process_time()
    try:
        if spec.processes > 1:
            loop.run_until_complete(wait_for_start())
        stats = loop.run_until_complete(
            run_cell(spec, hook, on_phase=lambda phase: emit("phase", phase=phase))
        )
    finally:
        close_loop(loop)
    cpu = time.process_time() - cpu0
    table = raw.to_table()
    pq.write_table(table, out_prefix.with_suffix(".parquet"))
    measured = table.filter(pc.and_(pc.invert(table["warmup"]), pc.equal(table["kind"], "request")))
    window_end = stats.ended_ns
    if stats.budget_exhausted and measured.num_rows:
        window_end = pc.max(measured["received_ns"]).as_py()
    window_ns = max(0, window_end - stats.measure_started_ns) if stats.measure_started_ns else 0
    lags = sorted(pc.subtract(measured["sent_ns"], measured["intended_ns"]).to_pylist())
    part = _part_record(spec, loop, stats, window_ns, hist, cpu, lags, fd_limit)
    part["send_lag_p99_ms"] = lag_block(lags)["p99"]
    out_prefix.with_suffix(".json").write_bytes(orjson.dumps(part, option=orjson.OPT_INDENT_2))
    return part


def run_realtime_part(
    spec: CellRun, out_prefix: Path, use_uvloop: bool, fd_limit: dict[str, object]
) -> dict[str, object]:
    """Run one repeat of a real-time cell and write samples, deliveries and the part record
    (``fd_limit``: what :func:`loadgen.footprint.make_room` set)."""
    params = RealtimeParams.model_validate(spec.realtime or {})
    raw, hist, progress = RawRecorder(), LatencyHistograms(ACTION_KINDS), _Progress()
    hook = EventHook()
    hook.add_listener(raw.record)
    hook.add_listener(hist.record)
    hook.add_listener(progress.record)
    tracker = Tracker(0)
    loop = new_event_loop(use_uvloop)
    cpu0 = time.process_time()
    try:
        stats = loop.run_until_complete(
            run_realtime(
                spec,
                params,
                hook,
                tracker,
                on_phase=lambda p: emit("phase", phase=p),
                ready=wait_for_start if spec.processes > 1 else None,
            )
        )
    finally:
        close_loop(loop)
    cpu = time.process_time() - cpu0
    pq.write_table(raw.to_table(), out_prefix.with_suffix(".parquet"))
    pq.write_table(delivery_table(spec, tracker), out_prefix.with_suffix(".deliveries.parquet"))
    window_ns = max(0, stats.ended_ns - stats.measure_started_ns)
    part = _part_record(spec, loop, stats, window_ns, hist, cpu, [], fd_limit)
    part |= delivery_record(tracker, raw.rows)
    part["wire_bytes"] = {"sent": stats.wire_sent, "received": stats.wire_received}
    out_prefix.with_suffix(".json").write_bytes(orjson.dumps(part, option=orjson.OPT_INDENT_2))
    return part


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadgen.worker")
    parser.add_argument("spec", type=Path)
    parser.add_argument("out_prefix", type=Path)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args(argv)
    spec = CellRun.from_dict(orjson.loads(args.spec.read_bytes()))
    refusal = check_target(spec.base_url)
    if refusal:
        sys.stderr.write(f"load generator: {refusal}\n")
        return EXIT_REFUSED
    configure_client(spec.ca_file, spec.tls or "1.3")
    try:
        return exit_with_part(lambda: run(spec, args.out_prefix, use_uvloop=args.loop == "uvloop"))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
