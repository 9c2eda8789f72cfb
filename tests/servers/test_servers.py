"""The three servers, in-process and as ``python -m servers`` subprocesses, on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import resource
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import websockets
from hypothesis import given
from hypothesis import strategies as st
from serving import running
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from servers import common, protocol
from servers.__main__ import MODULES, main
from servers.common import (
    LINK_SUBNET,
    READY_PREFIX,
    STATS_PREFIX,
    ServerConfig,
    bind_host,
    format_ready_line,
    format_stats_line,
    host_allowed,
    is_link_host,
    is_loopback_host,
    link_namespace,
    parse_ready_line,
    parse_stats_line,
    ws_hard_limit,
)
from servers.fdlimit import files_for
from servers.hub import Hub
from servers.protocol import Request
from servers.realtime.credentials import SECRET_ENV, signin_payload

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
LIMIT = 4096
KINDS = ("http", "ws-aiohttp", "ws-websockets")
WS_KINDS = ("ws-aiohttp", "ws-websockets")
# (server kind, client library) pairs every transport test runs against.
ENDPOINTS = [
    ("http", "aiohttp"),
    ("ws-aiohttp", "aiohttp"),
    ("ws-aiohttp", "websockets"),
    ("ws-websockets", "aiohttp"),
    ("ws-websockets", "websockets"),
]


def request_bytes(op: str = "echo", payload: Any = None, rid: int = 1, ts: int = 123) -> bytes:
    """An encoded request envelope."""
    return protocol.encode_request(Request(op=op, id=rid, ts=ts, payload=payload))


def request_of_size(size: int, rid: int = 1) -> bytes:
    """An echo request exactly ``size`` bytes long."""
    base = len(request_bytes(payload="", rid=rid))
    data = request_bytes(payload=protocol.make_payload(size - base), rid=rid)
    assert len(data) == size
    return data


@dataclass(frozen=True)
class Running:
    """A listening server."""

    kind: str
    port: int
    path: str
    hub: Hub | None = None

    @property
    def url(self) -> str:
        scheme = "http" if self.kind == "http" else "ws"
        return f"{scheme}://{HOST}:{self.port}{self.path}"


@contextlib.asynccontextmanager
async def in_process(kind: str, limit: int = LIMIT) -> AsyncIterator[Running]:
    """Run ``kind``'s serve() in this loop (:func:`serving.running`); stop it gracefully on exit."""
    path = importlib.import_module(MODULES[kind]).PATH
    async with running(kind, Hub(limit), ServerConfig(HOST, 0, limit)) as server:
        yield Running(kind, server.port, path, server.hub)


@dataclass
class Result:
    """One reply: HTTP status (None on WebSocket) and body bytes."""

    status: int | None
    body: bytes

    @property
    def envelope(self) -> dict[str, Any]:
        return orjson.loads(self.body)


class Client:
    """Sends raw request bytes over one transport and returns the reply."""

    async def call(self, data: bytes, *, binary: bool = False) -> Result:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError


class HttpClient(Client):
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def call(self, data: bytes, *, binary: bool = False) -> Result:
        async with self.session.post(self.url, data=data) as resp:
            assert resp.headers["Content-Type"] == "application/json"
            return Result(resp.status, await resp.read())

    async def aclose(self) -> None:
        await self.session.close()


class AiohttpWsClient(Client):
    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.session = session
        self.ws = ws

    async def call(self, data: bytes, *, binary: bool = False) -> Result:
        if binary:
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data.decode())
        msg = await self.ws.receive(timeout=10)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        return Result(None, msg.data.encode())

    async def aclose(self) -> None:
        await self.ws.close()
        await self.session.close()


class WebsocketsClient(Client):
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def call(self, data: bytes, *, binary: bool = False) -> Result:
        await self.ws.send(data, text=not binary)
        async with asyncio.timeout(10):
            reply = await self.ws.recv()
        assert isinstance(reply, str), "replies must be text messages"
        return Result(None, reply.encode())

    async def aclose(self) -> None:
        await self.ws.close()


