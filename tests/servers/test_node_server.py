"""The node reference server (``servers/node``) against the Python servers, on 127.0.0.1.

Differential: the node server, ``python -m servers http`` and ``python -m servers
ws-aiohttp`` run side by side with the same secret and limits, every scenario runs
once against node and once against the Python server of its transport, and the two
transcripts (statuses, reply bytes, event and frame bytes, close codes) must be the
same once tokens and server clock readings are masked. A few checks then say what
the transcript must hold, so two servers cannot agree on the same mistake.

The node server's own life is checked too: its ready line, the end of streams and
WebSockets on SIGTERM, its stats line, its secret file, its refusal of other hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from serving import HOST, TEST_SECRET

from servers.common import READY_KEYS, parse_ready_line, parse_stats_line
from servers.realtime.credentials import SECRET_ENV, check_secret, signin_payload

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = REPO / "servers" / "node"
NODE = shutil.which("node")

if NODE is None:
    pytest.skip("node is not on PATH", allow_module_level=True)
if not (NODE_DIR / "node_modules" / "ws").is_dir():
    pytest.skip(
        "servers/node/node_modules is missing: run `npm ci` in servers/node",
        allow_module_level=True,
    )

pytestmark = pytest.mark.timeout(60)

STEP_S = 10.0  # bound on any single network step
LIMIT = 65536
#: Every server runs with these, so limits and gaps can be reached in a few requests.
SHARED_ARGS = ("--max-message-bytes", str(LIMIT), "--inbox-retention", "8", "--body-timeout", "0.5")
READY_TIMEOUT_S = 30.0

Scenario = Callable[["Recorder", str], Awaitable[None]]


# -- servers -------------------------------------------------------------------------------


@dataclass
class Server:
    """A server process listening on 127.0.0.1."""

    name: str
    proc: subprocess.Popen[bytes]
    info: dict[str, Any]

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.info['port']}"


def node_argv(*args: str) -> list[str]:
    assert NODE is not None
    return [NODE, str(NODE_DIR / "server.js"), "--host", HOST, "--port", "0", *args]


def spawn(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    environ = {**os.environ, SECRET_ENV: TEST_SECRET} if env is None else env
    return subprocess.Popen(
        argv,
        cwd=REPO,
        env=environ,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def read_ready(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    """The process's ready line, read within READY_TIMEOUT_S."""
    assert proc.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        readable, _, _ = select.select([proc.stdout], [], [], 0.1)
        if readable:
            line = proc.stdout.readline().decode()
            info = parse_ready_line(line)
            if info is None:
                break
            return info
        if proc.poll() is not None:
            break
    stop(proc)
    assert proc.stderr is not None
    pytest.fail(f"no ready line from {proc.args}: {proc.stderr.read().decode()[-2000:]}")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> tuple[int, str]:
    """Signal ``proc`` and wait for it (killed after 10 s); its exit code and stdout."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, out.decode()


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Server]]:
    """The node server and the two Python servers it is compared with, started together."""

    def python(kind: str) -> list[str]:
        return [sys.executable, "-m", "servers", kind, "--host", HOST, "--port", "0", *SHARED_ARGS]

    argvs = {
        "node": node_argv(*SHARED_ARGS),
        "http": python("http"),
        "ws-aiohttp": python("ws-aiohttp"),
    }
    procs = {name: spawn(argv) for name, argv in argvs.items()}
    try:
        yield {name: Server(name, proc, read_ready(proc)) for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            stop(proc)


# -- transcripts ---------------------------------------------------------------------------

_TOKEN = re.compile(rb'"token":"[A-Za-z0-9_-]+"')
_CLOCK = re.compile(rb'"(last_seen|session_start|last_activity)":\d+')
_PRESENCE_TS = re.compile(
    rb'("type":"presence","user":"[^"]*","status":"[a-z]+","last_seen":[^,]*,"ts":)\d+'
)
_MS = re.compile(rb'"time_on_site_ms":[0-9.e+-]+')


def masked(body: bytes) -> bytes:
    """``body`` with tokens and the server's clock readings replaced by placeholders."""
    body = _TOKEN.sub(b'"token":"<token>"', body)
    body = _CLOCK.sub(rb'"\1":<ns>', body)
    body = _PRESENCE_TS.sub(rb"\1<ns>", body)
    return _MS.sub(b'"time_on_site_ms":<ms>', body)


