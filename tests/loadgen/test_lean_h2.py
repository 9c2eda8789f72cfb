"""The lean HTTP/2 connection against hypercorn and against scripted raw servers.

hypercorn (``http-hypercorn``, in the test's loop on 127.0.0.1:0) speaks h2c with
prior knowledge; the scripted servers write hand-made frames, so that bad peers
are error codes, never crashes, pending tasks or unretrieved exceptions.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import ssl
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from serving import HOST, running

from loadgen import tls
from loadgen.clients.base import make_client
from loadgen.clients.errors import ClientError
from loadgen.clients.kinds import check_combination
from loadgen.lean.connect import Target
from loadgen.lean.h2 import JSON, H2Connection, H2Reply, request_headers
from loadgen.lean.h2bytes import PREFACE, FrameError, FrameScan, HeaderTally
from loadgen.lean.reuse import ReusedH2Connection
from loadgen.wire import WireCounter, counting, new_event_loop
from servers import protocol
from servers.common import ServerConfig
from servers.realtime.credentials import signin_payload

pytestmark = pytest.mark.timeout(60)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
HEADERS_JSON = request_headers(content_type=JSON)

# Frame types and flags (RFC 9113 section 6).
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS = 0x1, 0x4
STATUS_200 = b"\x88"  # HPACK: ":status: 200", static table entry 8


def run(main: Callable[[], Awaitable[object]]) -> object:
    """Run ``main`` in a fresh uvloop; fail on a task left pending or an error logged."""
    loop = new_event_loop(True)
    problems: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: problems.append(context))
    try:
        result = loop.run_until_complete(asyncio.wait_for(main(), 20))
        loop.run_until_complete(asyncio.sleep(0.05))  # closes and handlers finish
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    finally:
        loop.close()
    gc.collect()  # an unretrieved future exception is logged when it is collected
    assert pending == []
    assert problems == []
    return result


def echo(i: int, payload: str = "x") -> bytes:
    return protocol.encode_request(protocol.Request(op="echo", id=i, ts=i, payload=payload))


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
    )


def settings(**values: int) -> bytes:
    codes = {"max_concurrent_streams": 0x3, "initial_window_size": 0x4}
    return frame(
        SETTINGS, 0, 0, b"".join(struct.pack(">HI", codes[k], v) for k, v in values.items())
    )


def reply(stream: int, body: bytes = b"hi") -> bytes:
    return frame(HEADERS, END_HEADERS, stream, STATUS_200) + frame(DATA, END_STREAM, stream, body)


def literal(name: bytes, value: bytes) -> bytes:
    """HPACK: a literal field without indexing, new name, no Huffman coding."""
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def goaway(last: int, code: int = 0) -> bytes:
    return frame(GOAWAY, 0, 0, struct.pack(">II", last, code))


def rst(stream: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream, struct.pack(">I", code))


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, int, int, bytes]:
    head = await reader.readexactly(9)
    stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
    return head[3], head[4], stream, await reader.readexactly(int.from_bytes(head[:3], "big"))


async def read_request(
    reader: asyncio.StreamReader, seen: list[tuple[int, int, int, bytes]]
) -> int:
    """Read frames (kept in ``seen``) until one ends a stream; that stream's id."""
    while True:
        kind, flags, stream, payload = await read_frame(reader)
        seen.append((kind, flags, stream, payload))
        if kind in (DATA, HEADERS) and flags & END_STREAM:
            return stream


async def drain(reader: asyncio.StreamReader) -> None:
    """Read until the client closes."""
    while await reader.read(65536):
        pass


