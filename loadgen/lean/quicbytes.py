"""Which streams each QUIC datagram carried, and its bytes split among their roles.

::

    quic = CountingQuic(configuration=config)     # aioquic's QuicConnection, watched
    roles = RoleBytes(counter)                    # the connection's own counter
    roles.own(stream_id, polls)                   # this stream's bytes are the polls'
    for data, _ in (sent := quic.datagrams_to_send(now)):
        ...
    roles.sent([len(d) for d, _ in sent], quic.sent_streams)
    quic.receive_datagram(data, addr, now)
    roles.received(len(data), quic.received_streams)
    roles.retire(stream_id)                       # later frames still count as its role's

QUIC encrypts its packets and puts many streams in one, so the bytes of one
role (actions, polls, the event stream) sharing a connection are not
observable on the wire. They are attributed: each datagram's UDP payload is
split among the streams whose frames it carried, in proportion to the
plaintext bytes of each stream's frames in it (STREAM, RESET_STREAM,
STOP_SENDING, MAX_STREAM_DATA, STREAM_DATA_BLOCKED, read from aioquic's frame
writers and handlers as the packets are built and parsed). A stream's share
goes to its role's counter; the shares of streams no role owns (HTTP/3's
control and QPACK streams) and every datagram that carried no stream frame
(handshake, ACK-only, PING, CONNECTION_CLOSE) go to the connection's counter.
Shares are whole bytes rounded so that the counters always add up exactly to
the UDP bytes sent and received.
"""

from __future__ import annotations

import collections
from typing import Any

from aioquic.buffer import Buffer, size_uint_var
from aioquic.quic.connection import QuicConnection, QuicReceiveContext
from aioquic.quic.packet_builder import QuicPacketBuilder
from aioquic.quic.stream import QuicStream

from loadgen.wire import WireCounter

__all__ = ["CountingQuic", "RoleBytes"]

#: Retired streams whose role is kept for frames that follow them (the rest of a
#: cancelled stream's reply, the peer's acknowledgement of a reset): a few, not all.
LATE_STREAMS = 64
#: Stream bytes of one datagram: stream id -> plaintext bytes of its frames.
Carried = dict[int, int]