class Recorder:
    """One server's side of a scenario: every answer goes into ``log``, masked."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.log: list[Any] = []
        self._rid = 0

    def note(self, *entry: Any) -> None:
        self.log.append(entry if len(entry) != 1 else entry[0])

    def envelope(self, op: str, payload: Any = None) -> bytes:
        # Ids restart per recorder: both servers see the same bytes.
        self._rid += 1
        return orjson.dumps({"op": op, "id": self._rid, "ts": 7, "payload": payload})

    async def post(
        self,
        body: bytes | Any,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        record: bool = True,
    ) -> dict[str, Any]:
        """POST /rpc; ``body`` is bytes or an ``(op, payload)`` pair. The reply, parsed."""
        if isinstance(body, tuple):
            body = self.envelope(*body)
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        async with asyncio.timeout(STEP_S):
            async with self.session.post(f"{self.base}/rpc", data=body, headers=hdrs) as resp:
                raw = await resp.read()
                entry = (resp.status, resp.headers.get("Content-Type"), masked(raw))
        if record:
            self.note(*entry)
        return orjson.loads(raw)

    async def call(self, op: str, payload: Any = None, token: str | None = None) -> Any:
        """An operation that must succeed; its payload."""
        reply = await self.post((op, payload), token)
        assert reply["ok"], reply
        return reply["payload"]

    async def get(
        self, path: str, token: str | None = None, record: bool = True
    ) -> tuple[int, bytes]:
        hdrs = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with asyncio.timeout(STEP_S):
            async with self.session.get(f"{self.base}{path}", headers=hdrs) as resp:
                raw = await resp.read()
                entry = (resp.status, resp.headers.get("Content-Type"), masked(raw))
        if record:
            self.note(*entry)
        return resp.status, raw

    async def signin(self, user: str) -> str:
        return str((await self.call("signin", signin_payload(user, TEST_SECRET)))["token"])

    async def events(self, path: str, n: int, headers: dict[str, str] | None = None) -> None:
        """GET ``path`` (an event stream): its status and headers, then ``n`` raw events."""
        async with asyncio.timeout(STEP_S):
            async with self.session.get(f"{self.base}{path}", headers=headers or {}) as resp:
                self.note(
                    "events",
                    resp.status,
                    resp.headers.get("Content-Type"),
                    resp.headers.get("Cache-Control"),
                )
                if resp.status != 200:
                    self.note(masked(await resp.read()))
                    return
                buf = b""
                while buf.count(b"\n\n") < n:
                    chunk = await resp.content.readany()
                    assert chunk, f"the stream ended after {buf!r}"
                    buf += chunk
                for block in buf.split(b"\n\n")[:n]:
                    self.note(masked(block))

    @contextlib.asynccontextmanager
    async def ws(self, query: str = "") -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
        async with self.session.ws_connect(
            f"{self.base}/ws{query}", autoping=True, heartbeat=None, max_msg_size=0
        ) as ws:
            yield ws

    async def frame(self, ws: aiohttp.ClientWebSocketResponse) -> Any:
        """The next frame, recorded: its masked bytes, or ("close", code) at the end."""
        msg = await ws.receive(timeout=STEP_S)
        if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            data = msg.data.encode() if isinstance(msg.data, str) else msg.data
            self.note("frame", masked(data))
            return orjson.loads(data)
        self.note("close", ws.close_code)
        return None

    async def ws_call(
        self, ws: aiohttp.ClientWebSocketResponse, op: str, payload: Any = None
    ) -> Any:
        await ws.send_bytes(self.envelope(op, payload))
        return await self.frame(ws)


async def differential(
    servers: dict[str, Server], python: str, scenario: Scenario, prefix: str
) -> list[Any]:
    """Run ``scenario`` against node and the Python server ``python``; their transcripts
    must match. Returns node's."""
    logs = {}
    async with aiohttp.ClientSession() as session:
        for name in ("node", python):
            rec = Recorder(session, servers[name].base)
            await scenario(rec, prefix)
            logs[name] = rec.log
    node, other = logs["node"], logs[python]
    for k, (a, b) in enumerate(zip(node, other, strict=False)):
        assert a == b, f"entry {k} differs:\n  node:   {a!r}\n  {python}: {b!r}"
    assert len(node) == len(other), (node[len(other) :], other[len(node) :])
    return node


def bodies(log: list[Any]) -> list[dict[str, Any]]:
    """The JSON bodies in a transcript (rpc replies and WebSocket frames), parsed."""
    out = []
    for entry in log:
        raw = entry[-1] if isinstance(entry, tuple) else entry
        if isinstance(raw, bytes) and raw.startswith(b"{"):
            out.append(orjson.loads(raw.replace(b"<ns>", b"0").replace(b"<ms>", b"0")))
    return out


def codes(log: list[Any]) -> list[str | None]:
    return [b.get("error", {}).get("code") if b.get("ok") is False else None for b in bodies(log)]


# -- envelopes -----------------------------------------------------------------------------


