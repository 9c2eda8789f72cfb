"""Real-time users over HTTP/3 on the lean client, against hypercorn with TLS on 127.0.0.1.

A user holds one QUIC connection for its actions, polls and event stream
(keep-alive), or one per request (new-connection); a counting UDP relay
between client and server is the independent witness of the datagrams'
bytes, which the roles' attributed counters must add up to exactly. Through
the real engine every delivery mode delivers everything once and in order,
and one short ``rtbench run`` pairs HTTP/3 long-poll and SSE cells with a
WebSocket cell.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from cli_runs import run_side_by_side
from realtime_cells import realtime_cell
from serving import HOST, running
from test_realtime_engine import WORKLOADS, scenario_toml

from loadgen import tls
from loadgen.clients.errors import ClientError
from loadgen.events import EventHook
from loadgen.lean.connect import Target
from loadgen.lean.quicbytes import split
from loadgen.realtime.engine import run_realtime
from loadgen.realtime.lean_h3_conns import LeanH3HttpConn, LeanH3SseConn
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.tracker import Tracker
from loadgen.realtime.users import Endpoint, VirtualUser
from loadgen.recorder import Sample
from loadgen.schema import SUMMARY_FILE
from loadgen.wire import WireCounter, new_event_loop
from servers.common import ServerConfig
from servers.realtime.credentials import signin_payload

pytestmark = pytest.mark.timeout(60)

KIND = "http-hypercorn"


class _Upstream(asyncio.DatagramProtocol):
    """One client's socket towards the server, relaying the server's datagrams back."""

    def __init__(self, tap: UdpTap, client: Any) -> None:
        self.tap = tap
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        for data in self.pending:
            self.transport.sendto(data)
        self.pending.clear()

    def send(self, data: bytes) -> None:
        if self.transport is None:
            self.pending.append(data)
        else:
            self.transport.sendto(data)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.tap.down += len(data)
        assert self.tap.transport is not None
        self.tap.transport.sendto(data, self.client)


class UdpTap(asyncio.DatagramProtocol):
    """A UDP relay on 127.0.0.1 to ``port``: client sockets seen, payload bytes each way.

    ``async with UdpTap(port) as tap:`` then connect to ``tap.base_url``.
    """

    def __init__(self, port: int) -> None:
        self.target = port
        self.up = 0  # client to server
        self.down = 0  # server to client
        self.transport: asyncio.DatagramTransport | None = None
        self.peers: dict[Any, _Upstream] = {}
        self._opening: set[asyncio.Future[Any]] = set()

    @property
    def base_url(self) -> str:
        assert self.transport is not None
        return f"https://{HOST}:{self.transport.get_extra_info('sockname')[1]}"

    async def __aenter__(self) -> UdpTap:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(HOST, 0))
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Relay the last datagrams (a CONNECTION_CLOSE), or the server would wait for its
        # connection to time out before it stops.
        await asyncio.sleep(0.05)
        await asyncio.gather(*self._opening, return_exceptions=True)
        for peer in self.peers.values():
            if peer.transport is not None:
                peer.transport.close()
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.up += len(data)
        peer = self.peers.get(addr)
        if peer is None:
            peer = self.peers[addr] = _Upstream(self, addr)
            opening = asyncio.ensure_future(
                asyncio.get_running_loop().create_datagram_endpoint(
                    lambda: peer, remote_addr=(HOST, self.target)
                )
            )
            self._opening.add(opening)
            opening.add_done_callback(self._opening.discard)
        peer.send(data)


@pytest.fixture
def certs(tmp_path: Path) -> Iterator[tls.CertPaths]:
    paths = tls.make_certificates(tmp_path / "tls")
    tls.configure_client(paths.ca, "1.3")
    try:
        yield paths
    finally:
        tls.configure_client(None)


@contextlib.asynccontextmanager
async def hypercorn_behind_tap(certs: tls.CertPaths) -> AsyncIterator[UdpTap]:
    config = ServerConfig(HOST, 0, tls_cert=certs.cert, tls_key=certs.key)
    async with running(KIND, config=config) as server, UdpTap(server.port) as tap:
        yield tap


def run(main: Callable[[], Any]) -> Any:
    loop = new_event_loop(True)
    try:
        return loop.run_until_complete(asyncio.wait_for(main(), 30))
    finally:
        loop.close()


def user(base_url: str, delivery: str, mode: str, items: list[Any], rows: list[Any]) -> VirtualUser:
    where = Endpoint(base_url, KIND, "lean", mode, delivery, 5.0, "3")
    params = RealtimeParams(poll_interval_ms=50, long_poll_timeout_ms=2000)
    return VirtualUser(
        "alice",
        where,
        params,
        lambda *row: rows.append(row),
        lambda *item: items.append(item),
        lambda *_: None,
    )


async def settle(tap: UdpTap, counted: Callable[[], tuple[int, int]]) -> None:
    """Wait until what the relay carried and what the client counted agree (or 1 s)."""
    for _ in range(50):
        if (tap.up, tap.down) == counted():
            return
        await asyncio.sleep(0.02)


def test_a_datagram_is_split_in_proportion_and_whole_bytes() -> None:
    actions, polls = WireCounter(), WireCounter()
    owners = {0: actions, 4: polls}
    # Stream 2 (a control stream) is nobody's: its share is what the result leaves out.
    shares = split(1000, {0: 300, 2: 100, 4: 600}, owners)
    assert shares == {actions: 300, polls: 600}
    uneven = split(7, {0: 1, 4: 1, 8: 1}, {0: actions, 4: polls, 8: actions})
    assert sum(uneven.values()) == 7 and uneven[polls] in (2, 3)
    assert split(50, {}, owners) == {}


@pytest.mark.parametrize(
    ("delivery", "mode"),
    [
        ("short-poll", "keep-alive"),
        ("long-poll", "keep-alive"),
        ("sse", "keep-alive"),
        ("long-poll", "new-connection"),
        ("sse", "new-connection"),
    ],
)
def test_roles_attributed_bytes_add_up_to_the_udp_datagrams(
    certs: tls.CertPaths, delivery: str, mode: str
) -> None:
    async def main() -> dict[str, Any]:
        items: list[Any] = []
        rows: list[Any] = []
        async with hypercorn_behind_tap(certs) as tap:
            vu = user(tap.base_url, delivery, mode, items, rows)
            assert isinstance(vu.http, LeanH3HttpConn)
            assert vu.sse is None or isinstance(vu.sse, LeanH3SseConn)
            await vu.start()
            for mid in (1, 2, 3):
                await vu.call("send", {"to": "alice", "mid": mid, "ts": 1, "body": f"m{mid}"})
            for _ in range(300):
                if len(items) == 3:
                    break
                await asyncio.sleep(0.01)
            if delivery == "short-poll":
                # No more polls (as going offline stops them), so the counts can settle.
                vu.online = False
                vu._wake.clear()
            await asyncio.sleep(0.15)
            await settle(tap, vu.wire_totals)
            counters = {**vu.http.counters, "sse": vu.sse.counter if vu.sse else None}
            result = {
                "seqs": [seq for _, seq, *_ in items],
                "vias": {via for *_, via, _ in items},
                "roles": {k: c.snapshot() for k, c in counters.items() if c is not None},
                "connections": {k: c.connections for k, c in counters.items() if c is not None},
                "client": vu.wire_totals(),
                "wire": (tap.up, tap.down),
                "sockets": len(tap.peers),
                "tally": vu.header_tally(),
                "rows": rows,
            }
            await vu.stop()
            return result

    got = run(main)
    assert got["seqs"] == [1, 2, 3]
    assert got["vias"] == {"sse" if delivery == "sse" else "poll"}
    # Every UDP byte the relay carried is counted once, by exactly one role. A
    # connection closed after each request (new-connection) may still be sent a last
    # datagram (an ACK of its CONNECTION_CLOSE) that reaches the relay but no socket.
    if mode == "keep-alive":
        assert got["client"] == got["wire"]
    else:
        assert got["client"][0] == got["wire"][0] and got["client"][1] <= got["wire"][1]
    roles = got["roles"]
    receiving = "sse" if delivery == "sse" else "poll"
    assert all(n > 0 for n in roles["action"]) and all(n > 0 for n in roles[receiving])
    # A measured request's bytes are its stream's share, within its role's counter (which
    # also keeps the connection's own datagrams: handshake, ACKs, control streams).
    sends = [r for r in got["rows"] if r[0] in ("signin", "send")]
    assert 0 < sum(r[3] for r in sends) <= roles["action"][0]
    assert 0 < sum(r[4] for r in sends) <= roles["action"][1]
    connections = got["connections"]
    if mode == "keep-alive":
        # One QUIC connection for the user's every role, as a browser holds.
        assert got["sockets"] == 1
        assert connections["action"] == 1 and sum(connections.values()) == 1
    else:
        assert got["sockets"] == sum(connections.values()) >= 4
        if delivery == "sse":
            assert connections["sse"] == 1
    tally = got["tally"]
    assert tally.requests >= 4 and tally.header_bytes_sent > 0


def test_a_long_poll_cancelled_when_the_user_leaves_resets_only_its_stream(
    certs: tls.CertPaths,
) -> None:
    async def main() -> dict[str, Any]:
        rows: list[Any] = []
        async with hypercorn_behind_tap(certs) as tap:
            http = LeanH3HttpConn(tap.base_url, True, 5.0, lambda *row: rows.append(row))
            http.token = (await http.call("signin", signin_payload("alice")))["token"]
            held = asyncio.ensure_future(http.poll(0, 5000, lambda *_: None, "poll"))
            await asyncio.sleep(0.2)
            poll = http.counters["poll"]
            before = poll.snapshot()
            held.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await held
            conn = http.link.conn
            assert conn is not None
            after_cancel = poll.snapshot()
            state = (conn.is_open, conn.streams)
            echoed = await http.call("echo", "still here")
            await asyncio.sleep(0.1)
            await settle(tap, http.wire_totals)
            result = {
                "state": state,
                "same": http.link.conn is conn,
                "echoed": echoed,
                "reset_sent": after_cancel[0] - before[0],
                "ops": [r[0] for r in rows],
                "sockets": len(tap.peers),
                "counted": http.wire_totals(),
                "wire": (tap.up, tap.down),
            }
            await http.close()
            return result

    got = run(main)
    assert got["state"] == (True, 0) and got["same"] and got["echoed"] == "still here"
    # The abandoned poll's RESET_STREAM and STOP_SENDING went out as the poll's bytes.
    assert got["reset_sent"] > 0
    assert got["ops"] == ["signin", "echo"]  # the abandoned poll is not a measured request
    assert got["sockets"] == 1 and got["counted"] == got["wire"]


def test_a_long_poll_held_on_a_closed_connection_ends_at_the_server(
    certs: tls.CertPaths,
) -> None:
    # hypercorn would keep the request running on a QUIC connection that is gone, sit
    # out its graceful timeout at shutdown, then crash cancelling it.
    config = ServerConfig(HOST, 0, tls_cert=certs.cert, tls_key=certs.key)

    async def main() -> float:
        async with running(KIND, config=config) as server:
            http = LeanH3HttpConn(f"https://{HOST}:{server.port}", True, 5.0, lambda *_: None)
            http.token = (await http.call("signin", signin_payload("alice")))["token"]
            path, _ = http.poll_target(0, 30_000)
            conn = await http.link.connection(Target.parse(http.base_url + path))
            fields = http._fields(None)
            held = asyncio.ensure_future(conn.exchange(b"GET", path.encode(), fields, None, 35.0))
            await asyncio.sleep(0.2)
            conn.close()  # CONNECTION_CLOSE with the long poll held at the server
            with pytest.raises(ClientError):
                await held
            await asyncio.sleep(0.5)
            stopping = time.monotonic()
        return time.monotonic() - stopping

    # Stopping waits for nothing: far less than hypercorn's graceful timeout (4 s).
    assert run(main) < 3.0


def test_a_closed_event_stream_resets_only_its_stream(certs: tls.CertPaths) -> None:
    async def main() -> dict[str, Any]:
        items: list[Any] = []
        async with hypercorn_behind_tap(certs) as tap:
            http = LeanH3HttpConn(tap.base_url, True, 5.0, lambda *_: None)
            sse = LeanH3SseConn(tap.base_url, 5.0, lambda *item: items.append(item))
            sse.share(http)
            token = (await http.call("signin", signin_payload("alice")))["token"]
            http.token = token
            await sse.connect(token, 0)
            reader = asyncio.ensure_future(sse.run())
            await http.call("send", {"to": "alice", "mid": 1, "ts": 1, "body": "one"})
            for _ in range(200):
                if items:
                    break
                await asyncio.sleep(0.01)
            conn = http.link.conn
            assert conn is not None
            streams_held = conn.streams
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await sse.close()
            state = (conn.is_open, conn.streams)
            echoed = await http.call("echo", "still here")
            result = {
                "held": streams_held,
                "state": state,
                "same": http.link.conn is conn,
                "echoed": echoed,
                "seqs": [i[0] for i in items],
                "nbytes": [i[-1] for i in items],
                "sockets": len(tap.peers),
            }
            await http.close()
            return result

    got = run(main)
    assert got["held"] == 1 and got["state"] == (True, 0)
    assert got["same"] and got["echoed"] == "still here" and got["sockets"] == 1
    # The push's bytes: its event's lines and the DATA frame header around them.
    assert got["seqs"] == [1] and got["nbytes"][0] > 2


# -- through the engine -------------------------------------------------------------------------


@pytest.mark.parametrize("delivery", ["short-poll", "long-poll", "sse"])
def test_engine_delivers_everything_once_over_http3(certs: tls.CertPaths, delivery: str) -> None:
    params = RealtimeParams(
        users=3,
        group_size=2,
        message_rate=6.0,
        poll_interval_ms=100,
        long_poll_timeout_ms=300,
        drain_s=1.0,
    )
    tracker = Tracker(0)
    samples: list[Sample] = []
    hook = EventHook()
    hook.add_listener(samples.append)

    async def main() -> tuple[Any, UdpTap]:
        async with hypercorn_behind_tap(certs) as tap:
            spec = realtime_cell(
                KIND,
                delivery,
                tap.base_url,
                client="lean",
                conn_mode="keep-alive",
                http_version="3",
                tls="1.3",
                ca_file=str(certs.ca),
                duration_s=0.8,
                warmup_s=0.0,
                workload="messaging",
            )
            return await run_realtime(spec, params, hook, tracker), tap

    stats, tap = run(main)
    counts = tracker.counts()
    assert counts["expected"] > 0 and counts["delivered"] == counts["expected"], counts
    assert (counts["lost"], counts["duplicated"], counts["out_of_order"]) == (0, 0, 0), counts
    assert not [s for s in samples if s.error is not None]
    sends = [s for s in samples if s.kind == "send"]
    assert sends and all(s.bytes_sent > 0 and s.bytes_received > 0 for s in sends)
    via = "sse" if delivery == "sse" else "poll"
    assert all(r.via == via and r.bytes > 0 for r in tracker.rows)
    assert len(tap.peers) == params.users  # one QUIC connection per user
    assert 0 < stats.wire_sent <= tap.up and 0 < stats.wire_received <= tap.down
    assert stats.http2_requests >= stats.requests


def test_users_pick_the_http3_connections_only_for_lean_http3_endpoints() -> None:
    async def main() -> list[tuple[str, str]]:
        picked = []
        for client, version in [("lean", "3"), ("lean", "2"), ("aiohttp", "1.1")]:
            where = Endpoint("https://127.0.0.1:1", KIND, client, "keep-alive", "sse", 1.0, version)
            vu = VirtualUser("a", where, RealtimeParams(), *(lambda *_: None,) * 3)
            picked.append((type(vu.http).__name__, type(vu.sse).__name__))
        return picked

    assert run(main) == [
        ("LeanH3HttpConn", "LeanH3SseConn"),
        ("LeanH2HttpConn", "LeanH2SseConn"),
        ("HttpConn", "SseConn"),
    ]


# -- rtbench run ------------------------------------------------------------------------------

H3_CELLS = """
[[cells]]
transport = "http-hypercorn"
client = "lean"
http_version = "3"
tls = true
delivery = "long-poll"

