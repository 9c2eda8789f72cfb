"""The lean HTTP/3 connection against hypercorn and against scripted QUIC servers.

hypercorn (``http-hypercorn`` with TLS, in the test's loop on 127.0.0.1:0) serves
HTTP/3 on the UDP port numbered like its TCP port. The scripted servers run
aioquic's own server-side machines and answer each request as a test says, so
that bad peers (frames out of order, resets, closes, garbage datagrams) are
error codes, never crashes, pending tasks or unretrieved exceptions.
"""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aioquic.buffer import Buffer
from aioquic.h3.connection import H3_ALPN, encode_frame
from aioquic.h3.connection import H3Connection as ServerH3
from aioquic.h3.events import HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import pull_quic_header
from serving import HOST, running

from loadgen import tls
from loadgen.clients.base import make_client
from loadgen.clients.errors import ClientError
from loadgen.clients.kinds import check_combination
from loadgen.lean.connect import Target
from loadgen.lean.h2bytes import HeaderTally
from loadgen.lean.h3 import JSON, H3Connection, request_headers
from loadgen.wire import WireCounter, counting, new_event_loop
from servers import protocol
from servers.common import ServerConfig

pytestmark = pytest.mark.timeout(60)

HEADERS_JSON = request_headers(content_type=JSON)
DATA_FRAME = 0x0
#: What a scripted server does with one request: (its QUIC and H3 machines, the stream);
#: it may return what to do next, 50 ms later.
Respond = Callable[[QuicConnection, ServerH3, int], "Callable[[], None] | None"]


def run(main: Callable[[], Awaitable[object]]) -> object:
    """Run ``main`` in a fresh uvloop; fail on a task left pending or an error logged."""
    loop = new_event_loop(True)
    problems: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: problems.append(context))
    try:
        result = loop.run_until_complete(asyncio.wait_for(main(), 20))
        loop.run_until_complete(asyncio.sleep(0.05))
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    finally:
        loop.close()
    gc.collect()
    assert pending == []
    assert problems == []
    return result


def echo(i: int, payload: str = "x") -> bytes:
    return protocol.encode_request(protocol.Request(op="echo", id=i, ts=i, payload=payload))


def with_length(body: bytes) -> tuple[tuple[bytes, bytes], ...]:
    return (*HEADERS_JSON, (b"content-length", b"%d" % len(body)))


@pytest.fixture
def certs(tmp_path: Path) -> Iterator[tls.CertPaths]:
    paths = tls.make_certificates(tmp_path / "tls")
    tls.configure_client(paths.ca, "1.3")
    try:
        yield paths
    finally:
        tls.configure_client(None)


# -- against hypercorn ------------------------------------------------------------------


def test_exchanges_with_hypercorn_over_quic(certs: tls.CertPaths) -> None:
    config = ServerConfig(HOST, 0, tls_cert=certs.cert, tls_key=certs.key)

    async def main() -> tuple[list[Any], WireCounter, HeaderTally]:
        async with running("http-hypercorn", config=config) as server:
            target = Target.parse(f"https://{HOST}:{server.port}/rpc")
            counter, tally = WireCounter(), HeaderTally()
            conn = await H3Connection.open(target, counter, 5.0, tally)
            replies = [
                await conn.exchange(b"POST", b"/rpc", with_length(echo(i)), echo(i), 5.0)
                for i in range(3)
            ]
            # Many at once, each on its own stream, past the server's first stream limit.
            many = await asyncio.gather(
                *(
                    conn.exchange(b"POST", b"/rpc", with_length(echo(i)), echo(i), 5.0)
                    for i in range(150)
                )
            )
            conn.close()
            return replies + list(many), counter, tally

    replies, counter, tally = run(main)  # type: ignore[misc]
    assert [r.status for r in replies] == [200] * 153
    assert protocol.decode_response(replies[1].body).id == 1
    assert all(r.sent_ns <= r.received_ns for r in replies)
    assert counter.connections == 1 and counter.sent > 153 * len(echo(0))
    assert tally.requests == tally.responses == 153
    # QPACK: after the first request, the repeated fields are a few bytes each.
    assert 0 < tally.header_bytes_sent < 153 * 60


@pytest.mark.parametrize("conn_mode", ["keep-alive", "new-connection"])
def test_lean_client_speaks_http3(certs: tls.CertPaths, conn_mode: str) -> None:
    config = ServerConfig(HOST, 0, tls_cert=certs.cert, tls_key=certs.key)

    async def main() -> tuple[list[int], WireCounter]:
        async with running("http-hypercorn", config=config) as server:
            url = f"https://{HOST}:{server.port}"
            client = make_client("http", "lean", conn_mode, url, 5.0, http_version="3")
            counter = WireCounter()
            with counting(counter):
                await client.connect()
                statuses = [(await client.request(echo(i)))[0] for i in range(4)]
                await client.close()
            return statuses, counter

    statuses, counter = run(main)  # type: ignore[misc]
    assert statuses == [200] * 4
    assert counter.connections == (1 if conn_mode == "keep-alive" else 4)


