"""Token scoping through the real servers on 127.0.0.1: 401, 403, handshake refusal, 1008."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from serving import serve
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from servers import protocol
from servers.hub import Hub
from servers.protocol import Request, Unauthorized
from servers.realtime.auth import request_token
from servers.realtime.config import RealtimeConfig
from servers.realtime.credentials import signin_payload, user_key

pytestmark = pytest.mark.timeout(20)

HOST = "127.0.0.1"
WS_KINDS = ("ws-aiohttp", "ws-websockets")
STEP_S = 5.0  # bound on any single network step

_ids = itertools.count(1)


def envelope(op: str, payload: Any = None) -> bytes:
    return protocol.encode_request(Request(op=op, id=next(_ids), ts=1, payload=payload))


async def rpc(
    port: int, op: str, payload: Any = None, token: str | None = None, auth: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as session,
        asyncio.timeout(STEP_S),
        session.post(
            f"http://{HOST}:{port}/rpc", data=envelope(op, payload), headers=headers
        ) as resp,
    ):
        return resp.status, orjson.loads(await resp.read())


def ws_url(port: int, token: str | None = None) -> str:
    """The server's WebSocket URL, with ``?token=`` when a token is given."""
    return f"ws://{HOST}:{port}/ws" + ("" if token is None else f"?token={token}")


@contextlib.asynccontextmanager
async def signed_in(
    kind: str, user: str, hub: Hub | None = None
) -> AsyncIterator[tuple[int, Hub, str]]:
    """Serve ``kind`` (with ``hub``) and sign ``user`` in; yield the port, hub and token."""
    async with serve(kind, hub) as (port, served):
        yield port, served, served.realtime.sign_in(user)


def assert_error(status: int, body: dict[str, Any], want_status: int, code: str) -> None:
    assert status == want_status, body
    assert body["ok"] is False
    assert body["error"]["code"] == code


async def test_http_user_op_without_token_is_401_envelope() -> None:
    async with serve("http") as (port, _):
        status, body = await rpc(port, "send", {"to": "bob", "mid": 1, "ts": 1})
        assert_error(status, body, 401, "unauthorized")
        assert body["op"] == "send"  # a proper envelope naming the request
        # Anonymous operations still work without a token.
        status, body = await rpc(port, "echo", "hi")
        assert (status, body["payload"]) == (200, "hi")


@pytest.mark.parametrize("auth", ["Bearer not-a-token", "Basic abc", "Bearer ", "token"])
async def test_http_bad_token_or_header_is_401(auth: str) -> None:
    async with serve("http") as (port, _):
        status, body = await rpc(port, "heartbeat", {}, auth=auth)
        assert_error(status, body, 401, "unauthorized")


async def test_http_token_scopes_the_user() -> None:
    async with serve("http") as (port, _):
        _, signed = await rpc(port, "signin", signin_payload("alice"))
        token = signed["payload"]["token"]
        status, body = await rpc(port, "poll", {"user": "someone-else"}, token)
        assert_error(status, body, 403, "forbidden")
        status, body = await rpc(port, "send", {"room": "g1", "mid": 1, "ts": 1}, token)
        assert_error(status, body, 403, "forbidden")
        # After joining, the same send goes through.
        assert (await rpc(port, "join", {"room": "g1"}, token))[0] == 200
        status, body = await rpc(port, "send", {"room": "g1", "mid": 1, "ts": 1}, token)
        assert (status, body["payload"]) == (200, {"mid": 1, "recipients": 0})
        # Naming oneself is allowed.
        status, body = await rpc(port, "poll", {"user": "alice"}, token)
        assert status == 200 and body["ok"]


async def test_http_inbox_get_needs_a_valid_token() -> None:
    async with serve("http") as (port, _), aiohttp.ClientSession() as session:
        url = f"http://{HOST}:{port}/inbox?after=0"
        for headers in ({}, {"Authorization": "Bearer forged"}):
            async with asyncio.timeout(STEP_S), session.get(url, headers=headers) as resp:
                assert_error(resp.status, orjson.loads(await resp.read()), 401, "unauthorized")
        _, signed = await rpc(port, "signin", signin_payload("bob"))
        headers = {"Authorization": f"Bearer {signed['payload']['token']}"}
        async with (
            asyncio.timeout(STEP_S),
            session.get(url + "&wait_ms=x", headers=headers) as resp,
        ):
            assert_error(resp.status, orjson.loads(await resp.read()), 400, "invalid_envelope")
        async with asyncio.timeout(STEP_S), session.get(url, headers=headers) as resp:
            body = orjson.loads(await resp.read())
            assert resp.status == 200
            assert body["payload"] == {"items": [], "last": 0, "gap": False, "first": 1}