class CountingQuic(QuicConnection):
    """aioquic's QUIC connection, noting the stream frames of each datagram.

    After :meth:`datagrams_to_send`, :attr:`sent_streams` holds one :data:`Carried`
    per datagram returned (in order); after :meth:`receive_datagram`,
    :attr:`received_streams` holds that datagram's.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent_streams: list[Carried] = []
        self.received_streams: Carried = {}

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        self.sent_streams = []
        datagrams = super().datagrams_to_send(now)
        # Datagrams past the last that carried a stream frame (ACK-only, probes) carry none.
        carried = self.sent_streams
        carried.extend({} for _ in range(len(datagrams) - len(carried)))
        del carried[len(datagrams) :]
        return datagrams

    def receive_datagram(self, data: bytes, addr: Any, now: float) -> None:
        self.received_streams = {}
        super().receive_datagram(data, addr, now)

    # -- sending: each per-stream frame writer, measured in the packet builder's buffer

    def _note_sent(self, builder: QuicPacketBuilder, stream_id: int, at: int, index: int) -> None:
        size = builder._buffer.tell() - at
        if size > 0:
            carried = self.sent_streams
            while len(carried) <= index:
                carried.append({})
            row = carried[index]
            row[stream_id] = row.get(stream_id, 0) + size

    def _write_stream_frame(
        self, builder: QuicPacketBuilder, space: Any, stream: QuicStream, max_offset: int
    ) -> int:
        # The frame goes into the datagram the builder is filling: the next it flushes.
        at, index = builder._buffer.tell(), len(builder._datagrams)
        written: int = super()._write_stream_frame(builder, space, stream, max_offset)
        self._note_sent(builder, stream.stream_id, at, index)
        return written

    def _write_reset_stream_frame(self, builder: QuicPacketBuilder, stream: QuicStream) -> None:
        at, index = builder._buffer.tell(), len(builder._datagrams)
        super()._write_reset_stream_frame(builder, stream)
        self._note_sent(builder, stream.stream_id, at, index)

    def _write_stop_sending_frame(self, builder: QuicPacketBuilder, stream: QuicStream) -> None:
        at, index = builder._buffer.tell(), len(builder._datagrams)
        super()._write_stop_sending_frame(builder, stream)
        self._note_sent(builder, stream.stream_id, at, index)

    def _write_stream_limits(
        self, builder: QuicPacketBuilder, space: Any, stream: QuicStream
    ) -> None:
        at, index = builder._buffer.tell(), len(builder._datagrams)
        super()._write_stream_limits(builder, space, stream)
        self._note_sent(builder, stream.stream_id, at, index)

    # -- receiving: each per-stream frame handler, measured in the packet's buffer

    def _note_received(self, frame_type: int, buf: Buffer, at: int) -> None:
        end = buf.tell()
        buf.seek(at)
        stream_id = buf.pull_uint_var()
        buf.seek(end)
        row = self.received_streams
        row[stream_id] = row.get(stream_id, 0) + size_uint_var(frame_type) + end - at

    def _handle_stream_frame(
        self, context: QuicReceiveContext, frame_type: int, buf: Buffer
    ) -> None:
        at = buf.tell()
        super()._handle_stream_frame(context, frame_type, buf)
        self._note_received(frame_type, buf, at)

    def _handle_reset_stream_frame(
        self, context: QuicReceiveContext, frame_type: int, buf: Buffer
    ) -> None:
        at = buf.tell()
        super()._handle_reset_stream_frame(context, frame_type, buf)
        self._note_received(frame_type, buf, at)

    def _handle_stop_sending_frame(
        self, context: QuicReceiveContext, frame_type: int, buf: Buffer
    ) -> None:
        at = buf.tell()
        super()._handle_stop_sending_frame(context, frame_type, buf)
        self._note_received(frame_type, buf, at)

    def _handle_max_stream_data_frame(
        self, context: QuicReceiveContext, frame_type: int, buf: Buffer
    ) -> None:
        at = buf.tell()
        super()._handle_max_stream_data_frame(context, frame_type, buf)
        self._note_received(frame_type, buf, at)

    def _handle_stream_data_blocked_frame(
        self, context: QuicReceiveContext, frame_type: int, buf: Buffer
    ) -> None:
        at = buf.tell()
        super()._handle_stream_data_blocked_frame(context, frame_type, buf)
        self._note_received(frame_type, buf, at)


def split(size: int, carried: Carried, owners: dict[int, WireCounter]) -> dict[WireCounter, int]:
    """``size`` bytes shared among the owned streams of ``carried`` in proportion to
    their bytes: ``{counter: bytes}``; what is left (unowned streams' shares, the
    rounding) is not in the result. Shares are cumulative floors, so they never add up
    to more than ``size``."""
    total = sum(carried.values())
    shares: dict[WireCounter, int] = {}
    if not total:
        return shares
    cumulative = given = 0
    for stream_id, weight in carried.items():
        cumulative += weight
        counter = owners.get(stream_id)
        upto = size * cumulative // total
        if counter is not None:
            shares[counter] = shares.get(counter, 0) + upto - given
        given = upto
    return shares


class RoleBytes:
    """Counts a connection's datagrams into its roles' counters (the module docstring's
    rule); ``counter`` (None: not counted) keeps what no role owns."""

    def __init__(self, counter: WireCounter | None) -> None:
        self.counter = counter
        self._owners: dict[int, WireCounter] = {}
        self._late: collections.deque[int] = collections.deque()

    def own(self, stream_id: int, counter: WireCounter | None) -> None:
        """Count ``stream_id``'s share into ``counter`` (None or the connection's: not owned)."""
        if counter is not None and counter is not self.counter:
            self._owners[stream_id] = counter

    def retire(self, stream_id: int) -> None:
        """The stream is done; its role keeps the frames that may still come for it."""
        if stream_id in self._owners:
            self._late.append(stream_id)
            if len(self._late) > LATE_STREAMS:
                self._owners.pop(self._late.popleft(), None)

    def sent(self, sizes: list[int], carried: list[Carried]) -> None:
        """Count the datagrams of one transmit, ``carried[i]`` the streams of ``sizes[i]``."""
        for size, streams in zip(sizes, carried, strict=True):
            self._count(size, streams, 0)

    def received(self, size: int, carried: Carried) -> None:
        """Count one received datagram that carried ``carried``."""
        self._count(size, carried, 1)

    def _count(self, size: int, carried: Carried, way: int) -> None:
        rest = size
        if carried and self._owners:
            for counter, share in split(size, carried, self._owners).items():
                rest -= share
                counter.add_plain(*((share, 0) if way == 0 else (0, share)))
        if self.counter is not None and rest:
            self.counter.add_plain(*((rest, 0) if way == 0 else (0, rest)))
