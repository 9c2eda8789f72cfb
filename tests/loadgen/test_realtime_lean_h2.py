"""Real-time users over HTTP/2 on the lean client, against hypercorn on 127.0.0.1.

A user holds one HTTP/2 connection for its actions, polls and event stream
(keep-alive), or one per request (new-connection); a counting TCP proxy between
client and server is the independent witness of connections and bytes. Through
the real engine every delivery mode must deliver everything once and in order,
and one short ``rtbench run`` pairs the HTTP/2 cells with a WebSocket cell.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from cli_runs import run_side_by_side
from realtime_cells import realtime_cell
from serving import HOST, running
from test_realtime_engine import WORKLOADS, scenario_toml

import reports
from loadgen import tls
from loadgen.events import EventHook
from loadgen.realtime.engine import run_realtime
from loadgen.realtime.lean_h2_conns import LeanH2HttpConn, LeanH2SseConn
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.tracker import Tracker
from loadgen.realtime.users import Endpoint, VirtualUser
from loadgen.recorder import Sample
from loadgen.schema import SUMMARY_FILE
from loadgen.wire import new_event_loop
from reports.pairs import matched_pairs
from servers.common import ServerConfig
from servers.realtime.credentials import signin_payload

pytestmark = pytest.mark.timeout(60)

KIND = "http-hypercorn"
MODES = ["keep-alive", "new-connection"]
#: An RST_STREAM frame: its 9-byte header and a 4-byte error code.
RST_STREAM_BYTES = 13


class Tap:
    """A TCP proxy on 127.0.0.1 to ``port``: connections accepted, bytes each way.

    ``async with Tap(port) as tap:`` then connect to ``tap.base_url``.
    """

    def __init__(self, port: int, scheme: str = "http") -> None:
        self.target = port
        self.scheme = scheme
        self.accepted = 0
        self.up = 0  # client to server
        self.down = 0  # server to client
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[Any]] = set()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"{self.scheme}://{HOST}:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> Tap:
        self._server = await asyncio.start_server(self._pipe, HOST, 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._pipes:
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        await self._server.wait_closed()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.target)
            await asyncio.gather(
                self._copy(reader, up_writer, "up"), self._copy(up_reader, writer, "down")
            )
        finally:
            self._pipes.discard(task)
            writer.close()

    async def _copy(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, way: str
    ) -> None:
        try:
            while data := await reader.read(65536):
                setattr(self, way, getattr(self, way) + len(data))
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def hypercorn_behind_tap(certs: tls.CertPaths | None = None) -> AsyncIterator[Tap]:
    """hypercorn behind a Tap; over TLS (ALPN h2) with ``certs``, which the client trusts."""
    config = None
    if certs is not None:
        config = ServerConfig(HOST, 0, tls_cert=certs.cert, tls_key=certs.key)
    async with (
        running(KIND, config=config) as server,
        Tap(server.port, "https" if certs else "http") as tap,
    ):
        yield tap


@pytest.fixture(params=[False, True], ids=["h2c", "tls"])
def certs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tls.CertPaths | None]:
    """None (h2c), or certificates the client trusts for the duration of the test."""
    if not request.param:
        yield None
        return
    paths = tls.make_certificates(tmp_path / "tls")
    tls.configure_client(paths.ca, "1.3")
    try:
        yield paths
    finally:
        tls.configure_client(None)


def run(main: Callable[[], Any]) -> Any:
    loop = new_event_loop(True)
    try:
        return loop.run_until_complete(asyncio.wait_for(main(), 30))
    finally:
        loop.close()


def user(base_url: str, delivery: str, mode: str, items: list[Any], rows: list[Any]) -> VirtualUser:
    where = Endpoint(base_url, KIND, "lean", mode, delivery, 5.0, "2")
    params = RealtimeParams(poll_interval_ms=50, long_poll_timeout_ms=2000)
    return VirtualUser(
        "alice",
        where,
        params,
        lambda *row: rows.append(row),
        lambda *item: items.append(item),
        lambda *_: None,
    )


async def settle(tap: Tap, counted: Callable[[], tuple[int, int]]) -> None:
    """Wait until what the proxy relayed and what the client counted agree (or 1 s)."""
    for _ in range(50):
        if (tap.up, tap.down) == counted():
            return
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("delivery", ["short-poll", "long-poll", "sse"])
def test_roles_count_their_own_bytes_and_add_up_to_the_wire(
    delivery: str, mode: str, certs: tls.CertPaths | None
) -> None:
    async def main() -> dict[str, Any]:
        items: list[Any] = []
        rows: list[Any] = []
        async with hypercorn_behind_tap(certs) as tap:
            vu = user(tap.base_url, delivery, mode, items, rows)
            assert isinstance(vu.http, LeanH2HttpConn)
            assert vu.sse is None or isinstance(vu.sse, LeanH2SseConn)
            await vu.start()
            for mid in (1, 2, 3):
                await vu.call("send", {"to": "alice", "mid": mid, "ts": 1, "body": f"m{mid}"})
            for _ in range(200):
                if len(items) == 3:
                    break
                await asyncio.sleep(0.01)
            if delivery == "short-poll":
                # No more polls (as going offline stops them), so the counts can settle.
                vu.online = False
                vu._wake.clear()
            # Quiet: a held long poll or the event stream waits, nothing in flight.
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
                "accepted": tap.accepted,
                "tally": vu.header_tally(),
                "rows": rows,
            }
            await vu.stop()
            return result

    got = run(main)
    assert got["seqs"] == [1, 2, 3]
    assert got["vias"] == {"sse" if delivery == "sse" else "poll"}
    # Every byte the proxy relayed is counted once, by exactly one role.
    assert got["client"] == got["wire"]
    roles = got["roles"]
    receiving = "sse" if delivery == "sse" else "poll"
    assert all(n > 0 for n in roles["action"]) and all(n > 0 for n in roles[receiving])
    # Each measured request reports its role's bytes: the rows add up to the counters.
    sends = [r for r in got["rows"] if r[0] in ("signin", "send")]
    measured = (sum(r[3] for r in sends), sum(r[4] for r in sends))
    if certs is None:
        assert measured == roles["action"]
    else:
        # The actions' counter also keeps the record overhead (22 bytes a record in TLS
        # 1.3) of the polls' and the connection's records, written outside any action.
        for way in (0, 1):
            assert 0.9 * roles["action"][way] <= measured[way] <= roles["action"][way]
    connections = got["connections"]
    if mode == "keep-alive":
        # One connection for the user's every role, as a browser holds over HTTP/2.
        assert got["accepted"] == 1
        assert connections["action"] == 1 and sum(connections.values()) == 1
    else:
        assert got["accepted"] == sum(connections.values()) >= 4
        if delivery == "sse":
            assert connections["sse"] == 1
    tally = got["tally"]
    assert tally.requests >= 4 and tally.header_bytes_sent > 9 * tally.requests


def test_a_long_poll_cancelled_when_the_user_leaves_resets_only_its_stream() -> None:
    async def main() -> dict[str, Any]:
        rows: list[Any] = []
        async with hypercorn_behind_tap() as tap:
            http = LeanH2HttpConn(tap.base_url, True, 5.0, lambda *row: rows.append(row))
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
            result = {
                "state": state,
                "same": http.link.conn is conn,
                "echoed": echoed,
                "rst": (after_cancel[0] - before[0], after_cancel[1] - before[1]),
                "ops": [r[0] for r in rows],
                "accepted": tap.accepted,
            }
            await http.close()
            return result

    got = run(main)
    assert got["state"] == (True, 0) and got["same"] and got["echoed"] == "still here"
    # The abandoned poll cost its stream one RST_STREAM, counted as a poll's byte.
    assert got["rst"] == (RST_STREAM_BYTES, 0)
    assert got["ops"] == ["signin", "echo"]  # the abandoned poll is not a measured request
    assert got["accepted"] == 1


def test_the_event_stream_comes_back_on_the_connection_after_going_offline() -> None:
    async def main() -> tuple[list[int], int, tuple[int, int], tuple[int, int]]:
        items: list[Any] = []
        async with hypercorn_behind_tap() as tap:
            vu = user(tap.base_url, "sse", "keep-alive", items, [])
            await vu.start()
            await vu.go_offline()
            await vu.call("send", {"to": "alice", "mid": 1, "ts": 1, "body": "while away"})
            await vu.go_online()
            for _ in range(200):
                if items:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            await settle(tap, vu.wire_totals)
            result = [i[1] for i in items], tap.accepted, vu.wire_totals(), (tap.up, tap.down)
            await vu.stop()
            return result

    seqs, accepted, counted, wire = run(main)
    # Leaving closed the tab's connection; the send reopened it and the stream joined it.
    assert seqs == [1] and accepted == 2 and counted == wire


# -- through the engine -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("delivery", ["short-poll", "long-poll", "sse"])
async def test_engine_delivers_everything_once_over_http2(
    delivery: str, mode: str, certs: tls.CertPaths | None
) -> None:
    params = RealtimeParams(
        users=4,
        group_size=2,
        message_rate=4.0,
        poll_interval_ms=100,
        long_poll_timeout_ms=300,
        drain_s=2.0,
    )
    tracker = Tracker(0)
    samples: list[Sample] = []
    hook = EventHook()
    hook.add_listener(samples.append)
    async with hypercorn_behind_tap(certs) as tap:
        spec = realtime_cell(
            KIND,
            delivery,
            tap.base_url,
            client="lean",
            conn_mode=mode,
            http_version="2",
            duration_s=1.0,
            warmup_s=0.0,
            workload="messaging",
        )
        stats = await run_realtime(spec, params, hook, tracker)
    counts = tracker.counts()
    assert counts["expected"] > 0 and counts["delivered"] == counts["expected"], counts
    assert (counts["lost"], counts["duplicated"], counts["out_of_order"]) == (0, 0, 0), counts
    assert not [s for s in samples if s.error is not None]
    sends = [s for s in samples if s.kind == "send"]
    assert sends and all(s.bytes_sent > 0 and s.bytes_received > 0 for s in sends)
    if delivery == "sse":
        assert all(r.via == "sse" and r.bytes > 0 for r in tracker.rows)
    else:
        polls = [s for s in samples if s.kind == "poll"]
        assert polls and all(s.bytes_sent > 0 and s.bytes_received > 0 for s in polls)
        assert all(r.via == "poll" and r.bytes > 0 for r in tracker.rows)
    if mode == "keep-alive":
        assert tap.accepted == params.users  # one HTTP/2 connection per user
    else:
        assert tap.accepted >= stats.requests
    # Counted once each: what the clients counted is no more than what was relayed (the
    # rest is the closing GOAWAYs and resets, and polls after the count was taken).
    assert 0 < stats.wire_sent <= tap.up and 0 < stats.wire_received <= tap.down
    assert stats.http2_requests >= stats.requests
    assert stats.http2_header_bytes_sent > 9 * stats.http2_requests
    assert stats.http2_header_bytes_received > 0


def test_users_pick_the_http2_connections_only_for_lean_http2_endpoints() -> None:
    async def main() -> list[tuple[str, str]]:
        picked = []
        for client, version in [("lean", "2"), ("lean", "1.1"), ("aiohttp", "1.1")]:
            where = Endpoint("http://127.0.0.1:1", KIND, client, "keep-alive", "sse", 1.0, version)
            vu = VirtualUser("a", where, RealtimeParams(), *(lambda *_: None,) * 3)
            picked.append((type(vu.http).__name__, type(vu.sse).__name__))
        return picked

    assert run(main) == [
        ("LeanH2HttpConn", "LeanH2SseConn"),
        ("LeanHttpConn", "LeanSseConn"),
        ("HttpConn", "SseConn"),
    ]


# -- rtbench run ------------------------------------------------------------------------------

H2_CELLS = """
[[cells]]
transport = "http-hypercorn"
client = "lean"
http_version = "2"
delivery = "long-poll"

