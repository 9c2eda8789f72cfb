"""Open one counted TCP or TLS connection for a lean protocol.

::

    target = Target.parse("https://127.0.0.1:8443/rpc")
    transport, proto = await open_connection(target, lambda: MyProtocol(counter), timeout_s)
    await open_connection(target, factory, timeout_s, alpn=("h2",))   # TLS offers ALPN h2

Failures raise :class:`~loadgen.clients.errors.ClientError` ``connect_error``
(or ``timeout``). Lean protocols count their own bytes (see
:class:`ByteCounting`), so the counting event loop does not wrap them.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from loadgen.clients.errors import ClientError
from loadgen.tls import client_ssl
from loadgen.wire import WireCounter, uncounted

P = TypeVar("P", bound=asyncio.BaseProtocol)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a lean connection goes: host, port, path (with query), TLS or not."""

    host: str
    port: int
    path: str
    tls: bool

    @classmethod
    def parse(cls, url: str) -> Target:
        """``http(s)://`` or ``ws(s)://`` URL -> Target; ValueError when it is not one."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
            raise ValueError(f"not an http(s) or ws(s) URL: {url!r}")
        tls = parts.scheme in ("https", "wss")
        port = parts.port or (443 if tls else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.hostname, port, path, tls)

    @property
    def authority(self) -> str:
        """The ``Host`` header value."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class ByteCounting:
    """Counts a connection's wire bytes into a :class:`WireCounter`.

    Plain connections add what they write and receive; TLS connections hand
    their socket to the counter, which reads the kernel's TCP_INFO byte
    counters (the library above TLS sees only plaintext).
    """

    __slots__ = ("_counter", "_sock", "_tls")

    def __init__(self, counter: WireCounter | None, tls: bool) -> None:
        self._counter = counter
        self._tls = tls
        self._sock: Any = None

    def made(self, transport: asyncio.BaseTransport) -> None:
        counter = self._counter
        if counter is None:
            return
        counter.connections += 1
        if self._tls:
            self._sock = transport.get_extra_info("socket")
            if self._sock is not None:
                counter.track_tls(self._sock)

    def wrote(self, n: int) -> None:
        if self._counter is not None and not self._tls:
            self._counter.add_plain(n, 0)

    def read(self, n: int) -> None:
        if self._counter is not None and not self._tls:
            self._counter.add_plain(0, n)

    def refresh(self) -> None:
        """Read a TLS socket's counters now (before it may go away)."""
        if self._sock is not None and self._counter is not None:
            self._counter.refresh_tls(self._sock)

    def lost(self) -> None:
        if self._sock is not None and self._counter is not None:
            self._counter.untrack_tls(self._sock)
        self._sock = None


async def open_connection(
    target: Target, factory: Callable[[], P], timeout_s: float, alpn: tuple[str, ...] = ()
) -> tuple[asyncio.Transport, P]:
    """Connect to ``target`` with a protocol from ``factory``; TLS when the target says so.

    Over TLS the handshake offers the ``alpn`` protocols (none by default); the
    protocol reads the server's choice from its transport's ``ssl_object``.
    """
    loop = asyncio.get_running_loop()
    ctx: ssl.SSLContext | None = client_ssl(alpn) if target.tls else None
    try:
        with uncounted():
            async with asyncio.timeout(timeout_s):
                transport, proto = await loop.create_connection(
                    factory,
                    target.host,
                    target.port,
                    ssl=ctx,
                    server_hostname=target.host if ctx is not None else None,
                )
    except TimeoutError:
        raise ClientError(
            "timeout", f"connect to {target.authority} took over {timeout_s}s"
        ) from None
    except (OSError, ssl.SSLError) as exc:
        raise ClientError("connect_error", f"{type(exc).__name__}: {exc}") from None
    return transport, proto  # type: ignore[return-value]
