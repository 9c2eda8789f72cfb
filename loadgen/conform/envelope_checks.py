"""Checks of the envelope, the errors, sign-in, auth and the operations, on ``rpc`` and ``ws``.

The same check runs over ``POST /rpc`` (where statuses are checked too) and
over a WebSocket (where the error envelope is the whole answer).
"""

from __future__ import annotations

import orjson
from aiohttp import WSServerHandshakeError

from loadgen.conform.channel import ChannelClosed, HttpChannel, WsChannel
from loadgen.conform.checks import Mismatch, Probe, check
from servers import wire_schema

BOTH = ("rpc", "ws")


@check(BOTH, "echo", "echo answers with its op, id, ts and payload")
async def echo(p: Probe) -> None:
    chan = await p.chan()
    payload = {"n": [1, "two", None, 2.5], "s": "\u00e9\u2713", "big": 2**53 - 1}
    answer = await chan.call("echo", payload, rid=424242)
    p.expect_ok(answer, "echo")
    env = answer.envelope
    p.expect(
        env.get("op") == "echo" and env.get("id") == 424242 and env.get("payload") == payload,
        f"op 'echo', id 424242 and the payload {orjson.dumps(payload).decode()} back",
        answer.shown(),
    )
    p.expect(isinstance(env.get("ts"), int), "the request's ts back", answer.shown())


@check(BOTH, "malformed_json", "a body that is not JSON gets malformed_json, id null")
async def malformed_json(p: Probe) -> None:
    chan = await p.chan()
    answer = await chan.send_raw(b'{"op": "echo", "id": 1,')
    p.expect_error(answer, "malformed_json")
    p.expect(
        answer.envelope.get("id") is None, "id null (the envelope was unreadable)", answer.shown()
    )


@check(
    BOTH, "invalid_envelope", "a missing ts, a boolean id or an unknown field gets invalid_envelope"
)
async def invalid_envelope(p: Probe) -> None:
    chan = await p.chan()
    for body in (
        b'{"op": "echo", "id": 1}',
        b'{"op": "echo", "id": true, "ts": 1}',
        b'{"op": "echo", "id": 1, "ts": 1, "extra": 1}',
        b'{"op": "echo", "id": -1, "ts": 1}',
        b"[1, 2]",
    ):
        answer = await chan.send_raw(body)
        p.expect_error(answer, "invalid_envelope", f"for {body.decode()}")


#: The range of an integer a client chooses in a payload (``mid``, ``nid``, ``ts``).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@check(BOTH, "int64", "payload integers are exact to 2^63-1 and refused past it (invalid_envelope)")
async def int64(p: Probe) -> None:
    me, token = await p.signin()
    chan = await p.chan(token)
    sent = {"to": me, "mid": INT64_MAX, "ts": INT64_MIN, "body": None}
    answer = await chan.call("send", sent)
    body = p.expect_ok(answer, "send", f"a message to oneself with mid {INT64_MAX}")
    p.expect(body.get("mid") == INT64_MAX, f"mid {INT64_MAX} back, every digit", answer.shown())
    answer = await chan.call("poll", {"after": 0})
    items = [e["item"] for e in p.expect_ok(answer, "poll")["items"]]
    p.expect(
        [(i.get("mid"), i.get("ts")) for i in items] == [(INT64_MAX, INT64_MIN)],
        f"one message with mid {INT64_MAX} and ts {INT64_MIN}, every digit",
        answer.shown(),
    )
    # Just past the signed range, where a reader of unsigned 64-bit integers still takes them.
    for op, payload in (
        ("send", {**sent, "mid": INT64_MAX + 1}),
        ("send", {**sent, "ts": 2**64 - 1}),
        ("poll", {"after": INT64_MAX + 1}),
    ):
        answer = await chan.call(op, payload)
        p.expect_error(answer, "invalid_envelope", f"{op} of {orjson.dumps(payload).decode()}")
    answer = await chan.call("poll", {"after": 0})
    count = len(p.expect_ok(answer, "poll")["items"])
    p.expect(count == 1, "still one message after the refused sends", answer.shown())


@check(BOTH, "unknown_op", "an unknown op gets unknown_op, echoing the id")
async def unknown_op(p: Probe) -> None:
    chan = await p.chan()
    answer = await chan.call("no_such_op", None, rid=99)
    p.expect_error(answer, "unknown_op")
    p.expect(answer.envelope.get("id") == 99, "id 99 echoed", answer.shown())


@check(BOTH, "too_large", "a message over max_message_bytes gets too_large (413)")
async def too_large(p: Probe) -> None:
    limit = p.target.max_message_bytes
    chan = await p.chan()
    head = b'{"op":"echo","id":5,"ts":5,"payload":"'
    body = head + b"x" * (limit + 1 - len(head) - 2) + b'"}'
    answer = await chan.send_raw(body)
    p.expect_error(answer, "too_large", f"for a message of {len(body)} bytes (limit {limit})")
    if isinstance(chan, WsChannel):
        after = await chan.call("echo", "still here")
        p.expect_ok(after, "echo", "the WebSocket to stay open after too_large")


