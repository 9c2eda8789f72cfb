"""WebSocket over HTTP/2 (RFC 8441) on the lean client, against hypercorn and scripted peers.

hypercorn (``ws-hypercorn``, in the test's loop on 127.0.0.1:0, without its ping task,
which would hold a closed WebSocket's connection for the whole graceful timeout) takes
the extended CONNECT; the scripted servers speak HTTP/2 through ``h2`` and then do
what a broken peer does, so that every failure is an error code, never a crash, a
pending task or an unretrieved exception.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
from h2.settings import SettingCodes, Settings
from serving import HOST, running

from loadgen import tls
from loadgen.cellspec import CellRun
from loadgen.clients.base import make_client
from loadgen.clients.errors import ClientError
from loadgen.clients.lean_client import LeanWSH2Client
from loadgen.engine import run_cell
from loadgen.events import EventHook
from loadgen.lean.ws_h2 import WsH2Connection
from loadgen.recorder import RawRecorder
from loadgen.wire import WireCounter, counting, new_event_loop
from servers import protocol
from servers.common import ServerConfig

pytestmark = pytest.mark.timeout(60)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
NO_PINGS = {"ws_ping_interval_s": 0.0}


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


def ws_client(base_url: str, timeout_s: float = 5.0) -> LeanWSH2Client:
    client = make_client("ws-hypercorn", "lean", "persistent", base_url, timeout_s, "2")
    assert isinstance(client, LeanWSH2Client)
    return client


# -- against hypercorn ------------------------------------------------------------------


def echo_on_hypercorn(config: ServerConfig, scheme: str, payloads: list[str]) -> Any:
    async def main() -> Any:
        async with running("ws-hypercorn", config=config) as server:
            client = ws_client(f"{scheme}://{HOST}:{server.port}")
            counter = WireCounter()
            replies = []
            with counting(counter):
                await client.connect()
                conn = client._conn
                assert isinstance(conn, WsH2Connection)
                for i, payload in enumerate(payloads):
                    status, body = await client.request(echo(i, payload))
                    sent_ns, received_ns = client.socket_stamps
                    assert 0 < sent_ns < received_ns
                    replies.append((status, protocol.decode_response(body)))
                await client.close()
            return replies, counter, conn

    return run(main)


def test_echo_round_trips_over_h2c() -> None:
    replies, counter, conn = echo_on_hypercorn(ServerConfig(HOST, 0, **NO_PINGS), "http", ["a"] * 3)  # type: ignore[misc]
    assert [(s, r.id, r.payload) for s, r in replies] == [(200, i, "a") for i in range(3)]
    assert (conn.close_code, conn.failure, conn.closed.is_set()) == (1000, None, True)
    assert counter.connections == 1
    # Every byte is counted: requests and replies, and the HTTP/2 framing around them.
    assert counter.sent > 3 * (len(echo(0, "a")) + 6 + 9)
    assert counter.received > sum(len(protocol.encode_response(r)) for _, r in replies)
    # One CONNECT and its reply; masked client frames (6-byte headers) in 9-byte DATA headers.
    assert (conn.tally.requests, conn.tally.responses) == (1, 1)
    assert conn.tally.header_bytes_sent > 9 and conn.tally.header_bytes_received > 9
    assert conn.framing_sent >= 3 * (6 + 9) and conn.framing_received >= 3 * (2 + 9)


def test_many_and_large_messages_follow_flow_control() -> None:
    # 300 kB is past both HTTP/2 windows' 64 kB default: the client's and the server's.
    payloads = [f"m{i}" for i in range(200)] + ["y" * 300_000]
    replies, _, conn = echo_on_hypercorn(ServerConfig(HOST, 0, **NO_PINGS), "http", payloads)  # type: ignore[misc]
    assert [r.payload for _, r in replies] == payloads
    assert conn.failure is None


def test_echo_over_tls_picks_h2_by_alpn(tmp_path: Path) -> None:
    certs = tls.make_certificates(tmp_path / "tls")
    config = ServerConfig(HOST, 0, tls_cert=certs.cert, tls_key=certs.key, **NO_PINGS)
    tls.configure_client(certs.ca, "1.3")
    try:
        replies, counter, conn = echo_on_hypercorn(config, "https", ["t"] * 3)  # type: ignore[misc]
    finally:
        tls.configure_client(None)
    assert [r.payload for _, r in replies] == ["t"] * 3
    assert counter.connections == 1 and counter.sent > 3 * len(echo(0, "t"))
    assert conn.close_code == 1000


def test_engine_runs_a_websocket_over_http2_cell() -> None:
    async def main() -> list[Any]:
        async with running("ws-hypercorn", config=ServerConfig(HOST, 0, **NO_PINGS)) as server:
            raw = RawRecorder()
            hook = EventHook()
            hook.add_listener(raw.record)
            spec = CellRun(
                cell="ws-hypercorn/lean/persistent+h2",
                transport="ws-hypercorn",
                client="lean",
                conn_mode="persistent",
                base_url=server.base_url,
                connections=2,
                duration_s=0.4,
                warmup_s=0,
                timeout_s=2,
                http_version="2",
            )
            await run_cell(spec, hook)
            return raw.rows

    rows = run(main)
    connects = [r for r in rows if r.kind == "connect"]  # type: ignore[attr-defined]
    requests = [r for r in rows if r.kind == "request"]  # type: ignore[attr-defined]
    assert len(connects) == 2 and all(r.ok for r in connects)
    assert requests and all(r.ok for r in requests), {r.error for r in requests}
    assert all(r.bytes_sent > 0 and r.bytes_received > 0 for r in requests)


# -- scripted peers -----------------------------------------------------------------------

#: A server's close frame (1001, going away), unmasked.
CLOSE_1001 = b"\x88\x02\x03\xe9"
#: A server frame with reserved bits set: not a WebSocket frame.
BAD_FRAME = b"\xf1\x00"


def scripted(
    action: str, status: int = 200, connect_protocol: bool = True, settings: bool = True
) -> Handler:
    """A server that answers the CONNECT with ``status`` and, once the first message
    is in, does ``action``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        config = h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_inbound_headers=False
        )
        conn = h2.connection.H2Connection(config=config)
        if connect_protocol:
            conn.local_settings = Settings(
                client=False, initial_values={SettingCodes.ENABLE_CONNECT_PROTOCOL: 1}
            )
        conn.initiate_connection()
        if action == "not-http2":
            writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        elif settings:
            writer.write(conn.data_to_send())
        try:
            while data := await reader.read(65536):
                if not settings or action == "not-http2":
                    continue
                for event in conn.receive_data(data):
                    sid = getattr(event, "stream_id", 0)
                    if isinstance(event, h2.events.RequestReceived):
                        fields = [(b":status", str(status).encode())]
                        conn.send_headers(sid, fields, end_stream=status != 200)
                    elif isinstance(event, h2.events.DataReceived) and event.data:
                        if action == "cut":
                            return
                        if action == "bad-frame":
                            conn.send_data(sid, BAD_FRAME)
                        elif action == "server-close":
                            conn.send_data(sid, CLOSE_1001, end_stream=True)
                        elif action == "goaway":
                            conn.close_connection(last_stream_id=0)
                        elif action == "reset":
                            conn.reset_stream(sid)
                        elif action == "garbage":
                            writer.write(b"\x00\x00\x01\xff" + b"\x00" * 20)
                writer.write(conn.data_to_send())
        except (ConnectionError, h2.exceptions.ProtocolError):
            pass
        finally:
            writer.close()

    return handler


