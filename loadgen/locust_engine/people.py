"""A simulated person's connections and behaviour under gevent: the locust engine's VirtualUser.

The gevent twin of :mod:`loadgen.realtime.users` and :mod:`loadgen.realtime.conns`,
with the same semantics (what is recorded, when a user counts as offline)::

    p = Person("w0u3", endpoint, params, on_request, on_item, on_connect)
    p.start()                      # sign in, start receiving (poll loop or push reader)
    p.call("send", {...})          # one measured operation
    p.go_offline(); p.go_online()
    p.stop()

HTTP sides use geventhttpclient (the client of locust's FastHttpUser): one
connection for actions and another for polls, as a browser holds a long poll
on a second connection. Push sides use ``websocket-client``, with a reader
greenlet that matches replies to requests by id and hands pushes on. An SSE
side holds ``GET /events`` open on its own connection (a minimal HTTP/1.1
reader that sees each chunk, so every event's bytes include its chunk framing)
and resumes with ``Last-Event-ID`` when the stream drops.

What the sides receive is handed on by the asyncio engine's sans-I/O code
(:mod:`loadgen.realtime.receive`, :mod:`loadgen.realtime.sse`,
:mod:`loadgen.realtime.replies`), gaps included: ``on_gap(user, via)``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import AsyncResult, Event
from gevent.lock import Semaphore
from geventhttpclient.url import URL

from loadgen.clients.errors import ClientError
from loadgen.locust_engine.net import (
    CountingClientPool,
    WireCounter,
    http_exchange,
    open_socket,
    ws_connect,
)
from loadgen.realtime.conns import OnRequest
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.receive import (
    OnGap,
    OnItem,
    subscribe_gap,
    take_page,
    take_ws_message,
    ws_frame_bytes,
)
from loadgen.realtime.replies import (
    OpFailed,
    decode_reply,
    payload_of,
    poll_item_count,
    reply_error,
)
from loadgen.realtime.sse import SseDecoder, chunk_framing
from loadgen.realtime.users import Endpoint, OnConnect, OnUserGap, OnUserItem
from servers import protocol
from servers.realtime.credentials import signin_payload

clock = time.perf_counter_ns
log = logging.getLogger("rtbench.locust")

_ids = itertools.count(1)


class HttpSide:
    """``POST /rpc`` with the bearer token on one connection, ``GET /inbox`` on another."""

    def __init__(
        self, base_url: str, keep_alive: bool, timeout_s: float, on_request: OnRequest
    ) -> None:
        self.url = URL(base_url.rstrip("/") + "/")
        self.keep_alive = keep_alive
        self.timeout_s = timeout_s
        self.on_request = on_request
        self.token: str | None = None
        self.counters = {"action": WireCounter(), "poll": WireCounter()}
        # Polls can be held up to the long-poll timeout: their socket timeout allows for it.
        self.pools = {
            "action": CountingClientPool(self.counters["action"], timeout_s),
            "poll": CountingClientPool(self.counters["poll"], timeout_s, network_timeout=3600.0),
        }

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if not self.keep_alive:
            headers["Connection"] = "close"
        return headers

    def _measured(
        self, op: str, role: str, method: str, uri: str, body: bytes | None, timeout_s: float
    ) -> protocol.Response:
        counter = self.counters[role]
        before = counter.snapshot()
        sent = clock()
        error: str | None = None
        items = 0
        try:
            status, data = http_exchange(
                self.pools[role], self.url, method, uri, body, self._headers(), timeout_s
            )
            resp = decode_reply(data)
            error = reply_error(resp)
            items = poll_item_count(op, resp)
            payload_of(resp, status)
            return resp
        except ClientError as exc:
            error = error or exc.code
            raise
        except gevent.GreenletExit:
            # Abandoned by the user (a tab closing on a held long poll): not recorded.
            error = "abandoned"
            raise
        finally:
            if error != "abandoned":
                after = counter.snapshot()
                self.on_request(
                    op, sent, clock(), after[0] - before[0], after[1] - before[1], error, items
                )

    def call(self, op: str, payload: Any) -> Any:
        body = protocol.encode_request(
            protocol.Request(op=op, id=next(_ids), ts=clock(), payload=payload)
        )
        return self._measured(op, "action", "POST", "/rpc", body, self.timeout_s).payload

    def poll(
        self, after: int, wait_ms: int, on_item: OnItem, via: str, on_gap: OnGap | None = None
    ) -> int:
        """``GET /inbox``: items to ``on_item``, a gap to ``on_gap``; returns the new cursor."""
        uri = f"/inbox?after={after}&wait_ms={wait_ms}"
        before = self.counters["poll"].received
        resp = self._measured("poll", "poll", "GET", uri, None, self.timeout_s + wait_ms / 1000.0)
        nbytes = self.counters["poll"].received - before
        return take_page(resp.payload, after, nbytes, clock(), via, on_item, on_gap)

    def close(self, role: str | None = None) -> None:
        for name, pool in self.pools.items():
            if role is None or name == role:
                pool.reset()

    def wire_totals(self) -> tuple[int, int]:
        return (
            sum(c.sent for c in self.counters.values()),
            sum(c.received for c in self.counters.values()),
        )


class WsSide:
    """One WebSocket (websocket-client) carrying requests, replies and pushes."""

    def __init__(
        self, ws_url: str, timeout_s: float, on_request: OnRequest, on_item: OnItem
    ) -> None:
        self.ws_url = ws_url
        self.timeout_s = timeout_s
        self.on_request = on_request
        self.on_item = on_item
        self.counter = WireCounter()
        self._pending: dict[int, AsyncResult] = {}
        self._reader: gevent.Greenlet | None = None
        self._ws: Any = None
        self.closed = Event()
        self.closed.set()
        self.close_code: int | None = None
        self.failure: BaseException | None = None

    def open(self, token: str | None = None) -> None:
        url = self.ws_url + (f"?token={token}" if token else "")
        self.closed = Event()
        self.close_code = None
        self._ws = ws_connect(url, self.counter, self.timeout_s)
        self._ws.settimeout(None)
        self._reader = gevent.spawn(self._read, self._ws, self.closed)

    def _read(self, ws: Any, closed: Event) -> None:
        import websocket

        try:
            while True:
                opcode, data = ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    if len(data) >= 2:
                        self.close_code = int.from_bytes(data[:2], "big")
                    break
                message = take_ws_message(data, clock(), self.on_item)
                if message is None:
                    continue
                waiter = self._pending.pop(message.id or 0, None)
                if waiter is not None and not waiter.ready():
                    waiter.set((message, len(data)))
        except (websocket.WebSocketException, OSError):
            pass
        except gevent.GreenletExit:
            raise
        except Exception as exc:
            # A bug in handling a message must stop the run, not look like a dropped link.
            self.failure = exc
        finally:
            closed.set()
            for waiter in self._pending.values():
                if not waiter.ready():
                    waiter.set_exception(ClientError("closed", "connection closed"))
            self._pending.clear()

    def call(self, op: str, payload: Any) -> Any:
        if self._ws is None or self.closed.is_set():
            raise ClientError("closed", "WebSocket is not open")
        rid = next(_ids)
        sent = clock()
        body = protocol.encode_request(protocol.Request(op=op, id=rid, ts=sent, payload=payload))
        waiter = AsyncResult()
        self._pending[rid] = waiter
        error: str | None = None
        received_len = 0
        try:
            try:
                self._ws.send(body)
            except Exception as exc:
                raise ClientError("closed", f"{type(exc).__name__}: {exc}") from None
            try:
                resp, received_len = waiter.get(timeout=self.timeout_s)
            except gevent.Timeout:
                raise ClientError("timeout", f"no reply within {self.timeout_s}s") from None
            error = reply_error(resp)
            return payload_of(resp)
        except ClientError as exc:
            error = error or exc.code
            raise
        finally:
            self._pending.pop(rid, None)
            self.on_request(
                op,
                sent,
                clock(),
                ws_frame_bytes(len(body), True),
                ws_frame_bytes(received_len, False) if received_len else 0,
                error,
                0,
            )

    def close(self) -> None:
        # Stop the reader first: close() reads the peer's close frame itself.
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.kill(block=True, timeout=2.0)
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close(timeout=2.0)
            except Exception:
                ws.shutdown()
        self.closed.set()

    def wire_totals(self) -> tuple[int, int]:
        return self.counter.sent, self.counter.received


class SseSide:
    """A Server-Sent Events stream: ``GET /events`` held open, resumed by id.

    The gevent twin of :class:`loadgen.realtime.conns.SseConn`: ``connect`` returns
    once the server has answered; ``run`` reads until killed, reconnecting with
    ``Last-Event-ID`` after a drop (a 4xx refusal is raised, not retried); each
    push's bytes are its event's lines plus its HTTP chunk framing; an
    ``event: gap`` reaches ``on_gap("sse")``.
    """

    def __init__(
        self,
        base_url: str,
        timeout_s: float,
        on_item: OnItem,
        on_connect: Callable[[int, int, str | None], None] | None = None,
        retry_s: float = 0.0,
        on_gap: OnGap | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/events"
        self.path = "/" + self.url.split("://", 1)[1].partition("/")[2]
        self.timeout_s = timeout_s
        self.on_connect = on_connect
        self.retry_s = retry_s
        self.counter = WireCounter()
        self.token: str | None = None
        self.decoder = SseDecoder(on_item, on_gap)
        self.reconnects = 0
        self._sock: Any = None
        self._chunked = False
        self._buf = bytearray()

    @property
    def last_id(self) -> int:
        """The newest push's seq: where the next connection resumes."""
        return self.decoder.last_id

    def connect(self, token: str, after: int = 0) -> None:
        """Open the stream after ``after``; returns once the server has answered."""
        self.token = token
        self.decoder.restart(after)
        self._open()

    def _open(self) -> None:
        t0 = clock()
        error: str | None = None
        timer = gevent.Timeout(self.timeout_s)
        timer.start()
        sock: Any = None
        try:
            sock, host, port = open_socket(self.url, self.counter, self.timeout_s)
            head = (
                f"GET {self.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Accept: text/event-stream\r\nAuthorization: Bearer {self.token}\r\n"
            )
            if self.last_id:
                head += f"Last-Event-ID: {self.last_id}\r\n"
            sock.sendall((head + "\r\n").encode("latin-1"))
            self._buf = bytearray()
            status, headers = self._read_head(sock)
            if status != 200:
                error = f"http_{status}"
                raise ClientError(error, f"GET /events answered {status}")
            sock.settimeout(None)
            self._chunked = headers.get("transfer-encoding", "").lower() == "chunked"
            self._sock, sock = sock, None
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            error = "timeout"
            raise ClientError("timeout", f"no answer within {self.timeout_s}s") from None
        except OSError as exc:
            error = "connect_error"
            raise ClientError("connect_error", f"{type(exc).__name__}: {exc}") from None
        finally:
            timer.close()
            if sock is not None:
                sock.close()
            if self.on_connect is not None:
                self.on_connect(t0, clock(), error)

    def _fill(self, sock: Any) -> None:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the event stream ended")
        self._buf += data

    def _read_head(self, sock: Any) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self._buf:
            self._fill(sock)
        end = self._buf.index(b"\r\n\r\n")
        lines = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
        del self._buf[: end + 4]
        try:
            status = int(lines[0].split()[1])
        except (IndexError, ValueError):
            raise ConnectionError(f"not an HTTP response: {lines[0]!r}") from None
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    def _line(self, sock: Any) -> bytes:
        while (end := self._buf.find(b"\r\n")) < 0:
            self._fill(sock)
        line = bytes(self._buf[:end])
        del self._buf[: end + 2]
        return line

    def _pieces(self, sock: Any) -> Any:
        """The body as it arrives: (data, framing bytes to charge) pairs."""
        if not self._chunked:
            while True:
                if self._buf:
                    data, self._buf = bytes(self._buf), bytearray()
                    yield data, 0
                self._fill(sock)
        while True:
            size = int(self._line(sock).split(b";")[0], 16)
            if size == 0:
                return
            while len(self._buf) < size + 2:
                self._fill(sock)
            data = bytes(self._buf[:size])
            del self._buf[: size + 2]
            yield data, chunk_framing(size)

    def run(self) -> None:
        """Read events until killed, reconnecting after drops."""
        try:
            while True:
                if self._sock is not None:
                    with contextlib.suppress(OSError, ValueError):
                        self._read(self._sock)
                    self._drop()
                self.reconnects += 1
                gevent.sleep(self.retry_s)
                while True:
                    try:
                        self._open()
                        break
                    except ClientError as exc:
                        if exc.code.startswith("http_4"):
                            raise
                        gevent.sleep(max(self.retry_s, 0.1))
        finally:
            self._drop()

    def _read(self, sock: Any) -> None:
        decoder = self.decoder
        decoder.restart()
        for data, framing in self._pieces(sock):
            decoder.feed(data, framing, clock())
            if decoder.retry_ms is not None:
                self.retry_s = decoder.retry_ms / 1000.0

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        """Close the stream's connection (the server sees the user leave at once)."""
        self._drop()

    def wire_totals(self) -> tuple[int, int]:
        return self.counter.sent, self.counter.received