[[cells]]
transport = "http-hypercorn"
client = "lean"
http_version = "3"
tls = true
delivery = "sse"
"""

LONG_POLL = "http-hypercorn/lean/keep-alive/long-poll+h3+tls"
SSE = "http-hypercorn/lean/keep-alive/sse+h3+tls"


@pytest.mark.timeout(180)
def test_rtbench_run_delivers_over_http3_without_loss(tmp_path: Path) -> None:
    duration_s, realtime = WORKLOADS["messaging"]
    text = scenario_toml("messaging", duration_s, realtime)
    out = run_side_by_side(tmp_path, {"h3": text[: text.index("[[cells]]")] + H3_CELLS}, 150)
    summary = orjson.loads((out["h3"] / SUMMARY_FILE).read_bytes())
    cells = {c["cell"]: c for c in summary["cells"]}
    assert set(cells) == {LONG_POLL, SSE}
    for name, cell in cells.items():
        assert cell["status"] == "ok", (name, cell["failures"], cell["errors_by_code"])
        assert cell["http_version"] == "3"
        d = cell["deliveries"]
        assert d["expected"] > 0 and d["delivered"] == d["expected"], (name, d)
        assert (d["lost"], d["duplicated"], d["out_of_order"]) == (0, 0, 0), (name, d)
