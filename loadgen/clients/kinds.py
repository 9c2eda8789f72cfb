"""Which clients exist, which transports each can drive, and where they connect.

Pure data and one check, importable without any client library::

    check_combination("http", "lean", "keep-alive")      # None: a valid cell
    check_combination("http", "websockets", "persistent") # why not, in words
    check_combination("http", "aiohttp", "keep-alive", http_version="2")  # why not
    check_combination("ws-hypercorn", "lean", "persistent", http_version="2")  # RFC 8441
"""

from __future__ import annotations

from loadgen.schema import CONN_MODES, HTTP_TRANSPORTS, WS_TRANSPORTS

#: Which clients can drive which transport family.
HTTP_CLIENTS = ("httpx", "aiohttp", "lean")
WS_CLIENTS = ("websockets", "aiohttp", "lean")
#: The client with no library between the engine and the socket (loadgen.lean).
LEAN = "lean"
WS_CONN_MODE = "persistent"
#: HTTP versions a cell may name, and the clients that speak HTTP/2 and HTTP/3.
HTTP_VERSIONS = ("1.1", "2", "3")
H2_CLIENTS = ("lean", "httpx")
H3_CLIENTS = ("lean",)
#: WebSocket over HTTP/2 (RFC 8441): the servers that take an extended CONNECT for it,
#: and the clients that open one.
WS_H2_TRANSPORTS = ("ws-hypercorn",)
WS_H2_CLIENTS = ("lean",)

PATHS = {t: "/rpc" for t in HTTP_TRANSPORTS} | {t: "/ws" for t in WS_TRANSPORTS}


def check_combination(
    transport: str, client: str, conn_mode: str, http_version: str = "1.1"
) -> str | None:
    """Return why a (transport, client, conn_mode, http_version) cell is impossible, or None."""
    if transport in HTTP_TRANSPORTS:
        if client not in HTTP_CLIENTS:
            return f"client {client!r} cannot speak HTTP; use one of {', '.join(HTTP_CLIENTS)}"
        if conn_mode not in CONN_MODES:
            return f"conn_mode for HTTP must be one of {', '.join(CONN_MODES)}"
        return _check_http_version(client, http_version)
    if transport in WS_TRANSPORTS:
        if client not in WS_CLIENTS:
            return f"client {client!r} cannot speak WebSocket; use one of {', '.join(WS_CLIENTS)}"
        if conn_mode != WS_CONN_MODE:
            return f"conn_mode for WebSocket must be {WS_CONN_MODE!r}"
        return _check_ws_http_version(transport, client, http_version)
    return f"unknown transport {transport!r}"


def _check_http_version(client: str, http_version: str) -> str | None:
    if http_version not in HTTP_VERSIONS:
        return f"http_version must be one of {', '.join(HTTP_VERSIONS)}, got {http_version!r}"
    if http_version == "3" and client not in H3_CLIENTS:
        return (
            f"http_version '3' needs client {' or '.join(H3_CLIENTS)}; {client!r} has no "
            "HTTP/3 (QUIC) support"
        )
    if http_version == "2" and client not in H2_CLIENTS:
        return (
            f"http_version '2' needs client {' or '.join(H2_CLIENTS)}; "
            f"{client!r} speaks HTTP/1.1 only"
        )
    return None


def _check_ws_http_version(transport: str, client: str, http_version: str) -> str | None:
    if http_version == "1.1":
        return None
    if http_version == "3":
        return (
            "http_version '3' is not possible for WebSocket: no server here takes a "
            "WebSocket over HTTP/3 (RFC 9220); WebSocket over HTTP/2 is http_version '2' "
            f"on {', '.join(WS_H2_TRANSPORTS)}"
        )
    if http_version != "2":
        return f"http_version must be one of {', '.join(HTTP_VERSIONS)}, got {http_version!r}"
    if transport not in WS_H2_TRANSPORTS:
        return (
            f"http_version '2' for WebSocket (RFC 8441) is served by "
            f"{', '.join(WS_H2_TRANSPORTS)} only, not {transport!r}"
        )
    if client not in WS_H2_CLIENTS:
        return (
            f"http_version '2' for WebSocket needs client {' or '.join(WS_H2_CLIENTS)}; "
            f"{client!r} opens WebSockets over HTTP/1.1 only"
        )
    return None
