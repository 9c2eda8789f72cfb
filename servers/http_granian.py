"""``http-granian``: the ASGI application (:mod:`servers.asgi_app`) on granian,
serving HTTP cells.

The app serves every endpoint; this kind tells a run that its cells use
POST /rpc, GET /inbox and GET /events::

    await serve(ServerConfig("127.0.0.1", 0), Hub(), on_ready, stop)
"""

from __future__ import annotations

from servers.asgi_granian import liveness, refusal, serve

KIND = "http-granian"
PATH = "/rpc"

__all__ = ["KIND", "PATH", "liveness", "refusal", "serve"]
