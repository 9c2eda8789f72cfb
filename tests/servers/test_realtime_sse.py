"""Server-Sent Events (``GET /events``) as the fourth push transport, on 127.0.0.1.

The stream delivers exactly once and in order with the WebSocket's push JSON,
resumes after a dropped connection with ``Last-Event-ID`` (dropped while
messages keep coming), needs a token, keeps its user online while open and
offline as soon as it closes, sends heartbeats when asked and ends cleanly
when the server stops. :class:`~loadgen.realtime.sse.SseParser` is checked
on the awkward parts of the format and, with hypothesis, on any stream split
into chunks anywhere; :class:`~loadgen.realtime.sse.SseDecoder` on pushes,
gaps and resuming. One ``rtbench run`` of a tiny messaging scenario over an
``sse`` cell loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from cli_runs import start_run, wait_runs
from hypothesis import given
from hypothesis import strategies as st

from loadgen.realtime.conns import HttpConn, SseConn
from loadgen.realtime.sse import SseDecoder, SseParser, chunk_framing
from loadgen.scenario import ScenarioError, parse_scenario
from loadgen.schema import DELIVERIES_FILE, SUMMARY_FILE
from servers import http_server, protocol
from servers.common import ServerConfig
from servers.hub import Hub
from servers.realtime.config import RealtimeConfig
from servers.realtime.credentials import signin_payload

pytestmark = pytest.mark.timeout(30)

HOST = "127.0.0.1"
STEP_S = 5.0  # bound on any single network step


@contextlib.asynccontextmanager
async def serve(
    hub: Hub | None = None, heartbeat_s: float = 0.0
) -> AsyncIterator[tuple[str, Hub, asyncio.Event, asyncio.Task[None]]]:
    """The HTTP server in this loop; yields (base URL, hub, stop event, server task)."""
    hub = hub or Hub()
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    config = ServerConfig(HOST, 0, sse_heartbeat_s=heartbeat_s)
    task = asyncio.create_task(http_server.serve(config, hub, ready.set_result, stop))
    done, _ = await asyncio.wait({ready, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    assert ready in done, "the HTTP server did not start"
    try:
        yield f"http://{HOST}:{ready.result()}", hub, stop, task
    finally:
        stop.set()
        async with asyncio.timeout(15):
            await task


async def user(base: str, name: str) -> HttpConn:
    """A signed-in user acting over ``POST /rpc``."""
    conn = HttpConn(base, True, STEP_S, lambda *a: None)
    conn.token = (await conn.call("signin", signin_payload(name)))["token"]
    return conn


class Receiver:
    """An :class:`SseConn` and what reached its ``on_item``."""

    def __init__(self, base: str) -> None:
        self.items: list[tuple[int, Any, str, int]] = []
        self.connects: list[str | None] = []
        self.conn = SseConn(base, STEP_S, self._item, lambda t0, t1, err: self.connects.append(err))
        self.task: asyncio.Task[None] | None = None

    def _item(self, seq: int, item: Any, received_ns: int, via: str, nbytes: int) -> None:
        self.items.append((seq, item, via, nbytes))

    async def start(self, token: str, after: int = 0) -> None:
        await self.conn.connect(token, after)
        self.task = asyncio.create_task(self.conn.run())

    async def until(self, n: int, timeout_s: float = STEP_S) -> None:
        async with asyncio.timeout(timeout_s):
            while len(self.items) < n:
                if self.task is not None and self.task.done():
                    self.task.result()
                await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.conn.close()

    def mids(self) -> list[int]:
        return [item["mid"] for _, item, _, _ in self.items if item.get("type") == "message"]


@contextlib.asynccontextmanager
async def alice_and_bob(
    base: str, room: str | None = None
) -> AsyncIterator[tuple[HttpConn, Receiver]]:
    """Sign alice and bob in (both into ``room`` when given), start bob's stream; yield
    alice and the stream, and close the stream and both users when the block ends."""
    alice, bob = await user(base, "alice"), await user(base, "bob")
    if room is not None:
        for u in (alice, bob):
            await u.call("join", {"room": room})
    rx = Receiver(base)
    assert bob.token is not None
    await rx.start(bob.token)
    try:
        yield alice, rx
    finally:
        await rx.stop()
        await alice.close()
        await bob.close()


async def raw_events(resp: aiohttp.ClientResponse, n: int) -> list[bytes]:
    """The first ``n`` blank-line-terminated blocks of a raw stream."""
    buf = b""
    async with asyncio.timeout(STEP_S):
        while buf.count(b"\n\n") < n:
            chunk = await resp.content.readany()
            assert chunk, f"stream ended after {buf!r}"
            buf += chunk
    return [block + b"\n\n" for block in buf.split(b"\n\n")[:n]]


# -- delivery ------------------------------------------------------------------------------


async def test_sse_delivers_exactly_once_in_order_with_the_websocket_push_json() -> None:
    async with serve() as (base, hub, _, _), alice_and_bob(base, room="g") as (alice, rx):
        for mid in range(1, 21):
            target = {"to": "bob"} if mid % 2 else {"room": "g"}
            await alice.call("send", {**target, "mid": mid, "ts": 1, "body": f"m{mid}"})
        await rx.until(20)
        assert rx.mids() == list(range(1, 21))
        assert [seq for seq, *_ in rx.items] == list(range(1, 21))
        assert {via for _, _, via, _ in rx.items} == {"sse"}
        # Each item's bytes: its event, as the server framed it, in one HTTP chunk.
        stored = hub.realtime.inbox("bob").read(0, 100).items
        for (seq, _, _, nbytes), (stored_seq, data) in zip(rx.items, stored, strict=True):
            event = b"id: %d\ndata: %b\n\n" % (seq, protocol.encode_push(stored_seq, data))
            assert nbytes == len(event) + chunk_framing(len(event))
        await asyncio.sleep(0.1)
        assert len(rx.items) == 20  # nothing more: exactly once
        assert rx.conn.reconnects == 0 and rx.connects == [None]


async def test_raw_stream_format_and_where_it_resumes() -> None:
    async with serve() as (base, hub, _, _), aiohttp.ClientSession() as session:
        alice, bob = await user(base, "alice"), await user(base, "bob")
        for mid in range(1, 6):
            await alice.call("send", {"to": "bob", "mid": mid, "ts": 1})
        stored = dict(hub.realtime.inbox("bob").read(0, 10).items)

        def event(seq: int) -> bytes:
            return b"id: %d\ndata: %b\n\n" % (seq, protocol.encode_push(seq, stored[seq]))

        auth = {"Authorization": f"Bearer {bob.token}"}
        cases: list[tuple[str, dict[str, str], int]] = [
            ("", auth, 1),
            ("?after=2", auth, 3),
            ("?after=1", {**auth, "Last-Event-ID": "3"}, 4),  # the header wins
            (f"?token={bob.token}&after=4", {}, 5),
        ]
        try:
            for query, headers, first in cases:
                async with session.get(base + "/events" + query, headers=headers) as resp:
                    assert resp.status == 200
                    assert resp.headers["Content-Type"] == "text/event-stream"
                    assert resp.headers["Cache-Control"] == "no-cache"
                    got = await raw_events(resp, 6 - first)
                    assert got == [event(s) for s in range(first, 6)], query
        finally:
            await alice.close()
            await bob.close()


async def test_resume_with_last_event_id_after_drops_while_messages_keep_coming() -> None:
    async with serve() as (base, hub, _, _), alice_and_bob(base) as (alice, rx):
        total = 300
        sent = 0

        async def send_all() -> None:
            nonlocal sent
            for mid in range(1, total + 1):
                await alice.call("send", {"to": "bob", "mid": mid, "ts": 1})
                sent = mid
                if mid % 10 == 0:
                    await asyncio.sleep(0.002)

        sender = asyncio.create_task(send_all())
        try:
            # Break the connection twice mid-run, as a network drop would.
            for at in (60, 180):
                async with asyncio.timeout(STEP_S):
                    while len(rx.items) < at:
                        await asyncio.sleep(0.001)
                assert sent < total  # messages are still being sent
                resp = rx.conn._resp
                assert resp is not None and resp.connection is not None
                assert resp.connection.transport is not None
                resp.connection.transport.abort()
                # The server goes on appending to the inbox meanwhile.
            await asyncio.wait_for(sender, STEP_S * 2)
            assert sent == total
            await rx.until(total)
            await asyncio.sleep(0.1)
            assert rx.mids() == list(range(1, total + 1))  # every one, once, in order
            assert rx.conn.reconnects == 2 and rx.connects == [None, None, None]
            assert rx.conn.last_id == total
            assert hub.realtime.counters["slow_consumer_closes"] == 0
        finally:
            sender.cancel()


async def test_slow_consumer_stream_ends_and_resumes_without_loss() -> None:
    # A queue of 4 that the server fills faster than it drains: the session is
    # closed as a slow consumer, the stream ends, and the client resumes by id.
    hub = Hub(send_queue=4)
    async with serve(hub) as (base, _, _, _), alice_and_bob(base) as (alice, rx):
        for mid in range(1, 4):
            await alice.call("send", {"to": "bob", "mid": mid, "ts": 1})
        await rx.until(3)
        # Appended to the inbox in one go, so the pushes overflow the queue.
        for mid in range(4, 41):
            hub.realtime.deliver(["bob"], {"type": "message", "to": "bob", "mid": mid})
        await rx.until(40)
        assert rx.mids() == list(range(1, 41))
        assert hub.realtime.counters["slow_consumer_closes"] >= 1
        assert rx.conn.reconnects >= 1


# -- authentication ------------------------------------------------------------------------


async def test_events_need_a_token() -> None:
    async with serve() as (base, hub, _, _), aiohttp.ClientSession() as session:
        bob = await user(base, "bob")
        refused: list[tuple[str, dict[str, str], int, str]] = [
            ("", {}, 401, "unauthorized"),
            ("?token=nope", {}, 401, "unauthorized"),
            ("", {"Authorization": "Bearer nope"}, 401, "unauthorized"),
            ("", {"Authorization": "Basic abc"}, 401, "unauthorized"),
            (f"?token={bob.token}", {"Last-Event-ID": "x"}, 400, "invalid_envelope"),
            (f"?token={bob.token}&after=-1", {}, 400, "invalid_envelope"),
        ]
        try:
            for query, headers, status, code in refused:
                async with session.get(base + "/events" + query, headers=headers) as resp:
                    assert resp.status == status, (query, headers)
                    reply = orjson.loads(await resp.read())
                    assert reply["ok"] is False and reply["error"]["code"] == code
            # None of these made anyone online or opened a stream.
            assert not hub.realtime.presence.is_online("nobody")
            rx = Receiver(base)
            with pytest.raises(Exception, match="http_401"):
                await rx.conn.connect("nope")
            assert rx.connects == ["http_401"]
            await rx.conn.close()
        finally:
            await bob.close()


# -- presence ------------------------------------------------------------------------------


async def test_presence_online_while_the_stream_is_open_offline_when_it_closes() -> None:
    timeout_s = 1.0
    hub = Hub(realtime=RealtimeConfig(presence_timeout_s=timeout_s))
    async with serve(hub) as (base, _, _, _):
        alice, bob = await user(base, "alice"), await user(base, "bob")
        presence = hub.realtime.presence
        for name in ("alice", "bob"):
            hub.realtime.join(name, "team")  # presence is seen by room-mates only
        await bob.call("watch", {"users": ["alice"]})
        watcher = Receiver(base)
        assert alice.token is not None and bob.token is not None
        await watcher.start(bob.token)
        rx = Receiver(base)
        try:
            await rx.start(alice.token)
            # Well past the presence timeout without a single request: the open
            # stream keeps alice online, as a WebSocket would.
            await asyncio.sleep(timeout_s * 1.6)
            assert presence.is_online("alice")
            status = await bob.call("presence", {"users": ["alice"]})
            assert status["status"]["alice"]["status"] == "online"
            closed = time.perf_counter_ns()
            await rx.stop()
            async with asyncio.timeout(STEP_S):
                while presence.is_online("alice"):
                    await asyncio.sleep(0.005)
            seen_after_s = (time.perf_counter_ns() - closed) / 1e9
            assert seen_after_s < timeout_s / 2  # at once, not after the timeout
            await watcher.until(2)
            changes = [(i["user"], i["status"]) for _, i, _, _ in watcher.items]
            assert changes == [("alice", "online"), ("alice", "offline")]
            assert watcher.items[1][1]["ts"] >= closed
        finally:
            await rx.stop()
            await watcher.stop()
            await alice.close()
            await bob.close()


# -- heartbeats and shutdown -----------------------------------------------------------------


async def test_heartbeats_when_asked_and_clean_end_on_server_stop() -> None:
    async with (
        serve(heartbeat_s=0.05) as (base, _, stop, task),
        aiohttp.ClientSession() as session,
    ):
        bob = await user(base, "bob")
        try:
            url = f"{base}/events?token={bob.token}"
            async with session.get(url) as resp:
                assert await raw_events(resp, 2) == [b": ping\n\n", b": ping\n\n"]
                t0 = time.monotonic()
                stop.set()
                # The stream ends with its last chunk (a clean EOF, no reset), promptly.
                async with asyncio.timeout(STEP_S):
                    rest = await resp.content.read()
                assert set(rest.split(b"\n\n")) <= {b": ping", b""}
                assert resp.content.at_eof()
            async with asyncio.timeout(STEP_S):
                await task
            assert time.monotonic() - t0 < 2.0  # well under the 5 s shutdown timeout
        finally:
            await bob.close()


async def test_no_heartbeats_by_default() -> None:
    async with serve() as (base, _, _, _), aiohttp.ClientSession() as session:
        bob = await user(base, "bob")
        try:
            async with session.get(f"{base}/events?token={bob.token}") as resp:
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.3):
                        await resp.content.readany()
        finally:
            await bob.close()


# -- the parser ----------------------------------------------------------------------------


def test_parser_handles_line_endings_comments_fields_and_split_chunks() -> None:
    stream = (
        b"\xef\xbb\xbf: hello\r\n"
        b"retry: 250\r\n"
        b"id: 7\r\ndata: a\r\ndata:b\r\n\r\n"
        b"event: gap\rdata: {}\r\r"
        b"data\n\n"
        b"id\n\n"  # an id with no data: no event, the id is kept
        b"data: x\nfoo: ignored\n\n"
    )
    whole = SseParser().feed(stream)
    # Fed a byte at a time, CR-LF pairs split across chunks, the result is the same.
    parser = SseParser()
    pieces = [e for i in range(len(stream)) for e in parser.feed(stream[i : i + 1])]
    for events in (whole, pieces):
        assert [(e.type, e.data, e.id) for e in events] == [
            ("message", b"a\nb", "7"),
            ("gap", b"{}", "7"),
            ("message", b"", "7"),
            ("message", b"x", ""),
        ]
        assert sum(e.nbytes for e in events) == len(stream)
    assert parser.retry_ms == 250
    assert SseParser().feed(b"data: y\n\n", framing=5)[0].nbytes == 9 + 5


_TEXT = st.text(st.characters(exclude_characters="\r\n", exclude_categories=("Cs",)), max_size=12)


@st.composite
def event_blocks(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Events as fields: type, id, data lines, and comments and retries among them."""
    return draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "type": st.none() | _TEXT.filter(lambda t: t != ""),
                    "id": st.none() | _TEXT.filter(lambda t: "\0" not in t),
                    "data": st.lists(_TEXT, min_size=1, max_size=3),
                    "comment": st.none() | _TEXT,
                    "retry": st.none() | st.integers(0, 10**6),
                }
            ),
            min_size=1,
            max_size=6,
        )
    )


