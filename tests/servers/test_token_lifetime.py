"""A token ends every stream opened with it: at expiry or on ``bye``, within a second,
a WebSocket closes with 1008, an SSE stream ends and a held long poll answers 401;
nothing is delivered after. First the pure watch/expire logic, then each server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from serving import serve
from test_realtime_auth import envelope, rpc
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from servers import protocol
from servers.hub import CLOSE_POLICY, TOKEN_SWEEP_S, Hub
from servers.realtime.auth import EXPIRED, REVOKED, Auth
from servers.realtime.config import RealtimeConfig

pytestmark = pytest.mark.timeout(30)

HOST = "127.0.0.1"
WS_KINDS = ("ws-aiohttp", "ws-websockets")
TTL_S = 0.3
#: A stream must end within this long of its token's end (sweep period plus slack).
WITHIN_S = TOKEN_SWEEP_S + 0.5
S = 1_000_000_000


# -- Auth.watch ----------------------------------------------------------------------------


def test_watchers_hear_once_why_the_token_ended() -> None:
    auth = Auth(None, open_signin=True, token_ttl_s=1.0)
    a, b = auth.issue("alice", 0), auth.issue("bob", 0)
    heard: list[tuple[str, str]] = []
    auth.watch(a, lambda why: heard.append(("a", why)))
    auth.watch(a, lambda why: heard.append(("a2", why)))
    auth.watch(b, lambda why: heard.append(("b", why)))
    assert auth.watchers == 3
    auth.revoke(a)  # bye
    assert heard == [("a", REVOKED), ("a2", REVOKED)]
    auth.revoke(a)  # a second revoke tells nobody again
    assert auth.expire(S - 1) == 0 and len(heard) == 2  # b is not expired yet
    assert auth.expire(S) == 1
    assert heard[-1] == ("b", EXPIRED) and auth.watchers == 0


def test_a_lookup_past_expiry_ends_the_token_for_its_watchers() -> None:
    auth = Auth(None, open_signin=True, token_ttl_s=1.0)
    token = auth.issue("alice", 0)
    assert auth.expires_ns(token) == S
    heard: list[str] = []
    auth.watch(token, heard.append)
    assert auth.user_for(token, S) is None
    assert heard == [EXPIRED] and auth.expires_ns(token) is None


def test_stopped_watchers_hear_nothing_and_unknown_tokens_end_at_once() -> None:
    auth = Auth(None, open_signin=True)
    token = auth.issue("alice", 0)
    heard: list[str] = []
    stop = auth.watch(token, heard.append)
    stop()
    stop()  # idempotent
    auth.revoke(token)
    assert heard == [] and auth.watchers == 0
    auth.watch("never-issued", heard.append)
    assert heard == [REVOKED]


def test_eviction_by_too_many_sign_ins_ends_the_oldest_token() -> None:
    auth = Auth(None, open_signin=True, max_tokens_per_user=2)
    first = auth.issue("alice", 0)
    heard: list[str] = []
    auth.watch(first, heard.append)
    auth.issue("alice", 0)
    assert heard == []
    auth.issue("alice", 0)
    assert heard == [REVOKED] and auth.user_for(first, 0) is None


# -- the servers ---------------------------------------------------------------------------


def short_lived() -> Hub:
    return Hub(realtime=RealtimeConfig(token_ttl_s=TTL_S))


async def _eventually(check: Callable[[], bool], limit_s: float = 2.0) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        assert time.monotonic() < deadline, "not within the limit"
        await asyncio.sleep(0.01)


async def _closed_within(ws: Any, limit_s: float) -> tuple[ConnectionClosed, list[Any]]:
    """Read until the server closes; returns the close and what arrived before it."""
    got = []
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(limit_s):
            while True:
                got.append(protocol.decode_response(await ws.recv()))
    return closed.value, got


@pytest.mark.parametrize("kind", WS_KINDS)
async def test_websocket_closes_1008_when_its_token_expires(kind: str) -> None:
    async with serve(kind, short_lived()) as (port, hub):
        token = hub.realtime.sign_in("alice")
        async with ws_connect(f"ws://{HOST}:{port}/ws?token={token}", compression=None) as ws:
            await ws.send(envelope("heartbeat", {}), text=True)
            assert protocol.decode_response(await ws.recv()).ok
            t0 = time.monotonic()
            closed, _ = await _closed_within(ws, TTL_S + WITHIN_S)
            assert closed.rcvd is not None and closed.rcvd.code == CLOSE_POLICY
            assert "expired" in closed.rcvd.reason
            assert time.monotonic() - t0 <= TTL_S + WITHIN_S
        # The server notices the closed connection a moment later.
        await _eventually(lambda: not hub.realtime.presence.is_online("alice"))
        assert hub.realtime.auth.watchers == 0


@pytest.mark.parametrize("kind", WS_KINDS)
async def test_websocket_closes_1008_on_bye_elsewhere_and_delivers_nothing_after(
    kind: str,
) -> None:
    async with serve(kind) as (port, hub), serve("http", hub) as (http_port, _):
        token = hub.realtime.sign_in("bob")
        sender = hub.realtime.sign_in("alice")
        async with ws_connect(f"ws://{HOST}:{port}/ws?token={token}", compression=None) as ws:
            await ws.send(envelope("subscribe_inbox", {"after": 0}), text=True)
            assert protocol.decode_response(await ws.recv()).ok
            status, _ = await rpc(http_port, "bye", {}, token)  # the same token, over HTTP
            assert status == 200
            # Sent after the sign-out: it must not reach the closed stream.
            await rpc(http_port, "send", {"to": "bob", "mid": 1, "ts": 1}, sender)
            closed, got = await _closed_within(ws, WITHIN_S)
            assert closed.rcvd is not None and closed.rcvd.code == CLOSE_POLICY
            assert "revoked" in closed.rcvd.reason
            assert got == []


@pytest.mark.parametrize("kind", WS_KINDS)
async def test_bye_on_the_connection_itself_signs_it_out_and_keeps_it_open(kind: str) -> None:
    async with serve(kind) as (port, hub):
        token = hub.realtime.sign_in("alice")
        async with ws_connect(f"ws://{HOST}:{port}/ws?token={token}", compression=None) as ws:
            await ws.send(envelope("bye", {}), text=True)
            assert protocol.decode_response(await ws.recv()).ok
            await ws.send(envelope("heartbeat", {}), text=True)
            reply = protocol.decode_response(await ws.recv())
            assert reply.error is not None and reply.error.code == "unauthorized"


async def _sse_lines(resp: aiohttp.ClientResponse, limit_s: float) -> bytes:
    """Everything the stream sends until it ends (bounded by ``limit_s``)."""
    async with asyncio.timeout(limit_s):
        return await resp.read()


@pytest.mark.parametrize("end", ["expiry", "bye"])
async def test_event_stream_ends_when_its_token_does(end: str) -> None:
    async with serve("http", short_lived() if end == "expiry" else None) as (port, hub):
        token = hub.realtime.sign_in("bob")
        url = f"http://{HOST}:{port}/events?token={token}"
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            assert resp.status == 200
            t0 = time.monotonic()
            if end == "bye":
                assert (await rpc(port, "bye", {}, token))[0] == 200
            body = await _sse_lines(resp, TTL_S + WITHIN_S)
            assert time.monotonic() - t0 <= TTL_S + WITHIN_S
        assert b"data:" not in body  # the stream ended without delivering anything
        assert hub.realtime.auth.watchers == 0
        # Reconnecting with the dead token is refused: the client must sign in again.
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            assert resp.status == 401


@pytest.mark.parametrize("end", ["expiry", "bye"])
async def test_held_long_poll_answers_401_when_its_token_ends(end: str) -> None:
    async with serve("http", short_lived() if end == "expiry" else None) as (port, hub):
        token = hub.realtime.sign_in("bob")
        t0 = time.monotonic()
        poll = asyncio.create_task(rpc(port, "poll", {"after": 0, "wait_ms": 20_000}, token))
        await asyncio.sleep(0.1)
        assert not poll.done()
        if end == "bye":
            assert (await rpc(port, "bye", {}, token))[0] == 200
        status, body = await asyncio.wait_for(poll, TTL_S + WITHIN_S)
        assert time.monotonic() - t0 <= TTL_S + WITHIN_S + 0.1
        assert status == 401 and body["error"]["code"] == "unauthorized"
        assert ("expired" if end == "expiry" else "revoked") in body["error"]["message"]
        assert hub.realtime.auth.watchers == 0


async def test_a_long_poll_still_answers_items_while_its_token_is_valid() -> None:
    async with serve("http") as (port, hub):
        bob, alice = hub.realtime.sign_in("bob"), hub.realtime.sign_in("alice")
        poll = asyncio.create_task(rpc(port, "poll", {"after": 0, "wait_ms": 5_000}, bob))
        await asyncio.sleep(0.1)
        await rpc(port, "send", {"to": "bob", "mid": 7, "ts": 1}, alice)
        status, body = await asyncio.wait_for(poll, 5)
        assert status == 200 and [i["item"]["mid"] for i in body["payload"]["items"]] == [7]
        assert hub.realtime.auth.watchers == 0