def scripted_h2(*answers: bytes | None, first: bytes | None = None, close: bool = False) -> Handler:
    """A server that, once the first request is in, writes ``first`` (SETTINGS by
    default); then ``answers[i]`` on the i-th request (None: close at once); then
    closes (``close``) or reads until the client has gone."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            assert await reader.readexactly(len(PREFACE)) == PREFACE
            seen: list[tuple[int, int, int, bytes]] = []
            for i, answer in enumerate(answers):
                await read_request(reader, seen)
                if i == 0:
                    writer.write(settings() if first is None else first)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
            else:
                if not close:
                    await drain(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return handler


async def scripted(handler: Handler, ssl_ctx: ssl.SSLContext | None = None) -> tuple[Any, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_ctx)
    return server, server.sockets[0].getsockname()[1]


async def one_exchange(port: int, timeout_s: float = 5.0) -> tuple[int, bytes] | str:
    conn = await H2Connection.open(Target.parse(f"http://127.0.0.1:{port}/rpc"), None, 5.0)
    try:
        got = await conn.exchange(b"POST", b"/rpc", HEADERS_JSON, echo(1), timeout_s)
        return got.status, got.body
    except ClientError as exc:
        return exc.code
    finally:
        conn.close()


def scripted_exchange(handler: Handler, timeout_s: float = 5.0) -> tuple[int, bytes] | str:
    async def main() -> tuple[int, bytes] | str:
        server, port = await scripted(handler)
        try:
            return await one_exchange(port, timeout_s)
        finally:
            server.close()
            await server.wait_closed()

    return run(main)  # type: ignore[return-value]


# -- against hypercorn ------------------------------------------------------------------


async def hypercorn_conn(server: Any, counter: WireCounter | None = None) -> H2Connection:
    return await H2Connection.open(Target.parse(server.base_url + "/rpc"), counter, 5.0)


async def call(conn: H2Connection, op: str, payload: Any, token: str | None = None) -> Any:
    headers = request_headers(
        content_type=JSON, headers=(("Authorization", f"Bearer {token}"),) if token else ()
    )
    body = protocol.encode_request(protocol.Request(op=op, id=1, ts=1, payload=payload))
    got = await conn.exchange(b"POST", b"/rpc", headers, body, 5.0)
    assert got.status == 200, got.body
    return protocol.decode_response(got.body).payload


@pytest.mark.parametrize(("mode", "connections"), [("keep-alive", 1), ("new-connection", 3)])
def test_echo_on_hypercorn(mode: str, connections: int) -> None:
    async def main() -> tuple[list[tuple[int, bytes]], WireCounter, Any]:
        async with running("http-hypercorn") as server:
            client = make_client("http", "lean", mode, server.base_url, 5.0, http_version="2")
            counter = WireCounter()
            replies = []
            with counting(counter):
                await client.connect()
                for i in range(3):
                    replies.append(await client.request(echo(i)))
                    sent_ns, received_ns = client.socket_stamps  # type: ignore[attr-defined]
                    assert 0 < sent_ns < received_ns
                await client.close()
            return replies, counter, client.tally  # type: ignore[attr-defined]

    replies, counter, tally = run(main)  # type: ignore[misc]
    for i, (status, body) in enumerate(replies):
        assert status == 200
        assert protocol.decode_response(body).id == i
    assert counter.connections == connections
    assert counter.sent > 3 * len(echo(0)) and counter.received > sum(len(b) for _, b in replies)
    assert (tally.requests, tally.responses) == (3, 3)


def test_header_bytes_are_counted_and_shrink_with_hpack() -> None:
    async def main() -> list[tuple[int, int]]:
        async with running("http-hypercorn") as server:
            conn = await hypercorn_conn(server)
            steps = []
            for i in range(3):
                before = (conn.tally.header_bytes_sent, conn.tally.header_bytes_received)
                await conn.exchange(b"POST", b"/rpc", HEADERS_JSON, echo(i), 5.0)
                steps.append(
                    (
                        conn.tally.header_bytes_sent - before[0],
                        conn.tally.header_bytes_received - before[1],
                    )
                )
            conn.close()
            return steps

    (sent1, received1), (sent2, received2), _ = run(main)  # type: ignore[misc]
    assert sent1 > sent2 > 9 and received1 > received2 > 9  # each is one HEADERS frame or more


def test_fifty_concurrent_exchanges_are_matched() -> None:
    async def main() -> tuple[list[H2Reply], int, bool]:
        async with running("http-hypercorn") as server:
            conn = await hypercorn_conn(server)
            replies = await asyncio.gather(
                *(
                    conn.exchange(b"POST", b"/rpc", HEADERS_JSON, echo(i, f"p{i}"), 5.0)
                    for i in range(50)
                )
            )
            left, still_open = conn.streams, conn.is_open
            conn.close()
            return replies, left, still_open

    replies, left, still_open = run(main)  # type: ignore[misc]
    for i, got in enumerate(replies):
        decoded = protocol.decode_response(got.body)
        assert (got.status, decoded.id, decoded.payload) == (200, i, f"p{i}")
        assert got.sent_ns < got.received_ns
    assert (left, still_open) == (0, True)


def test_requests_past_max_concurrent_streams_wait_their_turn() -> None:
    async def main() -> list[H2Reply]:
        async with running("http-hypercorn") as server:
            conn = await hypercorn_conn(server)
            replies = await asyncio.gather(
                *(conn.exchange(b"POST", b"/rpc", HEADERS_JSON, echo(i), 10.0) for i in range(250))
            )
            conn.close()
            return replies

    replies = run(main)
    assert [protocol.decode_response(r.body).id for r in replies] == list(range(250))  # type: ignore[attr-defined]


def test_large_bodies_follow_flow_control_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    # The client's receive window at the RFC default: the 300 kB reply flows only if
    # this client acknowledges what it reads; the request needs the server's updates.
    monkeypatch.setattr(H2Connection, "window", 65535)
    big = echo(7, "y" * 300_000)

    async def main() -> H2Reply:
        async with running("http-hypercorn") as server:
            conn = await hypercorn_conn(server)
            got = await conn.exchange(b"POST", b"/rpc", HEADERS_JSON, big, 10.0)
            conn.close()
            return got

    got = run(main)
    assert protocol.decode_response(got.body).payload == "y" * 300_000  # type: ignore[attr-defined]


def test_cancelled_long_poll_resets_only_its_stream() -> None:
    async def main() -> tuple[Any, bool, int]:
        async with running("http-hypercorn") as server:
            conn = await hypercorn_conn(server)
            token = (await call(conn, "signin", signin_payload("alice")))["token"]
            auth = request_headers(headers=(("Authorization", f"Bearer {token}"),))
            poll = asyncio.ensure_future(
                conn.exchange(b"GET", b"/inbox?after=0&wait_ms=5000", auth, None, 10.0)
            )
            await asyncio.sleep(0.2)
            poll.cancel()
            with pytest.raises(asyncio.CancelledError):
                await poll
            # The message the abandoned poll would have returned must not answer anything else.
            sent = {"to": "alice", "mid": 1, "ts": 1, "body": "late"}
            await call(conn, "send", sent, token)
            echoed = await call(conn, "echo", "after")
            polled = await call(conn, "poll", {"after": 0, "wait_ms": 0}, token)
            still_open, left = conn.is_open, conn.streams
            conn.close()
            return (echoed, polled["items"][0]["item"]["body"]), still_open, left

    assert run(main) == (("after", "late"), True, 0)


def test_event_stream_delivers_and_closes_without_the_connection() -> None:
    async def main() -> tuple[int, list[tuple[bytes, int]], bool, Any, bool]:
        async with running("http-hypercorn") as server:
            conn = await hypercorn_conn(server)
            token = (await call(conn, "signin", signin_payload("bob")))["token"]
            got: list[tuple[bytes, int]] = []
            arrived = asyncio.Event()

            def on_body(data: bytes, framing: int, received_ns: int) -> None:
                assert received_ns > 0
                got.append((data, framing))
                if b"hello" in b"".join(d for d, _ in got):
                    arrived.set()

            auth = request_headers(headers=(("Authorization", f"Bearer {token}"),))
            stream = await conn.open_stream(b"GET", b"/events", auth, on_body, 5.0)
            await call(conn, "send", {"to": "bob", "mid": 1, "ts": 1, "body": "hello"}, token)
            await asyncio.wait_for(arrived.wait(), 5.0)
            stream.close()
            echoed = await call(conn, "echo", "still here")
            result = stream.status, got, stream.done.is_set(), echoed, conn.is_open
            conn.close()
            return result

    status, got, done, echoed, still_open = run(main)  # type: ignore[misc]
    assert status == 200
    assert b"data: " in b"".join(d for d, _ in got)
    assert all(framing >= 9 for _, framing in got)
    assert (done, echoed, still_open) == (True, "still here", True)


# -- make_client and impossible cells --------------------------------------------------------


@pytest.mark.parametrize("mode", ["keep-alive", "new-connection"])
def test_httpx_with_http_version_2_speaks_http2(mode: str) -> None:
    async def main() -> tuple[list[int], str]:
        async with running("http-hypercorn") as server:
            client = make_client("http", "httpx", mode, server.base_url, 5.0, http_version="2")
            await client.connect()
            statuses = [(await client.request(echo(i)))[0] for i in range(2)]
            await client.close()
            return statuses, client.http_version  # type: ignore[attr-defined]

    assert run(main) == ([200, 200], "HTTP/2")


@pytest.mark.parametrize(
    ("transport", "client", "mode", "version"),
    [
        ("http", "aiohttp", "keep-alive", "2"),
        ("ws-aiohttp", "lean", "persistent", "2"),
        ("ws-websockets", "websockets", "persistent", "3"),
        ("http", "httpx", "keep-alive", "3"),
        ("http", "lean", "keep-alive", "2.0"),
    ],
)
def test_impossible_http_versions_are_refused(
    transport: str, client: str, mode: str, version: str
) -> None:
    problem = check_combination(transport, client, mode, http_version=version)
    assert problem is not None and "http_version" in problem
    with pytest.raises(ValueError, match="http_version"):
        make_client(transport, client, mode, "http://127.0.0.1:1", http_version=version)


def test_http2_cells_are_possible_with_lean_and_httpx() -> None:
    for client in ("lean", "httpx"):
        for mode in ("keep-alive", "new-connection"):
            assert check_combination("http", client, mode, http_version="2") is None
    assert check_combination("ws-aiohttp", "lean", "persistent", http_version="1.1") is None


# -- scripted peers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "answer", "close", "code"),
    [
        # An HTTP/1.1 answer to the preface.
        (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", b"", False, "malformed"),
        # A frame that HTTP/2 allows on no stream, or not on stream 0.
        (None, frame(DATA, 0, 0, b"x"), False, "malformed"),
        (None, frame(HEADERS, END_HEADERS, 0, STATUS_200), False, "malformed"),
        # Lengths the frame type forbids.
        (None, frame(PING, 0, 0, b"1234567"), False, "malformed"),
        (None, frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x01"), False, "malformed"),
        (None, frame(SETTINGS, 0, 0, b"\x00\x03\x00"), False, "malformed"),
        # Longer than the 16 KiB SETTINGS_MAX_FRAME_SIZE this client keeps.
        (None, (1 << 20).to_bytes(3, "big") + bytes([DATA, 0, 0, 0, 0, 1]), False, "malformed"),
        # Closed inside the response, and before it.
        (
            None,
            frame(HEADERS, END_HEADERS, 1, STATUS_200) + frame(DATA, 0, 1, b"p"),
            True,
            "truncated",
        ),
        (None, None, True, "closed"),
        # GOAWAY leaving the stream out (last stream 0), or keeping it and answering.
        (None, goaway(0), False, "closed"),
        (None, goaway(1) + reply(1), False, (200, b"hi")),
        # No new streams from now on, but this one is answered.
        (settings(max_concurrent_streams=0), reply(1), False, (200, b"hi")),
        # Resets: refused (not processed) or otherwise.
        (None, rst(1, 0x7), False, "closed"),
        (None, frame(HEADERS, END_HEADERS, 1, STATUS_200) + rst(1, 0x2), False, "truncated"),
        # A frame of an unknown type is ignored.
        (None, frame(0xFA, 0, 0, b"??") + reply(1), False, (200, b"hi")),
        # Response header fields that h2's checks refuse: an upper-case name, no :status,
        # a connection-specific field, a pseudo-header field after a regular one.
        (
            None,
            frame(HEADERS, END_HEADERS, 1, STATUS_200 + literal(b"Bad", b"x")),
            False,
            "malformed",
        ),
        (None, frame(HEADERS, END_HEADERS, 1, literal(b"x", b"y")), False, "malformed"),
        (
            None,
            frame(HEADERS, END_HEADERS, 1, STATUS_200 + literal(b"connection", b"close")),
            False,
            "malformed",
        ),
        (
            None,
            frame(HEADERS, END_HEADERS, 1, literal(b"x", b"y") + STATUS_200),
            False,
            "malformed",
        ),
        # Trailers with a pseudo-header field.
        (
            None,
            frame(HEADERS, END_HEADERS, 1, STATUS_200)
            + frame(HEADERS, END_HEADERS | END_STREAM, 1, STATUS_200),
            False,
            "malformed",
        ),
    ],
    ids=[
        "http1-answer",
        "data-on-stream-0",
        "headers-on-stream-0",
        "ping-of-7",
        "window-update-of-3",
        "settings-of-3",
        "oversized-frame",
        "closed-inside",
        "closed-before",
        "goaway-without-it",
        "goaway-with-it",
        "no-more-streams",
        "refused-stream",
        "reset-inside",
        "unknown-frame-type",
        "upper-case-field-name",
        "no-status",
        "connection-field",
        "pseudo-field-after-regular",
        "pseudo-field-in-trailers",
    ],
)
def test_scripted_replies_are_error_codes(
    first: bytes | None, answer: bytes | None, close: bool, code: object
) -> None:
    assert scripted_exchange(scripted_h2(answer, first=first, close=close)) == code


class RecordingTransport(asyncio.Transport):
    """Keeps every write; the test hands the connection its peer's bytes itself."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def frames_in(data: bytes) -> list[tuple[int, int, int]]:
    """(type, flags, stream) of each whole frame in ``data``."""
    found = []
    while data:
        length = int.from_bytes(data[:3], "big")
        found.append((data[3], data[4], int.from_bytes(data[5:9], "big") & 0x7FFFFFFF))
        data = data[9 + length :]
    return found