def encode_stream(blocks: list[dict[str, Any]], eol: bytes, bom: bool) -> bytes:
    out = b"\xef\xbb\xbf" if bom else b""
    for block in blocks:
        lines = []
        if block["comment"] is not None:
            lines.append(b":" + block["comment"].encode())
        if block["type"] is not None:
            lines.append(b"event: " + block["type"].encode())
        if block["id"] is not None:
            lines.append(b"id: " + block["id"].encode())
        if block["retry"] is not None:
            lines.append(b"retry: %d" % block["retry"])
        lines += [b"data: " + line.encode() for line in block["data"]]
        out += b"".join(line + eol for line in lines) + eol
    if eol == b"\r":
        out += b"\n"  # a CR at the very end waits for a possible LF: complete it
    return out


def expected_events(blocks: list[dict[str, Any]]) -> list[tuple[str, bytes, str]]:
    last_id = ""
    events = []
    for block in blocks:
        if block["id"] is not None:
            last_id = block["id"]
        data = b"\n".join(line.encode() for line in block["data"])
        events.append((block["type"] or "message", data, last_id))
    return events


@given(
    blocks=event_blocks(),
    eol=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    bom=st.booleans(),
    data=st.data(),
)
def test_parser_round_trip_with_chunks_split_anywhere(
    blocks: list[dict[str, Any]], eol: bytes, bom: bool, data: st.DataObject
) -> None:
    stream = encode_stream(blocks, eol, bom)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    parser = SseParser()
    events = [e for piece in pieces for e in parser.feed(piece)]
    assert [(e.type, e.data, e.id) for e in events] == expected_events(blocks)
    # Every byte is charged to exactly one event, BOM and comments included.
    assert sum(e.nbytes for e in events) == len(stream)
    retries = [b["retry"] for b in blocks if b["retry"] is not None]
    assert parser.retry_ms == (retries[-1] if retries else None)