@pytest.mark.parametrize("kind", WS_KINDS)
@pytest.mark.parametrize("how", ["query", "header"])
async def test_ws_handshake_with_unknown_token_is_refused_401(kind: str, how: str) -> None:
    async with serve(kind) as (port, hub):
        url = ws_url(port)
        kwargs: dict[str, Any] = {
            "compression": None,
            "ping_interval": None,
            "open_timeout": STEP_S,
        }
        if how == "query":
            url += "?token=forged"
        else:
            kwargs["additional_headers"] = {"Authorization": "Bearer forged"}
        with pytest.raises(InvalidStatus) as info:
            async with ws_connect(url, **kwargs):
                pass
        assert info.value.response.status_code == 401
        # The aiohttp client sees the same refusal.
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await asyncio.wait_for(session.ws_connect(ws_url(port, "x")), STEP_S)
            assert refused.value.status == 401
        assert hub.realtime.presence.changes == 0  # nobody came online


@pytest.mark.parametrize("kind", WS_KINDS)
@pytest.mark.parametrize("how", ["query", "header"])
async def test_ws_handshake_token_binds_the_connection(kind: str, how: str) -> None:
    async with signed_in(kind, "alice") as (port, hub, token):
        kwargs: dict[str, Any] = {"compression": None, "ping_interval": None}
        if how == "header":
            kwargs["additional_headers"] = {"Authorization": f"Bearer {token}"}
        url = ws_url(port, token if how == "query" else None)
        async with asyncio.timeout(STEP_S), ws_connect(url, **kwargs) as ws:
            assert hub.realtime.presence.is_online("alice")
            await ws.send(envelope("time_on_site", {"user": "alice"}), text=True)
            reply = protocol.decode_response(await ws.recv())
            assert reply.ok and reply.payload["sessions"] == 0


@pytest.mark.parametrize("kind", WS_KINDS)
async def test_ws_without_token_gets_401_envelopes_and_stays_open(kind: str) -> None:
    async with (
        serve(kind) as (port, _),
        asyncio.timeout(STEP_S),
        ws_connect(ws_url(port), compression=None, ping_interval=None) as ws,
    ):
        await ws.send(envelope("heartbeat", {}), text=True)
        reply = protocol.decode_response(await ws.recv())
        assert not reply.ok and reply.error is not None
        assert reply.error.code == "unauthorized"
        # Still open: sign in on the connection, then act.
        await ws.send(envelope("signin", signin_payload("bob")), text=True)
        assert protocol.decode_response(await ws.recv()).ok
        await ws.send(envelope("heartbeat", {}), text=True)
        assert protocol.decode_response(await ws.recv()).payload == {"status": "online"}


@pytest.mark.parametrize("kind", WS_KINDS)
@pytest.mark.parametrize("library", ["websockets", "aiohttp"])
async def test_ws_acting_as_another_user_gets_error_then_1008(kind: str, library: str) -> None:
    async with signed_in(kind, "mallory") as (port, hub, token):
        url = ws_url(port, token)
        forged = envelope("send", {"user": "alice", "to": "bob", "mid": 1, "ts": 1})
        async with asyncio.timeout(STEP_S):
            if library == "websockets":
                async with ws_connect(url, compression=None, ping_interval=None) as ws:
                    await ws.send(forged, text=True)
                    reply = protocol.decode_response(await ws.recv())
                    with pytest.raises(ConnectionClosed) as closed:
                        await ws.recv()
                    assert closed.value.rcvd is not None
                    code = closed.value.rcvd.code
            else:
                async with (
                    aiohttp.ClientSession() as session,
                    session.ws_connect(url, heartbeat=None) as ws,
                ):
                    await ws.send_bytes(forged)
                    msg = await ws.receive()
                    assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY)
                    reply = protocol.decode_response(msg.data)
                    closing = await ws.receive()
                    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
                    code = ws.close_code
        assert not reply.ok and reply.error is not None
        assert reply.error.code == "forbidden"
        assert code == 1008
        # Nothing was sent on alice's behalf.
        assert hub.realtime.counters["messages"] == 0
        assert "bob" not in hub.realtime.inboxes


