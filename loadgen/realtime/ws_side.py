"""A user's WebSocket less its I/O; each driver's ``WsConn`` adds it.

::

    url = side.url_for(token)       # where to connect (?token= when given)
    side._calls                     # the calls waiting (loadgen.realtime.calls.Calls)
    side.close_code, side.failure   # how the connection ended, a bug in reading it
    side.wire_totals()              # the connection's bytes

``W`` is the driver's waiter: an asyncio future or a gevent AsyncResult.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from loadgen.realtime.calls import Calls
from loadgen.realtime.receive import OnItem
from loadgen.realtime.user_state import OnRequest
from loadgen.wire import WireCounter

W = TypeVar("W")


class WsSide(Generic[W]):
    """What both drivers' WebSockets hold: where to connect, the calls waiting, the counts."""

    def __init__(
        self, ws_url: str, client: str, timeout_s: float, on_request: OnRequest, on_item: OnItem
    ) -> None:
        self.ws_url = ws_url
        self.client = client
        self.timeout_s = timeout_s
        self.on_request = on_request
        self.on_item = on_item
        self.counter = WireCounter()
        self._calls: Calls[W] = Calls()
        self._ws: Any = None
        self.close_code: int | None = None
        self.failure: BaseException | None = None

    def url_for(self, token: str | None) -> str:
        """The URL to connect to, with ``?token=`` when a token is given."""
        return self.ws_url + (f"?token={token}" if token else "")

    def wire_totals(self) -> tuple[int, int]:
        """Bytes sent and received over the connection so far."""
        return self.counter.sent, self.counter.received
