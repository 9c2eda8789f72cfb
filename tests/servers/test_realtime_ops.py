"""The real-time application as hub operations, and push sessions, in-process (no network)."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import orjson
import pytest

from servers import protocol
from servers.hub import CLOSE_POLICY, CLOSE_TRY_AGAIN, Context, Hub, Session
from servers.protocol import Request
from servers.realtime.config import RealtimeConfig
from servers.realtime.credentials import signin_payload

pytestmark = pytest.mark.timeout(10)

_ids = itertools.count(1)


def req(op: str, payload: Any = None) -> bytes:
    return protocol.encode_request(Request(op=op, id=next(_ids), ts=7, payload=payload))


def known(hub: Hub, *users: str) -> None:
    """Sign ``users`` in (server side), so messages may be sent to them."""
    for user in users:
        hub.realtime.sign_in(user)


async def call(hub: Hub, op: str, payload: Any = None, user: str | None = None) -> tuple[int, Any]:
    """One request as ``user`` (signed in first, if new) over a session-less (HTTP) context."""
    if user and user not in hub.realtime.inboxes:
        known(hub, user)
    ctx = Context(user=user) if user else Context()
    reply = await hub.handle(req(op, payload), ctx)
    return reply.status, orjson.loads(reply.body)


async def ok(hub: Hub, op: str, payload: Any = None, user: str | None = None) -> Any:
    status, body = await call(hub, op, payload, user)
    assert status == 200 and body["ok"], body
    return body["payload"]


async def error(hub: Hub, op: str, payload: Any, user: str | None, status: int, code: str) -> None:
    got, body = await call(hub, op, payload, user)
    assert (got, body["ok"], body["error"]["code"]) == (status, False, code), body


async def drain(session: Session, settle_s: float = 0.05) -> tuple[list[Any], bool]:
    """Everything the session has queued: (decoded messages, closed)."""
    out: list[Any] = []
    while True:
        try:
            body = await asyncio.wait_for(session.next_outgoing(), settle_s)
        except TimeoutError:
            return out, False
        if body is None:
            return out, True
        out.append(protocol.decode_server_message(body))


def pushed(messages: list[Any]) -> list[int]:
    return [m.seq for m in messages if isinstance(m, protocol.Push)]


def msg(mid: int, to: str = "bob") -> dict[str, Any]:
    return {"to": to, "mid": mid, "ts": 1, "body": "hi"}


# -- operations over a session-less (HTTP) context ----------------------------------


async def test_signin_returns_a_token_for_the_user() -> None:
    hub = Hub()
    reply = await ok(hub, "signin", signin_payload("alice"))
    assert reply["user"] == "alice"
    assert hub.realtime.auth.user_for(reply["token"], time.perf_counter_ns()) == "alice"
    assert hub.authenticate(reply["token"]).user == "alice"
    with pytest.raises(protocol.Unauthorized):
        hub.authenticate("not-a-token")
    await error(hub, "signin", signin_payload("no spaces"), None, 400, "invalid_envelope")
    await error(hub, "signin", {}, None, 400, "invalid_envelope")


@pytest.mark.parametrize(
    "op",
    [
        "send",
        "join",
        "subscribe",
        "publish",
        "watch",
        "presence",
        "heartbeat",
        "bye",
        "activity",
        "time_on_site",
        "poll",
        "subscribe_inbox",
    ],
)
async def test_user_ops_need_a_signed_in_user(op: str) -> None:
    await error(Hub(), op, {}, None, 401, "unauthorized")


async def test_direct_message_reaches_only_the_recipient_inbox() -> None:
    hub = Hub()
    known(hub, "bob")
    assert await ok(hub, "send", msg(1), "alice") == {"mid": 1, "recipients": 1}
    page = await ok(hub, "poll", {}, "bob")
    assert page["last"] == 1 and page["gap"] is False and page["first"] == 1
    (entry,) = page["items"]
    assert entry["seq"] == 1
    assert entry["item"] == {
        "type": "message",
        "from": "alice",
        "to": "bob",
        "room": None,
        "mid": 1,
        "ts": 1,
        "body": "hi",
    }
    assert (await ok(hub, "poll", {}, "alice"))["items"] == []
    assert hub.realtime.counters["messages"] == 1
    assert hub.realtime.counters["deliveries"] == 1


async def test_send_validation() -> None:
    hub = Hub()
    both = {"to": "bob", "room": "r", "mid": 1, "ts": 1}
    await error(hub, "send", both, "alice", 400, "invalid_envelope")
    await error(hub, "send", {"mid": 1, "ts": 1}, "alice", 400, "invalid_envelope")
    await error(hub, "send", {"to": "b b", "mid": 1, "ts": 1}, "alice", 400, "invalid_envelope")
    await error(hub, "send", {"room": "r r", "mid": 1, "ts": 1}, "alice", 400, "invalid_envelope")
    await error(hub, "send", {"to": "bob", "mid": "1", "ts": 1}, "alice", 400, "invalid_envelope")
    await error(hub, "send", {"to": "bob", "mid": True, "ts": 1}, "alice", 400, "invalid_envelope")
    await error(hub, "send", [1], "alice", 400, "invalid_envelope")


async def test_room_message_reaches_other_members_only() -> None:
    hub = Hub()
    for user in ("alice", "bob", "carol"):
        await ok(hub, "join", {"room": "g1"}, user)
    reply = await ok(hub, "send", {"room": "g1", "mid": 5, "ts": 1}, "alice")
    assert reply == {"mid": 5, "recipients": 2}
    for user, n in (("alice", 0), ("bob", 1), ("carol", 1)):
        items = (await ok(hub, "poll", {}, user))["items"]
        assert len(items) == n
        assert all(i["item"]["room"] == "g1" and i["item"]["from"] == "alice" for i in items)


async def test_room_membership_is_enforced() -> None:
    hub = Hub(realtime=RealtimeConfig(max_room_members=2))
    await ok(hub, "join", {"room": "g"}, "alice")
    assert (await ok(hub, "join", {"room": "g"}, "alice"))["members"] == 1  # idempotent
    await ok(hub, "join", {"room": "g"}, "bob")
    await error(hub, "join", {"room": "g"}, "carol", 403, "forbidden")  # full
    await error(hub, "send", {"room": "g", "mid": 1, "ts": 1}, "carol", 403, "forbidden")
    await error(hub, "send", {"room": "nope", "mid": 1, "ts": 1}, "carol", 403, "forbidden")


async def test_acting_as_someone_else_is_forbidden() -> None:
    hub = Hub()
    for op, payload in (
        ("send", {"user": "eve", **msg(1)}),
        ("join", {"user": "eve", "room": "g"}),
        ("subscribe", {"user": "eve", "topic": "t"}),
        ("activity", {"user": "eve", "event": "page_view"}),
        ("time_on_site", {"user": "eve"}),
        ("poll", {"user": "eve"}),
    ):
        await error(hub, op, payload, "alice", 403, "forbidden")
    # Naming oneself is fine.
    assert (await ok(hub, "poll", {"user": "alice"}, "alice"))["items"] == []


async def test_publish_fans_out_to_subscribers() -> None:
    hub = Hub()
    subs = [f"s{i}" for i in range(5)]
    for s in subs:
        assert (await ok(hub, "subscribe", {"topic": "news"}, s))["topic"] == "news"
    reply = await ok(hub, "publish", {"topic": "news", "nid": 9, "ts": 3, "body": "b"}, "system")
    assert reply == {"nid": 9, "recipients": 5}
    assert (await ok(hub, "publish", {"topic": "empty", "nid": 10, "ts": 3}, "system")) == {
        "nid": 10,
        "recipients": 0,
    }
    for s in subs:
        (entry,) = (await ok(hub, "poll", {}, s))["items"]
        assert entry["item"] == {
            "type": "notification",
            "topic": "news",
            "nid": 9,
            "ts": 3,
            "body": "b",
        }
    assert hub.realtime.counters["notifications"] == 2


async def test_poll_cursor_limit_and_validation() -> None:
    hub = Hub()
    known(hub, "bob")
    for mid in range(1, 8):
        await ok(hub, "send", msg(mid), "alice")
    page = await ok(hub, "poll", {"after": 2, "limit": 3}, "bob")
    assert [i["seq"] for i in page["items"]] == [3, 4, 5]
    assert [i["item"]["mid"] for i in page["items"]] == [3, 4, 5]
    assert page["last"] == 7
    for bad in ({"after": -1}, {"limit": 0}, {"wait_ms": -5}, {"after": "x"}):
        await error(hub, "poll", bad, "bob", 400, "invalid_envelope")
    before = hub.realtime.counters["empty_polls"]
    assert (await ok(hub, "poll", {"after": 7}, "bob"))["items"] == []
    assert hub.realtime.counters["empty_polls"] == before + 1


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


async def test_integers_at_the_signed_64_bit_edges_are_delivered_exactly() -> None:
    hub = Hub()
    known(hub, "bob")
    await ok(hub, "subscribe", {"topic": "t"}, "bob")
    sent = await ok(hub, "send", {"to": "bob", "mid": INT64_MAX, "ts": INT64_MIN}, "alice")
    assert sent == {"mid": INT64_MAX, "recipients": 1}
    await ok(hub, "publish", {"topic": "t", "nid": INT64_MIN, "ts": INT64_MAX}, "alice")
    items = [e["item"] for e in (await ok(hub, "poll", {"after": 0}, "bob"))["items"]]
    assert [(i.get("mid", i.get("nid")), i["ts"]) for i in items] == [
        (INT64_MAX, INT64_MIN),
        (INT64_MIN, INT64_MAX),
    ]
    page = await ok(hub, "poll", {"after": INT64_MAX, "wait_ms": 0, "limit": INT64_MAX}, "bob")
    assert (page["items"], page["last"], page["gap"]) == ([], 2, False)


@pytest.mark.parametrize(
    ("op", "payload", "key", "low"),
    [
        ("send", {"to": "bob", "mid": INT64_MAX + 1, "ts": 1}, "mid", INT64_MIN),
        ("send", {"to": "bob", "mid": 1, "ts": 2**64 - 1}, "ts", INT64_MIN),
        ("publish", {"topic": "t", "nid": INT64_MAX + 1, "ts": 1}, "nid", INT64_MIN),
        ("publish", {"topic": "t", "nid": 1, "ts": INT64_MAX + 1}, "ts", INT64_MIN),
        ("poll", {"after": INT64_MAX + 1}, "after", 0),
        ("poll", {"after": -1}, "after", 0),
        ("poll", {"wait_ms": 2**64 - 1}, "wait_ms", 0),
        ("poll", {"wait_ms": INT64_MIN}, "wait_ms", 0),
        ("poll", {"limit": INT64_MAX + 1}, "limit", 1),
        ("poll", {"limit": 0}, "limit", 1),
    ],
)
async def test_an_integer_outside_its_fields_range_is_refused_and_nothing_applied(
    op: str, payload: dict[str, Any], key: str, low: int
) -> None:
    hub = Hub()
    known(hub, "bob")
    status, body = await call(hub, op, payload, "alice")
    assert (status, body["error"]["code"]) == (400, "invalid_envelope")
    value = payload[key]
    assert body["error"]["message"] == (
        f"payload field {key!r} must be an integer from {low} to {INT64_MAX}, got {value}"
    )
    assert hub.realtime.counters["messages"] == hub.realtime.counters["notifications"] == 0
    assert hub.realtime.inbox("bob").last_seq == 0


async def test_poll_reports_a_retention_gap() -> None:
    hub = Hub(realtime=RealtimeConfig(inbox_retention=3))
    known(hub, "bob")
    for mid in range(1, 6):
        await ok(hub, "send", msg(mid), "alice")
    page = await ok(hub, "poll", {"after": 0}, "bob")
    assert page["gap"] is True and page["first"] == 3
    assert [i["seq"] for i in page["items"]] == [3, 4, 5]
    assert hub.realtime.counters["gaps"] == 1


async def test_long_poll_returns_on_delivery_and_holds_presence() -> None:
    hub = Hub()
    known(hub, "bob")
    poll = asyncio.create_task(ok(hub, "poll", {"after": 0, "wait_ms": 10_000}, "bob"))
    await asyncio.sleep(0.02)
    assert not poll.done()
    assert (await ok(hub, "stats", {}, "alice"))["long_polls_waiting"] == 1
    assert hub.realtime.presence.is_online("bob")
    await ok(hub, "send", msg(1), "alice")
    page = await asyncio.wait_for(poll, 2)
    assert [i["item"]["mid"] for i in page["items"]] == [1]


async def test_long_poll_times_out_empty() -> None:
    hub = Hub()
    page = await asyncio.wait_for(ok(hub, "poll", {"after": 0, "wait_ms": 30}, "bob"), 2)
    assert page == {"items": [], "last": 0, "gap": False, "first": 1}


async def test_watch_presence_heartbeat_bye() -> None:
    hub = Hub()
    await ok(hub, "signin", signin_payload("bob"))
    known(hub, "carol")
    for user in ("bob", "carol"):
        await ok(hub, "join", {"room": "g"}, user)
    await ok(hub, "bye", {}, "carol")  # joining over HTTP made her online
    status = await ok(hub, "watch", {"users": ["carol"]}, "bob")
    assert status["status"]["carol"]["status"] == "offline"
    # Any request by carol over HTTP is a sign of life.
    assert await ok(hub, "heartbeat", {}, "carol") == {"status": "online"}
    now = await ok(hub, "presence", {"users": ["carol", "zed"]}, "bob")
    assert now["status"]["carol"]["status"] == "online"
    assert now["status"]["zed"] == {"status": "unknown", "last_seen": None}
    assert await ok(hub, "bye", {}, "carol") == {"status": "offline"}
    items = [i["item"] for i in (await ok(hub, "poll", {}, "bob"))["items"]]
    assert [(i["type"], i["user"], i["status"]) for i in items] == [
        ("presence", "carol", "online"),
        ("presence", "carol", "offline"),
    ]
    await error(hub, "watch", {"users": ["ok", 3]}, "bob", 400, "invalid_envelope")
    await error(hub, "watch", {"users": "carol"}, "bob", 400, "invalid_envelope")


async def test_activity_and_time_on_site() -> None:
    hub = Hub(realtime=RealtimeConfig(idle_timeout_s=30))
    first = await ok(hub, "activity", {"event": "page_view", "page": "/a"}, "alice")
    assert first["session"] == 1
    await asyncio.sleep(0.01)
    await ok(hub, "activity", {"event": "page_view", "page": "/b"}, "alice")
    report = await ok(hub, "time_on_site", {}, "alice")
    assert report["sessions"] == 1 and report["events"] == 2
    assert report["time_on_site_ms"] > 0
    assert report["pages"] == {"/a": 1, "/b": 1}
    await error(hub, "activity", {"page": "/a"}, "alice", 400, "invalid_envelope")


async def test_stats_counts() -> None:
    hub = Hub()
    known(hub, "bob")
    await ok(hub, "send", msg(1), "alice")
    await ok(hub, "poll", {}, "bob")
    await ok(hub, "poll", {"after": 1}, "bob")
    stats = await ok(hub, "stats", {}, "alice")
    assert stats["messages"] == 1
    assert stats["deliveries"] == 1
    assert stats["polls"] == 2
    assert stats["empty_polls"] == 1
    assert stats["users"] == 2  # signed in: alice and bob
    assert stats["slow_consumer_closes"] == 0


async def test_subscribe_inbox_needs_a_push_connection() -> None:
    await error(Hub(), "subscribe_inbox", {"after": 0}, "bob", 400, "invalid_envelope")


@pytest.mark.parametrize("after", [-1, INT64_MIN, INT64_MAX + 1, 2**64 - 1])
async def test_subscribe_inbox_refuses_a_cursor_outside_its_range(after: int) -> None:
    hub = Hub()
    session = hub.open_session(hub.realtime.sign_in("bob"))
    await session.handle(req("subscribe_inbox", {"after": after}))
    (reply,), closed = await drain(session)
    assert not reply.ok and reply.error.code == "invalid_envelope"
    assert reply.error.message == (
        f"payload field 'after' must be an integer from 0 to {INT64_MAX}, got {after}"
    )
    assert not closed


async def test_subscribe_inbox_takes_the_largest_cursor() -> None:
    hub = Hub()
    session = hub.open_session(hub.realtime.sign_in("bob"))
    await session.handle(req("subscribe_inbox", {"after": INT64_MAX}))
    (reply,), closed = await drain(session)
    assert reply.ok and reply.payload == {"last": 0, "gap": False, "first": 1}
    assert not closed


# -- push sessions --------------------------------------------------------------------


async def test_session_with_a_bad_token_is_refused() -> None:
    with pytest.raises(protocol.Unauthorized):
        Hub().open_session("forged")


async def test_session_signin_binds_and_close_goes_offline() -> None:
    hub = Hub()
    presence = hub.realtime.presence
    session = hub.open_session()
    assert session.user is None
    await session.handle(req("signin", signin_payload("alice")))
    assert session.user == "alice"
    assert presence.is_online("alice")
    (reply,), closed = await drain(session)
    assert reply.ok and reply.payload["user"] == "alice" and not closed
    session.close()
    session.close()  # idempotent
    assert not presence.is_online("alice")


async def test_session_replays_after_cursor_then_pushes_live_in_order() -> None:
    hub = Hub()
    known(hub, "bob")
    for mid in range(1, 6):
        await ok(hub, "send", msg(mid), "alice")
    session = hub.open_session(hub.realtime.sign_in("bob"))
    await session.handle(req("subscribe_inbox", {"after": 2}))
    await ok(hub, "send", msg(6), "alice")
    messages, closed = await drain(session)
    assert not closed
    reply = messages[0]
    assert isinstance(reply, protocol.Response)
    assert reply.payload == {"last": 5, "gap": False, "first": 1}
    assert pushed(messages) == [3, 4, 5, 6]
    assert [m.item["mid"] for m in messages[1:]] == [3, 4, 5, 6]
    # Items delivered after the replay are pushed as they come.
    await ok(hub, "send", msg(7), "alice")
    assert pushed((await drain(session))[0]) == [7]


async def test_session_resume_with_a_backlog_longer_than_the_queue() -> None:
    hub = Hub(send_queue=4)
    known(hub, "bob")
    for mid in range(1, 31):
        await ok(hub, "send", msg(mid), "alice")
    session = hub.open_session(hub.realtime.sign_in("bob"))
    await session.handle(req("subscribe_inbox", {"after": 0}))
    got: list[int] = []
    replies = 0
    # Read slowly while more arrives and requests keep coming: everything comes
    # once, in order, every reply is sent, and nothing closes.
    for mid in range(31, 41):
        body = await asyncio.wait_for(session.next_outgoing(), 1)
        assert body is not None
        message = protocol.decode_server_message(body)
        if isinstance(message, protocol.Push):
            got.append(message.seq)
        else:
            replies += 1
        await ok(hub, "send", msg(mid), "alice")
        await session.handle(req("heartbeat", {}))
    messages, closed = await drain(session)
    got += pushed(messages)
    replies += sum(1 for m in messages if isinstance(m, protocol.Response))
    assert not closed and session.close_code is None
    assert got == list(range(1, 41))
    assert replies == 1 + 10  # subscribe_inbox and every heartbeat
    assert hub.realtime.counters["slow_consumer_closes"] == 0


async def test_session_resume_after_a_retention_gap_skips_what_is_gone() -> None:
    hub = Hub(realtime=RealtimeConfig(inbox_retention=3))
    known(hub, "bob")
    for mid in range(1, 6):
        await ok(hub, "send", msg(mid), "alice")
    session = hub.open_session(hub.realtime.sign_in("bob"))
    await session.handle(req("subscribe_inbox", {"after": 0}))
    messages, closed = await drain(session)
    assert messages[0].payload == {"last": 5, "gap": True, "first": 3}
    assert pushed(messages) == [3, 4, 5]
    assert not closed


async def test_slow_consumer_is_closed_with_1013_and_items_stay_in_the_inbox() -> None:
    hub = Hub(send_queue=3)
    session = hub.open_session(hub.realtime.sign_in("bob"))
    await session.handle(req("subscribe_inbox", {"after": 0}))
    assert (await asyncio.wait_for(session.next_outgoing(), 1)) is not None  # the reply
    # Nobody reads: the fourth push overflows the queue.
    for mid in range(1, 6):
        await ok(hub, "send", msg(mid), "alice")
    assert session.close_code == CLOSE_TRY_AGAIN
    assert "slow consumer" in session.close_reason
    assert hub.realtime.counters["slow_consumer_closes"] == 1
    assert await asyncio.wait_for(session.next_outgoing(), 1) is None  # pending dropped
    session.close()
    # A new connection resumes after its cursor and gets everything.
    again = hub.open_session(hub.realtime.sign_in("bob"))
    await again.handle(req("subscribe_inbox", {"after": 0}))
    messages, _ = await drain(again)
    assert pushed(messages) == [1, 2, 3, 4, 5]


async def test_forbidden_request_gets_its_error_then_closes_1008() -> None:
    hub = Hub()
    session = hub.open_session(hub.realtime.sign_in("bob"))
    await session.handle(req("heartbeat", {}))
    await session.handle(req("poll", {"user": "alice"}))
    await session.handle(req("heartbeat", {}))  # after the close: no reply
    messages, closed = await drain(session)
    assert closed
    assert session.close_code == CLOSE_POLICY
    assert [m.ok for m in messages] == [True, False]
    assert messages[1].error.code == "forbidden"


# -- memory bounds ----------------------------------------------------------------------


async def test_large_sends_to_a_user_who_never_reads_stay_within_the_inbox_bound() -> None:
    limit = 256 * 1024
    hub = Hub(realtime=RealtimeConfig(inbox_max_bytes=limit))
    known(hub, "bob")
    body = "x" * 32 * 1024
    for mid in range(200):  # 6.4 MB offered to bob, who never polls
        await ok(hub, "send", {"to": "bob", "mid": mid, "ts": 1, "body": body}, "alice")
    rt = hub.realtime
    assert rt.inbox_bytes == rt.inbox("bob").nbytes <= limit
    page = await ok(hub, "poll", {}, "bob")
    assert page["gap"] is True and page["last"] == 200
    assert page["items"][-1]["item"]["mid"] == 199  # the newest are the ones kept


async def test_a_send_beyond_the_total_inbox_bytes_is_refused_and_counted() -> None:
    hub = Hub(realtime=RealtimeConfig(inbox_total_bytes=100_000))
    users = [f"u{i}" for i in range(10)]
    known(hub, *users)
    body = "x" * 20_000
    status = 200
    sent = 0
    while status == 200 and sent < 100:
        status, reply = await call(
            hub, "send", {"to": users[sent % 10], "mid": sent, "ts": 1, "body": body}, "alice"
        )
        sent += 1
    assert (status, reply["error"]["code"]) == (429, "limit_reached")
    assert "inbox_total_bytes" in reply["error"]["message"]
    rt = hub.realtime
    assert rt.inbox_bytes <= 100_000
    assert rt.counters["messages"] == sent - 1  # the refused one changed nothing
    stats = await ok(hub, "stats", {}, "alice")
    assert stats["limit_refusals"] == 1 and stats["inbox_bytes"] == rt.inbox_bytes


async def test_a_room_send_is_refused_whole_when_it_would_pass_the_total() -> None:
    hub = Hub(realtime=RealtimeConfig(inbox_total_bytes=50_000))
    for user in ("alice", "bob", "carol"):
        await ok(hub, "join", {"room": "g"}, user)
    payload = {"room": "g", "mid": 1, "ts": 1, "body": "x" * 30_000}  # 2 x 30 kB
    await error(hub, "send", payload, "alice", 429, "limit_reached")
    assert hub.realtime.inbox_bytes == 0


async def test_send_to_an_unknown_user_is_refused_and_creates_nothing() -> None:
    hub = Hub()
    await error(hub, "send", msg(1, to="ghost"), "alice", 404, "unknown_user")
    assert "ghost" not in hub.realtime.inboxes
    assert hub.realtime.counters["unknown_recipients"] == 1
    assert hub.realtime.counters["deliveries"] == 0


async def test_users_rooms_topics_watches_and_pages_are_bounded() -> None:
    cfg = RealtimeConfig(max_users=3, max_rooms=2, max_topics=1, max_watch=2, max_pages=2)
    hub = Hub(realtime=cfg)
    known(hub, "alice", "bob", "carol")
    await error(hub, "signin", signin_payload("dave"), None, 429, "limit_reached")
    await ok(hub, "signin", signin_payload("alice"))  # a known user may sign in again
    for room in ("r1", "r2"):
        await ok(hub, "join", {"room": room}, "alice")
    await error(hub, "join", {"room": "r3"}, "alice", 429, "limit_reached")
    await ok(hub, "subscribe", {"topic": "t1"}, "alice")
    await error(hub, "subscribe", {"topic": "t2"}, "alice", 429, "limit_reached")
    await ok(hub, "watch", {"users": ["bob", "carol"]}, "alice")
    await ok(hub, "watch", {"users": ["bob"]}, "alice")  # already watched: no growth
    await ok(hub, "watch", {"users": ["ghost"]}, "alice")  # never signed in: not recorded
    await error(hub, "watch", {"users": ["alice"]}, "alice", 429, "limit_reached")
    for page in ("/a", "/b", "/a"):
        await ok(hub, "activity", {"event": "view", "page": page}, "alice")
    await error(hub, "activity", {"event": "view", "page": "/c"}, "alice", 429, "limit_reached")
    long_page = {"event": "view", "page": "/" + "p" * 300}
    await error(hub, "activity", long_page, "alice", 400, "invalid_envelope")
    rt = hub.realtime
    assert (len(rt.inboxes), len(rt.rooms), len(rt.topics)) == (3, 2, 1)
    assert rt.presence.watched_by("alice") == {"bob", "carol"}
    assert rt.counters["limit_refusals"] == 5
