"""hypercorn's HTTP/2 protocol, which drops DATA on a stream it has already closed.

::

    install()   # before hypercorn serves; idempotent

hypercorn (0.18) forgets a WebSocket-over-HTTP/2 stream (RFC 8441) as soon as it
has answered the client's close frame, but the stream is still open on the
client's side, and a client ends it as the RFC asks: with END_STREAM, an empty
DATA frame. hypercorn then looks the stream up and raises ``KeyError`` inside the
connection's task group: the connection is torn down without its GOAWAY, the
error is logged, and at shutdown it is raised out of ``serve()``. The same
happens to DATA that reaches any stream hypercorn has closed early (an HTTP
reply sent before the whole request body was in). :class:`LateDataH2Protocol`
acknowledges such DATA (so the connection's flow-control window stays open) and
drops it, as hypercorn already does for a late END_STREAM.
"""

from __future__ import annotations

import h2.events
import hypercorn.protocol as hypercorn_protocol
from hypercorn.protocol.h2 import H2Protocol

__all__ = ["LateDataH2Protocol", "install"]


class LateDataH2Protocol(H2Protocol):
    """hypercorn's H2Protocol that drops DATA on streams it has closed."""

    async def _handle_events(self, events: list[h2.events.Event]) -> None:
        kept: list[h2.events.Event] = []
        for event in events:
            if isinstance(event, h2.events.DataReceived) and event.stream_id not in self.streams:
                # The events before it may open its stream (a request and its body
                # arrive together): hand them over first, then look again.
                await super()._handle_events(kept)
                kept = []
                if event.stream_id not in self.streams:
                    self._drop(event)
                    continue
            kept.append(event)
        await super()._handle_events(kept)

    def _drop(self, event: h2.events.DataReceived) -> None:
        if event.flow_controlled_length:
            self.connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)


def install() -> None:
    """Have hypercorn's connections use :class:`LateDataH2Protocol` for HTTP/2."""
    hypercorn_protocol.H2Protocol = LateDataH2Protocol  # type: ignore[misc]
