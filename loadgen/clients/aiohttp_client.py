"""aiohttp's client: HTTP ``POST /rpc`` and WebSocket ``GET /ws``."""

from __future__ import annotations

import asyncio

import aiohttp

from loadgen.clients.errors import ClientError
from loadgen.tls import client_ssl, is_secure

_HEADERS = {"Content-Type": "application/json"}


class AiohttpClient:
    """One virtual HTTP connection; ``keep_alive=False`` opens a TCP connection per request."""

    def __init__(self, url: str, keep_alive: bool, timeout_s: float) -> None:
        self.url = url
        self.keep_alive = keep_alive
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def connect(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=1,
            force_close=not self.keep_alive,
            ssl=client_ssl() if is_secure(self.url) else True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            skip_auto_headers=("User-Agent",),
        )

    async def request(self, body: bytes) -> tuple[int, bytes]:
        assert self._session is not None, "connect() first"
        try:
            async with self._session.post(self.url, data=body, headers=_HEADERS) as resp:
                return resp.status, await resp.read()
        except TimeoutError as exc:
            raise ClientError("timeout", str(exc)) from None
        except aiohttp.ClientConnectorError as exc:
            raise ClientError("connect_error", str(exc)) from None
        except aiohttp.ClientError as exc:
            raise ClientError("http_error", f"{type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


class AiohttpWSClient:
    """One WebSocket connection through aiohttp's client; text frames, no compression."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    async def connect(self) -> None:
        self._session = aiohttp.ClientSession(skip_auto_headers=("User-Agent",))
        try:
            self._ws = await self._session.ws_connect(
                self.url,
                ssl=client_ssl() if is_secure(self.url) else True,
                compress=0,
                autoping=True,
                heartbeat=None,
                timeout=aiohttp.ClientWSTimeout(ws_close=self.timeout_s),
                max_msg_size=0,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            await self.close()
            raise ClientError("connect_error", f"{type(exc).__name__}: {exc}") from None

    async def request(self, body: bytes) -> tuple[int, bytes]:
        ws = self._ws
        if ws is None or ws.closed:
            raise ClientError("closed", "WebSocket is not open")
        try:
            await ws.send_str(body.decode())
            async with asyncio.timeout(self.timeout_s):
                msg = await ws.receive()
        except TimeoutError:
            raise ClientError("timeout", f"no reply within {self.timeout_s}s") from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise ClientError("closed", f"{type(exc).__name__}: {exc}") from None
        if msg.type == aiohttp.WSMsgType.TEXT:
            return 200, msg.data.encode()
        if msg.type == aiohttp.WSMsgType.BINARY:
            return 200, msg.data
        raise ClientError("closed", f"connection closed ({msg.type.name}, {ws.close_code})")

    async def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None and not ws.closed:
            await ws.close()
        session, self._session = self._session, None
        if session is not None:
            await session.close()
