"""Connections a virtual user holds, one shape per transport family.

Both expose ``call(op, payload) -> payload`` (raising :class:`OpFailed` or
:class:`~loadgen.clients.errors.ClientError`) and report each request through
``on_request(op, sent_ns, received_ns, bytes_sent, bytes_received, error,
items)``. Pushes and poll results reach ``on_item(seq, item, received_ns,
via, nbytes)``.

- :class:`HttpConn`: ``POST /rpc`` with the bearer token, ``GET /inbox`` polls.
  Actions and polls use separate aiohttp sessions (one connection each, as a
  browser opens a second connection while a long poll is held), each counted
  by its own :class:`~loadgen.wire.WireCounter`; what is not I/O is
  :class:`~loadgen.realtime.http_side.HttpSide`'s, shared with the gevent driver.
- :class:`WsConn`: one WebSocket carrying requests, replies and pushes,
  through the websockets or aiohttp client; a reader task matches replies to
  requests by id.
- :class:`SseConn`: a held ``GET /events`` (Server-Sent Events) receiving
  pushes, decoded incrementally by :class:`~loadgen.realtime.sse.SseDecoder`;
  it reconnects with ``Last-Event-ID`` after a drop. Its user acts through an
  :class:`HttpConn`.

Replies are read by :mod:`loadgen.realtime.replies`, a WebSocket call's id,
reply matching and report are :mod:`loadgen.realtime.calls`'s, and what a reader receives
(poll pages, WebSocket frames, event streams) is handed on by
:mod:`loadgen.realtime.receive` and :mod:`loadgen.realtime.sse`, which the
locust engine's gevent twin (:mod:`loadgen.locust_engine.conns`) shares.
A reader that fell behind its inbox's retention reports it to ``on_gap(via)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp

from loadgen.clients.errors import ClientError
from loadgen.realtime.calls import Reply
from loadgen.realtime.http_side import HttpSide
from loadgen.realtime.receive import OnGap, OnItem, ws_frame_bytes
from loadgen.realtime.replies import OpFailed, measured
from loadgen.realtime.sse import SseStream, chunk_framing
from loadgen.realtime.user_state import OnRequest
from loadgen.realtime.ws_side import WsSide
from loadgen.tls import client_ssl, is_secure
from loadgen.wire import counting
from servers import protocol

clock = time.perf_counter_ns

__all__ = [
    "HttpConn",
    "OnGap",
    "OnItem",
    "OnRequest",
    "OpFailed",
    "SseConn",
    "WsConn",
    "ws_frame_bytes",
]


class HttpConn(HttpSide):
    """A user's HTTP side: actions over one connection, polls over another."""

    def __init__(
        self, base_url: str, keep_alive: bool, timeout_s: float, on_request: OnRequest
    ) -> None:
        super().__init__(keep_alive, timeout_s, on_request)
        self.base_url = base_url.rstrip("/")
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def _session(self, role: str) -> aiohttp.ClientSession:
        session = self._sessions.get(role)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=1,
                force_close=not self.keep_alive,
                ssl=client_ssl() if is_secure(self.base_url) else True,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                skip_auto_headers=("User-Agent",),
            )
            self._sessions[role] = session
        return session

    async def _exchange(
        self, role: str, method: str, url: str, body: bytes | None, timeout_s: float
    ) -> tuple[int, bytes]:
        session = self._session(role)
        try:
            async with asyncio.timeout(timeout_s):
                async with session.request(method, url, data=body, headers=self.headers()) as resp:
                    return resp.status, await resp.read()
        except TimeoutError:
            raise ClientError("timeout", f"no reply within {timeout_s}s") from None
        except aiohttp.ClientConnectorError as exc:
            raise ClientError("connect_error", str(exc)) from None
        except aiohttp.ClientError as exc:
            raise ClientError("http_error", f"{type(exc).__name__}: {exc}") from None

    async def _measured(
        self, op: str, role: str, method: str, url: str, body: bytes | None, timeout_s: float
    ) -> protocol.Response:
        counter = self.counters[role]
        # Cancelled: abandoned by the user (a tab closing on a held long poll).
        with counting(counter), measured(op, counter, self.on_request, asyncio.CancelledError) as m:
            return m.reply(*await self._exchange(role, method, url, body, timeout_s))

    async def call(self, op: str, payload: Any) -> Any:
        """One operation over ``POST /rpc``; returns the reply payload."""
        body = self.action_body(op, payload)
        resp = await self._measured(
            op, "action", "POST", self.base_url + "/rpc", body, self.timeout_s
        )
        return resp.payload

    async def poll(
        self, after: int, wait_ms: int, on_item: OnItem, via: str, on_gap: OnGap | None = None
    ) -> int:
        """``GET /inbox``: items to ``on_item``, a gap to ``on_gap``; returns the new cursor."""
        path, timeout_s = self.poll_target(after, wait_ms)
        before = self.poll_received()
        resp = await self._measured("poll", "poll", "GET", self.base_url + path, None, timeout_s)
        return self.take_poll(resp, after, before, via, on_item, on_gap)

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()