async def envelopes(rec: Recorder, p: str) -> None:
    for payload in (
        None,
        "hi",
        {"b": 1, "2": [1.0, -0.0, 1e16, 2.5e-5, 2**64 - 1], "a": "é\u2028\x01😀"},
        [[[]], {}, True, False, None, '\\"/'],
    ):
        await rec.post(rec.envelope("echo", payload))
    await rec.post(b'{"op":"echo","id":9223372036854775807,"ts":9007199254740993,"payload":1}')
    # Integers past 64 bits become floats, as orjson reads them; 1e400 is refused.
    await rec.post(b'{"op":"echo","id":5,"ts":6,"payload":[18446744073709551616,-1E-7,0.1e1]}')
    for bad in (
        b"",
        b" ",
        b"{broken",
        b'{"op":"echo","id":1,"ts":1,}',
        b'{"op":"echo","id":1,"ts":"\\ud800"}',
        b"\xff",
        b'{"op":"echo","id":1,"ts":1e400}',
        b"[]",
        b'{"op":"echo","id":1}',
        b'{"op":"echo","id":true,"ts":1}',
        b'{"op":"echo","id":1.0,"ts":1}',
        b'{"op":"echo","id":-1,"ts":1}',
        b'{"op":"echo","id":9223372036854775808,"ts":1}',
        b'{"op":"echo","id":1,"ts":1,"zz":1,"extra":2}',
        b'{"op":"","id":1,"ts":1}',
        b'{"op":"nope","id":3,"ts":4}',
        b'{"op":"echo","id":1,"ts":1,"payload":' + b"[" * 254 + b"]" * 254 + b"}",
        b'{"op":"echo","id":1,"ts":1,"payload":' + b"[" * 1030 + b"]" * 1030 + b"}",
    ):
        await rec.post(bad)
    # The size limit: exactly at it, one byte over, and a body far over it.
    head = b'{"op":"echo","id":1,"ts":1,"payload":"'
    for size in (LIMIT, LIMIT + 1, LIMIT * 10):
        await rec.post(head + b"x" * (size - len(head) - 2) + b'"}')

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(LIMIT // 1024 + 8):
            yield b"y" * 1024

    await rec.post(chunks())  # chunked, over the limit
    await rec.post(rec.envelope("echo", "still serving"))
    for method, path in (("GET", "/rpc"), ("POST", "/other"), ("PUT", "/inbox")):
        async with rec.session.request(method, f"{rec.base}{path}", data=b"{}") as resp:
            rec.note(method, path, resp.status)


async def test_envelopes_and_errors_match_the_python_server(servers: dict[str, Server]) -> None:
    log = await differential(servers, "http", envelopes, "env")
    got = bodies(log)
    assert got[0] == {"op": "echo", "id": 1, "ts": 7, "ok": True, "payload": None}
    # Large integers survive: ids up to 2**63-1, ts above 2**53.
    assert log[4][2] == (
        b'{"op":"echo","id":9223372036854775807,"ts":9007199254740993,"ok":true,"payload":1}'
    )
    assert log[2][2].startswith(b'{"op":"echo","id":3,"ts":7,"ok":true,"payload":{"b":1,"2":[1.0,')
    statuses = [entry[0] for entry in log if isinstance(entry, tuple) and isinstance(entry[0], int)]
    assert 413 in statuses and 400 in statuses
    assert "malformed_json" in codes(log) and "invalid_envelope" in codes(log)
    assert "unknown_op" in codes(log) and "too_large" in codes(log)
    assert log[-3:] == [("GET", "/rpc", 405), ("POST", "/other", 404), ("PUT", "/inbox", 405)]


async def slow_body(rec: Recorder, p: str) -> None:
    port = int(rec.base.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        async with asyncio.timeout(STEP_S):
            received = await reader.read()  # until the server closes the connection
    finally:
        writer.close()
    head, _, body = received.partition(b"\r\n\r\n")
    rec.note(head.split(b"\r\n")[0], body)


async def test_a_slow_body_gets_the_same_408(servers: dict[str, Server]) -> None:
    log = await differential(servers, "http", slow_body, "slow")
    assert log[0][0] == b"HTTP/1.1 408 Request Timeout"
    assert orjson.loads(log[0][1])["error"]["code"] == "request_timeout"


# -- sign-in and authorization -------------------------------------------------------------


async def auth(rec: Recorder, p: str) -> None:
    alice, bob = f"{p}-alice", f"{p}-bob"
    await rec.post(("signin", {"user": alice}))  # no key
    await rec.post(("signin", {"user": alice, "key": "0" * 64}))
    await rec.post(("signin", {"user": "no spaces", "key": "x"}))
    await rec.post(("signin", [alice]))
    await rec.post(("signin", {"user": 5}))
    token = await rec.signin(alice)
    await rec.signin(bob)
    await rec.post(("send", {"to": bob, "mid": 1, "ts": 1}))  # no token
    await rec.post(("send", {"to": bob, "mid": 1, "ts": 1}), token="not-a-token")
    await rec.post(("send", {"to": bob, "mid": 1, "ts": 1}), headers={"Authorization": "Basic x"})
    await rec.post(("send", {"user": bob, "to": bob, "mid": 1, "ts": 1}), token)  # 403
    await rec.post(("send", {"to": f"{p}-nobody", "mid": 1, "ts": 1}), token)  # 404
    await rec.post(("send", {"mid": 1, "ts": 1}), token)
    await rec.post(("send", {"to": bob, "room": "r", "mid": 1, "ts": 1}), token)
    await rec.post(("send", {"to": bob, "mid": "1", "ts": 1}), token)
    await rec.post(("send", {"to": bob, "mid": True, "ts": 1}), token)
    await rec.post(("send", {"room": f"{p}-room", "mid": 1, "ts": 1}), token)  # not a member
    # Refused: mid is past 2**63-1, though orjson (and json.js) read it as an integer.
    await rec.post(("send", {"to": bob, "mid": 2**64 - 1, "ts": -(2**63), "body": {"2": 1}}), token)
    users = [f"u{k}" for k in range(1001)]
    await rec.post(("presence", {"users": users}), token)  # 429
    await rec.post(("presence", {"users": ["bad name"]}), token)
    await rec.post(("join", {"room": "x" * 65}), token)
    await rec.post(("activity", {"event": "e" * 65}), token)
    await rec.post(("subscribe_inbox", {"after": 0}), token)  # HTTP has no push
    await rec.post(("bye", {}), token)
    await rec.post(("heartbeat", {}), token)  # revoked
    await rec.get("/inbox", token)


async def test_signin_and_authorization_errors_match(servers: dict[str, Server]) -> None:
    log = await differential(servers, "http", auth, "auth")
    assert [entry[0] for entry in log[:5]] == [401, 401, 400, 400, 400]
    statuses = [entry[0] for entry in log]
    for status in (401, 403, 404, 429):
        assert status in statuses
    assert bodies(log)[-3]["payload"] == {"status": "offline"}  # bye
    assert codes(log)[-2:] == ["unauthorized", "unauthorized"]


# -- polls ---------------------------------------------------------------------------------


async def polls(rec: Recorder, p: str) -> None:
    alice, bob = f"{p}-alice", f"{p}-bob"
    ta, tb = await rec.signin(alice), await rec.signin(bob)
    for mid in range(1, 6):
        await rec.call("send", {"to": bob, "mid": mid, "ts": 100 + mid, "body": f"m{mid}"}, ta)
    for payload in ({"after": 0, "limit": 2}, {"after": 2}, {"after": 5}, None, {"after": 99}):
        await rec.post(("poll", payload), tb)
    await rec.post(("poll", {"after": -1}), tb)
    await rec.post(("poll", {"limit": 0}), tb)
    await rec.post(("poll", {"after": "1"}), tb)
    for query in (
        "?after=3",
        "?after=1&limit=1&id=42&ts=9223372036854775807",
        "?after=-1",
        "?after=abc",
        "?after=99999999999999999999",
        "?after=" + "9" * 30,
        "?id=9223372036854775808",
    ):
        await rec.get(f"/inbox{query}", tb)
    # Past the retention (8 items) a reader from the start sees a gap.
    for mid in range(6, 13):
        await rec.call("send", {"to": bob, "mid": mid, "ts": 1}, ta)
    await rec.post(("poll", {"after": 0}), tb)
    await rec.get("/inbox?after=3&limit=2", tb)
    # A long poll that times out with nothing, then one woken by a send.
    await rec.get("/inbox?after=12&wait_ms=300", tb)
    held = asyncio.create_task(rec.get("/inbox?after=12&wait_ms=5000", tb, record=False))
    await asyncio.sleep(0.2)
    await rec.call("send", {"to": bob, "mid": 13, "ts": 1, "body": "wake"}, ta)
    status, raw = await held
    rec.note("held", status, masked(raw))


async def test_poll_cursors_gaps_and_long_polls_match(servers: dict[str, Server]) -> None:
    log = await differential(servers, "http", polls, "poll")
    got = bodies(log)
    polled = [b["payload"] for b in got if b["op"] == "poll" and b["ok"]]
    first = {"payload": polled[0]}
    assert [i["seq"] for i in first["payload"]["items"]] == [1, 2]
    gap = [page for page in polled if page["gap"]]
    assert gap and gap[0]["first"] == 5
    timed_out, woken = got[-3], got[-1]
    assert timed_out["payload"]["items"] == []
    assert [i["item"]["body"] for i in woken["payload"]["items"]] == ["wake"]


# -- integer ranges ------------------------------------------------------------------------

I64_MIN, I64_MAX = -(2**63), 2**63 - 1


async def int_ranges(rec: Recorder, p: str) -> None:
    alice, bob = f"{p}-alice", f"{p}-bob"
    ta, tb = await rec.signin(alice), await rec.signin(bob)
    topic = f"{p}-topic"
    await rec.call("subscribe", {"topic": topic}, tb)
    # Signed fields: both ends of the signed 64-bit range are delivered, one past is refused.
    await rec.post(("send", {"to": bob, "mid": I64_MAX, "ts": I64_MIN, "body": 1}), ta)
    await rec.post(("send", {"to": bob, "mid": I64_MIN, "ts": I64_MAX, "body": 2}), ta)
    await rec.post(("send", {"to": bob, "mid": I64_MAX + 1, "ts": 1}), ta)
    await rec.post(("send", {"to": bob, "mid": 1, "ts": 2**64 - 1}), ta)
    # Below -2**63 the decoder reads a float: a wrong type (orjson cannot write this one).
    below = b'{"op":"send","id":90,"ts":7,"payload":{"to":"%s","mid":-9223372036854775809,"ts":1}}'
    await rec.post(below % bob.encode(), ta)
    await rec.post(("publish", {"topic": topic, "nid": I64_MAX, "ts": I64_MIN}), ta)
    await rec.post(("publish", {"topic": topic, "nid": I64_MAX + 1, "ts": 1}), ta)
    await rec.post(("publish", {"topic": topic, "nid": 1, "ts": I64_MAX + 1}), ta)
    # Cursors, waits and limits: 0 (1 for limit) to 2**63-1, in a POST payload and a query.
    for payload in (
        {"after": I64_MAX},
        {"after": I64_MAX + 1},
        {"after": I64_MIN},
        {"after": 0, "limit": I64_MAX},
        {"after": 0, "limit": 2**64 - 1},
        {"after": 0, "wait_ms": I64_MAX + 1},
        {"after": 0, "wait_ms": I64_MIN, "limit": "x"},  # the first field refused is named
        {"after": 0, "wait_ms": I64_MAX, "limit": 1},  # items are there: answers at once
    ):
        await rec.post(("poll", payload), tb)
    await rec.get(f"/inbox?after={I64_MAX}&limit={I64_MAX}", tb)
    await rec.get(f"/inbox?after={I64_MAX + 1}", tb)
    await rec.post(("poll", {"after": 0}), tb)


async def test_payload_integers_past_their_range_are_refused_alike(
    servers: dict[str, Server],
) -> None:
    log = await differential(servers, "http", int_ranges, "int")
    got = bodies(log)
    assert [entry[0] for entry in log[3:]] == [  # after two signins and a subscribe
        *[200, 200, 400, 400, 400],  # send
        *[200, 400, 400],  # publish
        *[200, 400, 400, 200, 400, 400, 400, 200],  # poll
        *[200, 400],  # GET /inbox
        200,
    ]
    refused = [b["error"]["message"] for b in got if not b["ok"]]
    assert refused[:2] == [
        f"payload field 'mid' must be an integer from {I64_MIN} to {I64_MAX}, got {I64_MAX + 1}",
        f"payload field 'ts' must be an integer from {I64_MIN} to {I64_MAX}, got {2**64 - 1}",
    ]
    assert refused[2] == "payload field 'mid' has the wrong type"
    assert f"payload field 'after' must be an integer from 0 to {I64_MAX}, got {I64_MIN}" in refused
    assert f"payload field 'limit' must be an integer from 1 to {I64_MAX}, got {2**64 - 1}" in (
        refused
    )
    assert f"payload field 'wait_ms' must be an integer from 0 to {I64_MAX}, got {I64_MIN}" in (
        refused
    )
    # What was accepted is delivered digit for digit.
    assert log[-1][2].count(b'"mid":9223372036854775807,"ts":-9223372036854775808') == 1
    items = [e["item"] for e in got[-1]["payload"]["items"]]
    assert [(i.get("mid", i.get("nid")), i["ts"]) for i in items] == [
        (I64_MAX, I64_MIN),
        (I64_MIN, I64_MAX),
        (I64_MAX, I64_MIN),
    ]


async def int_ranges_ws(rec: Recorder, p: str) -> None:
    alice, bob = f"{p}-alice", f"{p}-bob"
    async with rec.ws() as wa, rec.ws() as wb:
        await rec.ws_call(wa, "signin", signin_payload(alice, TEST_SECRET))
        await rec.ws_call(wb, "signin", signin_payload(bob, TEST_SECRET))
        await rec.ws_call(wb, "subscribe_inbox", {"after": I64_MAX + 1})
        await rec.ws_call(wb, "subscribe_inbox", {"after": -1})
        await rec.ws_call(wb, "send", {"to": alice, "mid": I64_MAX + 1, "ts": 1})
        await rec.ws_call(wb, "subscribe_inbox", {"after": I64_MAX})
        await rec.ws_call(wa, "send", {"to": bob, "mid": I64_MAX, "ts": I64_MIN})
        await rec.frame(wb)  # pushed: after the replay every new item is, whatever the cursor
    async with rec.ws() as wb:
        await rec.ws_call(wb, "signin", signin_payload(bob, TEST_SECRET))
        await rec.ws_call(wb, "subscribe_inbox", {"after": 0})
        await rec.frame(wb)


async def test_push_cursors_past_their_range_are_refused_alike(
    servers: dict[str, Server],
) -> None:
    log = await differential(servers, "ws-aiohttp", int_ranges_ws, "intws")
    frames = [b for b in bodies(log) if b.get("op") not in ("signin", "send")]
    assert [f.get("error", {}).get("code") for f in frames[:2]] == ["invalid_envelope"] * 2
    assert frames[0]["error"]["message"] == (
        f"payload field 'after' must be an integer from 0 to {I64_MAX}, got {I64_MAX + 1}"
    )
    assert frames[2]["ok"] and frames[2]["payload"] == {"last": 0, "gap": False, "first": 1}
    sends = [b for b in bodies(log) if b.get("op") == "send"]
    assert [s.get("error", {}).get("code") for s in sends] == ["invalid_envelope", None]
    pushes = [f for f in frames if f.get("op") == "push"]
    assert [(f["seq"], f["item"]["mid"], f["item"]["ts"]) for f in pushes] == [
        (1, I64_MAX, I64_MIN),
        (1, I64_MAX, I64_MIN),
    ]


# -- presence, notifications, activity, stats ----------------------------------------------


async def social(rec: Recorder, p: str) -> None:
    carol, dave, erin = f"{p}-carol", f"{p}-dave", f"{p}-erin"
    tc, td, te = [await rec.signin(u) for u in (carol, dave, erin)]
    room = f"{p}-room"
    await rec.call("join", {"room": room}, tc)
    await rec.call("join", {"room": room, "user": dave}, td)
    await rec.call("heartbeat", {}, te)
    # Dave watches carol (shares a room) and erin (does not); "7" stays in its place.
    await rec.post(("watch", {"users": [carol, erin, "7", f"{p}-nobody"]}), td)
    await rec.post(("presence", {"users": [erin, carol, carol]}), td)
    await rec.post(("bye", {}), tc)  # carol goes offline: dave is told
    await rec.post(("bye", {}), te)  # erin too, but dave does not share a room with her
    await rec.post(("poll", {}), td)
    await rec.post(("send", {"room": room, "mid": 5, "ts": 6, "body": [1, {"x": None}]}), td)
    # Notifications.
    await rec.post(("subscribe", {"topic": f"{p}-news"}), td)
    await rec.post(("publish", {"topic": f"{p}-news", "nid": 1, "ts": 2, "body": "n"}), td)
    await rec.post(("publish", {"topic": f"{p}-empty", "nid": 2, "ts": 2}), td)
    await rec.post(("poll", {"after": 1}), td)
    # Activity and time on site.
    await rec.post(("time_on_site", {}), td)
    await rec.post(("activity", {"event": "view", "page": "/a"}), td)
    await rec.post(("activity", {"event": "view", "page": "7"}), td)
    await rec.post(("activity", {"event": "click"}), td)
    await rec.post(("time_on_site", {}), td)
    await rec.post(("time_on_site", {"user": carol}), td)


async def test_presence_notifications_and_activity_match(servers: dict[str, Server]) -> None:
    log = await differential(servers, "http", social, "soc")
    got = bodies(log)
    watch = next(b for b in got if b["op"] == "watch")["payload"]["status"]
    assert list(watch) == ["soc-carol", "soc-erin", "7", "soc-nobody"]
    assert watch["soc-carol"]["status"] == "online"
    assert {watch[u]["status"] for u in ("soc-erin", "7", "soc-nobody")} == {"unknown"}
    poll = next(b for b in got if b["op"] == "poll")["payload"]
    changes = [i["item"] for i in poll["items"]]
    assert [(c["type"], c["user"], c["status"]) for c in changes] == [
        ("presence", "soc-carol", "offline")
    ]
    time_on_site = [b for b in got if b["op"] == "time_on_site"]
    assert time_on_site[0]["payload"]["sessions"] == 0
    assert time_on_site[1]["payload"]["events"] == 3
    assert list(time_on_site[1]["payload"]["pages"]) == ["/a", "7"]
    assert codes(log)[-1] == "forbidden"


async def stats_keys(rec: Recorder, p: str) -> None:
    token = await rec.signin(f"{p}-user")
    stats = await rec.call("stats", {"stalls_since_ns": 0}, token)
    rec.log.clear()  # the values depend on what ran before; the shape must match
    rec.note(list(stats), list(stats["stalls"]), list(stats["stalls"]["gc"]))
    rec.note(list(stats["stalls"]["loop"]), len(stats["stalls"]["gc"]["collections"]))
    rec.note({k: type(v).__name__ for k, v in stats.items()})


async def test_stats_has_the_python_servers_keys(servers: dict[str, Server]) -> None:
    log = await differential(servers, "http", stats_keys, "stats")
    assert "limit_refusals" in log[0][0] and log[0][0][-1] == "stalls"


# -- server-sent events --------------------------------------------------------------------


async def events(rec: Recorder, p: str) -> None:
    alice, bob = f"{p}-alice", f"{p}-bob"
    ta, tb = await rec.signin(alice), await rec.signin(bob)
    for mid in range(1, 4):
        await rec.call("send", {"to": bob, "mid": mid, "ts": mid, "body": "é"}, ta)
    auth = {"Authorization": f"Bearer {tb}"}
    await rec.events("/events", 3, auth)
    await rec.events("/events", 1, {**auth, "Last-Event-ID": "2"})
    await rec.events("/events?after=1", 1, {**auth, "Last-Event-ID": "2"})  # the header wins
    await rec.events(f"/events?token={tb}&after=1", 2)
    await rec.events("/events", 0)  # no token
    await rec.events("/events?token=nope", 0)
    await rec.events("/events", 0, {"Authorization": "Token x"})
    await rec.events("/events", 0, {**auth, "Last-Event-ID": "x"})
    # Past the retention a stream from the start opens with a gap event.
    for mid in range(4, 12):
        await rec.call("send", {"to": bob, "mid": mid, "ts": mid}, ta)
    await rec.events("/events", 2, auth)


async def test_event_streams_and_their_resume_match(servers: dict[str, Server]) -> None:
    log = await differential(servers, "http", events, "sse")
    assert log[5] == ("events", 200, "text/event-stream", "no-cache")
    assert log[6].startswith(b'id: 1\ndata: {"op":"push","seq":1,"item":{"type":"message"')
    assert log[10].startswith(b"id: 3\n")  # resumed after Last-Event-ID: 2
    assert log[-2].startswith(b'event: gap\ndata: {"op":"subscribe_inbox","id":0,"ts":0,"ok":true')
    assert log[-1].startswith(b"id: 4\n")


# -- WebSockets ----------------------------------------------------------------------------


async def websockets(rec: Recorder, p: str) -> None:
    alice, bob = f"{p}-alice", f"{p}-bob"
    async with rec.ws() as wa, rec.ws() as wb:
        await rec.ws_call(wa, "echo", {"2": 1, "a": [1.5]})
        await wa.send_bytes(b"{nope")
        await rec.frame(wa)
        await rec.ws_call(wa, "send", {"to": bob, "mid": 1, "ts": 1})  # not signed in
        await rec.ws_call(wa, "signin", signin_payload(alice, TEST_SECRET))  # binds it
        signed = await rec.ws_call(wb, "signin", signin_payload(bob, TEST_SECRET))
        token_b = signed["payload"]["token"]
        await rec.ws_call(wb, "subscribe_inbox", {"after": 0})
        for mid in range(1, 4):
            await rec.ws_call(wa, "send", {"to": bob, "mid": mid, "ts": mid, "body": "b"})
            await rec.frame(wb)  # the push
        # Between the limit and twice it: an envelope, the connection stays open.
        await wa.send_bytes(b'{"op":"echo","id":1,"ts":1,"payload":"' + b"x" * LIMIT + b'"}')
        await rec.frame(wa)
    # Bob comes back with his token and resumes after seq 3: the missed items, then live.
    async with rec.ws() as wa:
        await rec.ws_call(wa, "signin", signin_payload(alice, TEST_SECRET))
        for mid in range(4, 6):
            await rec.ws_call(wa, "send", {"to": bob, "mid": mid, "ts": mid})
        async with rec.ws(f"?token={token_b}") as wb:
            await rec.ws_call(wb, "subscribe_inbox", {"after": 3})
            await rec.frame(wb)
            await rec.frame(wb)
            await rec.ws_call(wa, "send", {"to": bob, "mid": 6, "ts": 6})
            await rec.frame(wb)
            await rec.ws_call(wb, "poll", {"after": 5})
            # Acting as someone else: the error, then a 1008 close.
            await rec.ws_call(wb, "join", {"room": "r", "user": alice})
            await rec.frame(wb)
    # Far over the limit: ws closes with 1009.
    async with rec.ws() as ws:
        await ws.send_bytes(b"x" * (2 * LIMIT + 1))
        await rec.frame(ws)
    # A bad token is refused before the handshake.
    try:
        async with rec.ws("?token=nope"):
            rec.note("opened")
    except aiohttp.WSServerHandshakeError as exc:
        rec.note("handshake", exc.status)


async def test_websocket_push_resume_and_closes_match(servers: dict[str, Server]) -> None:
    log = await differential(servers, "ws-aiohttp", websockets, "ws")
    frames = bodies(log)
    pushes = [f["seq"] for f in frames if f.get("op") == "push"]
    assert pushes == [1, 2, 3, 4, 5, 6]
    assert ("close", 1008) in log and ("close", 1009) in log
    assert log[-1] == ("handshake", 401)


async def bye(rec: Recorder, p: str) -> None:
    user = f"{p}-user"
    async with rec.ws() as first:
        signed = await rec.ws_call(first, "signin", signin_payload(user, TEST_SECRET))
        token = signed["payload"]["token"]
        async with rec.ws(f"?token={token}") as second:
            await rec.ws_call(second, "heartbeat", {})
            await rec.ws_call(first, "bye", {})
            await rec.frame(second)  # closed: its token was revoked
        await rec.ws_call(first, "heartbeat", {})  # signed out, still open
    try:
        async with rec.ws(f"?token={token}"):
            rec.note("opened")
    except aiohttp.WSServerHandshakeError as exc:
        rec.note("handshake", exc.status)


async def test_bye_revokes_the_token_on_every_connection(servers: dict[str, Server]) -> None:
    log = await differential(servers, "ws-aiohttp", bye, "bye")
    assert ("close", 1008) in log and log[-1] == ("handshake", 401)
    assert codes(log)[-1] == "unauthorized"


# -- the node server's own life ------------------------------------------------------------


async def test_ready_line_sigterm_ends_streams_and_prints_stats() -> None:
    proc = spawn(node_argv("--ws-ping-interval", "0.5"))
    try:
        info = read_ready(proc)
        assert list(info)[: len(READY_KEYS)] == list(READY_KEYS)
        assert (info["kind"], info["loop"], info["path"], info["tls"]) == (
            "node",
            "node",
            "/rpc",
            None,
        )
        assert info["host"] == HOST and info["pid"] == proc.pid
        assert info["liveness"] == {
            "keepalive_timeout_s": 75.0,
            "body_timeout_s": 60.0,
            "ws_ping_interval_s": 0.5,
        }
        assert info["endpoints"] == {
            "rpc": "/rpc",
            "inbox": "/inbox",
            "events": "/events",
            "ws": "/ws",
        }
        assert (info["signin"], info["secret_file"]) == ("key", None)
        assert info["node_version"].startswith("v")
        base = f"http://{HOST}:{info['port']}"
        async with aiohttp.ClientSession() as session:
            rec = Recorder(session, base)
            token = await rec.signin("alice")
            async with (
                session.get(
                    f"{base}/events", headers={"Authorization": f"Bearer {token}"}
                ) as stream,
                session.ws_connect(f"{base}/ws?token={token}", heartbeat=None) as ws,
            ):
                await rec.call("send", {"to": "alice", "mid": 1, "ts": 1}, token)
                # A few ping intervals, the client reading (and so answering pings).
                reading = asyncio.create_task(ws.receive(timeout=STEP_S))
                await asyncio.sleep(1.2)
                assert not reading.done()
                proc.send_signal(signal.SIGTERM)
                async with asyncio.timeout(STEP_S):
                    rest = await stream.content.read()  # ends cleanly, after the last chunk
                assert rest.startswith(b"id: 1\ndata: ")
                msg = await reading
                assert msg.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 1001
        code, out = stop(proc)
        assert code == 0
        lines = out.splitlines()
        assert len(lines) == 1, out
        counters = parse_stats_line(lines[0])
        assert counters is not None
        assert counters["messages"] == 1 and counters["deliveries"] == 1
    finally:
        stop(proc, signal.SIGKILL)


async def test_without_a_secret_it_makes_a_private_file_and_removes_it() -> None:
    env = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
    proc = spawn(node_argv(), env)
    try:
        info = read_ready(proc)
        secret_file = Path(info["secret_file"])
        assert secret_file.stat().st_mode & 0o777 == 0o600
        assert secret_file.parent.stat().st_mode & 0o777 == 0o700
        secret = check_secret(secret_file.read_text())
        async with aiohttp.ClientSession() as session:
            rec = Recorder(session, f"http://{HOST}:{info['port']}")
            reply = await rec.post(("signin", signin_payload("alice", secret)))
            assert reply["ok"], reply
            reply = await rec.post(("signin", signin_payload("alice", TEST_SECRET)))
            assert reply["error"]["code"] == "unauthorized"
        assert stop(proc)[0] == 0
        assert not secret_file.exists() and not secret_file.parent.exists()
    finally:
        stop(proc, signal.SIGKILL)


async def test_open_signin_accepts_a_bare_name() -> None:
    proc = spawn(node_argv("--open-signin"))
    try:
        info = read_ready(proc)
        assert info["signin"] == "open"
        async with aiohttp.ClientSession() as session:
            rec = Recorder(session, f"http://{HOST}:{info['port']}")
            assert (await rec.post(("signin", {"user": "anyone"})))["ok"]
    finally:
        stop(proc)


@pytest.mark.parametrize(
    ("args", "env_secret", "words"),
    [
        (("--host", "0.0.0.0"), TEST_SECRET, "non-loopback"),
        (("--host", "192.0.2.1"), TEST_SECRET, "non-loopback"),
        (("--port", "70000"), TEST_SECRET, "port"),
        (("--max-message-bytes", "0"), TEST_SECRET, "positive"),
        (("--bogus",), TEST_SECRET, "unrecognized"),
        ((), "short", "at least 16"),
    ],
)
def test_refusals_exit_2(args: tuple[str, ...], env_secret: str, words: str) -> None:
    env = {**os.environ, SECRET_ENV: env_secret}
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(NODE_DIR / "server.js"), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stdout == b""
    assert words in done.stderr.decode()
