"""gevent-cooperative connections that count their bytes: HTTP (geventhttpclient) and WebSocket.

Only imported inside locust processes (after gevent's monkey patching)::

    counter = WireCounter()
    pool = CountingClientPool(counter, timeout_s=5.0)
    status, body = http_exchange(pool, url, "POST", "/rpc", b"{...}", {}, 5.0)

    ws = ws_connect("ws://127.0.0.1:8080/ws", counter, timeout_s=5.0)

Counts are TCP payload bytes, as :mod:`loadgen.wire` counts them for the
asyncio engine: HTTP request/status lines, headers and bodies; WebSocket
handshakes, frame headers and payloads; for https/wss the TLS records
(handshake included), read from the socket's TCP_INFO as the asyncio engine
does. Call :func:`configure_tls` once per process before using https/wss.
"""

from __future__ import annotations

import contextlib
import socket
import weakref
from typing import Any
from urllib.parse import urlsplit

import gevent
from gevent import socket as gsocket
from gevent import ssl as gssl
from geventhttpclient.client import HTTPClient, HTTPClientPool
from geventhttpclient.url import URL

from loadgen.clients.errors import ClientError
from loadgen.tls import client_ssl, configure_client, is_secure
from loadgen.wire import WireCounter

__all__ = [
    "CountingClientPool",
    "CountingSSLSocket",
    "CountingSocket",
    "WireCounter",
    "configure_tls",
    "http_exchange",
    "open_socket",
    "ws_connect",
]


class CountingSocket(gsocket.socket):
    """A gevent socket adding what it sends and receives to ``counter``.

    gevent's ``sendall`` is built on ``send``, so counting ``send`` counts both.
    """

    def __init__(self, counter: WireCounter, family: int, type: int, proto: int = 0) -> None:
        super().__init__(family, type, proto)
        self.counter = counter
        counter.connections += 1
        if type == socket.SOCK_STREAM and family in (socket.AF_INET, socket.AF_INET6):
            self.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data: Any, flags: int = 0, *args: Any, **kwargs: Any) -> int:
        n = super().send(data, flags, *args, **kwargs)
        self.counter.sent += n
        return n

    def recv(self, *args: Any) -> bytes:
        data = super().recv(*args)
        self.counter.received += len(data)
        return data

    def recv_into(self, *args: Any) -> int:
        n = super().recv_into(*args)
        self.counter.received += n
        return n


class CountingSSLSocket(gssl.SSLSocket):
    """A gevent TLS socket whose wire bytes (records, handshake included) count into the
    counter of the :class:`CountingSocket` it wraps, from the kernel's TCP_INFO."""

    def __init__(self, sock: Any = None, *args: Any, **kwargs: Any) -> None:
        counter = getattr(sock, "counter", None)
        super().__init__(sock, *args, **kwargs)
        self.counter = counter
        if counter is not None:
            counter._add_tls(self)

    def close(self) -> None:
        counter = getattr(self, "counter", None)
        if counter is not None:
            counter._close_tls(self)
            self.counter = None
        super().close()


def configure_tls(ca_file: str | None, version: str | None) -> None:
    """Trust ``ca_file`` (a run's throwaway CA) for https/wss, at most TLS ``version``."""
    configure_client(ca_file, version or "1.3")
    if ca_file:
        client_ssl().sslsocket_class = CountingSSLSocket