def outcome(handler: Handler, timeout_s: float = 2.0) -> tuple[str, str]:
    """(where it failed: ``connect`` or ``request``, the error code)."""

    async def main() -> tuple[str, str]:
        server = await asyncio.start_server(handler, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        client = ws_client(f"http://{HOST}:{port}", timeout_s)
        try:
            try:
                await client.connect()
            except ClientError as exc:
                return "connect", f"{exc.code}: {exc.detail}"
            try:
                await client.request(echo(1))
            except ClientError as exc:
                return "request", f"{exc.code}: {exc.detail}"
            return "ok", ""
        finally:
            await client.close()
            server.close()
            await server.wait_closed()

    return run(main)  # type: ignore[return-value]


BAD_PEERS = [
    pytest.param(
        scripted("echo", connect_protocol=False),
        ("connect", "connect_error", "SETTINGS_ENABLE_CONNECT_PROTOCOL"),
        id="no-extended-connect",
    ),
    pytest.param(scripted("echo", 400), ("connect", "connect_error", "HTTP 400"), id="400"),
    pytest.param(scripted("echo", 404), ("connect", "connect_error", "HTTP 404"), id="404"),
    pytest.param(scripted("not-http2"), ("connect", "malformed", "not HTTP/2"), id="not-http2"),
    pytest.param(scripted("echo", settings=False), ("connect", "timeout", "SETTINGS"), id="mute"),
    pytest.param(scripted("bad-frame"), ("request", "malformed", "reserved bits"), id="bad-frame"),
    pytest.param(scripted("server-close"), ("request", "closed", "1001"), id="server-close"),
    pytest.param(scripted("goaway"), ("request", "closed", "GOAWAY"), id="goaway"),
    pytest.param(scripted("reset"), ("request", "truncated", "reset"), id="rst-stream"),
    pytest.param(scripted("garbage"), ("request", "malformed", "not HTTP/2"), id="garbage"),
    pytest.param(scripted("cut"), ("request", "truncated", "connection closed"), id="cut"),
]


@pytest.mark.parametrize(("handler", "expected"), BAD_PEERS)
def test_bad_peers_are_error_codes(handler: Handler, expected: tuple[str, str, str]) -> None:
    where, code, words = expected
    got_where, got = outcome(handler, timeout_s=0.5 if where == "connect" else 2.0)
    assert (got_where, got.split(":")[0]) == (where, code), got
    assert words in got, got
