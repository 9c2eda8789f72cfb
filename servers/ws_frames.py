"""Check that every WebSocket frame a client sends is masked (RFC 6455 section 5.1). No I/O.

The server reads the byte stream in whatever chunks arrive; :class:`MaskCheck`
follows the frame boundaries (headers only, payloads are skipped unread) and
reports the first frame without the mask bit, which a server must answer by
closing with 1002 (protocol error)::

    check = MaskCheck()
    check.feed(chunk)      # False once an unmasked frame has been seen (and from then on)
"""

from __future__ import annotations

#: The close code for a protocol violation.
CLOSE_PROTOCOL_ERROR = 1002

_MASK_BIT = 0x80
_LEN_MASK = 0x7F
_MASK_KEY_BYTES = 4


class MaskCheck:
    """Follows client frame headers across chunks and spots an unmasked frame."""

    __slots__ = ("_head", "_skip", "violated")

    def __init__(self) -> None:
        self._head = bytearray()
        # Payload bytes of the current frame still to come.
        self._skip = 0
        self.violated = False

    def _header_size(self) -> int:
        if len(self._head) < 2:
            return 2
        len7 = self._head[1] & _LEN_MASK
        extended = 2 if len7 == 126 else 8 if len7 == 127 else 0
        return 2 + extended + _MASK_KEY_BYTES

    def _payload_size(self) -> int:
        len7 = self._head[1] & _LEN_MASK
        if len7 == 126:
            return int.from_bytes(self._head[2:4], "big")
        if len7 == 127:
            return int.from_bytes(self._head[2:10], "big")
        return len7

    def feed(self, data: bytes | bytearray | memoryview) -> bool:
        """Follow ``data``; False once a frame without the mask bit was seen."""
        if self.violated:
            return False
        n = len(data)
        if n >= 2 and not self._skip and not self._head:
            # The common case, checked in a few steps: the chunk is exactly one whole
            # small frame (a message on its own), starting at a frame boundary.
            second = data[1]
            if not second & _MASK_BIT:
                self.violated = True
                return False
            if (second & _LEN_MASK) < 126 and n == 2 + _MASK_KEY_BYTES + (second & _LEN_MASK):
                return True
        i = 0
        while i < n:
            if self._skip:
                take = min(self._skip, n - i)
                self._skip -= take
                i += take
                continue
            take = min(self._header_size() - len(self._head), n - i)
            self._head += data[i : i + take]
            i += take
            if len(self._head) >= 2 and not self._head[1] & _MASK_BIT:
                self.violated = True
                return False
            if len(self._head) == self._header_size():
                self._skip = self._payload_size()
                self._head.clear()
        return True
