"""The load-generator clients against the real servers (in-process, 127.0.0.1, port 0)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import event_loops
import pytest
from client_modes import EVERY_VALID, mode_ids
from event_loops import LOOPS

from loadgen.clients.base import make_client
from loadgen.clients.errors import ClientError
from loadgen.clients.kinds import check_combination
from loadgen.wire import WireCounter, counting
from servers import protocol

pytestmark = pytest.mark.timeout(60)

#: A test's coroutine, in a fresh loop of its kind.
run_in = partial(event_loops.run_in, timeout_s=20.0)

COMBOS = EVERY_VALID
COMBO_IDS = mode_ids(COMBOS)
N_REQUESTS = 4
PAYLOAD = protocol.make_payload(16)


def request_body(i: int) -> bytes:
    """Request ``i`` (1-based), the same bytes for every transport."""
    return protocol.encode_request(
        protocol.Request(op="echo", id=i, ts=1_000_000 + i, payload=PAYLOAD)
    )


@dataclass
class Exchange:
    """What one client saw: replies and per-request wire deltas."""

    replies: list[tuple[int, bytes]] = field(default_factory=list)
    deltas: list[tuple[int, int]] = field(default_factory=list)
    connections_after_connect: int = 0
    connect_bytes: tuple[int, int] = (0, 0)
    counter: WireCounter = field(default_factory=WireCounter)


async def drive(kind: str, client_name: str, conn_mode: str, base_url: str) -> Exchange:
    """Connect, send ``N_REQUESTS`` requests one after another, close; all counted."""
    ex = Exchange()
    client = make_client(kind, client_name, conn_mode, base_url, timeout_s=5.0)
    with counting(ex.counter):
        try:
            await client.connect()
            ex.connections_after_connect = ex.counter.connections
            ex.connect_bytes = ex.counter.snapshot()
            for i in range(1, N_REQUESTS + 1):
                before = ex.counter.snapshot()
                ex.replies.append(await client.request(request_body(i)))
                after = ex.counter.snapshot()
                ex.deltas.append((after[0] - before[0], after[1] - before[1]))
        finally:
            await client.close()
            await client.close()  # closing twice is allowed
    return ex


def check_replies(ex: Exchange) -> None:
    assert len(ex.replies) == N_REQUESTS
    for i, (status, body) in enumerate(ex.replies, start=1):
        assert status == 200
        resp = protocol.decode_response(body)
        assert resp.ok, resp
        assert (resp.op, resp.id, resp.ts, resp.payload) == ("echo", i, 1_000_000 + i, PAYLOAD)


@pytest.mark.parametrize("use_uvloop", LOOPS)
@pytest.mark.parametrize(("kind", "client_name", "conn_mode"), COMBOS, ids=COMBO_IDS)
def test_client_round_trips_and_counts_bytes(
    serve_in_loop: Any, use_uvloop: bool, kind: str, client_name: str, conn_mode: str
) -> None:
    async def main() -> Exchange:
        async with serve_in_loop(kind) as server:
            return await drive(kind, client_name, conn_mode, server.base_url)

    ex = run_in(use_uvloop, main)
    check_replies(ex)
    for (sent, received), i in zip(ex.deltas, range(1, N_REQUESTS + 1), strict=True):
        body, reply = request_body(i), ex.replies[i - 1][1]
        assert len(body) < 126 and len(reply) < 126, "frame sizes below assume short frames"
        if kind == "http":
            # Request line and headers on top of the body; status line and headers back.
            assert sent > len(body)
            assert received > len(reply)
        else:
            # Client frames are masked (2-byte header + 4-byte mask), server frames are not.
            assert sent == 6 + len(body)
            assert received == 2 + len(reply)
    assert ex.counter.sent >= sum(s for s, _ in ex.deltas)
    assert ex.counter.received >= sum(r for _, r in ex.deltas)

    if kind == "http":
        assert ex.connections_after_connect == 0, "HTTP connect() must not open a connection"
        assert ex.connect_bytes == (0, 0)
        expected = N_REQUESTS if conn_mode == "new-connection" else 1
        assert ex.counter.connections == expected
    else:
        assert ex.connections_after_connect == 1
        assert ex.connect_bytes[0] > 0 and ex.connect_bytes[1] > 0, "upgrade handshake counted"
        assert ex.counter.connections == 1


@pytest.mark.parametrize("use_uvloop", LOOPS)
def test_replies_are_byte_identical_across_transports(serve_in_loop: Any, use_uvloop: bool) -> None:
    async def main() -> dict[str, list[bytes]]:
        bodies: dict[str, list[bytes]] = {}
        for kind, client_name, conn_mode in COMBOS:
            async with serve_in_loop(kind) as server:
                ex = await drive(kind, client_name, conn_mode, server.base_url)
            check_replies(ex)
            bodies["/".join((kind, client_name, conn_mode))] = [b for _, b in ex.replies]
        return bodies

    bodies = run_in(use_uvloop, main, timeout_s=40.0)
    reference = bodies["http/aiohttp/keep-alive"]
    for combo, replies in bodies.items():
        assert replies == reference, combo


@pytest.mark.parametrize("use_uvloop", LOOPS)
@pytest.mark.parametrize(("kind", "client_name", "conn_mode"), COMBOS, ids=COMBO_IDS)
def test_unreachable_port_is_connect_error(
    dead_base_url: str, use_uvloop: bool, kind: str, client_name: str, conn_mode: str
) -> None:
    async def main() -> tuple[str, WireCounter]:
        counter = WireCounter()
        client = make_client(kind, client_name, conn_mode, dead_base_url, timeout_s=2.0)
        with counting(counter):
            try:
                await client.connect()
                await client.request(request_body(1))
            except ClientError as exc:
                return exc.code, counter
            finally:
                await client.close()
        raise AssertionError("a refused connection must raise ClientError")

    code, counter = run_in(use_uvloop, main)
    assert code == "connect_error"
    assert (counter.sent, counter.received, counter.connections) == (0, 0, 0)


@pytest.mark.parametrize(("kind", "client_name", "conn_mode"), COMBOS, ids=COMBO_IDS)
def test_valid_combinations(kind: str, client_name: str, conn_mode: str) -> None:
    assert check_combination(kind, client_name, conn_mode) is None
    client: Any = make_client(kind, client_name, conn_mode, "http://127.0.0.1:9/")
    path = "/rpc" if kind == "http" else "/ws"
    scheme = "http" if kind == "http" else "ws"
    assert client.url == f"{scheme}://127.0.0.1:9{path}"


@pytest.mark.parametrize(
    ("kind", "client_name", "conn_mode"),
    [
        ("http", "websockets", "keep-alive"),
        ("http", "aiohttp", "persistent"),
        ("ws-aiohttp", "httpx", "persistent"),
        ("ws-websockets", "websockets", "keep-alive"),
        ("smtp", "aiohttp", "keep-alive"),
    ],
)
def test_invalid_combinations_raise(kind: str, client_name: str, conn_mode: str) -> None:
    assert check_combination(kind, client_name, conn_mode)
    with pytest.raises(ValueError):
        make_client(kind, client_name, conn_mode, "http://127.0.0.1:9")
