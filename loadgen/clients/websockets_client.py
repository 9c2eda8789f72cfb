"""The websockets library's asyncio client: one connection, text frames, no compression."""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from loadgen.clients.errors import ClientError
from loadgen.tls import client_ssl, is_secure


async def open_websocket(url: str, timeout_s: float) -> ClientConnection:
    """A websockets connection as the engines open one.

    No compression (frame bytes match the servers'), no pings, proxy, size
    limit or User-Agent; the handshake must finish within ``timeout_s``.
    Raises as :func:`websockets.asyncio.client.connect` does.
    """
    return await connect(
        url,
        ssl=client_ssl() if is_secure(url) else None,
        compression=None,
        ping_interval=None,
        proxy=None,
        max_size=None,
        open_timeout=timeout_s,
        user_agent_header=None,
    )


class WebsocketsClient:
    """One WebSocket virtual connection."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._ws: ClientConnection | None = None

    async def connect(self) -> None:
        try:
            self._ws = await open_websocket(self.url, self.timeout_s)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise ClientError("connect_error", f"{type(exc).__name__}: {exc}") from None

    async def request(self, body: bytes) -> tuple[int, bytes]:
        ws = self._ws
        if ws is None:
            raise ClientError("closed", "WebSocket is not open")
        try:
            await ws.send(body, text=True)
            async with asyncio.timeout(self.timeout_s):
                reply = await ws.recv(decode=False)
        except TimeoutError:
            raise ClientError("timeout", f"no reply within {self.timeout_s}s") from None
        except ConnectionClosed as exc:
            raise ClientError("closed", str(exc)) from None
        return 200, reply

    async def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