def open_socket(url: str, counter: WireCounter, timeout_s: float) -> tuple[Any, str, int]:
    """A connected counting socket to ``url``'s host (TLS for https/wss); and host, port."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    secure = is_secure(url)
    port = parts.port or (443 if secure else 80)
    info = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    sock: Any = CountingSocket(counter, info[0], info[1], info[2])
    try:
        sock.settimeout(timeout_s)
        sock.connect(info[4])
        if secure:
            sock = client_ssl().wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise
    return sock, host, port


class CountingClientPool(HTTPClientPool):
    """geventhttpclient's client pool (what FastHttpUser uses) with counting sockets.

    Every socket it opens is remembered, so :meth:`reset` can close a
    connection that a killed or timed-out request left checked out (a held
    long poll, say), and the next request starts on a fresh pool.
    """

    def __init__(self, counter: WireCounter, timeout_s: float, **kw: Any) -> None:
        kw.setdefault("concurrency", 1)
        kw.setdefault("network_timeout", timeout_s)
        kw.setdefault("connection_timeout", timeout_s)
        kw.setdefault("ssl_context_factory", _tls_context)
        super().__init__(**kw)
        self.counter = counter
        self._sockets: weakref.WeakSet[CountingSocket] = weakref.WeakSet()

    def get_client(self, url: str | URL) -> HTTPClient:
        if not isinstance(url, URL):
            url = URL(url)
        key = url.host, url.port
        client = self.clients.get(key)
        if client is None:
            client = super().get_client(url)
            pool = client._connection_pool

            def factory(family: int, socktype: int, proto: int) -> CountingSocket:
                sock = CountingSocket(self.counter, family, socktype, proto)
                self._sockets.add(sock)
                return sock

            pool._create_tcp_socket = factory  # type: ignore[method-assign]
        return client

    def reset(self) -> None:
        """Close every connection, in use or idle; the next request reconnects."""
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):
                sock.close()
        self._sockets.clear()
        self.close()


def _tls_context(*_args: Any, **_kwargs: Any) -> Any:
    return client_ssl()


def http_exchange(
    pool: CountingClientPool,
    url: URL,
    method: str,
    uri: str,
    body: bytes | None,
    headers: dict[str, str],
    timeout_s: float,
) -> tuple[int, bytes]:
    """One HTTP request through ``pool``; returns ``(status, body)`` or raises ClientError.

    Any failure resets the pool, so a half-used connection is never reused.
    """
    timer = gevent.Timeout(timeout_s)
    timer.start()
    try:
        client = pool.get_client(url)
        resp = client.request(method, uri, body=body or b"", headers=headers)
        data = resp.read()
        return resp.status_code, data
    except gevent.Timeout as exc:
        if exc is not timer:
            raise
        pool.reset()
        raise ClientError("timeout", f"no reply within {timeout_s}s") from None
    except (ConnectionRefusedError, socket.gaierror) as exc:
        pool.reset()
        raise ClientError("connect_error", f"{type(exc).__name__}: {exc}") from None
    except TimeoutError:
        pool.reset()
        raise ClientError("timeout", f"no reply within {timeout_s}s") from None
    except gevent.GreenletExit:
        pool.reset()
        raise
    except Exception as exc:
        pool.reset()
        raise ClientError("http_error", f"{type(exc).__name__}: {exc}") from None
    finally:
        timer.close()


def ws_connect(url: str, counter: WireCounter, timeout_s: float) -> Any:
    """Open a ``websocket-client`` WebSocket on a counting socket (handshake counted)."""
    import websocket

    timer = gevent.Timeout(timeout_s)
    timer.start()
    sock: Any = None
    try:
        sock, _host, _port = open_socket(url, counter, timeout_s)
        ws = websocket.WebSocket(enable_multithread=True, skip_utf8_validation=True)
        ws.connect(url, socket=sock, timeout=timeout_s, suppress_origin=True)
        return ws
    except gevent.Timeout as exc:
        if exc is not timer:
            raise
        if sock is not None:
            sock.close()
        raise ClientError("connect_error", f"no handshake within {timeout_s}s") from None
    except gevent.GreenletExit:
        if sock is not None:
            sock.close()
        raise
    except Exception as exc:
        if sock is not None:
            sock.close()
        raise ClientError("connect_error", f"{type(exc).__name__}: {exc}") from None
    finally:
        timer.close()


def ws_close(ws: Any, timeout_s: float) -> None:
    """Close a :func:`ws_connect` WebSocket (``None`` is a no-op); drop the socket if that fails."""
    if ws is not None:
        try:
            ws.close(timeout=timeout_s)
        except Exception:
            ws.shutdown()
