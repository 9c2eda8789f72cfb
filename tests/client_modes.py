"""The (server kind, client, conn_mode) cells the client, engine and TLS tests run.

::

    @pytest.mark.parametrize(("kind", "client", "conn_mode"), EVERY_MODE, ids=mode_ids(EVERY_MODE))
"""

from __future__ import annotations

from collections.abc import Sequence

Mode = tuple[str, str, str]

#: Every client in every connection mode; the aiohttp and websockets WebSocket clients
#: against the server of their own library, the lean one against both.
EVERY_MODE: list[Mode] = [
    ("http", "httpx", "keep-alive"),
    ("http", "httpx", "new-connection"),
    ("http", "aiohttp", "keep-alive"),
    ("http", "aiohttp", "new-connection"),
    ("ws-websockets", "websockets", "persistent"),
    ("ws-aiohttp", "aiohttp", "persistent"),
    ("http", "lean", "keep-alive"),
    ("http", "lean", "new-connection"),
    ("ws-websockets", "lean", "persistent"),
    ("ws-aiohttp", "lean", "persistent"),
]

#: The aiohttp and websockets WebSocket clients against the other library's server.
CROSSED: list[Mode] = [
    ("ws-aiohttp", "websockets", "persistent"),
    ("ws-websockets", "aiohttp", "persistent"),
]

#: Every valid (server kind, client, conn_mode).
EVERY_VALID: list[Mode] = EVERY_MODE + CROSSED


def mode_ids(modes: Sequence[Mode]) -> list[str]:
    """Test ids ``kind/client/conn_mode``."""
    return ["/".join(m) for m in modes]