class WsConn(WsSide[asyncio.Future[Reply]]):
    """A user's WebSocket: requests, replies and pushes on one connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reader: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.closed = asyncio.Event()

    async def open(self, token: str | None = None) -> float:
        """Connect (with ``?token=`` when given); returns the set-up time in seconds."""
        url = self.url_for(token)
        self.closed = asyncio.Event()
        t0 = clock()
        with counting(self.counter):
            try:
                if self.client == "websockets":
                    from loadgen.clients.websockets_client import open_websocket

                    self._ws = await open_websocket(url, self.timeout_s)
                else:
                    self._session = aiohttp.ClientSession(skip_auto_headers=("User-Agent",))
                    self._ws = await self._session.ws_connect(
                        url,
                        ssl=client_ssl() if is_secure(url) else True,
                        compress=0,
                        heartbeat=None,
                        max_msg_size=0,
                    )
            except Exception as exc:
                await self._close_session()
                raise ClientError("connect_error", f"{type(exc).__name__}: {exc}") from None
            self._reader = asyncio.create_task(self._read())
        return (clock() - t0) / 1e9

    async def _recv(self) -> bytes | None:
        ws = self._ws
        if self.client == "websockets":
            from websockets.exceptions import ConnectionClosed

            try:
                return await ws.recv(decode=False)
            except ConnectionClosed as exc:
                self.close_code = exc.rcvd.code if exc.rcvd else None
                return None
        msg = await ws.receive()
        if msg.type == aiohttp.WSMsgType.TEXT:
            return msg.data.encode()
        if msg.type == aiohttp.WSMsgType.BINARY:
            return msg.data
        self.close_code = ws.close_code
        return None

    async def _read(self) -> None:
        try:
            while (data := await self._recv()) is not None:
                self._dispatch(data, clock())
        except (ConnectionError, aiohttp.ClientError):
            pass
        except Exception as exc:
            # A bug in handling a message must stop the run, not look like a dropped link.
            self.failure = exc
        finally:
            self._gone()

    def _dispatch(self, data: bytes, received_ns: int) -> None:
        """A received message: a push goes to ``on_item``, a reply to its waiting call."""
        matched = self._calls.take(data, received_ns, self.on_item)
        if matched is not None and not matched[0].done():
            matched[0].set_result(matched[1])

    def _gone(self) -> None:
        """The connection is closed: every call still waiting fails with ``closed``."""
        self.closed.set()
        for fut in self._calls.drain():
            if not fut.done():
                fut.set_exception(ClientError("closed", "connection closed"))

    async def _send(self, body: bytes) -> None:
        if self.client == "websockets":
            await self._ws.send(body, text=True)
        else:
            await self._ws.send_str(body.decode())

    async def call(self, op: str, payload: Any) -> Any:
        """Send one request and wait for its reply; returns the reply payload."""
        if self._ws is None or self.closed.is_set():
            raise ClientError("closed", "WebSocket is not open")
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        call = self._calls.start(op, payload, fut)
        try:
            await self._send(call.body)
            async with asyncio.timeout(self.timeout_s):
                reply = await fut
            return call.answer(reply)
        except TimeoutError:
            call.fail("timeout")
            raise ClientError("timeout", f"no reply within {self.timeout_s}s") from None
        except ClientError as exc:
            call.fail(exc.code)
            raise
        except OpFailed:
            raise  # an error reply: its code is already the row's error
        except Exception as exc:
            call.fail("closed")
            raise ClientError("closed", f"{type(exc).__name__}: {exc}") from None
        finally:
            self._calls.finish(call, self.on_request)

    async def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def close(self) -> None:
        # Stop the reader first: aiohttp's close() reads the peer's close frame
        # itself and refuses to share the connection with a pending receive().
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)
        self.closed.set()
        await self._close_session()


# -- Server-Sent Events -----------------------------------------------------------------


class SseConn(SseStream):
    """A user's Server-Sent Events stream: ``GET /events`` held open, resumed by id.

    ::

        sse = SseConn(base_url, timeout_s, on_item, on_connect, on_gap=on_gap)
        await sse.connect(token, after=cursor)   # the stream is open (headers received)
        reader = asyncio.create_task(sse.run())  # pushes reach on_item(..., "sse", nbytes)
        await sse.close()                        # the user is offline at once

    ``run`` reads until cancelled; when the stream drops (the server ended it,
    e.g. as a slow consumer, or the connection broke) it reconnects with
    ``Last-Event-ID`` after :attr:`retry_s` (the server's ``retry:`` if it sent
    one), counting :attr:`reconnects`. A refusal (4xx) is not retried: ``run``
    raises it, except a refused token when :attr:`renew` is set: the user signs in
    again and the stream resumes, counted in :attr:`auth_closes`. Each push's
    ``nbytes`` is its event's bytes on the wire: the ``id:``/``data:`` lines and
    its HTTP chunk framing (not the response head, which is the connection's
    set-up, as a WebSocket's upgrade is). An ``event: gap`` reaches
    ``on_gap("sse")``.
    """

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._session: aiohttp.ClientSession | None = None
        self._resp: aiohttp.ClientResponse | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=1, ssl=client_ssl() if is_secure(self.url) else True
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def connect(self, token: str, after: int = 0) -> None:
        """Open the stream after ``after``; returns once the server has answered."""
        self.start(token, after)
        await self._open()

    async def _open(self) -> None:
        headers = self.request_headers()
        with self.connecting():
            try:
                with counting(self.counter):
                    async with asyncio.timeout(self.timeout_s):
                        resp = await self._client().get(self.url, headers=headers)
                if resp.status != 200:
                    body = await resp.read()
                    resp.release()
                    raise ClientError(f"http_{resp.status}", body.decode("utf-8", "replace")[:200])
                self._resp = resp
            except TimeoutError:
                raise ClientError("timeout", f"no answer within {self.timeout_s}s") from None
            except aiohttp.ClientError as exc:
                raise ClientError("connect_error", f"{type(exc).__name__}: {exc}") from None

    async def run(self) -> None:
        """Read events until cancelled, reconnecting after drops (see the class docstring)."""
        try:
            while True:
                await self._follow()
                self._drop()
                await asyncio.sleep(self.retry_s)
                renewed = False
                while True:
                    try:
                        await self._open()
                        break
                    except ClientError as exc:
                        if self.renews_after(exc, renewed):
                            assert self.renew is not None
                            self.token, renewed = await self.renew(), True
                            continue
                        await asyncio.sleep(self.retry_after(exc))
                self.resumed(renewed)
        finally:
            self._drop()

    async def _follow(self) -> None:
        """Read the open stream until it ends (nothing to do when none is open)."""
        if self._resp is not None:
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                await self._read(self._resp)

    async def _read(self, resp: aiohttp.ClientResponse) -> None:
        self.decoder.restart()
        chunked = resp.headers.get("Transfer-Encoding", "").lower() == "chunked"
        in_chunk = 0
        async for data, end_of_chunk in resp.content.iter_chunks():
            now = clock()
            framing = 0
            in_chunk += len(data)
            if chunked and end_of_chunk:
                framing, in_chunk = chunk_framing(in_chunk), 0
            self.feed(data, framing, now)

    def _drop(self) -> None:
        resp, self._resp = self._resp, None
        if resp is not None:
            resp.close()

    async def close(self) -> None:
        """Close the stream's connection (the server sees the user leave at once)."""
        self._drop()
        session, self._session = self._session, None
        if session is not None:
            await session.close()
