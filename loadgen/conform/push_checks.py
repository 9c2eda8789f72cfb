"""Checks of push delivery and resume: Server-Sent Events (``sse``) and WebSocket (``ws``).

Each pushed item carries its inbox ``seq``; a stream resumed after a cursor
(``Last-Event-ID``, ``subscribe_inbox`` ``after``) must go on from the next
seq with nothing repeated or skipped.
"""

from __future__ import annotations

import contextlib

import orjson

from loadgen.conform.channel import SseChannel, WsChannel, decode
from loadgen.conform.checks import Mismatch, Probe, check
from servers import wire_schema

#: How long a check waits for each expected push, in seconds.
PUSH_WAIT_S = 5.0
#: How long a check listens for pushes that should not come.
QUIET_S = 0.3


async def sse_seqs(p: Probe, stream: SseChannel, count: int) -> list[int]:
    """The seqs of the next ``count`` events, each checked: ``id`` equals the push's seq."""
    seqs: list[int] = []
    for _ in range(count):
        try:
            event = await stream.next_event(PUSH_WAIT_S)
        except (TimeoutError, EOFError) as exc:
            raise Mismatch(f"{count} events", f"{len(seqs)} ({exc or 'timed out'})") from None
        push = decode(event.data)
        p.expect_valid(wire_schema.push_problems(push), "event's push message")
        p.expect(
            event.id == str(push["seq"]),
            "each event's id to be its push seq",
            f"id {event.id!r} for {event.data[:80]!r}",
        )
        seqs.append(push["seq"])
    return seqs


async def quiet_sse(stream: SseChannel) -> str | None:
    """The data of an event arriving within :data:`QUIET_S`, else None."""
    try:
        event = await stream.next_event(QUIET_S)
    except (TimeoutError, EOFError):
        return None
    return event.data.decode("utf-8", "replace")[:120]


@check("sse", "needs_token", "GET /events without a token gets 401")
async def sse_needs_token(p: Probe) -> None:
    stream = await SseChannel.open(p.http, p.base_url, None)
    await stream.close()
    p.expect(stream.refusal is not None, "a refusal", f"HTTP {stream.status}, a stream")
    assert stream.refusal is not None
    p.expect_error(stream.refusal, "unauthorized", "GET /events without a token")


@check("sse", "stream", "GET /events sends every inbox item as an event with id = seq")
async def sse_stream(p: Probe) -> None:
    _, a_token = await p.signin()
    bob, b_token = await p.signin()
    await p.send(a_token, bob, [1, 2, 3])
    stream = await SseChannel.open(p.http, p.base_url, b_token, token_in_query=True)
    try:
        p.expect(
            stream.status == 200 and stream.content_type.startswith("text/event-stream"),
            "HTTP 200 text/event-stream (token in ?token=)",
            f"HTTP {stream.status} {stream.content_type}",
        )
        p.expect(await sse_seqs(p, stream, 3) == [1, 2, 3], "seq 1, 2, 3", "other seqs")
        await p.send(a_token, bob, [4])
        got = await sse_seqs(p, stream, 1)
        p.expect(got == [4], "the live item seq 4", f"seq {got}")
    finally:
        await stream.close()


@check("sse", "resume", "a stream resumed with Last-Event-ID goes on from the next seq")
async def sse_resume(p: Probe) -> None:
    _, a_token = await p.signin()
    bob, b_token = await p.signin()
    await p.send(a_token, bob, [1, 2, 3, 4])
    for how, kwargs in (("Last-Event-ID: 2", {"last_event_id": "2"}), ("?after=3", {"after": 3})):
        first = 3 if "last_event_id" in kwargs else 4
        stream = await SseChannel.open(p.http, p.base_url, b_token, **kwargs)
        try:
            p.expect(stream.status == 200, f"HTTP 200 for {how}", f"HTTP {stream.status}")
            seqs = await sse_seqs(p, stream, 5 - first)
            want = list(range(first, 5))
            p.expect(seqs == want, f"seq {want} after {how}", f"seq {seqs}")
            extra = await quiet_sse(stream)
            p.expect(extra is None, f"nothing more after seq 4 ({how})", f"another event: {extra}")
        finally:
            await stream.close()


async def ws_seqs(p: Probe, ws: WsChannel, count: int) -> list[int]:
    """The seqs of the next ``count`` pushes on ``ws``, each checked against the schema."""
    seqs: list[int] = []
    for _ in range(count):
        try:
            push = await ws.next_push(PUSH_WAIT_S)
        except TimeoutError:
            raise Mismatch(f"{count} pushes", f"{len(seqs)}: seq {seqs}") from None
        p.expect_valid(wire_schema.push_problems(push), "push message")
        seqs.append(push["seq"])
    return seqs


async def quiet_ws(ws: WsChannel) -> str | None:
    """A push arriving within :data:`QUIET_S`, shown, else None."""
    with contextlib.suppress(TimeoutError):
        return orjson.dumps(await ws.next_push(QUIET_S)).decode()[:120]
    return None


@check("ws", "push_resume", "subscribe_inbox replays after its cursor, pushes live items, resumes")
async def ws_push_resume(p: Probe) -> None:
    _, a_token = await p.signin()
    bob, b_token = await p.signin()
    await p.send(a_token, bob, [1, 2, 3])
    ws = await p.ws(b_token)
    answer = await ws.call("subscribe_inbox", {"after": 0})
    body = p.expect_ok(answer, "subscribe_inbox")
    p.expect(
        body.get("last") == 3 and body.get("gap") is False, "last 3, gap false", answer.shown()
    )
    got = await ws_seqs(p, ws, 3)
    p.expect(got == [1, 2, 3], "the replay seq 1, 2, 3", f"seq {got}")
    await p.send(a_token, bob, [4])
    got = await ws_seqs(p, ws, 1)
    p.expect(got == [4], "the live push seq 4", f"seq {got}")
    await ws.close()
    await p.send(a_token, bob, [5, 6])
    again = await p.ws(b_token)
    answer = await again.call("subscribe_inbox", {"after": 4})
    p.expect_ok(answer, "subscribe_inbox", "resubscribing after 4")
    got = await ws_seqs(p, again, 2)
    p.expect(got == [5, 6], "seq 5, 6 after reconnecting with after=4", f"seq {got}")
    extra = await quiet_ws(again)
    p.expect(extra is None, "nothing more after seq 6", f"another push: {extra}")


@check("ws", "signin_binds", "signin on a WebSocket binds it: pushes then flow without a token")
async def ws_signin_binds(p: Probe) -> None:
    _, a_token = await p.signin()
    bob = p.user()
    ws = await p.ws()
    p.expect_ok(await ws.call("signin", p.signin_body(bob)), "signin")
    p.expect_ok(await ws.call("subscribe_inbox", {"after": 0}), "subscribe_inbox")
    await p.send(a_token, bob, [1])
    got = await ws_seqs(p, ws, 1)
    p.expect(got == [1], "seq 1 pushed to the signed-in socket", f"seq {got}")
