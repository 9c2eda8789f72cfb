"""run_cell: closed and open loops against in-process servers on 127.0.0.1 (port 0)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import event_loops
import pytest
from client_modes import EVERY_MODE, mode_ids
from event_loops import LOOPS

from loadgen.cellspec import CellRun
from loadgen.engine import EngineStats, run_cell
from loadgen.events import EventHook
from loadgen.pacer import NS_PER_S
from loadgen.recorder import RawRecorder, Sample
from servers import protocol

pytestmark = pytest.mark.timeout(60)

#: A test's coroutine, in a fresh loop of its kind.
run_in = partial(event_loops.run_in, timeout_s=30.0)

PAYLOAD_BYTES = 16  # keeps every WebSocket frame under 126 bytes (2-byte header)


@dataclass
class Outcome:
    stats: EngineStats
    rows: list[Sample]
    phases: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def requests(self) -> list[Sample]:
        return [s for s in self.rows if s.kind == "request"]

    @property
    def measured(self) -> list[Sample]:
        return [s for s in self.requests if not s.warmup]


def spec_for(kind: str, client: str, conn_mode: str, base_url: str, **kw: Any) -> CellRun:
    return CellRun(
        cell=f"{kind}/{client}/{conn_mode}",
        transport=kind,
        client=client,
        conn_mode=conn_mode,
        base_url=base_url,
        payload_bytes=PAYLOAD_BYTES,
        **kw,
    )


async def execute(spec: CellRun) -> Outcome:
    raw = RawRecorder()
    hook = EventHook()
    hook.add_listener(raw.record)
    phases: list[str] = []
    t0 = time.monotonic()
    stats = await run_cell(spec, hook, on_phase=phases.append)
    return Outcome(stats, raw.rows, phases, time.monotonic() - t0)


def run_against(
    serve_in_loop: Any, mode: tuple[str, str, str], use_uvloop: bool = True, **fields: Any
) -> Outcome:
    """Serve ``mode``'s kind in a counting loop; run the :func:`spec_for` ``mode`` at its URL
    with ``fields``."""
    kind, client, conn_mode = mode

    async def main() -> Outcome:
        async with serve_in_loop(kind) as server:
            return await execute(spec_for(kind, client, conn_mode, server.base_url, **fields))

    return run_in(use_uvloop, main)


def check_invariants(out: Outcome) -> None:
    for s in out.rows:
        # Never sent before its intended time (event-loop timers may fire early).
        assert s.intended_ns <= s.sent_ns <= s.received_ns, s
        assert s.latency_uncorrected_ns == s.received_ns - s.sent_ns
        # Corrected latency counts from no later than the send time and no earlier
        # than the intended time.
        assert s.received_ns - s.intended_ns >= s.latency_ns >= s.latency_uncorrected_ns >= 0
        assert s.ok == (s.error is None)


@pytest.mark.parametrize(("kind", "client", "conn_mode"), EVERY_MODE, ids=mode_ids(EVERY_MODE))
def test_closed_loop_every_request_answered(
    serve_in_loop: Any, kind: str, client: str, conn_mode: str
) -> None:
    # A warm-up long enough for a slow first request (httpx builds its TLS context
    # on first use) to still fall inside it on a busy machine.
    warmup_s, duration_s, connections = 0.6, 0.8, 2
    out = run_against(
        serve_in_loop,
        (kind, client, conn_mode),
        repeat=1,
        connections=connections,
        warmup_s=warmup_s,
        duration_s=duration_s,
    )
    stats = out.stats
    check_invariants(out)
    assert out.phases == ["warm-up", "measure", "drain"]

    # Every request answered, nothing left in flight, no errors.
    assert stats.issued == len(out.requests) > 0
    assert all(s.ok for s in out.rows), stats.errors_by_code
    assert stats.errors_by_code == {}
    assert stats.cancelled_in_flight == 0
    assert not stats.budget_exhausted
    assert {s.conn for s in out.requests} == set(range(connections))
    assert {(s.cell, s.transport, s.client, s.conn_mode, s.repeat) for s in out.rows} == {
        (f"{kind}/{client}/{conn_mode}", kind, client, conn_mode, 1)
    }

    # Warm-up is flagged by intended time, and both phases have requests.
    warmup_end = stats.started_ns + int(warmup_s * NS_PER_S)
    for s in out.rows:
        assert s.warmup == (s.intended_ns < warmup_end)
    assert any(s.warmup for s in out.requests)
    assert out.measured
    assert stats.measure_started_ns >= warmup_end
    assert stats.ended_ns >= warmup_end + int(duration_s * NS_PER_S)
    assert stats.drained_ns >= stats.ended_ns

    # Bytes on the wire are counted for every request.
    for s in out.requests:
        assert s.bytes_sent > 0 and s.bytes_received > 0
    connects = [s for s in out.rows if s.kind == "connect"]
    if kind == "http":
        assert connects == []
        assert stats.connects == connections
        for s in out.requests:
            assert s.bytes_sent > PAYLOAD_BYTES and s.bytes_received > PAYLOAD_BYTES
    else:
        # One connect row per connection: TCP + upgrade, counted, during warm-up.
        assert sorted(s.conn for s in connects) == list(range(connections))
        assert all(s.ok and s.warmup for s in connects)
        assert all(s.bytes_sent > 0 and s.bytes_received > 0 for s in connects)
        max_id_digits = len(str(stats.issued))
        for s in out.requests:
            body = protocol.encode_request(
                protocol.Request(op="echo", id=0, ts=s.sent_ns, payload="x" * PAYLOAD_BYTES)
            )
            # Masked client frame: 6 + body; the reply adds '"ok":true,' (10 bytes)
            # and comes back in an unmasked frame: 2 + reply.
            assert 0 <= s.bytes_sent - (6 + len(body)) <= max_id_digits - 1
            assert s.bytes_received - s.bytes_sent == 6


@pytest.mark.parametrize("use_uvloop", LOOPS)
def test_open_loop_keeps_its_schedule(serve_in_loop: Any, use_uvloop: bool) -> None:
    rate, connections, warmup_s, duration_s = 200.0, 2, 0.25, 1.0
    out = run_against(
        serve_in_loop,
        ("http", "aiohttp", "keep-alive"),
        use_uvloop=use_uvloop,
        model="open",
        rate=rate,
        connections=connections,
        warmup_s=warmup_s,
        duration_s=duration_s,
    )
    check_invariants(out)  # in particular: never sent before its intended time
    assert all(s.ok for s in out.rows), out.stats.errors_by_code
    expected = rate * duration_s
    assert abs(len(out.measured) - expected) <= 0.15 * expected
    assert abs(len(out.requests) - rate * (warmup_s + duration_s)) <= 0.15 * expected

    # The union of the connections' schedules is evenly spaced at 1/rate, from the start.
    intended = sorted(s.intended_ns for s in out.requests)
    period = NS_PER_S / rate
    assert intended[0] == out.stats.started_ns
    for i, t in enumerate(intended):
        assert abs((t - intended[0]) - i * period) <= 2, i
    # Connections alternate: request k of the union belongs to connection k % 2.
    by_time = sorted(out.requests, key=lambda s: s.intended_ns)
    assert [s.conn for s in by_time] == [i % connections for i in range(len(by_time))]


def test_open_loop_rejects_missing_rate() -> None:
    spec = spec_for("http", "aiohttp", "keep-alive", "http://127.0.0.1:9", model="open")
    with pytest.raises(ValueError, match="rate"):
        run_in(True, lambda: execute(spec))


@pytest.mark.parametrize(
    ("kind", "client", "conn_mode"),
    [("http", "httpx", "keep-alive"), ("ws-websockets", "websockets", "persistent")],
)
def test_max_requests_stops_the_run_early(
    serve_in_loop: Any, kind: str, client: str, conn_mode: str
) -> None:
    max_requests, duration_s = 40, 20.0
    out = run_against(
        serve_in_loop,
        (kind, client, conn_mode),
        connections=3,
        warmup_s=0.0,
        duration_s=duration_s,
        max_requests=max_requests,
    )
    check_invariants(out)
    assert out.stats.budget_exhausted
    assert out.stats.issued == len(out.requests) == max_requests
    assert all(s.ok for s in out.requests)
    assert out.elapsed_s < duration_s / 2, "the run must end when the budget is spent"


@pytest.mark.parametrize(
    ("kind", "client", "conn_mode"),
    [
        ("http", "aiohttp", "keep-alive"),
        ("http", "httpx", "new-connection"),
        ("ws-aiohttp", "websockets", "persistent"),
        ("ws-websockets", "aiohttp", "persistent"),
    ],
)
@pytest.mark.parametrize("model", ["closed", "open"])
def test_absent_server_gives_connect_errors_and_ends_on_time(
    dead_base_url: str, kind: str, client: str, conn_mode: str, model: str
) -> None:
    warmup_s, duration_s, timeout_s = 0.2, 0.6, 2.0
    spec = spec_for(
        kind,
        client,
        conn_mode,
        dead_base_url,
        model=model,
        rate=100.0 if model == "open" else None,
        connections=2,
        warmup_s=warmup_s,
        duration_s=duration_s,
        timeout_s=timeout_s,
    )
    out = run_in(True, lambda: execute(spec))
    check_invariants(out)
    assert out.rows, "failures must show as samples, not silence"
    assert all(not s.ok and s.error == "connect_error" for s in out.rows)
    assert out.stats.errors_by_code == {"connect_error": len(out.rows)}
    assert any(not s.warmup for s in out.rows), "errors keep coming after warm-up"
    if kind == "http":
        assert {s.kind for s in out.rows} == {"request"}
    else:
        assert {s.kind for s in out.rows} == {"connect"}
        assert out.stats.connect_errors == len(out.rows)
    if model == "open":
        # Failed attempts keep the offered rate (and so the run keeps its end time).
        expected = 100.0 * (warmup_s + duration_s)
        assert abs(len(out.rows) - expected) <= 0.15 * expected
    # The run stops by itself at its end time; nothing had to be cancelled at the
    # engine's hard deadline (warm-up + duration + timeout + 1 s).
    assert out.stats.cancelled_in_flight == 0
    assert out.elapsed_s < warmup_s + duration_s + timeout_s


# --- bad replies are error rows -------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (b'HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{"op":', "truncated"),
        (b"HTTP/1.1 2xx OK\r\n\r\n", "malformed"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", "bad_reply:invalid_envelope"),
    ],
    ids=["truncated", "malformed", "not-an-envelope"],
)
def test_lean_bad_replies_are_error_rows(reply: bytes, code: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                writer.write(reply)
                await writer.drain()
                if code != "bad_reply:invalid_envelope":
                    writer.close()  # the reply was cut or broken: the connection goes too
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> list[Sample]:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        raw = RawRecorder()
        hook = EventHook()
        hook.add_listener(raw.record)
        spec = CellRun(
            cell="bad",
            transport="http",
            client="lean",
            conn_mode="keep-alive",
            base_url=f"http://127.0.0.1:{port}",
            duration_s=0.3,
            warmup_s=0,
            max_requests=20,
            timeout_s=2,
        )
        await run_cell(spec, hook)
        server.close()
        return raw.rows

    rows = run_in(True, main)
    requests = [r for r in rows if r.kind == "request"]
    assert requests, "the run went on after the first bad reply"
    assert {r.error for r in requests} == {code}
    assert not any(r.ok for r in requests)
