"""Delivery over the real servers on 127.0.0.1: exactly once and in order per recipient.

Short polling (``GET /inbox?after=``), long polling across empty timeouts,
WebSocket push on both servers (both client libraries), resume after a
reconnect, fan-out to 20 subscribers, a slow consumer closed with 1013 and
its resume, and presence seen through the transports.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from typing import Any

import aiohttp
import orjson
import pytest
from serving import serve
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from servers import protocol
from servers.hub import Hub
from servers.protocol import Request
from servers.realtime.config import RealtimeConfig
from servers.realtime.credentials import signin_payload

pytestmark = pytest.mark.timeout(30)

HOST = "127.0.0.1"
WS_KINDS = ("ws-aiohttp", "ws-websockets")
WS_ENDPOINTS = [(k, lib) for k in WS_KINDS for lib in ("websockets", "aiohttp")]
STEP_S = 5.0  # bound on any single network step

_ids = itertools.count(1)


def envelope(op: str, payload: Any = None) -> tuple[int, bytes]:
    rid = next(_ids)
    return rid, protocol.encode_request(Request(op=op, id=rid, ts=1, payload=payload))


class Http:
    """One signed-in user over ``POST /rpc`` and ``GET /inbox``."""

    def __init__(self, session: aiohttp.ClientSession, port: int) -> None:
        self.session = session
        self.base = f"http://{HOST}:{port}"
        self.token = ""
        self.cursor = 0
        self.empty_polls = 0

    @classmethod
    async def signin(cls, session: aiohttp.ClientSession, port: int, user: str) -> Http:
        conn = cls(session, port)
        conn.token = (await conn.call("signin", signin_payload(user)))["token"]
        return conn

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def call(self, op: str, payload: Any = None) -> Any:
        _, body = envelope(op, payload)
        async with (
            asyncio.timeout(STEP_S),
            self.session.post(self.base + "/rpc", data=body, headers=self._headers()) as resp,
        ):
            reply = orjson.loads(await resp.read())
        assert resp.status == 200 and reply["ok"], reply
        return reply["payload"]

    async def poll(self, wait_ms: int = 0) -> list[dict[str, Any]]:
        """One ``GET /inbox`` after the cursor; returns the items and moves the cursor."""
        url = f"{self.base}/inbox?after={self.cursor}&wait_ms={wait_ms}"
        async with (
            asyncio.timeout(STEP_S + wait_ms / 1000),
            self.session.get(url, headers=self._headers()) as resp,
        ):
            reply = orjson.loads(await resp.read())
        assert resp.status == 200 and reply["ok"], reply
        page = reply["payload"]
        assert page["gap"] is False
        seqs = [entry["seq"] for entry in page["items"]]
        assert seqs == list(range(self.cursor + 1, self.cursor + 1 + len(seqs)))
        if seqs:
            self.cursor = seqs[-1]
        else:
            self.empty_polls += 1
        return [entry["item"] for entry in page["items"]]


class Closed(Exception):
    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


class Ws:
    """One WebSocket user: requests with replies matched by id, pushes collected in order."""

    def __init__(self, library: str) -> None:
        self.library = library
        self.ws: Any = None
        self.session: aiohttp.ClientSession | None = None
        self.pushes: list[protocol.Push] = []
        self.replies: dict[int, protocol.Response] = {}
        self.cursor = 0

    @classmethod
    async def open(cls, library: str, port: int, token: str | None = None, **kwargs: Any) -> Ws:
        conn = cls(library)
        url = f"ws://{HOST}:{port}/ws" + (f"?token={token}" if token else "")
        async with asyncio.timeout(STEP_S):
            if library == "websockets":
                conn.ws = await ws_connect(
                    url, compression=None, ping_interval=None, max_size=None, **kwargs
                )
            else:
                conn.session = aiohttp.ClientSession()
                conn.ws = await conn.session.ws_connect(url, heartbeat=None, max_msg_size=0)
        return conn

    @classmethod
    async def signed_in(cls, library: str, port: int, user: str) -> tuple[Ws, Any]:
        """A connection that signed in as ``user`` on it, and the sign-in reply's payload."""
        conn = await cls.open(library, port)
        return conn, await conn.call("signin", signin_payload(user))

    async def send(self, op: str, payload: Any = None) -> int:
        rid, body = envelope(op, payload)
        if self.library == "websockets":
            await self.ws.send(body, text=True)
        else:
            await self.ws.send_bytes(body)
        return rid

    async def receive(self, timeout_s: float = STEP_S) -> protocol.Response | protocol.Push:
        """The next message; a push moves the cursor. Raises Closed when the server closes."""
        async with asyncio.timeout(timeout_s):
            if self.library == "websockets":
                try:
                    data = await self.ws.recv(decode=False)
                except ConnectionClosed as exc:
                    raise Closed(exc.rcvd.code if exc.rcvd else None) from None
            else:
                msg = await self.ws.receive()
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    raise Closed(self.ws.close_code)
                data = msg.data
        message = protocol.decode_server_message(data)
        if isinstance(message, protocol.Push):
            assert message.seq == self.cursor + 1, (message.seq, self.cursor)
            self.cursor = message.seq
            self.pushes.append(message)
        else:
            assert message.id is not None
            self.replies[message.id] = message
        return message

    async def call(self, op: str, payload: Any = None) -> Any:
        rid = await self.send(op, payload)
        while rid not in self.replies:
            await self.receive()
        reply = self.replies.pop(rid)
        assert reply.ok, reply
        return reply.payload

    async def until_pushes(self, n: int, timeout_s: float = STEP_S) -> list[Any]:
        """Read until ``n`` pushes have arrived in total; returns their items."""
        async with asyncio.timeout(timeout_s):
            while len(self.pushes) < n:
                await self.receive(timeout_s)
        return [p.item for p in self.pushes]

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), STEP_S)
        if self.session is not None:
            await self.session.close()