# -- credentials: who may sign in -----------------------------------------------------


@pytest.mark.parametrize("kind", ["http", *WS_KINDS])
async def test_signin_needs_the_users_key(kind: str) -> None:
    async with serve(kind) as (port, hub):
        forged = [
            {"user": "bob"},  # no key
            {"user": "bob", "key": user_key("another-secret-entirely", "bob")},
            {"user": "bob", "key": signin_payload("alice")["key"]},  # alice's key
            {"user": "bob", "key": 42},
        ]
        for payload in forged:
            if kind == "http":
                status, body = await rpc(port, "signin", payload)
                assert_error(status, body, 401, "unauthorized")
            else:
                async with (
                    asyncio.timeout(STEP_S),
                    ws_connect(ws_url(port), compression=None) as ws,
                ):
                    await ws.send(envelope("signin", payload), text=True)
                    reply = protocol.decode_response(await ws.recv())
                    assert not reply.ok and reply.error is not None
                    assert reply.error.code == "unauthorized"
                    await ws.send(envelope("heartbeat", {}), text=True)  # still nobody
                    assert protocol.decode_response(await ws.recv()).error is not None
        assert hub.realtime.counters["signin_refused"] == len(forged)
        assert not hub.realtime.presence.is_online("bob")
        assert "bob" not in hub.realtime.inboxes
        if kind == "http":
            status, body = await rpc(port, "signin", signin_payload("bob"))
            assert status == 200 and body["payload"]["user"] == "bob"


async def test_http_token_expires_after_its_ttl() -> None:
    hub = Hub(realtime=RealtimeConfig(token_ttl_s=0.2))
    async with serve("http", hub) as (port, _):
        _, signed = await rpc(port, "signin", signin_payload("alice"))
        token = signed["payload"]["token"]
        assert (await rpc(port, "heartbeat", {}, token))[0] == 200
        await asyncio.sleep(0.3)
        status, body = await rpc(port, "heartbeat", {}, token)
        assert_error(status, body, 401, "unauthorized")
        assert "expired" in body["error"]["message"]


async def test_http_bye_revokes_the_token() -> None:
    async with serve("http") as (port, hub):
        _, signed = await rpc(port, "signin", signin_payload("alice"))
        token = signed["payload"]["token"]
        _, other = await rpc(port, "signin", signin_payload("alice"))  # a second tab
        status, body = await rpc(port, "bye", {}, token)
        assert (status, body["payload"]) == (200, {"status": "offline"})
        status, body = await rpc(port, "heartbeat", {}, token)
        assert_error(status, body, 401, "unauthorized")
        # Only the token used is revoked.
        assert (await rpc(port, "heartbeat", {}, other["payload"]["token"]))[0] == 200
        assert hub.realtime.auth.user_for(token, 0) is None


@pytest.mark.parametrize("kind", WS_KINDS)
async def test_ws_bye_revokes_and_unbinds_the_connection(kind: str) -> None:
    async with signed_in(kind, "alice") as (port, hub, token):
        async with (
            asyncio.timeout(STEP_S),
            ws_connect(ws_url(port, token), compression=None) as ws,
        ):
            assert hub.realtime.presence.is_online("alice")
            await ws.send(envelope("bye", {}), text=True)
            assert protocol.decode_response(await ws.recv()).payload == {"status": "offline"}
            assert not hub.realtime.presence.is_online("alice")
            await ws.send(envelope("heartbeat", {}), text=True)
            reply = protocol.decode_response(await ws.recv())
            assert reply.error is not None and reply.error.code == "unauthorized"
        with pytest.raises(protocol.Unauthorized):
            hub.authenticate(token)


