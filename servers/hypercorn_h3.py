"""hypercorn's HTTP/3 protocol, told when a client cancels a request's stream.

::

    install()   # before hypercorn serves QUIC; idempotent

hypercorn (0.18) hands its ASGI streams nothing when a QUIC stream is reset or
stopped by the client, and its next send on such a stream raises inside its UDP
server's task group, which then stops serving QUIC for every connection. A client
that abandons a held long poll or closes an event stream (RESET_STREAM and
STOP_SENDING, as browsers do with HTTP/3) would take the listener down.
:class:`ResetAwareH3Protocol` does for HTTP/3 what hypercorn does for an HTTP/2
RST_STREAM: the stream is closed (the application receives ``http.disconnect``)
and what it still sends on that stream is dropped. When the whole QUIC connection
ends, every stream still open on it is closed the same way: hypercorn would leave
their requests (a held long poll) running on a connection that is gone, and at
shutdown cancel them into a send that crashes its QUIC listener.
"""

from __future__ import annotations

import hypercorn.protocol.quic as hypercorn_quic
from aioquic.quic.events import (
    ConnectionTerminated,
    QuicEvent,
    StopSendingReceived,
    StreamReset,
)
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.events import StreamClosed
from hypercorn.protocol.h3 import H3Protocol

__all__ = ["ResetAwareH3Protocol", "install"]


class ResetAwareH3Protocol(H3Protocol):
    """hypercorn's H3Protocol that closes a stream the client reset or stopped."""

    _ended = False  # the QUIC connection has terminated: nothing more can be sent

    async def handle(self, quic_event: QuicEvent) -> None:
        await super().handle(quic_event)
        if isinstance(quic_event, ConnectionTerminated):
            await self.end_streams()
        elif isinstance(quic_event, (StreamReset, StopSendingReceived)):
            stream = self.streams.get(quic_event.stream_id)
            if stream is not None:
                await stream.handle(StreamClosed(stream_id=quic_event.stream_id))

    async def end_streams(self) -> None:
        """The QUIC connection is closing: close every stream still open on it."""
        if self._ended:
            return
        self._ended = True
        for stream_id, stream in list(self.streams.items()):
            await stream.handle(StreamClosed(stream_id=stream_id))

    async def stream_send(self, event: StreamEvent) -> None:
        if not isinstance(event, StreamClosed) and self._cannot_send(event.stream_id):
            return  # the client gave the stream up: nothing more goes on it
        try:
            await super().stream_send(event)
        except RuntimeError as exc:
            # Past its graceful timeout hypercorn cancels the requests still running;
            # the error reply it then sends would start a timer task in a task group
            # that is shutting down, and the error would take the listener down.
            if "is shutting down" not in str(exc):
                raise

    def _cannot_send(self, stream_id: int) -> bool:
        if self._ended:
            return True
        stream = self.connection._quic._streams.get(stream_id)
        return stream is not None and stream.sender._reset_error_code is not None


def install() -> None:
    """Have hypercorn's QUIC server use :class:`ResetAwareH3Protocol`."""
    hypercorn_quic.H3Protocol = ResetAwareH3Protocol  # type: ignore[misc]
