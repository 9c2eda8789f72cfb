"""What a conformance check talks through: one request envelope in, one reply out.

Two channels share one shape, so a check about the protocol runs unchanged over
``POST /rpc`` and over a WebSocket::

    async with aiohttp.ClientSession() as http:
        chan = HttpChannel(http, "http://127.0.0.1:8080", token)
        answer = await chan.call("echo", {"x": 1})   # Answer(status=200, envelope={...})
        ws = await WsChannel.open(http, "http://127.0.0.1:8080", token)
        answer = await ws.call("subscribe_inbox", {"after": 0})
        push = await ws.next_push(2.0)               # {"op": "push", "seq": 1, ...}
        await ws.close()

``Answer.status`` is the HTTP status (None over a WebSocket, which has none);
``Answer.envelope`` is the decoded JSON (None when the body was not JSON).
A WebSocket that the server closes raises :class:`ChannelClosed` carrying its code.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from loadgen.realtime.sse import SseEvent, SseParser

#: How long one reply may take before a check calls the server unresponsive.
REPLY_TIMEOUT_S = 10.0

_ids = itertools.count(1)


def next_id() -> int:
    """A fresh envelope id, unique within this process."""
    return next(_ids)


def envelope(op: str, payload: Any = None, rid: int | None = None) -> dict[str, Any]:
    """A request envelope for ``op`` with a fresh id and the monotonic clock as ``ts``."""
    return {
        "op": op,
        "id": next_id() if rid is None else rid,
        "ts": time.monotonic_ns(),
        "payload": payload,
    }


def decode(body: bytes | str) -> Any:
    """The JSON of a body, or None when it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


@dataclass(frozen=True, slots=True)
class Answer:
    """One reply: HTTP status (None over WebSocket), decoded envelope and raw body."""

    status: int | None
    envelope: Any
    body: bytes

    @property
    def ok(self) -> bool:
        return isinstance(self.envelope, dict) and self.envelope.get("ok") is True

    @property
    def code(self) -> str | None:
        """The error code of a failed reply, else None."""
        if not isinstance(self.envelope, dict):
            return None
        err = self.envelope.get("error")
        return err.get("code") if isinstance(err, dict) else None

    @property
    def payload(self) -> Any:
        return self.envelope.get("payload") if isinstance(self.envelope, dict) else None

    def shown(self, limit: int = 160) -> str:
        """The reply as a check prints it: status and body, cut to ``limit`` characters."""
        text = self.body.decode("utf-8", "replace")
        if len(text) > limit:
            text = text[:limit] + "..."
        return text if self.status is None else f"{self.status} {text}"