async def open_client(server: Running, library: str) -> Client:
    """A connected client of ``library`` ("aiohttp" or "websockets") for ``server``."""
    if server.kind == "http":
        assert library == "aiohttp"
        return HttpClient(aiohttp.ClientSession(), server.url)
    if library == "aiohttp":
        session = aiohttp.ClientSession()
        ws = await session.ws_connect(server.url, heartbeat=None, max_msg_size=0)
        return AiohttpWsClient(session, ws)
    ws = await ws_connect(server.url, compression=None, ping_interval=None, max_size=None)
    return WebsocketsClient(ws)


@contextlib.asynccontextmanager
async def client_for(server: Running, library: str) -> AsyncIterator[Client]:
    client = await open_client(server, library)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(params=ENDPOINTS, ids=[f"{k}+{c}" for k, c in ENDPOINTS])
async def endpoint(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Running, Client]]:
    kind, library = request.param
    async with in_process(kind) as server, client_for(server, library) as client:
        yield server, client


# --- behaviour of every transport ---------------------------------------------------------


async def test_echo(endpoint: tuple[Running, Client]) -> None:
    server, client = endpoint
    payload = {"text": "héllo ✓", "n": [1, -2, 3.5, None, True], "nested": {"k": []}}
    result = await client.call(request_bytes(payload=payload, rid=42, ts=987654321))
    if server.kind == "http":
        assert result.status == 200
    assert result.envelope == {
        "op": "echo",
        "id": 42,
        "ts": 987654321,
        "ok": True,
        "payload": payload,
    }
    for i in range(20):
        result = await client.call(request_bytes(payload=i, rid=i), binary=i % 2 == 1)
        assert result.envelope["payload"] == i
        assert result.envelope["id"] == i


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"{not json", "malformed_json"),
        (b"[1, 2, 3]", "invalid_envelope"),
        (b'{"op": "echo", "id": true, "ts": 1}', "invalid_envelope"),
        (b'{"op": "frobnicate", "id": 5, "ts": 6}', "unknown_op"),
    ],
)
async def test_errors_keep_serving(
    endpoint: tuple[Running, Client], data: bytes, code: str
) -> None:
    server, client = endpoint
    for binary in (False, True):
        result = await client.call(data, binary=binary)
        if server.kind == "http":
            assert result.status == 400
        assert result.envelope["ok"] is False
        assert result.envelope["error"]["code"] == code
        result = await client.call(request_bytes(payload="still here"))
        assert result.envelope["payload"] == "still here"
    assert server.hub is not None
    assert server.hub.errors == 2


async def test_size_limit_boundary(endpoint: tuple[Running, Client]) -> None:
    server, client = endpoint
    result = await client.call(request_of_size(LIMIT))
    assert result.envelope["ok"] is True
    if server.kind == "http":
        assert result.status == 200
    oversize = request_of_size(LIMIT + 1)
    result = await client.call(oversize)
    if server.kind == "http":
        assert result.status == 413
    assert result.envelope == {
        "op": None,
        "id": None,
        "ts": None,
        "ok": False,
        "error": {
            "code": "too_large",
            "message": f"message of {LIMIT + 1} bytes exceeds the limit of {LIMIT} bytes",
        },
    }
    assert result.body == Hub(LIMIT).reject(protocol.message_too_large(LIMIT + 1, LIMIT)).body
    # The connection (keep-alive or WebSocket) is still usable afterwards.
    result = await client.call(request_bytes(payload="after"))
    assert result.envelope["payload"] == "after"


async def test_bodies_identical_across_transports() -> None:
    cases = [
        request_bytes(payload={"b": [1, 2.25, "x"], "a": None}, rid=9, ts=77),
        request_bytes(payload=protocol.make_payload(1000), rid=10),
        request_bytes(payload=None),
        request_bytes(op="nope", rid=3),
        b"{broken",
        b'{"op": "echo", "id": -1, "ts": 0}',
        request_of_size(LIMIT),
        request_of_size(LIMIT + 1),
        request_of_size(ws_hard_limit(LIMIT)),
    ]
    expected = [(await Hub(LIMIT).handle(data)).body for data in cases]
    seen: dict[str, list[bytes]] = {}
    async with contextlib.AsyncExitStack() as stack:
        for kind, library in ENDPOINTS:
            server = await stack.enter_async_context(in_process(kind))
            client = await stack.enter_async_context(client_for(server, library))
            seen[f"{kind}+{library}"] = [(await client.call(data)).body for data in cases]
    for name, bodies in seen.items():
        assert bodies == expected, name


