"""A virtual user's connections under gevent: the twins of :mod:`loadgen.realtime.conns`.

Same shapes and arguments as the asyncio ones (``call(op, payload) -> payload``,
``on_request``/``on_item``/``on_gap`` callbacks)::

    http = HttpConn(base_url, keep_alive, timeout_s, on_request)
    ws = WsConn(ws_url, client, timeout_s, on_request, on_item)   # client is not used
    sse = SseConn(base_url, timeout_s, on_item, on_connect, on_gap=on_gap)

HTTP sides use geventhttpclient (the client of locust's FastHttpUser): one
connection for actions and another for polls, as a browser holds a long poll
on a second connection. Push sides use ``websocket-client``, with a reader
greenlet that matches replies to requests by id and hands pushes on. An SSE
side holds ``GET /events`` open on its own connection (a minimal HTTP/1.1
reader that sees each chunk, so every event's bytes include its chunk framing)
and resumes with ``Last-Event-ID`` when the stream drops.

What the sides receive is handed on by the shared sans-I/O code
(:mod:`loadgen.realtime.receive`, :mod:`loadgen.realtime.sse`,
:mod:`loadgen.realtime.replies`), gaps included; a WebSocket call's id, reply
matching and report are :mod:`loadgen.realtime.calls`'s.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import gevent
import websocket
from gevent.event import AsyncResult, Event
from geventhttpclient.url import URL

from loadgen.clients.errors import ClientError
from loadgen.locust_engine.net import (
    CountingClientPool,
    http_exchange,
    open_socket,
    ws_close,
    ws_connect,
)
from loadgen.realtime.calls import Reply
from loadgen.realtime.http_side import HttpSide
from loadgen.realtime.receive import OnGap, OnItem
from loadgen.realtime.replies import measured
from loadgen.realtime.sse import SseStream, chunk_framing
from loadgen.realtime.user_state import OnRequest
from loadgen.realtime.ws_side import WsSide
from servers import protocol

clock = time.perf_counter_ns
log = logging.getLogger("rtbench.locust")


class HttpConn(HttpSide):
    """``POST /rpc`` with the bearer token on one connection, ``GET /inbox`` on another."""

    def __init__(
        self, base_url: str, keep_alive: bool, timeout_s: float, on_request: OnRequest
    ) -> None:
        super().__init__(keep_alive, timeout_s, on_request)
        self.url = URL(base_url.rstrip("/") + "/")
        # Polls can be held up to the long-poll timeout: their socket timeout allows for it.
        self.pools = {
            "action": CountingClientPool(self.counters["action"], timeout_s),
            "poll": CountingClientPool(self.counters["poll"], timeout_s, network_timeout=3600.0),
        }

    def headers(self) -> dict[str, str]:
        headers = super().headers()
        if not self.keep_alive:
            headers["Connection"] = "close"
        return headers

    def _measured(
        self, op: str, role: str, method: str, uri: str, body: bytes | None, timeout_s: float
    ) -> protocol.Response:
        # Killed: abandoned by the user (a tab closing on a held long poll).
        with measured(op, self.counters[role], self.on_request, gevent.GreenletExit) as m:
            pool, headers = self.pools[role], self.headers()
            return m.reply(*http_exchange(pool, self.url, method, uri, body, headers, timeout_s))

    def call(self, op: str, payload: Any) -> Any:
        body = self.action_body(op, payload)
        return self._measured(op, "action", "POST", "/rpc", body, self.timeout_s).payload

    def poll(
        self, after: int, wait_ms: int, on_item: OnItem, via: str, on_gap: OnGap | None = None
    ) -> int:
        """``GET /inbox``: items to ``on_item``, a gap to ``on_gap``; returns the new cursor."""
        path, timeout_s = self.poll_target(after, wait_ms)
        before = self.poll_received()
        resp = self._measured("poll", "poll", "GET", path, None, timeout_s)
        return self.take_poll(resp, after, before, via, on_item, on_gap)

    def close(self, role: str | None = None) -> None:
        for name, pool in self.pools.items():
            if role is None or name == role:
                pool.reset()


class WsConn(WsSide[AsyncResult]):
    """One WebSocket (websocket-client) carrying requests, replies and pushes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reader: gevent.Greenlet | None = None
        self.closed = Event()
        self.closed.set()

    def open(self, token: str | None = None) -> None:
        url = self.url_for(token)
        self.closed = Event()
        self.close_code = None
        self._ws = ws_connect(url, self.counter, self.timeout_s)
        self._ws.settimeout(None)
        self._reader = gevent.spawn(self._read, self._ws, self.closed)

    def _read(self, ws: Any, closed: Event) -> None:
        try:
            while True:
                opcode, data = ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    if len(data) >= 2:
                        self.close_code = int.from_bytes(data[:2], "big")
                    break
                matched = self._calls.take(data, clock(), self.on_item)
                if matched is not None and not matched[0].ready():
                    matched[0].set(matched[1])
        except (websocket.WebSocketException, OSError):
            pass
        except gevent.GreenletExit:
            raise
        except Exception as exc:
            # A bug in handling a message must stop the run, not look like a dropped link.
            self.failure = exc
        finally:
            closed.set()
            for waiter in self._calls.drain():
                if not waiter.ready():
                    waiter.set_exception(ClientError("closed", "connection closed"))

    def call(self, op: str, payload: Any) -> Any:
        if self._ws is None or self.closed.is_set():
            raise ClientError("closed", "WebSocket is not open")
        waiter = AsyncResult()
        call = self._calls.start(op, payload, waiter)
        try:
            try:
                self._ws.send(call.body)
            except Exception as exc:
                raise ClientError("closed", f"{type(exc).__name__}: {exc}") from None
            try:
                reply: Reply = waiter.get(timeout=self.timeout_s)
            except gevent.Timeout:
                raise ClientError("timeout", f"no reply within {self.timeout_s}s") from None
            return call.answer(reply)
        except ClientError as exc:
            call.fail(exc.code)
            raise
        finally:
            self._calls.finish(call, self.on_request)

    def close(self) -> None:
        # Stop the reader first: close() reads the peer's close frame itself.
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.kill(block=True, timeout=2.0)
        ws, self._ws = self._ws, None
        ws_close(ws, 2.0)
        self.closed.set()


