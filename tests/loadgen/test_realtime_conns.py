"""The users' connections, library and lean alike, against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from loadgen.realtime.conns import HttpConn, OpFailed, WsConn
from loadgen.realtime.lean_conns import LeanHttpConn, LeanWsConn
from loadgen.wire import new_event_loop
from servers.realtime.credentials import signin_payload

pytestmark = pytest.mark.timeout(30)

Row = tuple[str, str | None]

WS = [
    pytest.param(WsConn, "websockets", id="websockets"),
    pytest.param(WsConn, "aiohttp", id="aiohttp"),
    pytest.param(LeanWsConn, "lean", id="lean"),
]
HTTP = [pytest.param(HttpConn, id="aiohttp"), pytest.param(LeanHttpConn, id="lean")]


def run(main: Any) -> Any:
    loop = new_event_loop(True)
    try:
        return loop.run_until_complete(asyncio.wait_for(main(), 20))
    finally:
        loop.close()


@pytest.mark.parametrize(("conn_cls", "client"), WS)
@pytest.mark.parametrize("kind", ["ws-aiohttp", "ws-websockets"])
def test_ws_error_reply_is_op_failed_and_its_code_is_the_row(
    serve_in_loop: Any, kind: str, conn_cls: type[WsConn], client: str
) -> None:
    rows: list[Row] = []

    async def main() -> str:
        async with serve_in_loop(kind) as server:
            ws_url = server.base_url.replace("http", "ws", 1) + "/ws"
            conn = conn_cls(
                ws_url, client, 5.0, lambda op, *r: rows.append((op, r[4])), lambda *_: None
            )
            await conn.open()
            try:
                await conn.call("signin", signin_payload("alice"))
                with pytest.raises(OpFailed) as failed:
                    await conn.call("send", {"to": "nobody", "mid": 1, "ts": 1, "body": "hi"})
                return failed.value.code
            finally:
                await conn.close()

    assert run(main) == "unknown_user"
    assert rows == [("signin", None), ("send", "error_reply:unknown_user")]


@pytest.mark.parametrize("conn_cls", HTTP)
@pytest.mark.parametrize("keep_alive", [True, False], ids=["keep-alive", "new-connection"])
def test_http_calls_and_polls_are_measured_with_their_bytes(
    serve_in_loop: Any, conn_cls: type[HttpConn], keep_alive: bool
) -> None:
    rows: list[tuple[str, int, int, str | None, int]] = []

    async def main() -> list[int]:
        async with serve_in_loop("http") as server:
            conn = conn_cls(
                server.base_url,
                keep_alive,
                5.0,
                lambda op, _s, _r, sent, received, error, items: rows.append(
                    (op, sent, received, error, items)
                ),
            )
            try:
                conn.token = (await conn.call("signin", signin_payload("bob")))["token"]
                await conn.call("send", {"to": "bob", "mid": 1, "ts": 1, "body": "to myself"})
                seqs: list[int] = []
                await conn.poll(0, 0, lambda seq, *_: seqs.append(seq), "poll")
                return seqs
            finally:
                await conn.close()

    assert run(main) == [1]
    assert [(op, error, items) for op, _s, _r, error, items in rows] == [
        ("signin", None, 0),
        ("send", None, 0),
        ("poll", None, 1),
    ]
    assert all(sent > 0 and received > 0 for _op, sent, received, _e, _i in rows)