async def test_http_oversize_without_reading_body() -> None:
    async with in_process("http") as server, aiohttp.ClientSession() as session:
        big = b"x" * (LIMIT * 10)
        async with session.post(server.url, data=big) as resp:
            assert resp.status == 413
            assert resp.headers["Content-Type"] == "application/json"
            body = orjson.loads(await resp.read())
        assert body["error"] == {
            "code": "too_large",
            "message": f"message of {LIMIT * 10} bytes exceeds the limit of {LIMIT} bytes",
        }
        async with session.post(server.url, data=request_bytes(payload=1)) as resp:
            assert resp.status == 200


async def test_http_oversize_chunked() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"y" * 1024

    async with in_process("http") as server, aiohttp.ClientSession() as session:
        async with session.post(server.url, data=chunks()) as resp:
            assert resp.status == 413
            assert resp.headers["Content-Type"] == "application/json"
            body = orjson.loads(await resp.read())
        assert body["ok"] is False
        assert body["error"]["code"] == "too_large"
        async with session.post(server.url, data=request_bytes(payload=2)) as resp:
            assert resp.status == 200
            assert orjson.loads(await resp.read())["payload"] == 2


async def test_http_other_routes() -> None:
    async with in_process("http") as server, aiohttp.ClientSession() as session:
        async with session.get(server.url) as resp:
            assert resp.status == 405
        async with session.post(f"http://{HOST}:{server.port}/other", data=b"{}") as resp:
            assert resp.status == 404
        async with session.post(server.url, data=request_bytes(payload=3)) as resp:
            assert resp.status == 200


@pytest.mark.parametrize("kind", WS_KINDS)
@pytest.mark.parametrize("library", ["aiohttp", "websockets"])
async def test_ws_over_hard_limit_closes_1009(kind: str, library: str) -> None:
    too_big = request_of_size(ws_hard_limit(LIMIT) + 1)
    async with in_process(kind) as server:
        if library == "aiohttp":
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(server.url, heartbeat=None) as ws,
            ):
                await ws.send_str(too_big.decode())
                msg = await ws.receive(timeout=10)
                assert msg.type is aiohttp.WSMsgType.CLOSE, msg
                assert ws.close_code == 1009
        else:
            async with ws_connect(server.url, compression=None, ping_interval=None) as ws:
                await ws.send(too_big.decode())
                with pytest.raises(websockets.ConnectionClosedError) as info:
                    async with asyncio.timeout(10):
                        await ws.recv()
                assert info.value.rcvd is not None
                assert info.value.rcvd.code == 1009
        async with client_for(server, library) as client:
            result = await client.call(request_bytes(payload="fresh connection"))
            assert result.envelope["payload"] == "fresh connection"


@pytest.mark.parametrize("kind", WS_KINDS)
async def test_ws_compression_not_negotiated(kind: str) -> None:
    async with (
        in_process(kind) as server,
        ws_connect(server.url, compression="deflate", ping_interval=None) as ws,
    ):
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        await ws.send(request_bytes(payload="plain"))
        assert orjson.loads(await ws.recv())["payload"] == "plain"


async def test_ws_websockets_other_path_is_404() -> None:
    async with in_process("ws-websockets") as server:
        with pytest.raises(websockets.InvalidStatus) as info:
            async with ws_connect(f"ws://{HOST}:{server.port}/nope"):
                pass
        assert info.value.response.status_code == 404


@pytest.mark.parametrize("kind", WS_KINDS)
async def test_ws_graceful_stop_closes_open_connections(kind: str) -> None:
    module = importlib.import_module(MODULES[kind])
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        module.serve(ServerConfig(HOST, 0, LIMIT), Hub(LIMIT), ready.set_result, stop)
    )
    port = await asyncio.wait_for(ready, 10)
    async with ws_connect(f"ws://{HOST}:{port}/ws", ping_interval=None) as ws:
        await ws.send(request_bytes(payload=1))
        await ws.recv()
        stop.set()
        with pytest.raises(websockets.ConnectionClosed) as info:
            async with asyncio.timeout(10):
                await ws.recv()
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1001
    async with asyncio.timeout(10):
        await task


