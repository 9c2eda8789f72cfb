"""Which clients exist, which transports each can drive, and where they connect.

Pure data and one check, importable without any client library::

    check_combination("http", "lean", "keep-alive")      # None: a valid cell
    check_combination("http", "websockets", "persistent") # why not, in words
"""

from __future__ import annotations

from loadgen.schema import CONN_MODES, HTTP_TRANSPORTS, WS_TRANSPORTS

#: Which clients can drive which transport family.
HTTP_CLIENTS = ("httpx", "aiohttp", "lean")
WS_CLIENTS = ("websockets", "aiohttp", "lean")
#: The client with no library between the engine and the socket (loadgen.lean).
LEAN = "lean"
WS_CONN_MODE = "persistent"

PATHS = {t: "/rpc" for t in HTTP_TRANSPORTS} | {t: "/ws" for t in WS_TRANSPORTS}


def check_combination(transport: str, client: str, conn_mode: str) -> str | None:
    """Return why a (transport, client, conn_mode) cell is impossible, or None."""
    if transport in HTTP_TRANSPORTS:
        if client not in HTTP_CLIENTS:
            return f"client {client!r} cannot speak HTTP; use one of {', '.join(HTTP_CLIENTS)}"
        if conn_mode not in CONN_MODES:
            return f"conn_mode for HTTP must be one of {', '.join(CONN_MODES)}"
        return None
    if transport in WS_TRANSPORTS:
        if client not in WS_CLIENTS:
            return f"client {client!r} cannot speak WebSocket; use one of {', '.join(WS_CLIENTS)}"
        if conn_mode != WS_CONN_MODE:
            return f"conn_mode for WebSocket must be {WS_CONN_MODE!r}"
        return None
    return f"unknown transport {transport!r}"
