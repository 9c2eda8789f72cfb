"""The lean connections against scripted raw servers: bad replies are errors, not crashes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
from collections.abc import Awaitable, Callable

import pytest

from loadgen.clients.base import make_client
from loadgen.clients.errors import ClientError
from loadgen.lean.connect import Target
from loadgen.lean.http import JSON, HttpConnection, request_head, with_body
from loadgen.lean.reuse import ReusedConnection
from loadgen.lean.ws import WsConnection
from loadgen.wire import WireCounter, counting, new_event_loop

pytestmark = pytest.mark.timeout(30)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def run(main: Callable[[], Awaitable[object]]) -> object:
    loop = new_event_loop(True)
    try:
        return loop.run_until_complete(asyncio.wait_for(main(), 20))
    finally:
        loop.close()


async def scripted(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def replying(*chunks: bytes, close: bool = True) -> Handler:
    """A server that reads one request head (and its body) and writes ``chunks``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                await reader.readexactly(int(line.split(b":")[1]))
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        if close:
            writer.close()
        else:
            await asyncio.sleep(10)

    return handler


def http_exchange(handler: Handler, timeout_s: float = 5.0) -> tuple[int, bytes] | str:
    async def main() -> tuple[int, bytes] | str:
        server, port = await scripted(handler)
        target = Target.parse(f"http://127.0.0.1:{port}/rpc")
        counter = WireCounter()
        conn = await HttpConnection.open(target, counter, timeout_s)
        head = request_head("POST", target, content_type=JSON)
        try:
            return await conn.exchange(with_body(head, b"{}"), timeout_s)
        except ClientError as exc:
            return exc.code
        finally:
            conn.close()
            server.close()

    return run(main)  # type: ignore[return-value]


def test_http_reply_is_read_whole() -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    assert http_exchange(replying(reply[:20], reply[20:], close=False)) == (200, b"hello")


def test_http_chunked_reply_is_joined() -> None:
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    assert http_exchange(replying(reply, close=False)) == (200, b"abcde")


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        # Cut inside the body: the connection closes with bytes still owed.
        (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort", "truncated"),
        # Cut inside the head.
        (b"HTTP/1.1 200 OK\r\nContent-Le", "truncated"),
        # Not HTTP at all.
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "malformed"),
        # A status line with no number.
        (b"HTTP/1.1 OK\r\n\r\n", "malformed"),
        # Closed before a byte of reply.
        (b"", "closed"),
    ],
    ids=["truncated-body", "truncated-head", "not-http", "bad-status", "no-reply"],
)
def test_http_bad_replies_are_error_codes(reply: bytes, code: str) -> None:
    assert http_exchange(replying(reply)) == code


def test_http_silent_server_times_out() -> None:
    assert http_exchange(replying(close=False), timeout_s=0.3) == "timeout"


def test_http_connection_close_reply_makes_connection_unusable() -> None:
    async def main() -> tuple[bool, str]:
        reply = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
        server, port = await scripted(replying(reply, close=False))
        target = Target.parse(f"http://127.0.0.1:{port}/rpc")
        conn = await HttpConnection.open(target, None, 5)
        head = request_head("POST", target, content_type=JSON)
        await conn.exchange(with_body(head, b"{}"), 5)
        reusable = conn.reusable
        try:
            await conn.exchange(with_body(head, b"{}"), 5)
            second = "sent"
        except ClientError as exc:
            second = exc.code
        conn.close()
        server.close()
        return reusable, second

    assert run(main) == (False, "closed")


def reused(answers: int, requests: int) -> tuple[list[object], int]:
    """``requests`` requests on one ReusedConnection to a server that answers the first
    ``answers`` requests of each connection and closes it on the next, before any reply
    (a kept connection's idle close racing a request); the outcomes and connections made."""
    accepted = 0
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        with contextlib.suppress(asyncio.IncompleteReadError):  # the client's last close
            for _ in range(answers):
                await read_head(reader)
                writer.write(ok)
                await writer.drain()
            await read_head(reader)
        writer.close()

    async def main() -> tuple[list[object], int]:
        server, port = await scripted(handler)
        target = Target.parse(f"http://127.0.0.1:{port}/inbox")
        link = ReusedConnection(None, keep_alive=True, timeout_s=5)
        request = request_head("GET", target)
        outcomes: list[object] = []
        for _ in range(requests):
            try:
                outcomes.append(await link.exchange(target, request, 5))
            except ClientError as exc:
                outcomes.append(exc.code)
        link.close()
        server.close()
        return outcomes, accepted

    return run(main)  # type: ignore[return-value]


