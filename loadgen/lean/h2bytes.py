"""Header bytes in an HTTP/2 frame stream, counted from the 9-byte frame headers.

::

    scan = FrameScan(skip=len(PREFACE))     # the client preface is not a frame
    tally.header_bytes_sent += scan.feed(data)

    scan.owners = {3: poll_counter}         # stream 3's frames count into poll_counter,
    scan.source = connection_counter        # moved out of the connection's counter

:meth:`FrameScan.feed` takes the bytes of one direction in any pieces and
returns how many of them belong to HEADERS and CONTINUATION frames, frame
headers included (the whole frame is counted when its header passes). Only
frame headers are read, so it costs a few operations per frame. With
``limit``, a frame longer than that or a stream that does not open with a
SETTINGS frame (a server's preface) raises :class:`FrameError`.

With :attr:`FrameScan.owners` set, every byte of a frame on an owned stream
(any type: HEADERS, DATA, WINDOW_UPDATE, RST_STREAM...), its 9-byte header
included, is moved as it passes from :attr:`FrameScan.source` (the
connection's counter, which has already counted every byte; None: from
nowhere) to that stream's :class:`~loadgen.wire.WireCounter`, as sent bytes
with ``sent=True``, else as received. The counters so always add up to the
bytes on the wire. A frame header cut across pieces is moved once it is
whole. Frames on stream 0 and on streams without an owner stay where they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loadgen.wire import WireCounter

#: What a client writes before its first frame.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER = 9
HEADERS = 0x1
SETTINGS = 0x4
CONTINUATION = 0x9


class FrameError(ValueError):
    """Bytes that cannot be an HTTP/2 peer's frames."""


@dataclass(slots=True)
class HeaderTally:
    """HEADERS (+CONTINUATION) frame bytes each way, and requests and responses."""

    header_bytes_sent: int = 0
    header_bytes_received: int = 0
    requests: int = 0
    responses: int = 0


class FrameScan:
    """Follows frame boundaries across reads; see the module docstring."""

    __slots__ = (
        "_head",
        "_limit",
        "_owner",
        "_sent",
        "_skip",
        "_want_settings",
        "owners",
        "source",
    )

    def __init__(self, skip: int = 0, limit: int | None = None, sent: bool = False) -> None:
        self._skip = skip  # bytes of the current frame (or preface) still to pass over
        self._head = b""  # a frame header cut by the end of the last piece
        self._limit = limit
        self._want_settings = limit is not None
        self._sent = sent
        #: Stream id -> the counter its frames' bytes go to (see the module docstring).
        self.owners: dict[int, WireCounter] | None = None
        #: The counter owned streams' bytes move out of (see the module docstring).
        self.source: WireCounter | None = None
        self._owner: WireCounter | None = None  # the owner of the frame being passed over

    def feed(self, data: bytes | bytearray | memoryview) -> int:
        """Header bytes among the frames that start in ``data``."""
        end = len(data)
        pos = self._skip
        found = 0
        if pos and self._owner is not None:
            self._move(min(pos, end))
        if self._head:
            take = FRAME_HEADER - len(self._head)
            head = self._head + bytes(data[:take])
            if len(head) < FRAME_HEADER:
                self._head = head
                return 0
            self._head = b""
            found, pos = self._frame(head, 0, take)
            if self._owner is not None:
                # The whole header now, the part cut off by the last piece included.
                self._move(FRAME_HEADER + min(pos, end) - take)
        while pos + FRAME_HEADER <= end:
            n, nxt = self._frame(data, pos, pos + FRAME_HEADER)
            found += n
            if self._owner is not None:
                self._move(min(nxt, end) - pos)
            pos = nxt
        if pos < end:
            self._head = bytes(data[pos:])
            self._skip = 0
            self._owner = None
        else:
            self._skip = pos - end
        return found

    def _move(self, n: int) -> None:
        owner, source = self._owner, self.source
        assert owner is not None
        sent, received = (n, 0) if self._sent else (0, n)
        owner.add_plain(sent, received)
        if source is not None:
            source.add_plain(-sent, -received)

    def _frame(self, data: bytes | bytearray | memoryview, at: int, body: int) -> tuple[int, int]:
        """(header bytes, where the next frame starts) for the frame header at ``at``."""
        length = data[at] << 16 | data[at + 1] << 8 | data[at + 2]
        kind = data[at + 3]
        if self._limit is not None:
            self._check(length, kind)
        owners = self.owners
        if owners is not None:
            sid = int.from_bytes(data[at + 5 : at + 9], "big") & 0x7FFFFFFF
            self._owner = owners.get(sid) if sid else None
        if kind in (HEADERS, CONTINUATION):
            return FRAME_HEADER + length, body + length
        return 0, body + length

    def _check(self, length: int, kind: int) -> None:
        assert self._limit is not None
        if self._want_settings:
            self._want_settings = False
            if kind != SETTINGS:
                raise FrameError(f"the peer's first frame is of type {kind:#x}, not SETTINGS")
        if length > self._limit:
            raise FrameError(f"a frame of {length} bytes, over the {self._limit} allowed")
