"""The published wire protocol (servers/schema/, servers/wire_schema.py, docs/protocol.md)
against the real code, in process: whatever the hub, its sessions and the command line
emit must validate, what they refuse must not, and the reference page must agree.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from servers import __main__ as server_main
from servers import http_server, protocol
from servers.common import ServerConfig, parse_ready_line, parse_stats_line
from servers.context import Context
from servers.fdlimit import FdLimit
from servers.hub import Hub, Reply, Session
from servers.protocol import MAX_ID, ProtocolError, Request
from servers.realtime.auth import USER_RE
from servers.realtime.config import NAME_MAX, PAGE_MAX, RealtimeConfig
from servers.realtime.credentials import signin_payload, user_key
from servers.realtime.payload import INT64_MAX, INT64_MIN
from servers.wire_schema import (
    OPS,
    SCHEMA_DIR,
    item_problems,
    push_problems,
    ready_problems,
    reply_problems,
    request_problems,
)

pytestmark = pytest.mark.timeout(30)

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "protocol.md"
SECRET = "wire-schema-tests-secret"
#: The worked example of docs/protocol.md (Authentication).
DOC_SECRET = "example-secret-0123456789abcdef"
SCHEMA_FILES = sorted(SCHEMA_DIR.rglob("*.schema.json"))
TS = 1_718_000_000_000

_ids = itertools.count(1)


def _codes() -> dict[str, int]:
    """Every error code the servers put on the wire, with its HTTP status."""
    found: dict[str, int] = {}
    todo = list(ProtocolError.__subclasses__())
    while todo:
        cls = todo.pop()
        found[cls.code] = cls.http_status
        todo += cls.__subclasses__()
    return found


STATUS = _codes()


def _schema(rel: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / rel).read_text())


# -- the files -------------------------------------------------------------------------


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.relative_to(SCHEMA_DIR).as_posix())
def test_every_schema_file_is_a_valid_draft_2020_12_schema(path: Path) -> None:
    schema = json.loads(path.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert "$id" not in schema  # files find each other by relative path, wherever they are


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_every_ref_names_a_file_and_definition_that_exist() -> None:
    for path in SCHEMA_FILES:
        for ref in _refs(json.loads(path.read_text())):
            target, _, fragment = ref.partition("#")
            assert not re.match(r"^[a-z]+:", target), f"{path.name}: {ref} is not relative"
            doc = json.loads((path.parent / target).read_text()) if target else None
            doc = doc if doc is not None else json.loads(path.read_text())
            for part in filter(None, fragment.split("/")):
                assert part in doc, f"{path.name}: {ref} names nothing"
                doc = doc[part]


def test_every_operation_of_the_hub_has_schemas_and_only_those() -> None:
    assert set(OPS) == set(Hub().ops)
    for op in OPS:
        assert (SCHEMA_DIR / "ops" / f"{op}.request.schema.json").is_file()
        assert (SCHEMA_DIR / "ops" / f"{op}.reply.schema.json").is_file()
    assert sorted(p.name for p in (SCHEMA_DIR / "ops").iterdir()) == sorted(
        f"{op}.{kind}.schema.json" for op in OPS for kind in ("request", "reply")
    )


def test_error_codes_are_the_servers() -> None:
    code = _schema("error.schema.json")["properties"]["error"]["properties"]["code"]
    assert set(code["enum"]) == set(STATUS)


def test_bounds_are_the_servers() -> None:
    defs = _schema("common.schema.json")["$defs"]
    # USER_RE ends in \Z; in a JSON Schema (ECMA-262) pattern, $ means the same.
    name = USER_RE.pattern.removesuffix(r"\Z") + "$"
    assert defs["name"]["pattern"] == defs["name_or_null"]["pattern"] == name
    assert f"{{1,{NAME_MAX}}}" in name
    for key in ("id", "cursor", "seq", "server_ns"):
        assert defs[key]["maximum"] == MAX_ID
    assert defs["id"]["minimum"] == 0 and defs["seq"]["minimum"] == 1
    activity = _schema("ops/activity.request.schema.json")["properties"]
    assert (activity["event"]["maxLength"], activity["page"]["maxLength"]) == (NAME_MAX, PAGE_MAX)


def _integer_nodes(node: Any, rel: str, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every subschema under ``node`` (of the file ``rel``) whose type allows an integer,
    through $refs."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            target, _, fragment = ref.partition("#")
            if target:
                rel = _normalise(f"{rel.rpartition('/')[0]}/{target}")
            doc = _schema(rel)
            for part in filter(None, fragment.split("/")):
                doc = doc[part]
            yield from _integer_nodes(doc, rel, f"{path}->{ref}")
        kind = node.get("type")
        if kind == "integer" or (isinstance(kind, list) and "integer" in kind):
            yield path, node
        for key, value in node.items():
            if key != "$ref":
                yield from _integer_nodes(value, rel, f"{path}.{key}")
    elif isinstance(node, list):
        for k, value in enumerate(node):
            yield from _integer_nodes(value, rel, f"{path}[{k}]")


def test_every_integer_a_request_may_carry_is_bounded_to_64_bits() -> None:
    int64 = _schema("common.schema.json")["$defs"]["int64"]
    assert (int64["minimum"], int64["maximum"]) == (INT64_MIN, INT64_MAX)
    found = 0
    for op in OPS:
        rel = f"ops/{op}.request.schema.json"
        for where, node in _integer_nodes(_schema(rel), rel, op):
            assert node.get("minimum", INT64_MIN - 1) >= INT64_MIN, where
            assert node.get("maximum", INT64_MAX + 1) <= INT64_MAX, where
            found += 1
    rel = "request.schema.json"
    for where, node in _integer_nodes(_schema(rel), rel, "envelope"):
        assert (node["minimum"], node["maximum"]) == (0, MAX_ID), where
    assert found >= 9  # mid, ts, nid, ts, after, wait_ms, limit, after, stalls_since_ns


def test_problems_name_where_they_are() -> None:
    page = {"items": [{"seq": "x", "item": {"type": "message"}}], "last": 1, "gap": False}
    reply = {"op": "poll", "id": 1, "ts": 2, "ok": True, "payload": {**page, "first": 1}}
    problems = reply_problems("poll", reply)
    assert "payload.items[0].seq: 'x' is not of type 'integer'" in problems
    assert "payload.items[0].item: 'mid' is a required property" in problems
    assert request_problems([]) == ["envelope: [] is not of type 'object'"]
    assert request_problems({"op": "send", "id": 1, "ts": 1, "payload": {"mid": 1, "ts": 1}}) == [
        "payload: none of these holds: 'to' is a required property | 'room' is a required property"
    ]
    both = {"to": "bob", "room": "general", "mid": 1, "ts": 1}
    assert request_problems({"op": "send", "id": 1, "ts": 1, "payload": both}) == [
        "payload.room: not allowed here"
    ]
    # A name ending in a newline is refused, as USER_RE refuses it (Python's $ would not).
    assert USER_RE.match("alice\n") is None
    assert request_problems({"op": "signin", "id": 1, "ts": 1, "payload": {"user": "alice\n"}})
    # 1.0 is a float to the servers' decoder, never an id.
    assert request_problems({"op": "echo", "id": 1.0, "ts": 1}) == [
        "id: 1.0 is not of type 'integer'"
    ]
    status = {"op": "presence", "id": 1, "ts": 1, "ok": True, "payload": {"status": {"a.b": {}}}}
    assert "payload.status['a.b']: 'status' is a required property" in reply_problems(
        "presence", status
    )


# -- driving a real hub ----------------------------------------------------------------


class Client:
    """Requests to a hub as an HTTP transport makes them; every reply is checked."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        #: (op, reply envelope) of every request made.
        self.replies: list[tuple[str, dict[str, Any]]] = []

    async def call(
        self, op: str, payload: Any = None, token: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        envelope = {"op": op, "id": next(_ids), "ts": TS, "payload": payload}
        body = protocol.encode_request(Request(**envelope))
        try:
            ctx = self.hub.authenticate(token)
        except protocol.Unauthorized as exc:
            reply = self.hub.reject(exc)  # what POST /rpc answers to an unknown token
        else:
            reply = await self.hub.handle(body, ctx)
        return self.check(op, reply, envelope)

    def check(
        self, op: str, reply: Reply, envelope: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        answer = orjson.loads(reply.body)
        assert reply_problems(op, answer) == [], answer
        if answer["ok"]:
            assert reply.status == 200
            if envelope is not None:
                assert request_problems(envelope) == [], envelope
        else:
            assert reply.status == STATUS[answer["error"]["code"]], answer
        self.replies.append((op, answer))
        return reply.status, answer

    async def ok(self, op: str, payload: Any = None, token: str | None = None) -> Any:
        status, answer = await self.call(op, payload, token)
        assert status == 200, answer
        return answer["payload"]

    async def fails(
        self, code: str, op: str, payload: Any = None, token: str | None = None
    ) -> dict[str, Any]:
        _, answer = await self.call(op, payload, token)
        assert (answer["ok"], answer["error"]["code"]) == (False, code), answer
        return answer

    async def signin(self, user: str) -> str:
        token: str = (await self.ok("signin", signin_payload(user, SECRET)))["token"]
        return token


def _hub(**realtime: Any) -> Hub:
    return Hub(realtime=RealtimeConfig(signin_secret=SECRET, **realtime))


async def _next(session: Session) -> Any:
    body = await asyncio.wait_for(session.next_outgoing(), 5)  # a guard against a hang only
    assert body is not None
    return orjson.loads(body)


async def _every_operation(client: Client) -> None:
    """Each operation at least once, successfully."""
    alice, bob = await client.signin("alice"), await client.signin("bob")
    await client.ok("echo", {"any": ["json", 1, 2.5, None, True]})
    await client.ok("echo", None)
    await client.ok("echo", "text")
    await client.ok("join", {"room": "general"}, alice)
    await client.ok("join", {"room": "general", "user": "bob"}, bob)
    await client.ok("subscribe", {"topic": "deploys"}, bob)
    await client.ok("watch", {"users": ["alice", "carol"]}, bob)
    await client.ok("send", {"to": "bob", "mid": 1, "ts": 5, "body": "hi"}, alice)
    await client.ok("send", {"room": "general", "mid": 2, "ts": 6, "body": {"x": [1]}}, alice)
    await client.ok("send", {"to": "bob", "mid": -3, "ts": 0}, alice)  # no body: null
    await client.ok("publish", {"topic": "deploys", "nid": 7, "ts": 8, "body": None}, alice)
    await client.ok("publish", {"topic": "nobody", "nid": 8, "ts": 8}, alice)
    await client.ok("presence", {"users": ["alice", "bob", "carol"]}, bob)
    await client.ok("heartbeat", {}, bob)
    await client.ok("heartbeat", None, bob)
    await client.ok("time_on_site", {}, bob)  # nothing recorded yet
    await client.ok("activity", {"event": "page_view", "page": "/home"}, bob)
    await client.ok("activity", {"event": "scroll"}, bob)
    await client.ok("time_on_site", None, bob)
    await client.ok("bye", {}, alice)  # presence: alice goes offline, bob is told
    page = await client.ok("poll", {"after": 0, "wait_ms": 0, "limit": 10}, bob)
    assert {entry["item"]["type"] for entry in page["items"]} == {
        "message",
        "notification",
        "presence",
    }
    await client.ok("poll", None, bob)
    await client.ok("poll", {"after": 2, "limit": 1}, bob)
    await client.ok("poll", {"after": 1_000}, bob)
    # A long poll with items already there answers at once.
    await client.ok("poll", {"after": 0, "wait_ms": 60_000}, bob)
    client.hub.stalls.gc_pause(2, 1_000, 9_000_000)  # a kept stall, so events has one
    client.hub.stalls.loop_turn(2_000, 7_000_000)
    stats = await client.ok("stats", {}, bob)
    assert [e[2] for e in stats["stalls"]["events"]] == ["gc2", "loop"]
    await client.ok("stats", {"stalls_since_ns": 1_500}, bob)
    session = client.hub.open_session(bob)
    await session.handle(
        protocol.encode_request(Request("subscribe_inbox", next(_ids), TS, {"after": 3}))
    )
    reply = await _next(session)
    client.check("subscribe_inbox", Reply(200, orjson.dumps(reply)))
    session.close()


async def test_every_operation_succeeds_with_a_reply_its_schema_accepts() -> None:
    client = Client(_hub())
    await _every_operation(client)
    assert {op for op, answer in client.replies if answer["ok"]} == set(OPS)


def _normalise(rel: str) -> str:
    """A path under servers/schema/ with its ``..`` resolved: ``ops/../x`` is ``x``."""
    parts: list[str] = []
    for part in rel.split("/"):
        if part == "..":
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts)


def _required_fields(op: str) -> set[str]:
    """The required fields of ``op``'s reply payload, through a top-level $ref or allOf."""
    rel = f"ops/{op}.reply.schema.json"
    schema = _schema(rel)
    required = set(schema.get("required", ()))
    for ref in [schema.get("$ref")] + [s.get("$ref") for s in schema.get("allOf", ())]:
        if not ref:
            continue
        target, _, fragment = ref.partition("#")
        node = _schema(_normalise(f"ops/{target}"))
        for part in filter(None, fragment.split("/")):
            node = node[part]
        required |= set(node.get("required", ()))
    return required


async def test_broken_copies_of_real_replies_are_caught() -> None:
    client = Client(_hub())
    await _every_operation(client)
    checked = 0
    for op, answer in client.replies:
        payload = answer.get("payload")
        if not answer["ok"] or not isinstance(payload, dict) or op == "echo":
            continue
        required = _required_fields(op)
        assert required <= set(payload), (op, payload)
        for key in payload:
            if key in required:
                gone = {**answer, "payload": {k: v for k, v in payload.items() if k != key}}
                assert f"payload: {key!r} is a required property" in reply_problems(op, gone)
            # No field of any reply is a list of lists.
            wrong = {**answer, "payload": {**payload, key: [[None]]}}
            assert any(p.startswith(f"payload.{key}") for p in reply_problems(op, wrong)), key
            checked += 1
        for field in ("op", "id", "ts", "payload"):
            gone = {k: v for k, v in answer.items() if k != field}
            assert f"envelope: {field!r} is a required property" in reply_problems(op, gone)
        assert reply_problems(op, {**answer, "id": -1})
        assert reply_problems(op, {**answer, "ok": "yes"})
    assert checked > 50


async def test_failures_answer_error_envelopes_the_schema_accepts() -> None:
    client = Client(_hub(max_room_members=2))
    alice, bob = await client.signin("alice"), await client.signin("bob")
    carol = await client.signin("carol")
    hub = client.hub
    # Envelopes the hub cannot read: op, id and ts are null.
    for data, code in (
        (b"{oops", "malformed_json"),
        (b"[1, 2]", "invalid_envelope"),
        (b'{"op": "echo", "id": 1}', "invalid_envelope"),
        (b'{"op": "echo", "id": -1, "ts": 0}', "invalid_envelope"),
        (b'{"op": "echo", "id": 1, "ts": 0, "extra": 1}', "invalid_envelope"),
    ):
        _, answer = client.check("", await hub.handle(data))
        assert (answer["op"], answer["error"]["code"]) == (None, code)
    await client.fails("unknown_op", "nope", {})
    await client.fails("invalid_envelope", "send", {"to": "bob", "ts": 1}, alice)  # no mid
    await client.fails("invalid_envelope", "subscribe_inbox", {"after": 0}, bob)  # not a push
    await client.fails("unauthorized", "send", {"to": "bob", "mid": 1, "ts": 1})  # no token
    await client.fails("unauthorized", "poll", {}, "forged-token")
    await client.fails("unauthorized", "signin", {"user": "dave", "key": "0" * 64})
    await client.fails("forbidden", "poll", {"user": "alice"}, bob)
    await client.fails("forbidden", "send", {"room": "lobby", "mid": 1, "ts": 1}, bob)
    await client.ok("join", {"room": "pair"}, alice)
    await client.ok("join", {"room": "pair"}, bob)
    await client.fails("forbidden", "join", {"room": "pair"}, carol)  # full
    await client.fails("unknown_user", "send", {"to": "zed", "mid": 1, "ts": 1}, bob)
    for exc in (
        protocol.message_too_large(2_000_000, 1 << 20),
        protocol.RequestTimeout("the request body did not arrive within 60.0 s"),
    ):
        client.check("", hub.reject(exc))
    small = Client(Hub(max_message_bytes=64, realtime=RealtimeConfig(signin_secret=SECRET)))
    await small.fails("too_large", "echo", "x" * 100)
    broken = Client(_hub())

    async def boom(req: Request, ctx: Context) -> Any:
        raise RuntimeError("a bug")

    broken.hub.register("boom", boom)
    await broken.fails("internal_error", "boom", {})
    codes = {
        a["error"]["code"] for c in (client, small, broken) for _, a in c.replies if not a["ok"]
    }
    assert codes == set(STATUS) - {"limit_reached"}  # each bound has a test of its own below
    for _, answer in client.replies:
        if not answer["ok"]:
            assert reply_problems("", {**answer, "error": {"message": "x"}})
            assert reply_problems("", {**answer, "error": {**answer["error"], "code": "oops"}})
            assert reply_problems("", {**answer, "ok": None})


async def test_every_bound_answers_limit_reached_in_a_valid_envelope() -> None:
    client = Client(
        _hub(
            max_users=2, max_rooms=1, max_topics=1, max_watch=1, max_pages=1, inbox_total_bytes=200
        )
    )
    alice, bob = await client.signin("alice"), await client.signin("bob")
    await client.fails("limit_reached", "signin", signin_payload("carol", SECRET))
    await client.ok("join", {"room": "one"}, alice)
    await client.fails("limit_reached", "join", {"room": "two"}, alice)
    await client.ok("subscribe", {"topic": "one"}, bob)
    await client.fails("limit_reached", "subscribe", {"topic": "two"}, bob)
    await client.fails("limit_reached", "watch", {"users": ["alice", "bob"]}, bob)
    await client.fails("limit_reached", "presence", {"users": ["alice", "bob"]}, bob)
    await client.ok("activity", {"event": "view", "page": "/a"}, bob)
    await client.fails("limit_reached", "activity", {"event": "view", "page": "/b"}, bob)
    big = {"to": "bob", "mid": 1, "ts": 1, "body": "x" * 300}
    await client.fails("limit_reached", "send", big, alice)
    await client.fails("limit_reached", "publish", {"topic": "one", "nid": 1, "ts": 1, **big}, bob)
    stats = await client.ok("stats", {}, bob)
    assert stats["limit_refusals"] == 8


#: Payloads the hub refuses as invalid_envelope: each must have request problems too.
REFUSED: list[tuple[str, Any]] = [
    ("signin", {"user": "no spaces"}),
    ("signin", {"user": "x" * 65}),
    ("signin", {"user": "alice\n"}),
    ("signin", {}),
    ("signin", None),
    ("send", {"to": "bob", "ts": 1}),
    ("send", {"to": "bob", "mid": "1", "ts": 1}),
    ("send", {"to": "bob", "mid": True, "ts": 1}),
    ("send", {"to": "bob", "mid": 1.0, "ts": 1}),
    ("send", {"to": "bob", "mid": INT64_MAX + 1, "ts": 1}),
    ("send", {"to": "bob", "mid": 1, "ts": 2**64 - 1}),
    ("send", {"mid": 1, "ts": 1}),
    ("send", {"to": "bob", "room": "general", "mid": 1, "ts": 1}),
    ("send", {"to": "bad name", "mid": 1, "ts": 1}),
    ("send", {"to": None, "room": "general", "mid": 1, "ts": 1}),
    ("send", []),
    ("join", {"room": ""}),
    ("join", {}),
    ("subscribe", {"topic": 5}),
    ("publish", {"topic": "t", "nid": 1}),
    ("publish", {"topic": "t", "nid": 1, "ts": "now"}),
    ("publish", {"topic": "t", "nid": INT64_MAX + 1, "ts": 1}),
    ("watch", {"users": "alice"}),
    ("watch", {"users": ["ok", "not ok"]}),
    ("presence", {}),
    ("activity", {"event": "e" * (NAME_MAX + 1)}),
    ("activity", {"event": "view", "page": "p" * (PAGE_MAX + 1)}),
    ("activity", {"page": "/home"}),
    ("poll", {"after": -1}),
    ("poll", {"wait_ms": -1}),
    ("poll", {"limit": 0}),
    ("poll", {"after": "1"}),
    ("poll", {"after": INT64_MAX + 1}),
    ("poll", {"wait_ms": INT64_MAX + 1}),
    ("poll", {"limit": 2**64 - 1}),
    ("poll", [0]),
    ("subscribe_inbox", {"after": -1}),
    ("subscribe_inbox", {"after": INT64_MAX + 1}),
    ("subscribe_inbox", {"after": None}),
    ("subscribe_inbox", None),
]


@pytest.mark.parametrize(
    ("op", "payload"), REFUSED, ids=[f"{o}-{i}" for i, (o, _) in enumerate(REFUSED)]
)
async def test_payloads_the_hub_refuses_have_request_problems(op: str, payload: Any) -> None:
    hub = _hub()
    bob = hub.realtime.sign_in("bob")
    hub.realtime.sign_in("alice")
    body = protocol.encode_request(Request(op, 1, 1, payload))
    if op == "subscribe_inbox":
        session = hub.open_session(bob)
        await session.handle(body)
        answer = await _next(session)
    else:
        answer = orjson.loads((await hub.handle(body, hub.authenticate(bob))).body)
    assert answer["error"]["code"] == "invalid_envelope", answer
    assert request_problems({"op": op, "id": 1, "ts": 1, "payload": payload})


async def _held(hub: Hub, user: str) -> None:
    """Until a long poll of ``user`` is held (no clock involved: the loop turns)."""
    while hub.realtime.inbox(user).waiting == 0:
        await asyncio.sleep(0)


async def test_long_polls_answer_valid_replies_when_an_item_comes_or_the_token_ends() -> None:
    client = Client(_hub())
    alice, bob = await client.signin("alice"), await client.signin("bob")
    poll = asyncio.create_task(client.call("poll", {"after": 0, "wait_ms": 60_000}, bob))
    await _held(client.hub, "bob")
    await client.ok("send", {"to": "bob", "mid": 1, "ts": 1, "body": "wake"}, alice)
    status, answer = await poll
    assert status == 200 and [e["seq"] for e in answer["payload"]["items"]] == [1]
    poll = asyncio.create_task(client.call("poll", {"after": 1, "wait_ms": 60_000}, bob))
    await _held(client.hub, "bob")
    await client.ok("bye", {}, bob)  # revokes the token the poll is held with
    status, answer = await poll
    assert (status, answer["error"]["code"]) == (401, "unauthorized")


# -- pushes, items, event streams ------------------------------------------------------


async def test_session_pushes_and_their_items_validate() -> None:
    client = Client(_hub())
    alice, bob = await client.signin("alice"), await client.signin("bob")
    for token in (alice, bob):
        await client.ok("join", {"room": "general"}, token)
    await client.ok("subscribe", {"topic": "deploys"}, bob)
    await client.ok("watch", {"users": ["alice"]}, bob)
    session = client.hub.open_session(bob)
    await session.handle(protocol.encode_request(Request("subscribe_inbox", 9, TS, {"after": 0})))
    await client.ok("send", {"to": "bob", "mid": 1, "ts": 1, "body": "hi"}, alice)
    await client.ok("send", {"room": "general", "mid": 2, "ts": 2, "body": None}, alice)
    await client.ok("publish", {"topic": "deploys", "nid": 3, "ts": 3, "body": [1]}, alice)
    await client.ok("bye", {}, alice)  # offline
    alice = await client.signin("alice")
    await client.ok("heartbeat", {}, alice)  # online again
    reply = await _next(session)
    assert reply_problems("subscribe_inbox", reply) == [] and reply["ok"]
    pushes = [await _next(session) for _ in range(5)]
    for push in pushes:
        assert push_problems(push) == [], push
        assert item_problems(push["item"]) == []
        assert push_problems({**push, "ok": True}) == ["ok: not allowed here"]
        assert push_problems({**push, "seq": 0})
        assert push_problems({**push, "item": {**push["item"], "type": "other"}})
    assert [p["seq"] for p in pushes] == [1, 2, 3, 4, 5]
    items = [p["item"] for p in pushes]
    assert [i["type"] for i in items] == ["message"] * 2 + ["notification"] + ["presence"] * 2
    assert [i["status"] for i in items[3:]] == ["offline", "online"]
    for item in items:
        for key in item:
            assert item_problems({k: v for k, v in item.items() if k != key}), key
    assert item_problems({**items[0], "room": "general"})  # both to and room
    assert item_problems({**items[1], "room": None})  # neither
    assert item_problems({**items[3], "last_seen": "now"})
    # The event stream carries the same push JSON, with the sequence number as the event id.
    body = orjson.dumps(pushes[0])
    event = http_server.sse_event(body).decode()
    lines = dict(line.split(": ", 1) for line in event.strip().splitlines())
    assert int(lines["id"]) == pushes[0]["seq"]
    assert push_problems(json.loads(lines["data"])) == []
    session.close()


async def test_a_resume_past_the_retention_answers_a_valid_gap() -> None:
    client = Client(_hub(inbox_retention=2))
    alice, bob = await client.signin("alice"), await client.signin("bob")
    for mid in range(1, 5):
        await client.ok("send", {"to": "bob", "mid": mid, "ts": 1}, alice)
    session = client.hub.open_session(bob)
    reply = await session.subscribe(0)  # what GET /events does; its data for `event: gap`
    _, answer = client.check("subscribe_inbox", reply)
    assert answer["payload"] == {"last": 4, "gap": True, "first": 3}
    assert [(await _next(session))["seq"] for _ in range(2)] == [3, 4]
    page = await client.ok("poll", {"after": 0}, bob)
    assert (page["gap"], page["first"], [e["seq"] for e in page["items"]]) == (True, 3, [3, 4])
    session.close()


# -- the command line ------------------------------------------------------------------


async def test_the_ready_and_stats_lines_validate(capsys: pytest.CaptureFixture[str]) -> None:
    async def serve(config: ServerConfig, hub: Hub, on_ready: Any, stop: asyncio.Event) -> None:
        on_ready(43127)

    module = types.SimpleNamespace(KIND="http", PATH="/rpc", serve=serve)
    extra = {  # what `python -m servers` adds (servers/__main__.py: main)
        "signin": "key",
        "secret_file": None,
        "backlog": 128,
        "fd_limit": FdLimit(2064, 1024, 4096, 2064, 4096).as_dict(),
    }
    await server_main.run(module, ServerConfig(), "asyncio", _hub(), extra)  # type: ignore[arg-type]
    ready_line, stats_line = capsys.readouterr().out.splitlines()
    ready = parse_ready_line(ready_line)
    assert ready is not None and ready_problems(ready) == []
    assert parse_stats_line(stats_line) is not None
    assert ready_problems({"port": 1}) == []  # all an outside server must print
    assert ready_problems({**ready, "port": "43127"}) == ["port: '43127' is not of type 'integer'"]
    assert ready_problems({**ready, "port": 0})
    assert ready_problems({**ready, "tls": "1.4"})
    assert ready_problems({**ready, "liveness": {"keepalive_timeout_s": 75}})
    assert ready_problems({k: v for k, v in ready.items() if k != "port"}) == [
        "ready: 'port' is a required property"
    ]


# -- any envelope ----------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 63), max_value=MAX_ID)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ids = st.integers(min_value=0, max_value=MAX_ID)
#: An op whose payload is anything: echo, or one no schema describes (unknown_op).
free_ops = st.just("echo") | st.text(min_size=1, max_size=20).filter(lambda op: op not in OPS)

FUZZ = settings(max_examples=150)


@FUZZ
@given(op=free_ops, rid=ids, ts=ids, payload=json_values)
def test_encoded_requests_have_no_problems(op: str, rid: int, ts: int, payload: Any) -> None:
    envelope = orjson.loads(protocol.encode_request(Request(op, rid, ts, payload)))
    assert request_problems(envelope) == []


@FUZZ
@given(
    envelope=st.dictionaries(
        st.sampled_from(["op", "id", "ts", "payload", "ok", "x"]),
        json_values | st.integers() | free_ops,
        max_size=6,
    )
)
def test_envelope_problems_are_what_the_decoder_refuses(envelope: dict[str, Any]) -> None:
    op = envelope.get("op")
    assume(not (isinstance(op, str) and op in OPS and op != "echo"))
    try:
        protocol.decode_request(json.dumps(envelope))
    except ProtocolError:
        assert request_problems(envelope)
    else:
        assert request_problems(envelope) == []


@FUZZ
@given(
    field=st.sampled_from(["id", "ts"]),
    value=st.integers(max_value=-1)
    | st.integers(min_value=MAX_ID + 1)
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
    | st.none(),
)
def test_ids_out_of_range_are_caught(field: str, value: Any) -> None:
    envelope = {"op": "echo", "id": 1, "ts": 1, "payload": None, field: value}
    problems = request_problems(envelope)
    assert problems and all(p.startswith(f"{field}:") for p in problems)
    with pytest.raises(ProtocolError):
        protocol.decode_request(json.dumps(envelope))


@FUZZ
@given(seq=st.integers(max_value=0) | st.integers(min_value=MAX_ID + 1) | st.booleans())
def test_push_sequence_numbers_out_of_range_are_caught(seq: Any) -> None:
    item = {"type": "notification", "topic": "t", "nid": 1, "ts": 1, "body": None}
    assert push_problems({"op": "push", "seq": seq, "item": item})


# -- the reference page ----------------------------------------------------------------


def _json_blocks() -> list[tuple[int, Any]]:
    """``(line, document)`` of every ```json block of docs/protocol.md: one document, or
    one per line."""
    found = []
    text = DOC.read_text()
    for m in re.finditer(r"^```json\n(.*?)^```$", text, flags=re.S | re.M):
        line = text[: m.start()].count("\n") + 1
        body = m.group(1)
        try:
            found.append((line, json.loads(body)))
        except ValueError:
            found += [(line, json.loads(row)) for row in body.splitlines() if row.strip()]
    return found


def test_every_json_example_of_the_reference_validates() -> None:
    blocks = _json_blocks()
    kinds: set[str] = set()
    for line, doc in blocks:
        where = f"docs/protocol.md:{line}"
        assert isinstance(doc, dict), where
        if "ok" in doc:
            kind, problems = "reply", reply_problems(doc.get("op") or "", doc)
        elif doc.get("op") == "push":
            kind, problems = "push", push_problems(doc)
        elif "op" in doc:
            kind, problems = "request", request_problems(doc)
        elif "type" in doc:
            kind, problems = "item", item_problems(doc)
        elif "port" in doc:
            kind, problems = "ready", ready_problems(doc)
        else:
            pytest.fail(f"{where}: a JSON example that is no message: {doc}")
        assert problems == [], (where, problems)
        kinds.add(kind if kind != "request" else f"request:{doc['op']}")
    assert {"reply", "push", "item", "ready"} <= kinds
    assert {f"request:{op}" for op in OPS} <= kinds  # every operation has an example


def test_the_reference_status_table_is_the_servers() -> None:
    rows = re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", DOC.read_text(), flags=re.M)
    assert dict((code, int(status)) for code, status in rows) == STATUS


def test_the_reference_lists_every_schema_file() -> None:
    text = DOC.read_text()
    for path in SCHEMA_FILES:
        rel = path.relative_to(REPO).as_posix()
        if "/ops/" not in rel:
            assert f"`{rel}`" in text, rel
    for op in OPS:
        assert f"`{op}`" in text


def test_the_reference_key_example_is_the_real_derivation() -> None:
    text = DOC.read_text()
    assert DOC_SECRET in text and user_key(DOC_SECRET, "alice") in text