@pytest.mark.parametrize("kind", WS_KINDS)
async def test_ws_connection_stops_acting_once_its_token_expires(kind: str) -> None:
    hub = Hub(realtime=RealtimeConfig(token_ttl_s=0.3))
    async with (
        signed_in(kind, "alice", hub) as (port, _, token),
        asyncio.timeout(STEP_S),
        ws_connect(ws_url(port, token), compression=None) as ws,
    ):
        await ws.send(envelope("heartbeat", {}), text=True)
        assert protocol.decode_response(await ws.recv()).ok
        await asyncio.sleep(0.4)
        # A request that comes before the sweep notices is refused all the same.
        await ws.send(envelope("heartbeat", {}), text=True)
        with contextlib.suppress(ConnectionClosed):
            reply = protocol.decode_response(await ws.recv())
            assert reply.error is not None and reply.error.code == "unauthorized"
        # Then the connection closes (1008): see tests/servers/test_token_lifetime.py.
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_stats_needs_a_token() -> None:
    async with serve("http") as (port, _):
        status, body = await rpc(port, "stats", {})
        assert_error(status, body, 401, "unauthorized")
        _, signed = await rpc(port, "signin", signin_payload("alice"))
        status, body = await rpc(port, "stats", {}, signed["payload"]["token"])
        assert status == 200 and body["payload"]["users"] == 1


async def test_presence_is_visible_only_to_room_mates() -> None:
    async with serve("http") as (port, _):
        tokens = {}
        for user in ("alice", "bob", "carol"):
            _, signed = await rpc(port, "signin", signin_payload(user))
            tokens[user] = signed["payload"]["token"]
        for user in ("alice", "bob"):
            await rpc(port, "join", {"room": "team"}, tokens[user])
        await rpc(port, "join", {"room": "elsewhere"}, tokens["carol"])
        users = {"users": ["bob", "carol", "nobody"]}
        _, body = await rpc(port, "presence", users, tokens["alice"])
        status = body["payload"]["status"]
        assert status["bob"]["status"] == "online"
        # carol is online too, and nobody does not exist: alice cannot tell either.
        hidden = {"status": "unknown", "last_seen": None}
        assert status["carol"] == status["nobody"] == hidden
        _, body = await rpc(port, "watch", users, tokens["alice"])
        assert body["payload"]["status"]["carol"] == hidden
        # carol's changes never reach alice's inbox; bob's do.
        await rpc(port, "bye", {}, tokens["carol"])
        await rpc(port, "bye", {}, tokens["bob"])
        _, body = await rpc(port, "poll", {}, tokens["alice"])
        seen = [(i["item"]["user"], i["item"]["status"]) for i in body["payload"]["items"]]
        assert seen == [("bob", "offline")]


# -- a failed handshake opens nothing -------------------------------------------------


@pytest.mark.parametrize("kind", WS_KINDS)
@pytest.mark.parametrize(
    "headers",
    [
        {},  # a plain GET: no upgrade at all
        {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"},
        {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "99",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    ],
    ids=["plain-get", "no-key", "bad-version"],
)
async def test_ws_failed_handshake_leaves_the_user_offline(
    kind: str, headers: dict[str, str]
) -> None:
    async with signed_in(kind, "alice") as (port, hub, token), aiohttp.ClientSession() as session:
        url = f"http://{HOST}:{port}/ws?token={token}"
        async with asyncio.timeout(STEP_S), session.get(url, headers=headers) as resp:
            assert 400 <= resp.status < 500
        presence = hub.realtime.presence
        assert not presence.is_online("alice")
        assert presence.changes == 0
        # A real connection afterwards comes and goes as usual.
        async with asyncio.timeout(STEP_S), ws_connect(ws_url(port, token)):
            assert presence.is_online("alice")
        async with asyncio.timeout(STEP_S):
            while presence.is_online("alice"):
                await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("header", "query", "token"),
    [
        ("Bearer abc", None, "abc"),
        ("bearer  abc ", "q", "abc"),  # the header wins over ?token=
        (None, "q", "q"),
        (None, "", None),
        (None, None, None),
    ],
)
def test_a_request_token_comes_from_the_header_else_the_query(
    header: str | None, query: str | None, token: str | None
) -> None:
    assert request_token(header, query) == token


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer   ", "", "abc"])
def test_a_malformed_authorization_header_is_refused_whatever_the_query(header: str) -> None:
    with pytest.raises(Unauthorized, match="Authorization must be 'Bearer TOKEN'"):
        request_token(header, "a-valid-looking-token")