def test_each_request_is_one_write_and_repeated_replies_are_still_checked() -> None:
    # The same reply three times (its fields indexed from the second on, so decoded and
    # checked from memory), then one whose fields h2's checks refuse.
    bad = frame(HEADERS, END_HEADERS | END_STREAM, 7, STATUS_200 + literal(b"Bad", b"x"))

    async def main() -> tuple[list[list[bytes]], list[object], tuple[int, int]]:
        conn = H2Connection(None, Target.parse("http://127.0.0.1:1/rpc"), HeaderTally())
        transport = RecordingTransport()
        conn.connection_made(transport)
        conn.data_received(settings())
        writes, outcomes = [], []
        answers = [reply(sid, b"%d" % sid) for sid in (1, 3, 5)] + [bad]
        for i, answer in enumerate(answers):
            before = len(transport.writes)
            task = asyncio.ensure_future(
                conn.exchange(b"POST", b"/rpc", HEADERS_JSON, echo(i), 5.0)
            )
            await asyncio.sleep(0)
            writes.append(transport.writes[before:])
            conn.data_received(answer)
            try:
                got = await task
                outcomes.append((got.status, got.body))
            except ClientError as exc:
                outcomes.append(exc.code)
        conn.close()
        return writes, outcomes, (conn.tally.requests, conn.tally.responses)

    writes, outcomes, tally = run(main)  # type: ignore[misc]
    for sid, sent in zip((1, 3, 5, 7), writes, strict=True):
        assert len(sent) == 1  # HEADERS and the whole body in one write
        assert frames_in(sent[0]) == [(HEADERS, END_HEADERS, sid), (DATA, END_STREAM, sid)]
    assert outcomes == [(200, b"1"), (200, b"3"), (200, b"5"), "malformed"]
    assert tally == (4, 3)