class SseConn(SseStream):
    """A Server-Sent Events stream: ``GET /events`` held open, resumed by id.

    The gevent twin of :class:`loadgen.realtime.conns.SseConn`: ``connect`` returns
    once the server has answered; ``run`` reads until killed, reconnecting with
    ``Last-Event-ID`` after a drop (a 4xx refusal is raised, not retried); each
    push's bytes are its event's lines plus its HTTP chunk framing; an
    ``event: gap`` reaches ``on_gap("sse")``.
    """

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.path = "/" + self.url.split("://", 1)[1].partition("/")[2]
        self._sock: Any = None
        self._chunked = False
        self._buf = bytearray()

    def connect(self, token: str, after: int = 0) -> None:
        """Open the stream after ``after``; returns once the server has answered."""
        self.start(token, after)
        self._open()

    def _open(self) -> None:
        with self.connecting():
            timer = gevent.Timeout(self.timeout_s)
            timer.start()
            sock: Any = None
            try:
                sock, host, port = open_socket(self.url, self.counter, self.timeout_s)
                head = f"GET {self.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in self.request_headers().items())
                sock.sendall((head + "\r\n").encode("latin-1"))
                self._buf = bytearray()
                status, headers = self._read_head(sock)
                if status != 200:
                    raise ClientError(f"http_{status}", f"GET /events answered {status}")
                sock.settimeout(None)
                self._chunked = headers.get("transfer-encoding", "").lower() == "chunked"
                self._sock, sock = sock, None
            except gevent.Timeout as exc:
                if exc is not timer:
                    raise
                raise ClientError("timeout", f"no answer within {self.timeout_s}s") from None
            except OSError as exc:
                raise ClientError("connect_error", f"{type(exc).__name__}: {exc}") from None
            finally:
                timer.close()
                if sock is not None:
                    sock.close()

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
                gevent.sleep(self.retry_s)
                renewed = False
                while True:
                    try:
                        self._open()
                        break
                    except ClientError as exc:
                        if self.renews_after(exc, renewed):
                            assert self.renew is not None
                            self.token, renewed = self.renew(), True
                            continue
                        gevent.sleep(self.retry_after(exc))
                self.resumed(renewed)
        finally:
            self._drop()

    def _read(self, sock: Any) -> None:
        self.decoder.restart()
        for data, framing in self._pieces(sock):
            self.feed(data, framing, clock())

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        """Close the stream's connection (the server sees the user leave at once)."""
        self._drop()