def test_parser_skips_a_byte_order_mark_only_at_the_start() -> None:
    stream = b"\n\xef\xbb\xbfdata: x\n\n"  # past the start it is part of a field name
    for pieces in ([stream], [stream[:1], stream[1:2], stream[2:3], stream[3:]]):
        parser = SseParser()
        assert [e for piece in pieces for e in parser.feed(piece)] == []
    parser = SseParser()
    assert parser.feed(b"\xef") == [] and parser.feed(b"\xbb") == []
    (event,) = parser.feed(b"\xbfdata: x\n\n")
    assert event.data == b"x" and event.nbytes == 3 + 9


@given(framing=st.lists(st.integers(0, 20), min_size=1, max_size=5))
def test_parser_charges_framing_to_the_next_event(framing: list[int]) -> None:
    parser = SseParser()
    for extra in framing[:-1]:
        assert parser.feed(b"", extra) == []
    (event,) = parser.feed(b"data: y\n\n", framing[-1])
    assert event.nbytes == 9 + sum(framing)


def sse_push(seq: int, item: bytes) -> bytes:
    return http_server.sse_event(protocol.encode_push(seq, item))


def test_decoder_hands_on_pushes_and_gaps_and_resumes_after_the_newest() -> None:
    items: list[tuple[int, Any, int, str, int]] = []
    gaps: list[str] = []
    decoder = SseDecoder(lambda *a: items.append(a), gaps.append)
    decoder.restart(3)
    assert decoder.last_id == 3
    stream = (
        b"retry: 1500\n\n"
        + b"event: gap\ndata: {}\n\n"
        + sse_push(4, b'{"type":"message","mid":1}')
        + b"event: other\ndata: {}\n\n"  # not a push: skipped
        + b"data: not json\n\n"  # unreadable: skipped
        + sse_push(5, b'{"type":"message","mid":2}')
    )
    half = len(stream) // 2
    decoder.feed(stream[:half], 0, 100)
    decoder.feed(stream[half:], 7, 200)
    assert gaps == ["sse"] and decoder.gaps == 1
    assert [(seq, item["mid"], via) for seq, item, _, via, _ in items] == [
        (4, 1, "sse"),
        (5, 2, "sse"),
    ]
    assert items[-1][2] == 200 and decoder.events == 2 and decoder.last_id == 5
    assert decoder.retry_ms == 1500
    # A new connection drops a partial event; the resume point stays the newest push.
    decoder.feed(b"data: {partial", 0, 300)
    decoder.restart()
    decoder.feed(sse_push(6, b"{}"), 0, 400)
    assert [seq for seq, *_ in items] == [4, 5, 6] and decoder.last_id == 6