def test_hypercorn_without_tls_serves_no_quic() -> None:
    async def main() -> bool:
        async with running("http-hypercorn") as server:
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                probe.bind((HOST, server.port))  # the UDP twin is free: nothing listens
                return True
            except OSError:
                return False
            finally:
                probe.close()

    assert run(main) is True


def test_only_the_lean_client_speaks_http3() -> None:
    assert check_combination("http", "lean", "keep-alive", http_version="3") is None
    assert "HTTP/3" in (check_combination("http", "httpx", "keep-alive", http_version="3") or "")


def test_quic_needs_tls_13(certs: tls.CertPaths) -> None:
    tls.configure_client(certs.ca, "1.2")
    with pytest.raises(RuntimeError, match=r"TLS 1\.3"):
        tls.client_quic(("h3",), HOST)


# -- scripted QUIC servers ------------------------------------------------------------------


class ScriptedServer(asyncio.DatagramProtocol):
    """An aioquic server on 127.0.0.1:0 answering each request with ``respond``."""

    def __init__(self, certs: tls.CertPaths, respond: Respond) -> None:
        self.config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
        self.config.load_cert_chain(certs.cert, certs.key)
        self.respond = respond
        self.conns: dict[Any, tuple[QuicConnection, ServerH3]] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        loop = asyncio.get_running_loop()
        if addr not in self.conns:
            header = pull_quic_header(Buffer(data=data), host_cid_length=8)
            quic = QuicConnection(
                configuration=self.config,
                original_destination_connection_id=header.destination_cid,
            )
            self.conns[addr] = (quic, ServerH3(quic))
        quic, h3 = self.conns[addr]
        quic.receive_datagram(data, addr, now=loop.time())
        while (event := quic.next_event()) is not None:
            for h3_event in h3.handle_event(event):
                if isinstance(h3_event, HeadersReceived):
                    self.requests += 1
                    later = self.respond(quic, h3, h3_event.stream_id)
                    if later is not None:
                        loop.call_later(0.05, self.later, later, quic, addr)
        self.flush(quic, addr)

    def later(self, action: Callable[[], None], quic: QuicConnection, addr: Any) -> None:
        action()
        self.flush(quic, addr)

    def flush(self, quic: QuicConnection, addr: Any) -> None:
        assert self.transport is not None
        for data, _ in quic.datagrams_to_send(now=asyncio.get_running_loop().time()):
            self.transport.sendto(data, addr)


async def scripted(certs: tls.CertPaths, respond: Respond) -> tuple[Any, Target]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: ScriptedServer(certs, respond), local_addr=(HOST, 0)
    )
    port = transport.get_extra_info("sockname")[1]
    return transport, Target.parse(f"https://{HOST}:{port}/rpc")


def ok(_quic: QuicConnection, h3: ServerH3, sid: int) -> None:
    h3.send_headers(sid, [(b":status", b"200")])
    h3.send_data(sid, b"hi", end_stream=True)


def data_before_headers(quic: QuicConnection, _h3: ServerH3, sid: int) -> None:
    quic.send_stream_data(sid, encode_frame(DATA_FRAME, b"early"), end_stream=True)


def garbage_on_stream(quic: QuicConnection, _h3: ServerH3, sid: int) -> None:
    # A HEADERS frame whose QPACK field section cannot be decoded.
    quic.send_stream_data(sid, encode_frame(0x1, b"\xff\xff\xff\xff"), end_stream=True)


def bad_status(_quic: QuicConnection, h3: ServerH3, sid: int) -> None:
    h3.send_headers(sid, [(b":status", b"ok")], end_stream=True)


def reset(quic: QuicConnection, _h3: ServerH3, sid: int) -> None:
    quic.reset_stream(sid, 0x10C)


def reset_after_headers(quic: QuicConnection, h3: ServerH3, sid: int) -> Callable[[], None]:
    # The reset follows once the HEADERS have arrived: a RESET_STREAM in the same
    # packet would let the client drop them unread (RFC 9000 section 3.2).
    h3.send_headers(sid, [(b":status", b"200")])
    return lambda: quic.reset_stream(sid, 0x10C)


def close_connection(quic: QuicConnection, _h3: ServerH3, _sid: int) -> None:
    quic.close(error_code=0x102, reason_phrase="internal error")


def silent(_quic: QuicConnection, _h3: ServerH3, _sid: int) -> None:
    pass


