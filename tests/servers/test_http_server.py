"""HTTP query values and headers are range-checked like the envelope (fuzzed), and the
WebSocket servers close with 1002 on an unmasked client frame (RFC 6455 5.1)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rawws import close_code, frame, handshake, read_frame
from serving import HOST, serve

from servers import protocol
from servers.http_server import poll_request, resume_after

pytestmark = pytest.mark.timeout(30)

MAX_ID = (1 << 63) - 1
STEP_S = 5.0
QUERY_NAMES = ("after", "wait_ms", "limit", "id", "ts", "token", "other")

texts = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.sampled_from(["", " 1", "1 ", "+1", "-0", "1_000", "١٢", "0x10", "1e3", "9" * 5000]),
)


@given(st.dictionaries(st.sampled_from(QUERY_NAMES), texts))
def test_a_poll_query_is_a_valid_envelope_or_a_400(query: dict[str, str]) -> None:
    try:
        req = poll_request(query)
    except protocol.InvalidEnvelope as exc:
        assert exc.http_status == 400
        assert len(str(exc)) < 200  # a 5000-digit value is not echoed back
        return
    for value in (req.id, req.ts, *req.payload.values()):
        assert 0 <= value <= MAX_ID
    # The reply to it can always be encoded: no 500 for any query.
    assert protocol.encode_response(protocol.ok_response(req, None))


@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_query_integers_are_the_envelope_range(n: int) -> None:
    if 0 <= n <= MAX_ID:
        assert poll_request({"after": str(n), "id": str(n)}).id == n
        assert resume_after(str(n), None) == n
    else:
        with pytest.raises(protocol.InvalidEnvelope):
            poll_request({"id": str(n)})
        with pytest.raises(protocol.InvalidEnvelope):
            resume_after(str(n), None)


@given(st.one_of(st.none(), texts), st.one_of(st.none(), texts))
def test_a_resume_point_is_in_range_or_a_400(last_event_id: str | None, after: str | None) -> None:
    try:
        value = resume_after(last_event_id, after)
    except protocol.InvalidEnvelope:
        return
    assert 0 <= value <= MAX_ID


async def _get(port: int, path: str, token: str, headers: dict[str, str] | None = None) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        asyncio.timeout(STEP_S),
        session.get(
            f"http://{HOST}:{port}{path}",
            headers={"Authorization": f"Bearer {token}", **(headers or {})},
        ) as resp,
    ):
        return resp.status, await resp.read()


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (f"/inbox?id={10**30}", None),
        ("/inbox?ts=-1", None),
        ("/inbox?id=-5", None),
        ("/inbox?after=-5", None),
        (f"/inbox?after={10**30}", None),
        ("/inbox?limit=1_000", None),
        ("/events", {"Last-Event-ID": "9" * 5000}),
        ("/events", {"Last-Event-ID": str(2**63)}),
        ("/events?after=-1", None),
    ],
)
async def test_http_out_of_range_query_values_are_400_not_500(
    path: str, headers: dict[str, str] | None
) -> None:
    async with serve("http") as (port, hub):
        token = hub.realtime.sign_in("alice")
        status, body = await _get(port, path, token, headers)
        assert status == 400, body
        assert orjson.loads(body)["error"]["code"] == "invalid_envelope"


@pytest.mark.parametrize("kind", ["ws-aiohttp", "ws-websockets"])
async def test_ws_unmasked_client_frame_is_closed_with_1002(kind: str) -> None:
    async with serve(kind) as (port, hub):
        token = hub.realtime.sign_in("alice")
        reader, writer = await handshake(port, f"/ws?token={token}")
        try:
            echo = protocol.encode_request(protocol.Request("echo", 1, 1, "hi"))
            writer.write(frame(echo))  # a proper frame is answered
            async with asyncio.timeout(STEP_S):
                opcode, payload = await read_frame(reader)
            assert opcode == 1 and protocol.decode_response(payload).payload == "hi"
            send = {"to": "alice", "mid": 1, "ts": 1}
            writer.write(
                frame(protocol.encode_request(protocol.Request("send", 2, 1, send)), masked=False)
            )
            async with asyncio.timeout(STEP_S):
                opcode, payload = await read_frame(reader)
            assert opcode == 8 and close_code(payload) == 1002
        finally:
            writer.close()
        assert hub.realtime.counters["messages"] == 0  # the unmasked frame did nothing
