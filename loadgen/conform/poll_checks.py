"""Checks of ``GET /inbox`` and long polling (``rpc``).

A long poll may answer early only with items (or 401 when its token ends):
one that returns empty before ``wait_ms`` fails.
"""

from __future__ import annotations

import asyncio
import time

from loadgen.conform.channel import REPLY_TIMEOUT_S, Answer, auth_headers, decode
from loadgen.conform.checks import Probe, check

#: How long the empty long poll is held for; short, so the suite stays quick.
WAIT_MS = 800
#: How early an empty long poll may come back (timer granularity), in ms.
EARLY_SLACK_MS = 40
#: A long poll woken by a send must answer well before its wait ends.
WAKE_WAIT_MS = 8000


async def get_inbox(p: Probe, token: str | None, query: dict[str, str]) -> Answer:
    """``GET /inbox`` with ``query`` and the bearer token."""
    async with asyncio.timeout(REPLY_TIMEOUT_S + WAKE_WAIT_MS / 1000):
        async with p.http.get(
            f"{p.base_url}/inbox", params=query, headers=auth_headers(token)
        ) as resp:
            data = await resp.read()
            return Answer(resp.status, decode(data), data)


@check("rpc", "inbox_get", "GET /inbox?after=SEQ answers as the poll op does")
async def inbox_get(p: Probe) -> None:
    _, a_token = await p.signin()
    bob, b_token = await p.signin()
    await p.send(a_token, bob, [1, 2, 3])
    answer = await get_inbox(p, b_token, {"after": "1", "limit": "1", "id": "12", "ts": "34"})
    page = p.expect_ok(answer, "poll", "GET /inbox")
    p.expect(
        [e["seq"] for e in page["items"]] == [2] and page["last"] == 3,
        "seq [2] and last 3",
        answer.shown(),
    )
    env = answer.envelope
    p.expect(
        env.get("id") == 12 and env.get("ts") == 34,
        "id 12 and ts 34 from the query",
        answer.shown(),
    )
    answer = await get_inbox(p, b_token, {"after": "abc"})
    p.expect_error(answer, "invalid_envelope", "GET /inbox?after=abc")
    answer = await get_inbox(p, None, {"after": "0"})
    p.expect_error(answer, "unauthorized", "GET /inbox without a token")


@check("rpc", "long_poll_holds", f"an empty long poll is held for wait_ms ({WAIT_MS} ms)")
async def long_poll_holds(p: Probe) -> None:
    _, token = await p.signin()
    start = time.monotonic()
    answer = await get_inbox(p, token, {"after": "0", "wait_ms": str(WAIT_MS)})
    held_ms = (time.monotonic() - start) * 1000
    page = p.expect_ok(answer, "poll", "an empty long poll")
    p.expect(page["items"] == [], "no items", answer.shown())
    p.expect(
        held_ms >= WAIT_MS - EARLY_SLACK_MS,
        f"held for {WAIT_MS} ms before answering empty",
        f"answered after {held_ms:.0f} ms",
    )


@check("rpc", "long_poll_wakes", "a held long poll answers as soon as an item arrives")
async def long_poll_wakes(p: Probe) -> None:
    _, a_token = await p.signin()
    bob, b_token = await p.signin()
    start = time.monotonic()
    poll = asyncio.create_task(get_inbox(p, b_token, {"after": "0", "wait_ms": str(WAKE_WAIT_MS)}))
    await asyncio.sleep(0.2)
    p.expect(not poll.done(), "the long poll still held after 0.2 s", "it had answered")
    await p.send(a_token, bob, [9])
    answer = await poll
    took_ms = (time.monotonic() - start) * 1000
    page = p.expect_ok(answer, "poll", "the woken long poll")
    p.expect(
        [e["item"].get("mid") for e in page["items"]] == [9],
        "the message mid 9",
        answer.shown(),
    )
    p.expect(
        took_ms < WAKE_WAIT_MS / 2,
        f"an answer well before wait_ms ({WAKE_WAIT_MS} ms)",
        f"answered after {took_ms:.0f} ms",
    )