def test_kept_connection_closed_by_the_server_is_retried_once_on_a_new_one() -> None:
    # Requests 2 and 3 each meet the close on a kept connection and succeed on a new one.
    assert reused(answers=1, requests=3) == ([(200, b"ok")] * 3, 3)


def test_new_connection_closed_before_a_reply_is_not_retried() -> None:
    assert reused(answers=0, requests=1) == (["closed"], 1)


def test_request_head_refuses_header_injection() -> None:
    target = Target.parse("http://127.0.0.1:1/rpc")
    with pytest.raises(ValueError, match="line break"):
        request_head("GET", target, headers=(("Authorization", "Bearer x\r\nEvil: 1"),))


# -- WebSocket ----------------------------------------------------------------------------


def ws_server(after_handshake: bytes, status: bytes = b"101 Switching Protocols") -> Handler:
    """Accept the upgrade (or answer ``status``); on the client's first frame write
    ``after_handshake`` raw."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        if status.startswith(b"101"):
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
        else:
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        if status.startswith(b"101"):
            await reader.read(1024)  # the client's first frame: answer it with the script
        writer.write(after_handshake)
        await writer.drain()
        await asyncio.sleep(1)
        writer.close()

    return handler


def ws_request(handler: Handler) -> tuple[int, bytes] | str:
    async def main() -> tuple[int, bytes] | str:
        server, port = await scripted(handler)
        client = make_client("ws-aiohttp", "lean", "persistent", f"http://127.0.0.1:{port}", 2.0)
        try:
            with counting(WireCounter()):
                await client.connect()
                return await client.request(b'{"op":"echo","id":1,"ts":1,"payload":""}')
        except ClientError as exc:
            return exc.code
        finally:
            await client.close()
            server.close()

    return run(main)  # type: ignore[return-value]


def test_ws_text_frame_is_the_reply() -> None:
    # An unmasked text frame "hi" from the server, once the request has arrived.
    assert ws_request(ws_server(b"\x81\x02hi")) == (200, b"hi")


def test_ws_fragmented_message_is_joined() -> None:
    frames = b"\x01\x02he" + b"\x80\x03llo"
    assert ws_request(ws_server(frames)) == (200, b"hello")


def test_ws_masked_server_frame_is_malformed() -> None:
    # RFC 6455: a server must not mask its frames; the client fails the connection.
    masked = b"\x81\x82\x00\x00\x00\x00hi"
    assert ws_request(ws_server(masked)) == "malformed"


def test_ws_truncated_frame_then_close_is_closed() -> None:
    assert ws_request(ws_server(b"\x81\x7e\x01")) == "closed"


def test_ws_refused_handshake_is_connect_error() -> None:
    assert ws_request(ws_server(b"", status=b"401 Unauthorized")) == "connect_error"


def test_ws_server_close_frame_fails_the_pending_request() -> None:
    assert ws_request(ws_server(b"\x88\x02\x03\xe8")) == "closed"


def test_ws_handshake_bytes_are_counted() -> None:
    async def main() -> tuple[int, int, int]:
        server, port = await scripted(ws_server(b"\x81\x02hi"))
        counter = WireCounter()
        got: list[bytes] = []
        conn = await WsConnection.open(
            f"ws://127.0.0.1:{port}/ws", counter, 2.0, lambda d, _t, _n: got.append(d)
        )
        sent_frame = conn.send_text(b"abc")
        await asyncio.sleep(0.2)
        await conn.close(1.0)
        server.close()
        assert got == [b"hi"]
        return counter.connections, sent_frame, counter.sent

    connections, sent_frame, total_sent = run(main)  # type: ignore[misc]
    assert connections == 1
    assert sent_frame == 2 + 4 + 3  # header, mask, payload
    assert total_sent > sent_frame  # the upgrade request counts too
