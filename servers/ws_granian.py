"""``ws-granian``: the ASGI application (:mod:`servers.asgi_app`) on granian,
serving WebSocket cells.

The app serves every endpoint; this kind tells a run that its cells use GET /ws::

    await serve(ServerConfig("127.0.0.1", 0), Hub(), on_ready, stop)
"""

from __future__ import annotations

from servers.asgi_granian import liveness, refusal, serve

KIND = "ws-granian"
PATH = "/ws"

__all__ = ["KIND", "PATH", "liveness", "refusal", "serve"]