def mids(items: list[Any]) -> list[int]:
    return [i["mid"] for i in items if i.get("type") == "message"]


# -- polling ---------------------------------------------------------------------------


async def test_short_polling_exactly_once_in_order() -> None:
    async with serve("http") as (port, _), aiohttp.ClientSession() as session:
        alice = await Http.signin(session, port, "alice")
        bob = await Http.signin(session, port, "bob")
        got: list[Any] = []
        mid = 0
        # Sends and polls interleave: sometimes several items per poll, sometimes none.
        for burst in (1, 0, 3, 2, 0, 5, 1):
            for _ in range(burst):
                mid += 1
                await alice.call("send", {"to": "bob", "mid": mid, "ts": 1, "body": f"m{mid}"})
            got += await bob.poll()
        got += await bob.poll()
        assert mids(got) == list(range(1, mid + 1))
        assert [i["body"] for i in got] == [f"m{m}" for m in range(1, mid + 1)]
        assert bob.empty_polls >= 2
        # Polling again from the cursor gives nothing new; from an older cursor, a repeat.
        assert await bob.poll() == []
        bob.cursor = mid - 2
        assert mids(await bob.poll()) == [mid - 1, mid]


async def test_long_polling_across_empty_timeouts_exactly_once_in_order() -> None:
    async with serve("http") as (port, hub), aiohttp.ClientSession() as session:
        alice = await Http.signin(session, port, "alice")
        bob = await Http.signin(session, port, "bob")
        got: list[Any] = []
        stop = asyncio.Event()

        async def receive() -> None:
            while not stop.is_set() or bob.cursor < 6:
                got.extend(await bob.poll(wait_ms=40))

        receiver = asyncio.create_task(receive())
        for mid in range(1, 7):
            # Long enough apart that several polls time out empty in between.
            await asyncio.sleep(0.15)
            await alice.call("send", {"to": "bob", "mid": mid, "ts": 1})
        stop.set()
        await asyncio.wait_for(receiver, STEP_S)
        assert mids(got) == [1, 2, 3, 4, 5, 6]
        assert bob.empty_polls >= 6
        assert hub.realtime.counters["empty_polls"] >= bob.empty_polls


async def test_long_poll_is_answered_as_soon_as_an_item_arrives() -> None:
    async with serve("http") as (port, _), aiohttp.ClientSession() as session:
        alice = await Http.signin(session, port, "alice")
        bob = await Http.signin(session, port, "bob")
        held = asyncio.create_task(bob.poll(wait_ms=20_000))
        await asyncio.sleep(0.05)
        assert not held.done()
        await alice.call("send", {"to": "bob", "mid": 1, "ts": 1})
        # Far sooner than the 20 s hold: the appended item wakes the poll.
        assert mids(await asyncio.wait_for(held, STEP_S)) == [1]


# -- push ------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "library"), WS_ENDPOINTS)
async def test_push_exactly_once_in_order(kind: str, library: str) -> None:
    async with serve(kind) as (port, _):
        alice, _ = await Ws.signed_in(library, port, "alice")
        bob, _ = await Ws.signed_in(library, port, "bob")
        try:
            for user in (alice, bob):
                await user.call("join", {"room": "g"})
            assert await bob.call("subscribe_inbox", {"after": 0}) == {
                "last": 0,
                "gap": False,
                "first": 1,
            }
            for mid in range(1, 21):
                if mid % 2:
                    await alice.call("send", {"to": "bob", "mid": mid, "ts": 1})
                else:
                    await alice.call("send", {"room": "g", "mid": mid, "ts": 1})
            items = await bob.until_pushes(20)
            assert mids(items) == list(range(1, 21))
            assert [i["room"] for i in items] == [None, "g"] * 10
            # Nothing more comes: exactly once.
            with pytest.raises(TimeoutError):
                await bob.receive(timeout_s=0.1)
            assert alice.pushes == []  # senders do not get their own room messages
        finally:
            await alice.close()
            await bob.close()