BAD_PEERS = [
    # A DATA frame before any HEADERS on a response: HTTP/3's frame order is broken.
    (data_before_headers, "malformed"),
    # A field section QPACK cannot decode.
    (garbage_on_stream, "malformed"),
    # A :status that is not a number.
    (bad_status, "malformed"),
    # The server resets the stream before any of its response: it did not act on it.
    (reset, "closed"),
    # ... or after the response HEADERS: the reply was cut.
    (reset_after_headers, "truncated"),
    # The server closes the whole connection with an error of its own.
    (close_connection, "closed"),
    # No reply at all: the stream times out (and is reset).
    (silent, "timeout"),
]


@pytest.mark.parametrize(("respond", "code"), BAD_PEERS, ids=[r.__name__ for r, _ in BAD_PEERS])
def test_bad_peers_are_error_codes(certs: tls.CertPaths, respond: Respond, code: str) -> None:
    async def main() -> str:
        transport, target = await scripted(certs, respond)
        try:
            conn = await H3Connection.open(target, WireCounter(), 5.0)
            try:
                await conn.exchange(b"GET", b"/rpc", HEADERS_JSON, None, 0.5)
            except ClientError as exc:
                return exc.code
            finally:
                conn.close()
            return "no error"
        finally:
            transport.close()

    assert run(main) == code


def test_a_timed_out_stream_leaves_the_connection_usable(certs: tls.CertPaths) -> None:
    answers = iter([silent, ok])

    def respond(quic: QuicConnection, h3: ServerH3, sid: int) -> None:
        next(answers)(quic, h3, sid)

    async def main() -> tuple[str, int]:
        transport, target = await scripted(certs, respond)
        try:
            conn = await H3Connection.open(target, WireCounter(), 5.0)
            try:
                with pytest.raises(ClientError) as first:
                    await conn.exchange(b"GET", b"/rpc", HEADERS_JSON, None, 0.3)
                reply = await conn.exchange(b"GET", b"/rpc", HEADERS_JSON, None, 5.0)
            finally:
                conn.close()
            return first.value.code, reply.status
        finally:
            transport.close()

    assert run(main) == ("timeout", 200)


def test_a_cancelled_exchange_resets_only_its_stream(certs: tls.CertPaths) -> None:
    answers = iter([silent, ok])

    def respond(quic: QuicConnection, h3: ServerH3, sid: int) -> None:
        next(answers)(quic, h3, sid)

    async def main() -> tuple[int, int]:
        transport, target = await scripted(certs, respond)
        try:
            conn = await H3Connection.open(target, WireCounter(), 5.0)
            try:
                pending = asyncio.ensure_future(
                    conn.exchange(b"GET", b"/rpc", HEADERS_JSON, None, 5.0)
                )
                await asyncio.sleep(0.1)
                pending.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await pending
                reply = await conn.exchange(b"GET", b"/rpc", HEADERS_JSON, None, 5.0)
                return reply.status, conn.streams
            finally:
                conn.close()
        finally:
            transport.close()

    assert run(main) == (200, 0)


class Garbage(asyncio.DatagramProtocol):
    """Answers every datagram with bytes that are not QUIC."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(b"\x40" + bytes(range(256)) * 4, addr)  # short header, junk


def test_garbage_datagrams_are_a_handshake_timeout(certs: tls.CertPaths) -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(Garbage, local_addr=(HOST, 0))
        port = transport.get_extra_info("sockname")[1]
        try:
            await H3Connection.open(Target.parse(f"https://{HOST}:{port}/"), None, 0.5)
        except ClientError as exc:
            return exc.code
        finally:
            transport.close()
        return "no error"

    assert run(main) == "timeout"


def test_nothing_listening_is_a_connect_error(certs: tls.CertPaths) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind((HOST, 0))
    port = probe.getsockname()[1]
    probe.close()

    async def main() -> str:
        try:
            await H3Connection.open(Target.parse(f"https://{HOST}:{port}/"), None, 2.0)
        except ClientError as exc:
            return exc.code
        return "no error"

    assert run(main) == "connect_error"


def test_a_certificate_from_another_ca_is_a_connect_error(
    certs: tls.CertPaths, tmp_path: Path
) -> None:
    other = tls.make_certificates(tmp_path / "other")

    async def main() -> str:
        transport, target = await scripted(other, ok)
        try:
            await H3Connection.open(target, None, 2.0)
        except ClientError as exc:
            return exc.code
        finally:
            transport.close()
        return "no error"

    assert run(main) == "connect_error"


def test_plain_http_target_is_refused() -> None:
    async def main() -> str:
        try:
            await H3Connection.open(Target.parse(f"http://{HOST}:1/"), None, 1.0)
        except ClientError as exc:
            return exc.code
        return "no error"

    assert run(main) == "connect_error"
