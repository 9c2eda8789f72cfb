"""The load generator's own cost per request, without a network: engine loop and lean parsing.

``test_engine_per_request`` drives :func:`loadgen.engine.run_cell` with a client
that answers at once (a valid echo reply), so what is timed is everything the
engine does per request: pacing, encoding, the reply check, the sample and
its listeners (raw rows, histograms). Divide the mean by :data:`REQUESTS` for
the cost of one request.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from benchmarks.cells import HTTP_CELL
from loadgen import engine
from loadgen.cellspec import CellRun
from loadgen.engine import run_cell
from loadgen.events import EventHook
from loadgen.lean.http import HttpConnection
from loadgen.recorder import LatencyHistograms, RawRecorder
from loadgen.wire import new_event_loop

REQUESTS = 5_000


class InstantClient:
    """Replies to every echo request at once, as the server would."""

    socket_stamps = (0, 0)

    async def connect(self) -> None:
        return None

    async def request(self, body: bytes) -> tuple[int, bytes]:
        req = orjson.loads(body)
        reply = orjson.dumps({**req, "ok": True})
        return 200, reply

    async def close(self) -> None:
        return None


@pytest.fixture
def instant_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "make_client", lambda *a, **k: InstantClient())


def test_engine_per_request(benchmark: Any, instant_client: None) -> None:
    spec = CellRun(
        **HTTP_CELL,
        base_url="http://127.0.0.1:9",
        duration_s=600,
        warmup_s=0,
        max_requests=REQUESTS,
    )

    def run() -> int:
        raw, hist = RawRecorder(), LatencyHistograms()
        hook = EventHook()
        hook.add_listener(raw.record)
        hook.add_listener(hist.record)
        loop = new_event_loop(True)
        try:
            loop.run_until_complete(run_cell(spec, hook))
        finally:
            loop.close()
        hist.as_record()  # the batched histogram recording is part of the cost
        return len(raw)

    assert benchmark.pedantic(run, rounds=5, iterations=1) == REQUESTS


RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
    b"Content-Length: 96\r\nDate: Fri, 04 Dec 2026 15:00:00 GMT\r\nServer: Python/3.11 aiohttp\r\n"
    b"\r\n" + b"x" * 96
)


def test_lean_http_parse_response(benchmark: Any) -> None:
    loop = asyncio.new_event_loop()
    try:
        conn = HttpConnection(None, False)

        def parse_one() -> None:
            conn._waiter = loop.create_future()
            conn.data_received(RESPONSE)

        benchmark(parse_one)
        assert conn.status == 200
    finally:
        loop.close()