@pytest.mark.parametrize("kind", KINDS)
async def test_serve_propagates_bind_errors(kind: str) -> None:
    module = importlib.import_module(MODULES[kind])
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(OSError):
            async with asyncio.timeout(10):
                await module.serve(
                    ServerConfig(HOST, port, LIMIT), Hub(), lambda p: None, asyncio.Event()
                )


# --- python -m servers --------------------------------------------------------------------


async def spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "servers",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@contextlib.asynccontextmanager
async def spawned(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m servers ARGS`` for the block's length; killed if it is still running."""
    proc = await spawn(*args)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def read_ready(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    assert proc.stdout is not None
    async with asyncio.timeout(20):
        line = (await proc.stdout.readline()).decode()
    info = parse_ready_line(line)
    if info is None:
        proc.kill()
        _, err = await proc.communicate()
        pytest.fail(f"no ready line, got {line!r}; stderr: {err.decode()}")
    assert line.startswith(READY_PREFIX) and line.endswith("\n") and line.count("\n") == 1
    return info


async def stop_process(proc: asyncio.subprocess.Process, sig: int) -> tuple[int, bytes, bytes]:
    proc.send_signal(sig)
    try:
        async with asyncio.timeout(10):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out, err


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_subprocess_serves_and_stops(kind: str, sig: int) -> None:
    async with spawned(
        kind, "--host", HOST, "--port", "0", "--max-message-bytes", str(LIMIT)
    ) as proc:
        info = await read_ready(proc)
        assert list(info) == [
            "kind",
            "host",
            "port",
            "pid",
            "path",
            "loop",
            "max_message_bytes",
            "tls",
            "liveness",
            "gc",
            "loop_watch",
            "signin",
            "secret_file",
            "backlog",
            "fd_limit",
        ]
        assert info["liveness"] == {
            "keepalive_timeout_s": 75.0,
            "body_timeout_s": 60.0,
            "ws_ping_interval_s": 20.0,
        }
        assert info["tls"] is None
        # The collector's settings, for the run's record (freezing is on by default).
        assert info["gc"]["freeze"] is True and len(info["gc"]["threshold"]) == 3
        assert info["loop_watch"] is False  # RTBENCH_LOOP_WATCH unset
        # The secret came in the environment (the tests' own), so no file was made.
        assert (info["signin"], info["secret_file"]) == ("key", None)
        assert info["kind"] == kind
        assert info["host"] == HOST
        assert info["pid"] == proc.pid
        assert info["path"] == ("/rpc" if kind == "http" else "/ws")
        assert info["max_message_bytes"] == LIMIT
        assert 0 < info["port"] < 65536
        try:
            import uvloop  # noqa: F401
        except ImportError:
            assert info["loop"] == "asyncio"
        else:
            assert info["loop"] == "uvloop"
        server = Running(kind, info["port"], info["path"])
        libraries = ["aiohttp"] if kind == "http" else ["aiohttp", "websockets"]
        for library in libraries:
            async with client_for(server, library) as client:
                result = await client.call(request_bytes(payload={"via": library}))
                assert result.envelope["payload"] == {"via": library}
                result = await client.call(b"garbage")
                assert result.envelope["error"]["code"] == "malformed_json"
                result = await client.call(request_of_size(LIMIT + 1))
                assert result.envelope["error"]["code"] == "too_large"
                result = await client.call(request_bytes(payload="ok"))
                assert result.envelope["payload"] == "ok"
        code, out, err = await stop_process(proc, sig)
        assert code == 0, err.decode()
        # Stopped, it reports its counters on one last line, and nothing else.
        lines = out.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith(STATS_PREFIX), out
        counters = parse_stats_line(lines[0])
        assert counters is not None
        assert counters["limit_refusals"] == 0 and counters["unknown_recipients"] == 0


async def test_subprocess_localhost_binds_ipv4_loopback() -> None:
    async with spawned("http", "--host", "localhost", "--port", "0", "--loop", "asyncio") as proc:
        info = await read_ready(proc)
        assert info["host"] == "127.0.0.1"
        assert info["loop"] == "asyncio"
        code, _, err = await stop_process(proc, signal.SIGTERM)
        assert code == 0, err.decode()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "::", "example.com"])