@check(BOTH, "signin", "signin needs the user's key and returns a token")
async def signin(p: Probe) -> None:
    chan = await p.chan()
    user, other = p.user("s"), p.user("s")
    answer = await chan.call("signin", {"user": user})
    p.expect_error(answer, "unauthorized", "signin without a key")
    answer = await chan.call("signin", {"user": user, "key": p.key_of(other)})
    p.expect_error(answer, "unauthorized", "signin with another user's key")
    answer = await chan.call("signin", p.signin_body(user))
    body = p.expect_ok(answer, "signin")
    p.expect(body.get("user") == user, f"user {user!r} in the reply", answer.shown())


@check(BOTH, "needs_token", "an operation that acts as a user needs a token (401)")
async def needs_token(p: Probe) -> None:
    chan = await p.chan()
    for op, payload in (("send", {"to": "x", "mid": 1, "ts": 1}), ("poll", {}), ("stats", {})):
        answer = await chan.call(op, payload)
        p.expect_error(answer, "unauthorized", f"{op!r} without a token")


@check(BOTH, "bad_token", "an unknown token or a malformed Authorization header is refused (401)")
async def bad_token(p: Probe) -> None:
    _, token = await p.signin()
    if p.transport == "rpc":
        answer = await HttpChannel(p.http, p.base_url, "not-a-token").call("heartbeat", {})
        p.expect_error(answer, "unauthorized", "heartbeat with an unknown token")
        chan = HttpChannel(p.http, p.base_url)
        body = orjson.dumps({"op": "heartbeat", "id": 1, "ts": 1, "payload": {}})
        answer = await chan.send_raw(body, {"Authorization": f"Basic {token}"})
        p.expect_error(answer, "unauthorized", "Authorization: Basic (not Bearer)")
        return
    for what, kwargs in (
        ("an unknown token", {"params": {"token": "not-a-token"}}),
        # A malformed header is refused, even beside a valid ?token=.
        (
            "Authorization: Basic",
            {"params": {"token": token}, "headers": {"Authorization": "Basic x"}},
        ),
    ):
        try:
            ws = await p.http.ws_connect(f"{p.base_url}/ws", **kwargs)
        except WSServerHandshakeError as exc:
            p.expect(
                exc.status == 401, f"{what}: HTTP 401 before the handshake", f"HTTP {exc.status}"
            )
        else:
            await ws.close()
            raise Mismatch(
                f"{what}: the handshake refused with HTTP 401", "the WebSocket was opened"
            )


@check(BOTH, "act_as_other", "a user cannot act as another, and nothing is applied")
async def act_as_other(p: Probe) -> None:
    _, token = await p.signin()
    bob, bob_token = await p.signin()
    chan = await p.chan(token)
    attempts = (
        ("send", {"user": bob, "to": bob, "mid": 1, "ts": 1, "body": "spoof"}),
        ("poll", {"user": bob}),
        ("heartbeat", {"user": bob}),
        ("publish", {"user": bob, "topic": "t", "nid": 1, "ts": 1}),
    )
    for op, payload in attempts:
        what = f"{op!r} naming user {bob!r}"
        try:
            answer = await chan.call(op, payload)
        except ChannelClosed as exc:
            raise Mismatch(
                f"{what}: a forbidden envelope, then close 1008", f"close {exc.code}"
            ) from None
        p.expect_error(answer, "forbidden", what)
        if isinstance(chan, WsChannel):
            code = await _closed_code(chan)
            p.expect(
                code == 1008,
                f"{what}: close 1008 after the envelope",
                "no close" if code is None else f"close {code}",
            )
            chan = await p.chan(token)
    inbox = await (await p.rpc(bob_token)).call("poll", {"after": 0})
    items = (inbox.payload or {}).get("items")
    p.expect(items == [], f"nothing in {bob!r}'s inbox after the refused send", inbox.shown())


async def _closed_code(chan: WsChannel) -> int | None:
    try:
        return await chan.wait_closed(2.0)
    except TimeoutError:
        return None


@check(BOTH, "unknown_user", "a message to someone who never signed in gets unknown_user (404)")
async def unknown_user(p: Probe) -> None:
    _, token = await p.signin()
    chan = await p.chan(token)
    answer = await chan.call("send", {"to": p.user("ghost"), "mid": 1, "ts": 1, "body": "x"})
    p.expect_error(answer, "unknown_user")