[[cells]]
transport = "http-hypercorn"
client = "lean"
http_version = "2"
delivery = "sse"

[[cells]]
transport = "ws-hypercorn"
client = "lean"
"""

LONG_POLL = "http-hypercorn/lean/keep-alive/long-poll+h2"
SSE = "http-hypercorn/lean/keep-alive/sse+h2"
WS = "ws-hypercorn/lean/persistent"


@pytest.mark.timeout(180)
def test_rtbench_run_pairs_http2_delivery_with_the_websocket_cell(tmp_path: Path) -> None:
    duration_s, realtime = WORKLOADS["messaging"]
    text = scenario_toml("messaging", duration_s, realtime)
    out = run_side_by_side(tmp_path, {"h2": text[: text.index("[[cells]]")] + H2_CELLS}, 150)
    summary = orjson.loads((out["h2"] / SUMMARY_FILE).read_bytes())
    cells = {c["cell"]: c for c in summary["cells"]}
    assert set(cells) == {LONG_POLL, SSE, WS}
    for name, cell in cells.items():
        assert cell["status"] == "ok", (name, cell["failures"], cell["errors_by_code"])
        d = cell["deliveries"]
        assert d["expected"] > 0 and d["delivered"] == d["expected"], (name, d)
        assert (d["lost"], d["duplicated"], d["out_of_order"]) == (0, 0, 0), (name, d)
    for name in (LONG_POLL, SSE):
        assert cells[name]["http_version"] == "2"
        headers = cells[name]["http2_headers"]
        assert headers["requests"] > 0 and headers["bytes_sent_per_request"] > 9, headers
    assert cells[WS]["http_version"] is None and "http2_headers" not in cells[WS]
    pairs = matched_pairs(reports.load(out["h2"]))
    assert {(p.http_cell, p.ws_cell): p.mode for p in pairs.itertuples()} == {
        (LONG_POLL, WS): "long-poll over HTTP/2",
        (SSE, WS): "sse over HTTP/2",
    }
