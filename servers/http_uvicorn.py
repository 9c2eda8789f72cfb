"""``http-uvicorn``: the ASGI application (:mod:`servers.asgi_app`) on uvicorn,
serving HTTP cells.

The app serves every endpoint; this kind tells a run that its cells use
POST /rpc, GET /inbox and GET /events::

    await serve(ServerConfig("127.0.0.1", 0), Hub(), on_ready, stop)
"""

from __future__ import annotations

from servers.asgi_uvicorn import serve

KIND = "http-uvicorn"
PATH = "/rpc"

__all__ = ["KIND", "PATH", "serve"]