@check(BOTH, "inbox_cursor", "polls after a cursor return each item once, in order")
async def inbox_cursor(p: Probe) -> None:
    alice, a_token = await p.signin()
    bob, b_token = await p.signin()
    await p.send(a_token, bob, range(1, 6))
    chan = await p.chan(b_token)
    seen: list[int] = []
    after = 0
    for _ in range(5):
        answer = await chan.call("poll", {"after": after, "limit": 2})
        page = p.expect_ok(answer, "poll", f"poll after {after}")
        items = page["items"]
        if not items:
            break
        for entry in items:
            p.expect_valid(wire_schema.item_problems(entry["item"]), "inbox item")
            item = entry["item"]
            p.expect(
                item.get("type") == "message" and item.get("from") == alice,
                f"a message from {alice!r}",
                orjson.dumps(entry).decode(),
            )
            seen.append(entry["seq"])
        p.expect(len(items) <= 2, "at most limit=2 items per page", answer.shown())
        after = items[-1]["seq"]
    p.expect(seen == [1, 2, 3, 4, 5], "seq 1, 2, 3, 4, 5 exactly once, in order", f"seq {seen}")
    answer = await chan.call("poll", {"after": 5})
    page = p.expect_ok(answer, "poll", "poll after the last item")
    p.expect(page["items"] == [] and page["last"] == 5, "no items and last 5", answer.shown())
    answer = await chan.call("poll", {"after": 2, "limit": 1})
    page = p.expect_ok(answer, "poll")
    got = [e["seq"] for e in page["items"]]
    p.expect(got == [3], "seq [3] for after=2, limit=1 (a cursor can be replayed)", f"seq {got}")


@check(BOTH, "bye", "bye revokes the token it was sent with")
async def bye(p: Probe) -> None:
    _, token = await p.signin()
    chan = await p.chan(token)
    p.expect_ok(await chan.call("bye", {}), "bye")
    if "rpc" in p.target.offers:
        answer = await HttpChannel(p.http, p.base_url, token).call("heartbeat", {})
        p.expect_error(answer, "unauthorized", "heartbeat with the token after bye")
        return
    try:
        await p.ws(token)
    except WSServerHandshakeError as exc:
        p.expect(
            exc.status == 401,
            "a WebSocket with the token after bye: HTTP 401",
            f"HTTP {exc.status}",
        )
    else:
        raise Mismatch(
            "a WebSocket with the token after bye refused with HTTP 401", "it was opened"
        )


@check(BOTH, "presence", "presence is hidden outside shared rooms and online once seen")
async def presence(p: Probe) -> None:
    _, e_token = await p.signin()
    frank, f_token = await p.signin()
    chan = await p.chan(e_token)
    answer = await chan.call("presence", {"users": [frank]})
    status = p.expect_ok(answer, "presence")["status"].get(frank, {})
    p.expect(
        status.get("status") == "unknown", f"{frank!r} unknown before a shared room", answer.shown()
    )
    room = p.user("room")
    for token in (e_token, f_token):
        p.expect_ok(await (await p.rpc(token)).call("join", {"room": room}), "join")
    p.expect_ok(await (await p.rpc(f_token)).call("heartbeat", {}), "heartbeat")
    answer = await chan.call("presence", {"users": [frank]})
    status = p.expect_ok(answer, "presence")["status"].get(frank, {})
    p.expect(
        status.get("status") == "online", f"{frank!r} online after a heartbeat", answer.shown()
    )


@check(BOTH, "notifications", "publish reaches each subscriber's inbox")
async def notifications(p: Probe) -> None:
    _, g_token = await p.signin()
    _, h_token = await p.signin()
    topic = p.user("topic")
    chan = await p.chan(g_token)
    p.expect_ok(await chan.call("subscribe", {"topic": topic}), "subscribe")
    answer = await (await p.rpc(h_token)).call(
        "publish", {"topic": topic, "nid": 77, "ts": 1, "body": "n"}
    )
    body = p.expect_ok(answer, "publish")
    p.expect(body.get("recipients") == 1, "1 recipient", answer.shown())
    answer = await chan.call("poll", {"after": 0})
    items = [e["item"] for e in p.expect_ok(answer, "poll")["items"]]
    p.expect(
        any(i.get("type") == "notification" and i.get("nid") == 77 for i in items),
        "the notification nid 77 in the subscriber's inbox",
        answer.shown(),
    )


@check(BOTH, "limit", "a request past a server bound gets limit_reached (429), nothing applied")
async def limit(p: Probe) -> None:
    _, token = await p.signin()
    chan = await p.chan(token)
    names = [f"n{i}" for i in range(p.max_watch + 1)]
    answer = await chan.call("presence", {"users": names})
    p.expect_error(
        answer, "limit_reached", f"presence of {len(names)} users (max_watch {p.max_watch})"
    )
    answer = await chan.call("stats", {})
    body = p.expect_ok(answer, "stats")
    p.expect(
        isinstance(body.get("limit_refusals"), int) and body["limit_refusals"] >= 1,
        "stats counting the refusal in limit_refusals",
        answer.shown(),
    )