def test_push_seq_and_event_framing() -> None:
    push = protocol.encode_push(42, b'{"type":"message"}')
    assert protocol.push_seq(push) == 42
    assert http_server.sse_event(push) == b"id: 42\ndata: " + push + b"\n\n"
    reply = b'{"op":"echo","id":1,"ts":1,"ok":true,"payload":null}'
    assert protocol.push_seq(reply) is None
    assert http_server.sse_event(reply) == b"data: " + reply + b"\n\n"


# -- scenarios -----------------------------------------------------------------------------


def test_scenario_accepts_sse_for_http_cells_only() -> None:
    import tomllib

    def scenario(cell: str) -> Any:
        text = '[scenario]\nname = "x"\nworkload = "messaging"\n'
        text += "[realtime]\nusers = 4\nmessage_rate = 1.0\n"
        return parse_scenario(tomllib.loads(text + "[[cells]]\n" + cell))

    cell = scenario('transport = "http"\nclient = "aiohttp"\ndelivery = "sse"\n').cells[0]
    assert cell.id == "http/aiohttp/keep-alive/sse" and cell.delivery_mode == "sse"
    with pytest.raises(ScenarioError, match="push"):
        scenario('transport = "ws-aiohttp"\nclient = "aiohttp"\ndelivery = "sse"\n')
    with pytest.raises(ScenarioError, match="aiohttp or lean client"):
        scenario('transport = "http"\nclient = "httpx"\ndelivery = "sse"\n')