class ChannelClosed(Exception):
    """The server closed the WebSocket (``code`` is its close code, None if unknown)."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"the server closed the WebSocket (code {code}) {reason}".strip())
        self.code = code
        self.reason = reason


def auth_headers(token: str | None) -> dict[str, str]:
    """``Authorization: Bearer TOKEN`` when there is a token."""
    return {"Authorization": f"Bearer {token}"} if token else {}


class HttpChannel:
    """Envelopes over ``POST /rpc``, with the bearer token when one is given."""

    transport = "http"

    def __init__(
        self, http: aiohttp.ClientSession, base_url: str, token: str | None = None
    ) -> None:
        self.http = http
        self.base_url = base_url
        self.token = token

    async def send_raw(self, body: bytes, headers: dict[str, str] | None = None) -> Answer:
        """POST ``body`` as is (malformed or oversized bodies included)."""
        hdrs = {"Content-Type": "application/json", **auth_headers(self.token), **(headers or {})}
        async with asyncio.timeout(REPLY_TIMEOUT_S):
            async with self.http.post(f"{self.base_url}/rpc", data=body, headers=hdrs) as resp:
                data = await resp.read()
                return Answer(resp.status, decode(data), data)

    async def call(self, op: str, payload: Any = None, rid: int | None = None) -> Answer:
        """Send one envelope for ``op`` and read its reply."""
        return await self.send_raw(orjson.dumps(envelope(op, payload, rid)))

    async def close(self) -> None:
        return None


class WsChannel:
    """Envelopes over one WebSocket on ``GET /ws``; pushes are kept apart for :meth:`next_push`."""

    transport = "ws"

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.pushes: asyncio.Queue[Any] = asyncio.Queue()
        self._replies: dict[int, asyncio.Future[Answer]] = {}
        self._unmatched: asyncio.Queue[Answer] = asyncio.Queue()
        self.close_code: int | None = None
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls, http: aiohttp.ClientSession, base_url: str, token: str | None = None
    ) -> WsChannel:
        """Connect to ``/ws`` (``?token=`` when given); aiohttp raises on a refused handshake."""
        url = f"{base_url}/ws"
        params = {"token": token} if token else None
        async with asyncio.timeout(REPLY_TIMEOUT_S):
            ws = await http.ws_connect(url, params=params, autoping=True, max_msg_size=0)
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    break
                data = msg.data.encode() if isinstance(msg.data, str) else msg.data
                obj = decode(data)
                if isinstance(obj, dict) and obj.get("op") == "push" and "ok" not in obj:
                    self.pushes.put_nowait(obj)
                    continue
                answer = Answer(None, obj, data)
                rid = obj.get("id") if isinstance(obj, dict) else None
                waiter = self._replies.pop(rid, None) if isinstance(rid, int) else None
                if waiter is not None and not waiter.done():
                    waiter.set_result(answer)
                else:
                    self._unmatched.put_nowait(answer)
        finally:
            self.close_code = self.ws.close_code
            closed = ChannelClosed(self.close_code)
            for waiter in self._replies.values():
                if not waiter.done():
                    waiter.set_exception(closed)
            self._replies.clear()

    @property
    def closed(self) -> bool:
        return self._reader.done()

    async def send_raw(self, body: bytes | str) -> Answer:
        """Send one message as is; the reply is the next one with no id this channel awaits."""
        if self.closed:
            raise ChannelClosed(self.close_code)
        if isinstance(body, str):
            await self.ws.send_str(body)
        else:
            await self.ws.send_bytes(body)
        answer: Answer = await self._take(self._unmatched, REPLY_TIMEOUT_S, "reply")
        return answer

    async def _take(self, queue: asyncio.Queue[Any], timeout_s: float, what: str) -> Any:
        """The next item of ``queue``; ChannelClosed once the socket closed with none
        left, TimeoutError when none comes within ``timeout_s``."""
        get = asyncio.ensure_future(queue.get())
        done, _ = await asyncio.wait(
            {get, self._reader}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if get in done:
            return get.result()
        get.cancel()
        if not queue.empty():
            return queue.get_nowait()
        if self._reader in done:
            raise ChannelClosed(self.close_code)
        raise TimeoutError(f"no {what} within {timeout_s} s")

    async def call(self, op: str, payload: Any = None, rid: int | None = None) -> Answer:
        """Send one envelope for ``op`` and wait for the reply carrying its id."""
        if self.closed:
            raise ChannelClosed(self.close_code)
        env = envelope(op, payload, rid)
        waiter: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._replies[env["id"]] = waiter
        await self.ws.send_bytes(orjson.dumps(env))
        async with asyncio.timeout(REPLY_TIMEOUT_S):
            return await waiter

    async def next_push(self, timeout_s: float) -> Any:
        """The next push message; TimeoutError when none comes within ``timeout_s``."""
        return await self._take(self.pushes, timeout_s, "push")

    async def wait_closed(self, timeout_s: float) -> int | None:
        """The close code once the server closes; TimeoutError if it stays open."""
        async with asyncio.timeout(timeout_s):
            await asyncio.shield(self._reader)
        return self.close_code

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


class SseChannel:
    """One ``GET /events`` stream, read event by event::

    stream = await SseChannel.open(http, base_url, token, last_event_id="2")
    stream.status, stream.content_type      # 200, "text/event-stream" when it streams
    event = await stream.next_event(2.0)    # SseEvent(type="message", data=b"...", id="3")
    await stream.close()

    A refused stream (401, 400...) keeps its status and body in :attr:`refusal`.
    """

    def __init__(self, resp: aiohttp.ClientResponse, refusal: Answer | None) -> None:
        self.resp = resp
        self.status = resp.status
        self.content_type = resp.headers.get("Content-Type", "")
        self.refusal = refusal
        self._parser = SseParser()
        self._events: list[SseEvent] = []

    @classmethod
    async def open(
        cls,
        http: aiohttp.ClientSession,
        base_url: str,
        token: str | None,
        last_event_id: str | None = None,
        after: int | None = None,
        token_in_query: bool = False,
    ) -> SseChannel:
        """Open the stream; the token goes in the Authorization header or ``?token=``."""
        headers = {"Accept": "text/event-stream"}
        params: dict[str, str] = {}
        if token and token_in_query:
            params["token"] = token
        elif token:
            headers.update(auth_headers(token))
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        if after is not None:
            params["after"] = str(after)
        async with asyncio.timeout(REPLY_TIMEOUT_S):
            resp = await http.get(f"{base_url}/events", headers=headers, params=params or None)
            refusal = None
            if resp.status != 200:
                data = await resp.read()
                refusal = Answer(resp.status, decode(data), data)
                resp.release()
        return cls(resp, refusal)

    async def next_event(self, timeout_s: float) -> SseEvent:
        """The next event; TimeoutError when none comes, EOFError when the stream ends."""
        async with asyncio.timeout(timeout_s):
            while not self._events:
                chunk = await self.resp.content.readany()
                if not chunk:
                    raise EOFError("the server ended the stream")
                self._events.extend(self._parser.feed(chunk))
        return self._events.pop(0)

    async def close(self) -> None:
        self.resp.close()
