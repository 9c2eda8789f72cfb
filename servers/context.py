"""What every operation is called with: who is asking, and over what.

::

    ctx = Context(user="alice", token=token)          # filled in by the transport
    async def op_send(req: Request, ctx: Context) -> Any: ...
    handler: Handler = op_send

A push connection (a WebSocket or an event stream) puts itself in
``ctx.session``; operations see it only through :class:`PushSession`, so the
application (:mod:`servers.realtime.ops`) does not depend on the hub that
implements it (:class:`servers.hub.Session`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from servers.protocol import Request
from servers.realtime.inbox import Inbox


class PushSession(Protocol):
    """What an operation may do with the push connection it arrived on."""

    def bind(self, user: str, token: str) -> None:
        """Attach the connection to ``user``."""

    def unbind(self) -> None:
        """Detach the connection from its user."""

    def follow(self, box: Inbox, after: int) -> None:
        """Replay ``box`` after ``after``, then push every later item."""


@dataclass(slots=True)
class Context:
    """Who is asking, and over what: filled in by the transport."""

    user: str | None = None
    token: str | None = None
    session: PushSession | None = None


Handler = Callable[[Request, Context], Awaitable[Any]]
