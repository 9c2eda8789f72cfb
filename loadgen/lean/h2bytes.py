"""Header bytes in an HTTP/2 frame stream, counted from the 9-byte frame headers.

::

    scan = FrameScan(skip=len(PREFACE))     # the client preface is not a frame
    tally.header_bytes_sent += scan.feed(data)

:meth:`FrameScan.feed` takes the bytes of one direction in any pieces and
returns how many of them belong to HEADERS and CONTINUATION frames, frame
headers included (the whole frame is counted when its header passes). Only
frame headers are read, so it costs a few operations per frame. With
``limit``, a frame longer than that or a stream that does not open with a
SETTINGS frame (a server's preface) raises :class:`FrameError`.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    __slots__ = ("_head", "_limit", "_skip", "_want_settings")

    def __init__(self, skip: int = 0, limit: int | None = None) -> None:
        self._skip = skip  # bytes of the current frame (or preface) still to pass over
        self._head = b""  # a frame header cut by the end of the last piece
        self._limit = limit
        self._want_settings = limit is not None

    def feed(self, data: bytes | bytearray | memoryview) -> int:
        """Header bytes among the frames that start in ``data``."""
        end = len(data)
        pos = self._skip
        found = 0
        if self._head:
            take = FRAME_HEADER - len(self._head)
            head = self._head + bytes(data[:take])
            if len(head) < FRAME_HEADER:
                self._head = head
                return 0
            self._head = b""
            found, pos = self._frame(head, 0, take)
        while pos + FRAME_HEADER <= end:
            n, pos = self._frame(data, pos, pos + FRAME_HEADER)
            found += n
        if pos < end:
            self._head = bytes(data[pos:])
            self._skip = 0
        else:
            self._skip = pos - end
        return found

    def _frame(self, data: bytes | bytearray | memoryview, at: int, body: int) -> tuple[int, int]:
        """(header bytes, where the next frame starts) for the frame header at ``at``."""
        length = data[at] << 16 | data[at + 1] << 8 | data[at + 2]
        kind = data[at + 3]
        if self._limit is not None:
            self._check(length, kind)
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
