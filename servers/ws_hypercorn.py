"""``ws-hypercorn``: the ASGI application (:mod:`servers.asgi_app`) on hypercorn,
serving WebSocket cells.

The app serves every endpoint; this kind tells a run that its cells use GET /ws::

    await serve(ServerConfig("127.0.0.1", 0), Hub(), on_ready, stop)
"""

from __future__ import annotations

from servers.asgi_hypercorn import serve

KIND = "ws-hypercorn"
PATH = "/ws"

__all__ = ["KIND", "PATH", "serve"]