async def test_subprocess_refuses_non_loopback(host: str) -> None:
    proc = await spawn("http", "--host", host, "--port", "0")
    async with asyncio.timeout(20):
        out, err = await proc.communicate()
    assert proc.returncode == 2
    assert out == b""
    assert b"non-loopback" in err


@pytest.mark.parametrize("kind", KINDS)
def test_main_refuses_non_loopback(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([kind, "--host", "10.0.0.1"]) == 2
    assert "--allow-non-loopback" in capsys.readouterr().err


@pytest.mark.parametrize("kind", KINDS)
def test_main_refuses_the_link_address_outside_its_namespace(
    kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # This test process runs in the host's namespace, not in one of rtbench's.
    assert link_namespace() is None
    assert main([kind, "--host", "10.77.0.2"]) == 2
    err = capsys.readouterr().err
    assert "refusing to bind non-loopback host '10.77.0.2'" in err
    assert "only accepted inside a network namespace rtbench created" in err


async def post_signin(port: int, payload: dict[str, Any]) -> int:
    body = request_bytes("signin", payload)
    async with (
        aiohttp.ClientSession() as session,
        asyncio.timeout(10),
        session.post(f"http://{HOST}:{port}/rpc", data=body) as resp,
    ):
        return resp.status


async def test_subprocess_without_a_secret_makes_one_in_a_private_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SECRET_ENV)
    async with spawned("http", "--host", HOST, "--port", "0") as proc:
        info = await read_ready(proc)
        assert info["signin"] == "key"
        path = Path(info["secret_file"])
        assert path.stat().st_mode & 0o777 == 0o600
        secret = path.read_text().strip()
        assert await post_signin(info["port"], signin_payload("alice", secret)) == 200
        assert await post_signin(info["port"], {"user": "alice"}) == 401
        assert await post_signin(info["port"], signin_payload("alice", "x" * 32)) == 401
        code, _, err = await stop_process(proc, signal.SIGTERM)
        assert code == 0, err.decode()
        assert str(path) in err.decode()  # whoever started it is told where
        assert not path.exists()


async def test_subprocess_open_signin_accepts_a_bare_name() -> None:
    async with spawned("http", "--host", HOST, "--port", "0", "--open-signin") as proc:
        info = await read_ready(proc)
        assert (info["signin"], info["secret_file"]) == ("open", None)
        assert await post_signin(info["port"], {"user": "alice"}) == 200
        code, _, err = await stop_process(proc, signal.SIGTERM)
        assert code == 0 and b"open sign-in" in err


@pytest.mark.parametrize("kind", KINDS)
async def test_a_small_backlog_still_serves_in_process(kind: str) -> None:
    path = importlib.import_module(MODULES[kind]).PATH
    config = ServerConfig(HOST, 0, LIMIT, backlog=1)
    async with running(kind, Hub(LIMIT), config) as server:
        client = await open_client(Running(kind, server.port, path), "aiohttp")
        try:
            result = await client.call(request_bytes(payload="queued"))
        finally:
            await client.aclose()
        assert result.envelope["payload"] == "queued"


@pytest.mark.parametrize("kind", KINDS)
async def test_subprocess_with_backlog_and_connections_serves_and_reports_them(kind: str) -> None:
    proc = await spawn(
        kind, "--host", HOST, "--port", "0", "--backlog", "7", "--connections", "300"
    )
    try:
        info = await read_ready(proc)
        assert info["backlog"] == 7
        limit = info["fd_limit"]
        # Room for 300 connections, never below where the soft limit was.
        assert limit["needed"] == files_for(300)
        assert limit["soft_after"] is None or limit["soft_after"] >= limit["needed"]
        assert limit["soft_after"] is None or limit["soft_after"] >= limit["soft_before"]
        server = Running(kind, info["port"], info["path"])
        async with client_for(server, "aiohttp") as client:
            result = await client.call(request_bytes(payload="ok"))
            assert result.envelope["payload"] == "ok"
        code, _, err = await stop_process(proc, signal.SIGTERM)
        assert code == 0, err.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_subprocess_refuses_connections_beyond_the_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard limit on open files here")
    proc = await spawn("http", "--host", HOST, "--port", "0", "--connections", str(hard))
    async with asyncio.timeout(20):
        out, err = await proc.communicate()
    assert proc.returncode == 1 and out == b""
    text = err.decode()
    assert f"{hard} connections need about {files_for(hard)} open files" in text
    assert f"the hard limit (ulimit -Hn) is {hard}: raise it" in text


def test_main_refuses_a_short_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(SECRET_ENV, "short")
    with pytest.raises(SystemExit) as info:
        main(["http"])
    assert info.value.code == 2
    assert SECRET_ENV in capsys.readouterr().err


def test_main_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit) as info:
        main(["smtp"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["http", "--max-message-bytes", "0"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["http", "--port", "70000"])
    assert info.value.code == 2


# --- helpers in servers.common ------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("128.0.0.1", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_link_subnet_matches_the_kernel_link() -> None:
    from loadgen.link import kernel, namespaces

    assert str(LINK_SUBNET) == kernel.SUBNET
    assert is_link_host(kernel.SERVER_ADDR) and is_link_host(kernel.CLIENT_ADDR)
    assert namespaces.NS_PREFIX == common.LINK_NETNS_PREFIX


@pytest.mark.parametrize(
    ("host", "inside", "allowed"),
    [
        ("127.0.0.1", False, True),
        ("::1", False, True),
        ("localhost", True, True),
        ("10.77.0.2", True, True),
        ("10.77.0.1", True, True),
        ("[10.77.0.2]", True, True),
        ("10.77.0.2", False, False),  # the link's address, but not inside a link namespace
        ("10.77.0.4", True, False),  # inside a link namespace, but outside its /30
        ("10.77.1.2", True, False),
        ("10.0.0.1", True, False),
        ("0.0.0.0", True, False),
        ("::", True, False),
        ("example.com", True, False),
        ("", True, False),
    ],
)
def test_host_allowed(host: str, inside: bool, allowed: bool) -> None:
    asked: list[bool] = []

    def in_link_namespace() -> bool:
        asked.append(True)
        return inside

    assert host_allowed(host, in_link_namespace) is allowed
    # The namespace is only looked at for an address of the link's subnet.
    assert bool(asked) == is_link_host(host)


def test_host_allowed_checks_the_real_namespace_by_default() -> None:
    assert host_allowed("127.0.0.1")
    assert not host_allowed("10.77.0.2")  # pytest runs in the host's namespace


def _fake_ns(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Stand-ins for /proc/self/ns/net, /proc/1/ns/net and /run/netns (same inode: same ns)."""
    mine, init, netns = tmp_path / "self-net", tmp_path / "init-net", tmp_path / "netns"
    mine.write_text("")
    init.write_text("")
    netns.mkdir()
    return mine, init, netns


def test_link_namespace_finds_an_rtbench_namespace(tmp_path: Path) -> None:
    mine, init, netns = _fake_ns(tmp_path)
    (netns / "other-ns").hardlink_to(mine)  # not ours: never counts
    assert link_namespace(str(mine), str(init), str(netns)) is None
    (netns / "rtbench-123-abc-s").hardlink_to(mine)
    assert link_namespace(str(mine), str(init), str(netns)) == "rtbench-123-abc-s"


def test_link_namespace_refuses_the_initial_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, _, netns = _fake_ns(tmp_path)
    (netns / "rtbench-123-abc-s").hardlink_to(mine)
    # pid 1's namespace, where it can be read ...
    assert link_namespace(str(mine), str(mine), str(netns)) is None
    # ... and the initial namespace's fixed inode, where pid 1's cannot be read.
    assert link_namespace(str(mine), str(tmp_path / "unreadable"), str(netns)) is not None
    monkeypatch.setattr(common, "INIT_NET_INO", mine.stat().st_ino)
    assert link_namespace(str(mine), str(tmp_path / "unreadable"), str(netns)) is None


def test_link_namespace_when_nothing_can_be_read(tmp_path: Path) -> None:
    mine, init, _ = _fake_ns(tmp_path)
    assert link_namespace(str(tmp_path / "gone"), str(init), str(tmp_path)) is None
    assert link_namespace(str(mine), str(init), str(tmp_path / "no-netns-dir")) is None


def test_bind_host() -> None:
    assert bind_host("localhost") == "127.0.0.1"
    assert bind_host("[::1]") == "::1"
    assert bind_host("127.0.0.2") == "127.0.0.2"


def test_ready_line_round_trip() -> None:
    info = {
        "kind": "http",
        "host": "127.0.0.1",
        "port": 43127,
        "pid": 1234,
        "path": "/rpc",
        "loop": "uvloop",
        "max_message_bytes": 1048576,
    }
    line = format_ready_line(dict(reversed(info.items())))
    assert line == (
        'RTBENCH-READY {"kind": "http", "host": "127.0.0.1", "port": 43127, "pid": 1234, '
        '"path": "/rpc", "loop": "uvloop", "max_message_bytes": 1048576}'
    )
    assert parse_ready_line(line) == info
    assert parse_ready_line(line + "\n") == info
    assert list(parse_ready_line(line) or {}) == list(info)


@given(st.dictionaries(st.text(min_size=1), st.integers()))
def test_stats_line_round_trip(counters: dict[str, int]) -> None:
    line = format_stats_line(counters)
    assert "\n" not in line
    assert parse_stats_line(line) == counters
    assert parse_stats_line(line + "\n") == counters


# (parser, a line it must refuse): each kind of line, malformed or of the other kind.
REFUSED_LINES = [
    (parse_ready_line, ""),
    (parse_ready_line, "hello"),
    (parse_ready_line, "RTBENCH-READY"),
    (parse_ready_line, "RTBENCH-READY {"),  # truncated JSON
    (parse_ready_line, "RTBENCH-READY []"),  # not an object
    (parse_ready_line, 'RTBENCH-READY {"port": "80"}'),  # a port that is not a number
    (parse_ready_line, 'XRTBENCH-READY {"port": 80}'),  # the tag must start the line
    (parse_stats_line, ""),
    (parse_stats_line, "RTBENCH-STATS"),
    (parse_stats_line, "RTBENCH-STATS {"),
    (parse_stats_line, "RTBENCH-STATS [1]"),
    (parse_stats_line, 'RTBENCH-STATS {"limit_refusals": "3"}'),  # counts are integers
    (parse_stats_line, 'RTBENCH-STATS {"limit_refusals": true}'),  # a bool is not a count
    (parse_stats_line, 'RTBENCH-READY {"port": 80}'),  # the ready line is not stats
]


@pytest.mark.parametrize(("parse", "line"), REFUSED_LINES)
def test_parse_line_refuses(parse: Callable[[str], object], line: str) -> None:
    assert parse(line) is None


def test_server_config_validation() -> None:
    assert ServerConfig() == ServerConfig("127.0.0.1", 0, protocol.DEFAULT_MAX_MESSAGE_BYTES)
    with pytest.raises(ValueError):
        ServerConfig(port=-1)
    with pytest.raises(ValueError):
        ServerConfig(port=65536)
    with pytest.raises(ValueError):
        ServerConfig(max_message_bytes=0)
    with pytest.raises(ValueError, match="backlog"):
        ServerConfig(backlog=0)


def test_modules_share_shape() -> None:
    for kind, name in MODULES.items():
        module = importlib.import_module(name)
        assert kind == module.KIND
        assert module.PATH in ("/rpc", "/ws")
        serve: Callable[..., Awaitable[None]] = module.serve
        assert asyncio.iscoroutinefunction(serve)
        assert list(serve.__annotations__) == ["config", "hub", "on_ready", "stop", "return"]
