"""HTTP through httpx: ``POST /rpc`` on a keep-alive or a fresh connection.

With ``http2=True`` it speaks HTTP/2 only: with prior knowledge on http://,
over ALPN h2 on https://. :attr:`HttpxClient.http_version` is the version of
the last response (``"HTTP/1.1"``, ``"HTTP/2"``).
"""

from __future__ import annotations

import ssl

import httpx

from loadgen.clients.errors import ClientError
from loadgen.tls import client_ssl, is_secure

_HEADERS = {"content-type": "application/json"}


class HttpxClient:
    """One virtual connection; ``keep_alive=False`` opens a TCP connection per request."""

    def __init__(self, url: str, keep_alive: bool, timeout_s: float, http2: bool = False) -> None:
        self.url = url
        self.keep_alive = keep_alive
        self.timeout_s = timeout_s
        self.http2 = http2
        self.http_version = ""
        self._client: httpx.AsyncClient | None = None
        self._headers = dict(_HEADERS)
        if not keep_alive and not http2:
            # HTTP/2 has no Connection header: the pool, keeping nothing, closes it.
            self._headers["connection"] = "close"

    async def connect(self) -> None:
        # A single pooled connection models one browser tab's connection;
        # with keep-alive off the pool keeps nothing between requests.
        limits = httpx.Limits(
            max_connections=1, max_keepalive_connections=1 if self.keep_alive else 0
        )
        verify: ssl.SSLContext | bool = True
        if is_secure(self.url):
            # httpcore sets its ALPN list on the context it is given: a context of its own
            # (offering what httpcore will set) keeps the shared one as it is.
            verify = client_ssl(("http/1.1", "h2")) if self.http2 else client_ssl()
        self._client = httpx.AsyncClient(
            limits=limits,
            timeout=self.timeout_s,
            trust_env=False,
            http1=not self.http2,
            http2=self.http2,
            verify=verify,
        )

    async def request(self, body: bytes) -> tuple[int, bytes]:
        assert self._client is not None, "connect() first"
        try:
            resp = await self._client.post(self.url, content=body, headers=self._headers)
        except httpx.TimeoutException as exc:
            raise ClientError("timeout", str(exc)) from None
        except httpx.ConnectError as exc:
            raise ClientError("connect_error", str(exc)) from None
        except httpx.HTTPError as exc:
            raise ClientError("http_error", f"{type(exc).__name__}: {exc}") from None
        self.http_version = resp.http_version
        return resp.status_code, resp.content

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