SCENARIO = """\
[scenario]
name = "sse-tiny"
workload = "messaging"
repeats = 1
duration_s = 1.0
warmup_s = 0.2
timeout_s = 3
placement = "none"

[realtime]
users = 6
group_size = 3
message_rate = 4.0
drain_s = 2

[[cells]]
transport = "http"
client = "aiohttp"
delivery = "sse"
"""


@pytest.mark.timeout(60)
def test_rtbench_run_with_an_sse_cell_loses_nothing(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    path = tmp_path / "sse.toml"
    path.write_text(SCENARIO)
    out = tmp_path / "out"
    wait_runs({"sse": start_run(path, out)}, 50)
    (cell,) = orjson.loads((out / SUMMARY_FILE).read_bytes())["cells"]
    assert cell["cell"] == "http/aiohttp/keep-alive/sse"
    assert cell["delivery"] == "sse"
    counts = cell["deliveries"]
    assert counts["expected"] > 20
    assert counts["lost"] == 0 and counts["delivered"] == counts["expected"]
    assert counts["duplicated"] == 0 and counts["out_of_order"] == 0
    rows = pq.read_table(out / DELIVERIES_FILE).to_pandas()
    assert set(rows["via"]) == {"sse"}
    assert (rows["bytes"] > 0).all()
