"""The ASGI application on uvicorn, hypercorn and granian (``http-``/``ws-uvicorn``,
``-hypercorn``, ``-granian``).

Each kind runs in this loop on 127.0.0.1:0 and passes the whole conformance
suite, over ``POST /rpc``, ``GET /events`` and ``GET /ws`` alike (every kind
serves the whole app). Then, on each stack: the aiohttp servers' 404 and 405
answers, an event stream that ends cleanly when the server stops, a WebSocket
with a bad token refused with 401 before its handshake, and (the app alone) the
1008 close a server without the ``websocket.http.response`` extension gets.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from typing import Any

import aiohttp
import orjson
import pytest
from serving import TEST_SECRET, running

from loadgen.conform.runner import FAILED, PASSED, run_checks, verdict
from loadgen.conform.target import Target, find_offers
from servers.__main__ import MODULES
from servers.asgi_app import make_app
from servers.common import ServerConfig
from servers.hub import Hub
from servers.realtime.credentials import signin_payload

pytestmark = pytest.mark.timeout(120)

KINDS = (
    "http-uvicorn",
    "ws-uvicorn",
    "http-hypercorn",
    "ws-hypercorn",
    "http-granian",
    "ws-granian",
)
#: One kind per stack, for the direct checks (both kinds of a stack run the same app).
STACKS = ("http-uvicorn", "ws-hypercorn", "http-granian")
STEP_S = 5.0  # bound on any single network step


def test_kinds_name_their_family() -> None:
    for kind in KINDS:
        module = importlib.import_module(MODULES[kind])
        assert kind == module.KIND
        assert ("/rpc" if kind.startswith("http-") else "/ws") == module.PATH


@pytest.mark.parametrize("kind", KINDS)
async def test_conforms_over_every_transport(kind: str) -> None:
    async with running(kind) as server:
        target = Target(server.base_url, TEST_SECRET, await find_offers(server.base_url))
        assert target.offers == {"rpc", "sse", "ws"}
        results = await run_checks(target)
    failed = [(r.id, r.expected, r.got) for r in results if r.status == FAILED]
    assert failed == []
    assert verdict(results)
    passed = {r.transport for r in results if r.status == PASSED}
    assert {"rpc", "sse", "ws"} <= passed


@pytest.mark.parametrize("kind", STACKS)
async def test_unknown_paths_and_wrong_methods_as_aiohttp(kind: str) -> None:
    async with running(kind) as server, aiohttp.ClientSession() as http:
        for method, path, status, body, allow in (
            ("GET", "/nope", 404, b"404: Not Found", None),
            ("GET", "/rpc", 405, b"405: Method Not Allowed", "POST"),
            ("POST", "/inbox", 405, b"405: Method Not Allowed", "GET,HEAD"),
            ("DELETE", "/events", 405, b"405: Method Not Allowed", "GET,HEAD"),
            ("POST", "/ws", 405, b"405: Method Not Allowed", "GET,HEAD"),
        ):
            async with http.request(method, server.base_url + path) as resp:
                assert (resp.status, await resp.read()) == (status, body), (method, path)
                assert resp.content_type == "text/plain"
                assert resp.headers.get("Allow") == allow


async def _token(http: aiohttp.ClientSession, base_url: str, user: str) -> str:
    envelope = {"op": "signin", "id": 1, "ts": 0, "payload": signin_payload(user)}
    async with http.post(f"{base_url}/rpc", data=orjson.dumps(envelope)) as resp:
        assert resp.status == 200
        token: str = (await resp.json())["payload"]["token"]
    return token


@pytest.mark.parametrize("kind", STACKS)
async def test_event_stream_ends_cleanly_on_shutdown(kind: str) -> None:
    config = ServerConfig("127.0.0.1", 0, sse_heartbeat_s=0.05)
    async with aiohttp.ClientSession() as http:
        t0 = 0.0
        async with running(kind, config=config) as server:
            token = await _token(http, server.base_url, "bob")
            resp = await http.get(f"{server.base_url}/events?token={token}")
            assert resp.status == 200
            assert resp.content_type == "text/event-stream"
            assert resp.headers["Cache-Control"] == "no-cache"
            async with asyncio.timeout(STEP_S):
                assert await resp.content.readuntil(b"\n\n") == b": ping\n\n"
            assert server.hub.realtime.presence.is_online("bob")
            t0 = time.monotonic()
        # Leaving the block stopped the server; the stream ended with its last chunk.
        async with asyncio.timeout(STEP_S):
            rest = await resp.content.read()
        assert set(rest.split(b"\n\n")) <= {b": ping", b""}
        assert resp.content.at_eof()
        assert time.monotonic() - t0 < 2.0  # well under the 5 s shutdown timeout
        resp.release()


@pytest.mark.parametrize("kind", STACKS)
async def test_websocket_with_a_bad_token_is_refused_with_401(kind: str) -> None:
    async with running(kind) as server, aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{server.base_url}/ws?token=not-a-token")
        assert refused.value.status == 401
        # A good token still connects, and its first reply comes back as text.
        token = await _token(http, server.base_url, "ann")
        async with http.ws_connect(f"{server.base_url}/ws?token={token}") as ws:
            await ws.send_str('{"op":"echo","id":7,"ts":0,"payload":"hi"}')
            msg = await ws.receive(timeout=STEP_S)
            assert msg.type is aiohttp.WSMsgType.TEXT
            assert orjson.loads(msg.data)["payload"] == "hi"


async def test_websocket_refused_by_a_1008_close_without_the_response_extension() -> None:
    app = make_app(ServerConfig(), Hub())
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws", "query_string": b"token=bad", "headers": []}
    await app(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]