@pytest.mark.parametrize(("kind", "library"), WS_ENDPOINTS)
async def test_push_resume_after_reconnect_loses_nothing(kind: str, library: str) -> None:
    async with serve(kind) as (port, hub):
        alice, _ = await Ws.signed_in(library, port, "alice")
        bob, signed_in = await Ws.signed_in(library, port, "bob")
        token = signed_in["token"]
        await bob.call("subscribe_inbox", {"after": 0})
        mid = 0
        try:
            for _ in range(3):
                mid += 1
                await alice.call("send", {"to": "bob", "mid": mid, "ts": 1})
            before = await bob.until_pushes(3)
            cursor = bob.cursor
            await bob.close()
            # Sent while bob is away.
            for _ in range(4):
                mid += 1
                await alice.call("send", {"to": "bob", "mid": mid, "ts": 1})
            bob = await Ws.open(library, port, token=token)
            bob.cursor = cursor
            reply = await bob.call("subscribe_inbox", {"after": cursor})
            assert reply == {"last": 7, "gap": False, "first": 1}
            for _ in range(2):  # and live again afterwards
                mid += 1
                await alice.call("send", {"to": "bob", "mid": mid, "ts": 1})
            after = await bob.until_pushes(6)
            assert mids(before) + mids(after) == list(range(1, 10))
            with pytest.raises(TimeoutError):
                await bob.receive(timeout_s=0.1)
            assert hub.realtime.counters["slow_consumer_closes"] == 0
        finally:
            await alice.close()
            await bob.close()


@pytest.mark.parametrize("kind", WS_KINDS)
async def test_fanout_to_20_subscribers_once_each(kind: str) -> None:
    async with serve(kind) as (port, hub):
        auth = hub.realtime
        subs = [await Ws.open("websockets", port, auth.sign_in(f"s{i}")) for i in range(20)]
        publisher = await Ws.open("websockets", port, auth.sign_in("system"))
        try:
            for s in subs:
                await s.call("subscribe", {"topic": "news"})
                await s.call("subscribe_inbox", {"after": 0})
            for nid in (1, 2, 3):
                reply = await publisher.call("publish", {"topic": "news", "nid": nid, "ts": 1})
                assert reply == {"nid": nid, "recipients": 20}
            for s in subs:
                items = await s.until_pushes(3)
                assert [(i["type"], i["topic"], i["nid"]) for i in items] == [
                    ("notification", "news", n) for n in (1, 2, 3)
                ]
            for s in subs:
                with pytest.raises(TimeoutError):
                    await s.receive(timeout_s=0.02)
            assert hub.realtime.counters["deliveries"] == 60
        finally:
            for conn in [*subs, publisher]:
                await conn.close()


async def test_fanout_to_20_polling_subscribers_once_each() -> None:
    async with serve("http") as (port, _), aiohttp.ClientSession() as session:
        subs = [await Http.signin(session, port, f"s{i}") for i in range(20)]
        publisher = await Http.signin(session, port, "system")
        for s in subs:
            await s.call("subscribe", {"topic": "news"})
        for nid in (1, 2):
            await publisher.call("publish", {"topic": "news", "nid": nid, "ts": 1})
        for s in subs:
            assert [i["nid"] for i in await s.poll()] == [1, 2]
            assert await s.poll() == []


