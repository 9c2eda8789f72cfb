"""hypercorn's HTTP/2 (:mod:`servers.asgi_hypercorn`): h2c with prior knowledge on plain
TCP, ``h2`` picked by ALPN over TLS (HTTP/1.1 for a client that offers only that), and
connections kept for as long as the client keeps them, as every rtbench server does.

The HTTP/2 side is driven with the ``h2`` state machine over a plain socket in a thread,
so what is checked is the server, not a client library's fallback.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import ssl
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import orjson
import pytest
from serving import HOST, running

from loadgen.tls import make_certificates
from servers.common import ServerConfig

pytestmark = pytest.mark.timeout(60)

STEP_S = 5.0
ECHO = orjson.dumps({"op": "echo", "id": 7, "ts": 1, "payload": {"x": "y"}})


def h2_echo(sock: socket.socket | ssl.SSLSocket, authority: str, scheme: str) -> tuple[str, dict]:
    """POST ECHO on stream 1 over HTTP/2; returns (``:status``, decoded reply)."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    headers = [
        (":method", "POST"),
        (":path", "/rpc"),
        (":scheme", scheme),
        (":authority", authority),
        ("content-type", "application/json"),
        ("content-length", str(len(ECHO))),
    ]
    conn.send_headers(1, headers)
    conn.send_data(1, ECHO, end_stream=True)
    sock.sendall(conn.data_to_send())
    status, body = "", b""
    while True:
        data = sock.recv(65536)
        assert data, "the server closed the connection before the reply ended"
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                status = dict(event.headers)[b":status"].decode()
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, 1)
            elif isinstance(event, h2.events.StreamEnded):
                return status, orjson.loads(body)
        sock.sendall(conn.data_to_send())


async def test_h2c_with_prior_knowledge() -> None:
    async with running("http-hypercorn") as server:

        def talk() -> tuple[str, dict]:
            with socket.create_connection((HOST, server.port), timeout=STEP_S) as sock:
                return h2_echo(sock, f"{HOST}:{server.port}", "http")

        status, reply = await asyncio.to_thread(talk)
    assert status == "200"
    assert reply["ok"] is True and reply["id"] == 7 and reply["payload"] == {"x": "y"}


def _tls_client(ca: str, alpn: list[str]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(alpn)
    return ctx


@pytest.mark.parametrize(
    ("offered", "picked"), [(["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")]
)
async def test_tls_picks_the_version_by_alpn(
    tmp_path: Path, offered: list[str], picked: str
) -> None:
    certs = make_certificates(tmp_path / "tls")
    config = ServerConfig(HOST, 0, tls_cert=certs.cert, tls_key=certs.key)
    async with running("http-hypercorn", config=config) as server:

        def talk() -> tuple[str | None, str, dict]:
            raw = socket.create_connection((HOST, server.port), timeout=STEP_S)
            with _tls_client(certs.ca, offered).wrap_socket(raw, server_hostname=HOST) as sock:
                alpn = sock.selected_alpn_protocol()
                if alpn == "h2":
                    return alpn, *h2_echo(sock, f"{HOST}:{server.port}", "https")
                conn = http.client.HTTPSConnection(HOST, server.port, timeout=STEP_S)
                conn.sock = sock
                conn.request("POST", "/rpc", ECHO, {"Content-Type": "application/json"})
                reply = conn.getresponse()
                return alpn, str(reply.status), orjson.loads(reply.read())

        alpn, status, reply = await asyncio.to_thread(talk)
    assert alpn == picked
    assert status == "200" and reply["ok"] is True


async def test_a_kept_alive_connection_outlives_a_thousand_requests() -> None:
    # hypercorn's own default closes every connection after 1000 requests.
    async with running("http-hypercorn") as server:

        def talk() -> int:
            conn = http.client.HTTPConnection(HOST, server.port, timeout=STEP_S)
            conn.connect()
            first = conn.sock
            for _ in range(1005):
                conn.request("POST", "/rpc", ECHO, {"Content-Type": "application/json"})
                reply = conn.getresponse()
                reply.read()
                assert reply.status == 200
                assert conn.sock is first, "the server closed the kept-alive connection"
            conn.close()
            return 1005

        assert await asyncio.to_thread(talk) == 1005
