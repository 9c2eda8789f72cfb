"""Liveness on real servers (127.0.0.1): half-sent headers, idle connections, slow bodies
and WebSocket clients that stop answering pings are closed, and the user goes offline.

The timeouts are made short here; each test waits for the server to act, bounded by
``STEP_S``, and never asserts how fast it did.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson
import pytest
from rawws import handshake
from serving import HOST, running
from websockets.asyncio.client import connect as ws_connect

from servers.common import ServerConfig

pytestmark = pytest.mark.timeout(30)

STEP_S = 10.0
SHORT = ServerConfig(HOST, 0, keepalive_timeout_s=0.3, body_timeout_s=0.3, ws_ping_interval_s=0.3)


@contextlib.asynccontextmanager
async def raw_connection(
    kind: str,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """``async with raw_connection(kind) as (reader, writer)``: a TCP connection to a
    short-timeout server of ``kind``, closed after."""
    async with running(kind, config=SHORT) as server:
        reader, writer = await asyncio.open_connection(HOST, server.port)
        try:
            yield reader, writer
        finally:
            writer.close()


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (bounded by STEP_S)."""
    async with asyncio.timeout(STEP_S):
        return await reader.read()


@pytest.mark.parametrize("kind", ["http", "ws-aiohttp"])
@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /rpc HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"POST /rpc HTTP/1.1\r\nHos"],
    ids=["idle", "half-headers", "half-line"],
)
async def test_connection_without_a_complete_request_is_closed(kind: str, sent: bytes) -> None:
    async with raw_connection(kind) as (reader, writer):
        writer.write(sent)
        assert await closed_by_server(reader) == b""  # closed, nothing answered


async def test_http_idle_keep_alive_connection_is_closed_after_a_request() -> None:
    async with raw_connection("http") as (reader, writer):
        body = b'{"op":"echo","id":1,"ts":1,"payload":"hi"}'
        writer.write(
            b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
        )
        received = await closed_by_server(reader)
        assert received.startswith(b"HTTP/1.1 200") and b'"payload":"hi"' in received


async def test_http_slow_body_gets_408_and_the_connection_closes() -> None:
    async with raw_connection("http") as (reader, writer):
        writer.write(b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        received = await closed_by_server(reader)
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408")
        assert orjson.loads(body)["error"]["code"] == "request_timeout"


@pytest.mark.parametrize("kind", ["ws-aiohttp", "ws-websockets"])
async def test_ws_client_that_never_answers_pings_goes_offline(kind: str) -> None:
    async with running(kind, config=SHORT) as server:
        presence = server.hub.realtime.presence
        token = server.hub.realtime.sign_in("alice")
        _, writer = await handshake(server.port, f"/ws?token={token}")
        try:
            assert presence.is_online("alice")
            # The client stays silent: no pong ever goes back.
            async with asyncio.timeout(STEP_S):
                while presence.is_online("alice"):
                    await asyncio.sleep(0.02)
        finally:
            writer.close()


@pytest.mark.parametrize("kind", ["ws-aiohttp", "ws-websockets"])
async def test_ws_client_that_answers_pings_stays_online(kind: str) -> None:
    async with running(kind, config=SHORT) as server:
        presence = server.hub.realtime.presence
        token = server.hub.realtime.sign_in("alice")
        url = f"ws://{HOST}:{server.port}/ws?token={token}"
        async with ws_connect(url, ping_interval=None, compression=None) as ws:
            # The library answers pings by itself while the connection is read.
            reading = asyncio.create_task(ws.recv())
            await asyncio.sleep(1.5)  # five ping intervals
            assert presence.is_online("alice")
            assert not reading.done()
            reading.cancel()
