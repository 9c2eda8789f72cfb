"""The asyncio load loops for one cell: closed loop or open loop, bounded.

Build a :class:`CellRun` and await :func:`run_cell` inside an event loop made
by :func:`loadgen.wire.new_event_loop` (so wire bytes are counted)::

    hook = EventHook(); hook.add_listener(recorder.record)
    stats = await run_cell(spec, hook, on_phase=print)

Every measured request fires one :class:`~loadgen.recorder.Sample` on
``hook``. The run stops by itself at ``warmup_s + duration_s`` or after
``max_requests`` requests, whichever comes first; requests still in flight
then get ``timeout_s`` to finish.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from loadgen.cellspec import CellRun
from loadgen.clients.base import make_client
from loadgen.clients.errors import ClientError
from loadgen.events import EventHook
from loadgen.pacer import NS_PER_S, split_rate
from loadgen.realtime.replies import check_echo_reply
from loadgen.realtime.samples import echo_sample
from loadgen.recorder import Sample
from loadgen.schema import WS_TRANSPORTS
from loadgen.shares import my_connections
from loadgen.timeline import run_phases, sleep_until
from loadgen.wire import WireCounter, counting
from servers import protocol

clock = time.perf_counter_ns


@dataclass(slots=True)
class EngineStats:
    """What the loops counted besides the samples themselves."""

    issued: int = 0
    connects: int = 0
    connect_errors: int = 0
    budget_exhausted: bool = False
    started_ns: int = 0
    measure_started_ns: int = 0
    ended_ns: int = 0
    drained_ns: int = 0
    cancelled_in_flight: int = 0
    errors_by_code: dict[str, int] = field(default_factory=dict)

    def count(self, sample: Sample) -> None:
        """Count ``sample``'s error code, if it failed."""
        if sample.error:
            self.errors_by_code[sample.error] = self.errors_by_code.get(sample.error, 0) + 1


async def run_cell(
    spec: CellRun,
    hook: EventHook,
    on_phase: Callable[[str], None] | None = None,
) -> EngineStats:
    """Run one repeat of one cell; fire a Sample per request on ``hook``."""
    if spec.model == "open" and not spec.rate:
        raise ValueError("open-loop runs need a rate")
    stats = EngineStats()
    payload = protocol.make_payload(spec.payload_bytes)
    ids = itertools.count(1)
    budget = [spec.max_requests]
    start = clock()
    stats.started_ns = start
    warmup_end = start + int(spec.warmup_s * NS_PER_S)
    end = warmup_end + int(spec.duration_s * NS_PER_S)
    pacers = split_rate(spec.rate, spec.connections) if spec.model == "open" else None
    is_ws = spec.transport in WS_TRANSPORTS

    def fire(sample: Sample) -> None:
        stats.count(sample)
        hook.fire(sample)

    async def connect(conn: int, client: object, counter: WireCounter) -> bool:
        before = counter.snapshot()
        t0 = clock()
        try:
            await client.connect()  # type: ignore[attr-defined]
        except ClientError as exc:
            stats.connect_errors += 1
            t1 = clock()
            delta = counter.since(before)
            fire(echo_sample(spec, "connect", conn, t0, t0, t1, warmup_end, delta, exc.code))
            return False
        t1 = clock()
        stats.connects += 1
        if is_ws:
            # A WebSocket's set-up (TCP + upgrade) is its own sample kind;
            # HTTP pays connection set-up inside its requests.
            delta = counter.since(before)
            fire(echo_sample(spec, "connect", conn, t0, t0, t1, warmup_end, delta, None))
        return True

    async def conn_loop(conn: int) -> None:
        counter = WireCounter()
        client = make_client(
            spec.transport,
            spec.client,
            spec.conn_mode,
            spec.base_url,
            spec.timeout_s,
            http_version=spec.http_version,
        )
        stamped = hasattr(client, "socket_stamps")
        sent_count = 0
        busy_until = 0
        with counting(counter):
            connected = await connect(conn, client, counter)
            try:
                while True:
                    now = clock()
                    if pacers is not None:
                        pacer = pacers[conn]
                        intended = start + pacer.intended_ns(sent_count)
                        if intended >= end:
                            break
                        if intended > now:
                            await sleep_until(intended)
                    else:
                        if now >= end:
                            break
                        intended = now
                    if budget[0] <= 0:
                        stats.budget_exhausted = True
                        break
                    budget[0] -= 1
                    sent_count += 1
                    if not connected:
                        # Reconnect in line with the schedule so a dead server shows as
                        # errors at the offered rate, not as silence.
                        await client.close()
                        connected = await connect(conn, client, counter)
                        if not connected:
                            if pacers is None:
                                # Closed loop: back off instead of spinning. Open loop:
                                # the pacer spaces the attempts at the offered rate.
                                await asyncio.sleep(0.05)
                            continue
                    req_id = next(ids)
                    before = counter.snapshot()
                    sent = clock()
                    body = protocol.encode_request(
                        protocol.Request(op=spec.op, id=req_id, ts=sent, payload=payload)
                    )
                    stats.issued += 1
                    try:
                        status, reply = await client.request(body)
                        received = clock()
                        if stamped:
                            # Socket-boundary times (the lean client): no await in between.
                            sent, received = client.socket_stamps  # type: ignore[attr-defined]
                        error = check_echo_reply(status, reply, req_id)
                    except ClientError as exc:
                        received = clock()
                        error = exc.code
                        if is_ws and exc.code in ("closed", "timeout"):
                            connected = False
                    delta = counter.since(before)
                    # Coordinated omission: a request that waited for the previous reply
                    # on its connection is charged from its intended time. One whose
                    # connection was free is charged from its send time, so the
                    # event loop's timer lateness (~1 ms granularity) is not counted
                    # as server latency; it stays visible as sent_ns - intended_ns.
                    origin = intended if busy_until > intended else sent
                    busy_until = received
                    fire(
                        echo_sample(
                            spec,
                            "request",
                            conn,
                            intended,
                            sent,
                            received,
                            warmup_end,
                            delta,
                            error,
                            origin,
                        )
                    )
                    if spec.think_time_s and pacers is None:
                        await asyncio.sleep(spec.think_time_s)
            finally:
                await client.close()

    phase_task = asyncio.create_task(run_phases(warmup_end, end, stats, on_phase))
    # Pacers cover every connection of the cell; this process runs its share of them.
    tasks = [asyncio.create_task(conn_loop(i)) for i in my_connections(spec)]
    deadline = spec.warmup_s + spec.duration_s + spec.timeout_s + 1.0
    _done, pending = await asyncio.wait(tasks, timeout=deadline)
    for task in pending:
        task.cancel()
    stats.cancelled_in_flight = len(pending)
    if pending:
        await asyncio.wait(pending, timeout=2.0)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    if not phase_task.done():
        if stats.budget_exhausted:
            # Out of requests before the clock ran out: the measured window ends now.
            phase_task.cancel()
            if not stats.measure_started_ns:
                stats.measure_started_ns = clock()
                if on_phase:
                    on_phase("measure")
            stats.ended_ns = clock()
            if on_phase:
                on_phase("drain")
        else:
            # Open-loop connections finish after their last scheduled request, which
            # can be just before the end; the window still closes at the end.
            await phase_task
    stats.drained_ns = clock()
    return stats