# -- slow consumer -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", WS_KINDS)
async def test_slow_consumer_closed_1013_others_unaffected_and_resume_gets_all(kind: str) -> None:
    hub = Hub(send_queue=8)
    async with serve(kind, hub) as (port, _):
        auth = hub.realtime
        bob_token = auth.sign_in("bob")
        alice = await Ws.open("websockets", port, auth.sign_in("alice"))
        carol = await Ws.open("websockets", port, auth.sign_in("carol"))
        # Bob's client stops reading: a small receive buffer and queue, so the
        # server's writes back up quickly instead of filling megabytes of buffers.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (HOST, port)), 5)
        bob = await Ws.open("websockets", port, bob_token, sock=sock, max_queue=2)
        try:
            for user in (alice, bob, carol):
                await user.call("join", {"room": "g"})
            await carol.call("subscribe_inbox", {"after": 0})
            await bob.call("subscribe_inbox", {"after": 0})
            body = "x" * 4096
            mid = 0
            carol_reader = asyncio.create_task(carol.until_pushes(10_000, timeout_s=25))
            # Publish to the room until the server gives up on bob (bounded).
            while hub.realtime.counters["slow_consumer_closes"] == 0 and mid < 3000:
                mid += 1
                await alice.call("send", {"room": "g", "mid": mid, "ts": 1, "body": body})
            assert hub.realtime.counters["slow_consumer_closes"] == 1, mid
            for _ in range(5):  # more while bob is gone
                mid += 1
                await alice.call("send", {"room": "g", "mid": mid, "ts": 1, "body": body})
            stats = await alice.call("stats", {})
            assert stats["slow_consumer_closes"] == 1

            # Carol, reading normally, got every message once, in order.
            async with asyncio.timeout(15):
                while len(carol.pushes) < mid:
                    if carol_reader.done():
                        carol_reader.result()  # raises what went wrong
                    await asyncio.sleep(0.01)
            carol_reader.cancel()
            assert mids([p.item for p in carol.pushes]) == list(range(1, mid + 1))

            # Bob reads again: what was already on the wire, then the 1013 close.
            with pytest.raises(Closed) as closed:
                while True:
                    await bob.receive()
            assert closed.value.code == 1013
            cursor = bob.cursor
            assert cursor < mid
            early = mids([p.item for p in bob.pushes])
            await bob.close()

            # Resume after the cursor: everything else arrives once, in order.
            bob = await Ws.open("websockets", port, bob_token)
            bob.cursor = cursor
            reply = await bob.call("subscribe_inbox", {"after": cursor})
            assert reply["gap"] is False and reply["last"] == mid
            late = mids(await bob.until_pushes(mid - cursor, timeout_s=15))
            assert early + late == list(range(1, mid + 1))
            assert hub.realtime.counters["slow_consumer_closes"] == 1
        finally:
            for conn in (alice, bob, carol):
                await conn.close()


# -- presence through the transports -------------------------------------------------------


@pytest.mark.parametrize("kind", WS_KINDS)
async def test_push_presence_online_offline_with_two_connections(kind: str) -> None:
    async with serve(kind) as (port, hub):
        auth = hub.realtime
        bob = await Ws.open("websockets", port, auth.sign_in("bob"))
        alice_token = auth.sign_in("alice")
        for name in ("alice", "bob"):
            hub.realtime.join(name, "team")  # presence is seen by room-mates only
        try:
            status = await bob.call("watch", {"users": ["alice"]})
            assert status["status"]["alice"]["status"] == "offline"
            await bob.call("subscribe_inbox", {"after": 0})
            changes = hub.realtime.presence.changes
            tab1 = await Ws.open("websockets", port, alice_token)
            tab2 = await Ws.open("aiohttp", port, alice_token)
            await tab2.call("watch", {"users": ["alice"]})  # watching herself
            (online,) = await bob.until_pushes(1)
            assert (online["user"], online["status"]) == ("alice", "online")
            await tab1.close()
            # Still online through the second connection: no change comes.
            with pytest.raises(TimeoutError):
                await bob.receive(timeout_s=0.2)
            now = await bob.call("presence", {"users": ["alice"]})
            assert now["status"]["alice"]["status"] == "online"
            await tab2.close()
            items = await bob.until_pushes(2)
            assert (items[1]["user"], items[1]["status"]) == ("alice", "offline")
            assert items[1]["last_seen"] is not None
            now = await bob.call("presence", {"users": ["alice"]})
            assert now["status"]["alice"]["status"] == "offline"
            assert hub.realtime.presence.changes == changes + 2  # online, offline
            # Alice is not told of her own changes.
            assert hub.realtime.inbox("alice").last_seq == 0
        finally:
            await bob.close()


async def test_http_presence_timeout_and_held_long_poll() -> None:
    hub = Hub(realtime=RealtimeConfig(presence_timeout_s=0.3))
    async with serve("http", hub) as (port, _), aiohttp.ClientSession() as session:
        bob = await Http.signin(session, port, "bob")
        carol = await Http.signin(session, port, "carol")
        for name in ("bob", "carol"):
            hub.realtime.join(name, "team")  # presence is seen by room-mates only
        await bob.call("watch", {"users": ["carol"]})
        # A held long poll makes carol online, and keeps her so well past the timeout.
        held = asyncio.create_task(carol.poll(wait_ms=900))
        await asyncio.sleep(0.7)
        assert (await bob.call("presence", {"users": ["carol"]}))["status"]["carol"][
            "status"
        ] == "online"
        assert await asyncio.wait_for(held, STEP_S) == []
        # Then silence: the sweep marks her offline once the timeout has passed.
        changes: list[tuple[str, str]] = []
        async with asyncio.timeout(STEP_S):
            while ("carol", "offline") not in changes:
                changes += [(i["user"], i["status"]) for i in await bob.poll(wait_ms=200)]
        assert changes == [("carol", "online"), ("carol", "offline")]
        status = (await bob.call("presence", {"users": ["carol"]}))["status"]["carol"]
        assert status["status"] == "offline" and status["last_seen"] is not None