class Person:
    """One simulated person with one browser tab (see the module docstring)."""

    def __init__(
        self,
        name: str,
        endpoint: Endpoint,
        params: RealtimeParams,
        on_request: OnRequest,
        on_item: OnUserItem,
        on_connect: OnConnect,
        on_gap: OnUserGap | None = None,
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self.params = params
        self._on_item = on_item
        self._on_connect = on_connect
        self._on_gap = on_gap
        self.cursor = 0
        self.token: str | None = None
        self.online = False
        self.stopping = False
        self._ws_reconnects = 0
        self.failure: BaseException | None = None
        self._busy = Semaphore()
        self._receiver: gevent.Greenlet | None = None
        self._wake = Event()
        self.http: HttpSide | None = None
        self.ws: WsSide | None = None
        self.sse: SseSide | None = None
        if endpoint.delivery == "push":
            self.ws = WsSide(endpoint.ws_url, endpoint.timeout_s, on_request, self._item)
        else:
            self.http = HttpSide(
                endpoint.base_url,
                endpoint.conn_mode != "new-connection",
                endpoint.timeout_s,
                on_request,
            )
            if endpoint.delivery == "sse":
                self.sse = SseSide(
                    endpoint.base_url,
                    endpoint.timeout_s,
                    self._item,
                    lambda t0, t1, error: self._on_connect(self.name, t0, t1, error),
                    on_gap=self._gap,
                )

    @property
    def reconnects(self) -> int:
        """Times a dropped push connection (WebSocket or event stream) was resumed."""
        return self._ws_reconnects + (self.sse.reconnects if self.sse is not None else 0)

    def _item(self, seq: int, item: Any, received_ns: int, via: str, nbytes: int) -> None:
        # A replay after reconnecting may repeat what was already pushed: the cursor stays.
        self.cursor = max(self.cursor, seq)
        self._on_item(self.name, seq, item, received_ns, via, nbytes)

    def _gap(self, via: str) -> None:
        if self._on_gap is not None:
            self._on_gap(self.name, via)

    def call(self, op: str, payload: Any) -> Any:
        """One measured operation as this person; one thing at a time."""
        with self._busy:
            if self.ws is not None:
                return self.ws.call(op, payload)
            assert self.http is not None
            return self.http.call(op, payload)

    def _connect_ws(self) -> None:
        assert self.ws is not None
        t0 = clock()
        try:
            self.ws.open(self.token)
        except ClientError as exc:
            self._on_connect(self.name, t0, clock(), exc.code)
            raise
        self._on_connect(self.name, t0, clock(), None)
        if self.token is None:
            reply = self.ws.call("signin", signin_payload(self.name))
            self.token = reply["token"]
        if subscribe_gap(self.ws.call("subscribe_inbox", {"after": self.cursor})):
            self._gap("push")

    def start(self) -> None:
        """Sign in and start receiving."""
        self.stopping = False
        if self.ws is not None:
            self._connect_ws()
        else:
            assert self.http is not None
            reply = self.http.call("signin", signin_payload(self.name))
            self.token = self.http.token = reply["token"]
            if self.sse is not None:
                self.sse.connect(self.token, self.cursor)
        self.online = True
        self._wake.set()
        self._spawn_receiver()

    def _spawn_receiver(self) -> None:
        self._receiver = gevent.spawn(self._receive)
        self._receiver.link_exception(self._check_receiver)

    def _check_receiver(self, greenlet: gevent.Greenlet) -> None:
        if not isinstance(greenlet.exception, gevent.GreenletExit):
            self.failure = greenlet.exception

    def _receive(self) -> None:
        if self.ws is not None:
            self._watch_ws()
        elif self.sse is not None:
            self.sse.run()
        else:
            self._poll_loop()

    def _watch_ws(self) -> None:
        assert self.ws is not None
        while not self.stopping:
            self.ws.closed.wait()
            if self.ws.failure is not None:
                raise self.ws.failure
            if self.stopping or not self.online:
                self._wake.wait()
                continue
            # Dropped while meant to be online (e.g. closed as a slow consumer): resume.
            self._ws_reconnects += 1
            self.ws.close()
            try:
                self._connect_ws()
            except (ClientError, OpFailed):
                gevent.sleep(0.1)

    def _poll_loop(self) -> None:
        assert self.http is not None
        long = self.endpoint.delivery == "long-poll"
        wait_ms = self.params.long_poll_timeout_ms if long else 0
        interval_ns = self.params.poll_interval_ms * 1_000_000
        next_poll = clock()
        while not self.stopping:
            if not self.online:
                self._wake.wait()
                next_poll = clock()
                continue
            if not long:
                delay = next_poll - clock()
                if delay > 0:
                    gevent.sleep(delay / 1e9)
                next_poll += interval_ns
                if not self.online or self.stopping:
                    continue
            try:
                self.cursor = self.http.poll(self.cursor, wait_ms, self._item, "poll", self._gap)
            except (ClientError, OpFailed):
                gevent.sleep(0.05)

    def go_offline(self) -> int:
        """Leave: close the WebSocket or stop polling. Returns when (ns)."""
        with self._busy:
            self.online = False
            self._wake.clear()
            t = clock()
            if self.ws is not None:
                self.ws.close()
            elif self._receiver is not None:
                # Abandon a held long poll (or close the event stream) as a closed tab does.
                self._receiver.kill(block=True, timeout=2.0)
                if self.sse is not None:
                    self.sse.close()
                assert self.http is not None
                self.http.close()
                self._receiver = None
            return t

    def go_online(self) -> int:
        """Come back: reconnect (WebSocket) or resume polling. Returns when (ns)."""
        with self._busy:
            t = clock()
            if self.ws is not None:
                self._connect_ws()
                self.online = True
                self._wake.set()
            else:
                if self.sse is not None and self._receiver is None:
                    assert self.token is not None
                    self.sse.connect(self.token, self.cursor)
                self.online = True
                self._wake.set()
                if self._receiver is None:
                    self._spawn_receiver()
            return t

    def stop(self) -> None:
        """Stop receiving and close every connection."""
        self.stopping = True
        self.online = False
        self._wake.set()
        if self._receiver is not None:
            self._receiver.kill(block=True, timeout=2.0)
            self._receiver = None
        if self.ws is not None:
            self.ws.close()
        if self.sse is not None:
            self.sse.close()
        if self.http is not None:
            self.http.close()

    def wire_totals(self) -> tuple[int, int]:
        side = self.ws if self.ws is not None else self.http
        assert side is not None
        sent, received = side.wire_totals()
        if self.sse is not None:
            s, r = self.sse.wire_totals()
            sent, received = sent + s, received + r
        return sent, received
