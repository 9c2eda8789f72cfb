"""granian (:mod:`servers.asgi_granian`): the ASGI application embedded in this process.

In the test's loop on 127.0.0.1:0: echo over POST /rpc and GET /ws, an SSE event,
a held long poll woken by a message, a WebSocket push, a kept-alive connection closed
after ``keepalive_timeout_s``, a held long poll cut when the server stops, and TLS.
As ``python -m servers``: the ready line (no pings on it), no worker processes, the
counters at SIGTERM, and the TLS cap it refuses. The conformance suite runs on both
kinds in ``test_asgi_app``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import ssl
import sys
import time
from pathlib import Path

import aiohttp
import orjson
import psutil
import pytest
from serving import HOST, running

from loadgen.tls import make_certificates
from servers.asgi_granian import GRACE_S, liveness, refusal
from servers.common import SHUTDOWN_TIMEOUT, ServerConfig, parse_ready_line, parse_stats_line
from servers.realtime.credentials import signin_payload

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
STEP_S = 5.0


def envelope(op: str, payload: object, rid: int = 1) -> bytes:
    return orjson.dumps({"op": op, "id": rid, "ts": 0, "payload": payload})


async def rpc(http: aiohttp.ClientSession, url: str, body: bytes, token: str = "") -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(f"{url}/rpc", data=body, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        reply: dict = await resp.json()
    return reply


async def signin(http: aiohttp.ClientSession, url: str, user: str) -> str:
    reply = await rpc(http, url, envelope("signin", signin_payload(user)))
    token: str = reply["payload"]["token"]
    return token


async def send(http: aiohttp.ClientSession, url: str, token: str, to: str, body: str) -> None:
    reply = await rpc(
        http, url, envelope("send", {"to": to, "mid": 1, "ts": 1, "body": body}), token
    )
    assert reply["ok"] is True, reply


async def test_echo_over_http_and_websocket() -> None:
    async with running("http-granian") as server, aiohttp.ClientSession() as http:
        reply = await rpc(http, server.base_url, envelope("echo", {"x": "y"}, rid=7))
        assert reply == {"op": "echo", "id": 7, "ts": 0, "ok": True, "payload": {"x": "y"}}
        token = await signin(http, server.base_url, "ann")
        async with http.ws_connect(f"{server.base_url}/ws?token={token}") as ws:
            await ws.send_str(envelope("echo", "hi", rid=8).decode())
            msg = await ws.receive(timeout=STEP_S)
            assert msg.type is aiohttp.WSMsgType.TEXT
            assert orjson.loads(msg.data)["payload"] == "hi"


async def test_sse_long_poll_and_websocket_push_deliver_a_message() -> None:
    async with running("ws-granian") as server, aiohttp.ClientSession() as http:
        url = server.base_url
        ann = await signin(http, url, "ann")
        bob = await signin(http, url, "bob")
        # A long poll held on bob's empty inbox answers when ann's message arrives.
        auth = {"Authorization": f"Bearer {bob}"}
        poll = asyncio.ensure_future(http.get(f"{url}/inbox?after=0&wait_ms=10000", headers=auth))
        await asyncio.sleep(0.2)
        assert not poll.done()
        t0 = time.monotonic()
        await send(http, url, ann, "bob", "one")
        async with asyncio.timeout(STEP_S):
            resp = await poll
        page = (await resp.json())["payload"]
        assert [item["seq"] for item in page["items"]] == [1]
        assert time.monotonic() - t0 < 2.0
        # The same inbox as an event stream, and as WebSocket pushes.
        events = await http.get(f"{url}/events?token={bob}")
        assert events.content_type == "text/event-stream"
        async with http.ws_connect(f"{url}/ws?token={bob}") as ws:
            await ws.send_str(envelope("subscribe_inbox", {"after": 1}).decode())
            reply = orjson.loads((await ws.receive(timeout=STEP_S)).data)
            assert reply["ok"] is True and reply["payload"]["last"] == 1
            await send(http, url, ann, "bob", "two")
            push = orjson.loads((await ws.receive(timeout=STEP_S)).data)
            assert push["seq"] == 2
        async with asyncio.timeout(STEP_S):
            first = await events.content.readuntil(b"\n\n")
            second = await events.content.readuntil(b"\n\n")
        assert first.startswith(b"id: 1\n") and second.startswith(b"id: 2\n")
        events.release()


async def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive_timeout() -> None:
    config = ServerConfig(HOST, 0, keepalive_timeout_s=1.0)
    async with running("http-granian", config=config) as server:

        def idle() -> tuple[bytes, float]:
            with socket.create_connection((HOST, server.port), timeout=STEP_S) as sock:
                body = envelope("echo", 1)
                head = b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
                sock.sendall(head + body)
                answer = sock.recv(65536)
                assert answer.startswith(b"HTTP/1.1 200"), answer
                t0 = time.monotonic()
                return sock.recv(65536), time.monotonic() - t0

        rest, waited = await asyncio.to_thread(idle)
    assert rest == b""  # closed by the server
    assert 0.5 < waited < 3.0


async def test_a_held_long_poll_does_not_keep_the_server_from_stopping() -> None:
    async with aiohttp.ClientSession() as http:
        async with running("http-granian") as server:
            token = await signin(http, server.base_url, "ann")
            poll = asyncio.ensure_future(
                http.get(
                    f"{server.base_url}/inbox?after=0&wait_ms=20000",
                    headers={"Authorization": f"Bearer {token}"},
                )
            )
            await asyncio.sleep(0.2)
            t0 = time.monotonic()
        stopped_in = time.monotonic() - t0
        assert GRACE_S - 0.5 < stopped_in < SHUTDOWN_TIMEOUT
        with contextlib.suppress(aiohttp.ClientError):
            (await poll).release()


async def test_tls(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "tls")
    config = ServerConfig(HOST, 0, tls_cert=certs.cert, tls_key=certs.key)
    context = ssl.create_default_context(cafile=certs.ca)
    async with running("http-granian", config=config) as server, aiohttp.ClientSession() as http:
        url = f"https://{HOST}:{server.port}/rpc"
        async with http.post(url, data=envelope("echo", "tls"), ssl=context) as resp:
            assert (await resp.json())["payload"] == "tls"


def test_what_granian_refuses() -> None:
    assert refusal(ServerConfig(HOST, 0)) is None
    capped = ServerConfig(HOST, 0, tls_cert="c.pem", tls_key="k.pem", tls_version="1.2")
    assert "1.2" in (refusal(capped) or "")
    assert liveness(ServerConfig(HOST, 0))["ws_ping_interval_s"] == 0.0


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "servers",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_subprocess_serves_in_one_process_and_reports_its_counters() -> None:
    proc = await _spawn("ws-granian", "--port", "0")
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            info = parse_ready_line((await proc.stdout.readline()).decode())
        assert info is not None and info["kind"] == "ws-granian" and info["path"] == "/ws"
        assert info["liveness"]["ws_ping_interval_s"] == 0.0
        # One process: granian's worker runs in it (its Rust side in a thread).
        assert psutil.Process(proc.pid).children() == []
        async with aiohttp.ClientSession() as http:
            url = f"http://{HOST}:{info['port']}"
            reply = await rpc(http, url, envelope("echo", 1))
            assert reply["payload"] == 1
            token = await signin(http, url, "ann")
            await send(http, url, token, "ann", "to myself")
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert len(lines) == 1, out
    counters = parse_stats_line(lines[0])
    assert counters is not None and counters["messages"] == 1


async def test_subprocess_refuses_a_tls_cap_below_1_3(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "tls")
    proc = await _spawn(
        "http-granian", "--tls-cert", certs.cert, "--tls-key", certs.key, "--tls-version", "1.2"
    )
    async with asyncio.timeout(20):
        out, err = await proc.communicate()
    assert proc.returncode == 2
    assert out == b""
    assert b"http-granian" in err and b"1.2" in err