def test_draining_connection_refuses_new_streams_then_closes() -> None:
    async def main() -> tuple[int, bool, str]:
        server, port = await scripted(scripted_h2(goaway(1) + reply(1)))
        conn = await H2Connection.open(Target.parse(f"http://127.0.0.1:{port}/rpc"), None, 5.0)
        got = await conn.exchange(b"POST", b"/rpc", HEADERS_JSON, echo(1), 5.0)
        still_open = conn.is_open
        with pytest.raises(ClientError) as refused:
            await conn.exchange(b"POST", b"/rpc", HEADERS_JSON, echo(2), 5.0)
        conn.close()
        server.close()
        await server.wait_closed()
        return got.status, still_open, refused.value.code

    assert run(main) == (200, False, "closed")


def test_silent_server_times_out_and_resets_only_that_stream() -> None:
    seen: list[tuple[int, int, int, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Answers a request whose body says "fast"; never the others.
        try:
            await reader.readexactly(len(PREFACE))
            writer.write(settings())
            bodies: dict[int, bytes] = {}
            while True:
                kind, flags, stream, payload = await read_frame(reader)
                seen.append((kind, flags, stream, payload))
                if kind == DATA:
                    bodies[stream] = bodies.get(stream, b"") + payload
                    if flags & END_STREAM and b"fast" in bodies[stream]:
                        writer.write(reply(stream, b"quick"))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> tuple[str, tuple[int, bytes], bool]:
        server, port = await scripted(handler)
        conn = await H2Connection.open(Target.parse(f"http://127.0.0.1:{port}/rpc"), None, 5.0)
        try:
            await conn.exchange(b"POST", b"/rpc", HEADERS_JSON, echo(1, "slow"), 0.3)
            slow = "answered"
        except ClientError as exc:
            slow = exc.code
        fast = await conn.exchange(b"POST", b"/rpc", HEADERS_JSON, echo(2, "fast"), 5.0)
        still_open = conn.is_open
        conn.close()
        server.close()
        await server.wait_closed()
        return slow, (fast.status, fast.body), still_open

    assert run(main) == ("timeout", (200, b"quick"), True)
    cancels = [(stream, payload) for kind, _, stream, payload in seen if kind == RST_STREAM]
    assert cancels == [(1, struct.pack(">I", 0x8))]  # CANCEL, on the slow stream only


def test_concurrent_streams_all_fail_malformed_together() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readexactly(len(PREFACE))
            writer.write(settings())
            seen: list[tuple[int, int, int, bytes]] = []
            for _ in range(3):
                await read_request(reader, seen)
            writer.write(frame(DATA, 0, 0, b"bad"))
            await drain(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> list[object]:
        server, port = await scripted(handler)
        conn = await H2Connection.open(Target.parse(f"http://127.0.0.1:{port}/rpc"), None, 5.0)
        results = await asyncio.gather(
            *(conn.exchange(b"POST", b"/rpc", HEADERS_JSON, echo(i), 5.0) for i in range(3)),
            return_exceptions=True,
        )
        still_open = conn.is_open
        conn.close()
        server.close()
        await server.wait_closed()
        return [r.code if isinstance(r, ClientError) else r for r in results] + [still_open]

    assert run(main) == ["malformed", "malformed", "malformed", False]


def test_max_concurrent_streams_of_one_serialises_requests() -> None:
    most = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Each request is answered 50 ms after it ends; meanwhile its next ones are read.
        nonlocal most
        open_now = 0
        answers: list[asyncio.Task[None]] = []

        async def answer(stream: int) -> None:
            nonlocal open_now
            await asyncio.sleep(0.05)
            open_now -= 1
            writer.write(reply(stream, b"%d" % stream))

        try:
            await reader.readexactly(len(PREFACE))
            writer.write(settings(max_concurrent_streams=1))
            while True:
                kind, flags, stream, _ = await read_frame(reader)
                if kind == HEADERS:
                    open_now += 1
                    most = max(most, open_now)
                if kind in (DATA, HEADERS) and flags & END_STREAM:
                    answers.append(asyncio.ensure_future(answer(stream)))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            await asyncio.gather(*answers)
            writer.close()

    async def main() -> list[object]:
        server, port = await scripted(handler)
        conn = await H2Connection.open(Target.parse(f"http://127.0.0.1:{port}/rpc"), None, 5.0)
        await asyncio.sleep(0.1)  # the server's SETTINGS are in
        calls = [
            asyncio.ensure_future(conn.exchange(b"POST", b"/rpc", HEADERS_JSON, echo(i), 5.0))
            for i in range(5)
        ]
        await asyncio.sleep(0.01)
        calls[2].cancel()  # waiting for a free stream: it never takes one
        replies = await asyncio.gather(*calls, return_exceptions=True)
        left = conn.streams
        conn.close()
        server.close()
        await server.wait_closed()
        return [r.body if isinstance(r, H2Reply) else type(r).__name__ for r in replies] + [left]

    assert run(main) == [b"1", b"3", "CancelledError", b"5", b"7", 0]
    assert most == 1


def test_event_stream_cut_by_the_server_is_truncated() -> None:
    events = frame(HEADERS, END_HEADERS, 1, STATUS_200) + frame(DATA, 0, 1, b"data: a\n\n")

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readexactly(len(PREFACE))
            writer.write(settings())
            await read_request(reader, [])
            writer.write(events)
            await writer.drain()
            await asyncio.sleep(0.1)
        finally:
            writer.close()

    async def main() -> tuple[list[tuple[bytes, int]], str | None]:
        server, port = await scripted(handler)
        conn = await H2Connection.open(Target.parse(f"http://127.0.0.1:{port}/events"), None, 5.0)
        got: list[tuple[bytes, int]] = []
        stream = await conn.open_stream(
            b"GET", b"/events", (), lambda d, f, _t: got.append((d, f)), 5.0
        )
        await asyncio.wait_for(stream.done.wait(), 5.0)
        conn.close()
        server.close()
        await server.wait_closed()
        return got, stream.error.code if stream.error else None

    assert run(main) == ([(b"data: a\n\n", 9)], "truncated")


def reused(answers: int, requests: int, keep_alive: bool = True) -> tuple[list[object], int]:
    """``requests`` requests on one ReusedH2Connection to a server that answers the first
    ``answers`` requests of each connection and sends GOAWAY leaving out the next one;
    the outcomes and the connections made."""
    accepted = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        try:
            await reader.readexactly(len(PREFACE))
            writer.write(settings())
            seen: list[tuple[int, int, int, bytes]] = []
            last = 0
            for _ in range(answers):
                last = await read_request(reader, seen)
                writer.write(reply(last, b"ok"))
            await read_request(reader, seen)
            writer.write(goaway(last))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> tuple[list[object], int]:
        server, port = await scripted(handler)
        target = Target.parse(f"http://127.0.0.1:{port}/rpc")
        link = ReusedH2Connection(None, keep_alive=keep_alive, timeout_s=5)
        outcomes: list[object] = []
        for i in range(requests):
            try:
                got = await link.exchange(target, b"POST", b"/rpc", HEADERS_JSON, echo(i), 5)
                outcomes.append((got.status, got.body))
                assert link.socket_stamps == (got.sent_ns, got.received_ns)
            except ClientError as exc:
                outcomes.append(exc.code)
        link.close()
        server.close()
        await server.wait_closed()
        return outcomes, accepted

    return run(main)  # type: ignore[return-value]


def test_kept_connection_left_out_by_goaway_is_retried_once_on_a_new_one() -> None:
    assert reused(answers=1, requests=3) == ([(200, b"ok")] * 3, 3)


def test_new_connection_left_out_by_goaway_is_not_retried() -> None:
    assert reused(answers=0, requests=1, keep_alive=False) == (["closed"], 1)


# -- TLS --------------------------------------------------------------------------------------


def tls_exchange(tmp_path: Path, server_alpn: list[str]) -> tuple[int, bytes] | str:
    certs = tls.make_certificates(tmp_path / "tls")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certs.cert, certs.key)
    if server_alpn:
        server_ctx.set_alpn_protocols(server_alpn)

    async def main() -> tuple[int, bytes] | str:
        server, port = await scripted(scripted_h2(reply(1)), server_ctx)
        target = Target.parse(f"https://127.0.0.1:{port}/rpc")
        counter = WireCounter()
        try:
            conn = await H2Connection.open(target, counter, 5.0)
            got = await conn.exchange(b"POST", b"/rpc", HEADERS_JSON, echo(1), 5.0)
            conn.close()
            assert counter.sent > len(PREFACE) + len(echo(1))
            return got.status, got.body
        except ClientError as exc:
            assert "did not agree to h2 via ALPN" in exc.detail
            return exc.code
        finally:
            server.close()
            await server.wait_closed()

    tls.configure_client(certs.ca, "1.3")
    try:
        return run(main)  # type: ignore[return-value]
    finally:
        tls.configure_client(None)


def test_tls_offers_h2_via_alpn(tmp_path: Path) -> None:
    assert tls_exchange(tmp_path, ["h2", "http/1.1"]) == (200, b"hi")


@pytest.mark.parametrize("server_alpn", [[], ["http/1.1"]], ids=["no-alpn", "http1-only"])
def test_tls_server_not_choosing_h2_is_a_connect_error(
    tmp_path: Path, server_alpn: list[str]
) -> None:
    assert tls_exchange(tmp_path, server_alpn) == "connect_error"


@pytest.mark.parametrize("client", ["lean", "httpx"])
def test_http2_over_tls_to_hypercorn(tmp_path: Path, client: str) -> None:
    certs = tls.make_certificates(tmp_path / "tls")
    config = ServerConfig(HOST, 0, tls_cert=certs.cert, tls_key=certs.key)

    async def main() -> tuple[list[int], WireCounter, Any]:
        async with running("http-hypercorn", config=config) as server:
            url = f"https://{HOST}:{server.port}"
            h2_client = make_client("http", client, "keep-alive", url, 5.0, http_version="2")
            counter = WireCounter()
            with counting(counter):
                await h2_client.connect()
                statuses = [(await h2_client.request(echo(i)))[0] for i in range(3)]
                await h2_client.close()
            return statuses, counter, getattr(h2_client, "http_version", "HTTP/2")

    tls.configure_client(certs.ca, "1.3")
    try:
        statuses, counter, version = run(main)  # type: ignore[misc]
    finally:
        tls.configure_client(None)
    # The lean client refuses a server that does not pick h2 by ALPN; httpx tells.
    assert (statuses, version) == ([200, 200, 200], "HTTP/2")
    assert counter.connections == 1 and counter.sent > 3 * len(echo(0))


def test_over_tls_a_streams_frames_move_at_their_plaintext_size(tmp_path: Path) -> None:
    # The kernel counts a TLS connection as a whole; the stream's frames move out of it at
    # their plaintext size and the handshake and record overhead stay with the connection.
    certs = tls.make_certificates(tmp_path / "tls")
    config = ServerConfig(HOST, 0, tls_cert=certs.cert, tls_key=certs.key)

    async def main() -> tuple[int, tuple[int, int], tuple[int, int]]:
        async with running("http-hypercorn", config=config) as server:
            whole, own = WireCounter(), WireCounter()
            target = Target.parse(f"https://{HOST}:{server.port}/rpc")
            conn = await H2Connection.open(target, whole, 5.0)
            got = await conn.exchange(b"POST", b"/rpc", HEADERS_JSON, echo(1), 5.0, counter=own)
            conn.close()
            return got.status, whole.snapshot(), own.snapshot()

    tls.configure_client(certs.ca, "1.3")
    try:
        status, whole, own = run(main)  # type: ignore[misc]
    finally:
        tls.configure_client(None)
    assert status == 200
    # HEADERS (9-byte frame header and at least a few bytes of HPACK) and the DATA frame.
    assert own[0] >= 2 * 9 + len(echo(1)) and own[1] >= 2 * 9 + len(echo(1))
    # The server's certificate chain alone is several hundred bytes.
    assert whole[1] > 500 and whole[0] > 0


def test_alpn_contexts_leave_the_shared_one_alone(tmp_path: Path) -> None:
    certs = tls.make_certificates(tmp_path / "tls")
    tls.configure_client(certs.ca, "1.3")
    try:
        shared = tls.client_ssl()
        h2_ctx = tls.client_ssl(("h2",))
        assert h2_ctx is not shared and tls.client_ssl(("h2",)) is h2_ctx
    finally:
        tls.configure_client(None)


# -- header bytes in a frame stream ------------------------------------------------------------


@given(
    frames=st.lists(st.tuples(st.integers(0, 12), st.integers(0, 300)), min_size=1, max_size=20),
    cuts=st.lists(st.integers(0, 10_000), max_size=10),
)
def test_frame_scan_counts_header_frames_across_any_cuts(
    frames: list[tuple[int, int]], cuts: list[int]
) -> None:
    wire = b"".join(frame(kind, 0, 1, bytes(length)) for kind, length in frames)
    expected = sum(9 + length for kind, length in frames if kind in (HEADERS, 0x9))
    scan = FrameScan()
    bounds = sorted({min(c, len(wire)) for c in cuts} | {0, len(wire)})
    counted = sum(scan.feed(wire[a:b]) for a, b in itertools.pairwise(bounds))
    assert counted == expected


@given(
    frames=st.lists(
        st.tuples(st.integers(0, 9), st.integers(0, 3), st.integers(0, 300)),
        min_size=1,
        max_size=20,
    ),
    cuts=st.lists(st.integers(0, 10_000), max_size=10),
    sent=st.booleans(),
)
def test_frame_scan_moves_owned_streams_frames_to_their_counters(
    frames: list[tuple[int, int, int]], cuts: list[int], sent: bool
) -> None:
    wire = PREFACE + b"".join(frame(kind, 0, sid, bytes(n)) for kind, sid, n in frames)
    owners = {1: WireCounter(), 3: WireCounter()}
    source = WireCounter()
    source.add_plain(*((len(wire), 0) if sent else (0, len(wire))))
    scan = FrameScan(skip=len(PREFACE), sent=sent)
    scan.owners, scan.source = owners, source
    bounds = sorted({min(c, len(wire)) for c in cuts} | {0, len(wire)})
    for a, b in itertools.pairwise(bounds):
        scan.feed(wire[a:b])
    side = 0 if sent else 1
    for sid, counter in owners.items():
        expected = sum(9 + n for _, s, n in frames if s == sid)
        assert counter.snapshot()[side] == expected and counter.snapshot()[1 - side] == 0
    # What stays with the connection: the preface, stream 0 and streams nobody owns.
    rest = len(PREFACE) + sum(9 + n for _, s, n in frames if s not in owners)
    assert source.snapshot()[side] == rest


def test_frame_scan_checks_a_peer_preface_and_frame_lengths() -> None:
    assert (
        FrameScan(limit=16384).feed(settings() + frame(HEADERS, END_HEADERS, 1, STATUS_200)) == 10
    )
    with pytest.raises(FrameError, match="not SETTINGS"):
        FrameScan(limit=16384).feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(FrameError, match="over the 16384"):
        FrameScan(limit=16384).feed(settings() + (20000).to_bytes(3, "big") + bytes(6))


def test_request_headers_refuse_what_http2_forbids() -> None:
    assert request_headers(content_type=JSON, headers=(("X-Id", "7"),)) == (
        (b"content-type", b"application/json"),
        (b"x-id", b"7"),
    )
    for bad in (("Connection", "close"), ("Authorization", "Bearer x\r\nEvil: 1"), (":path", "/")):
        with pytest.raises(ValueError):
            request_headers(headers=(bad,))
