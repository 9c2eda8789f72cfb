"""Per-user inboxes: an ordered, sequence-numbered stream of deliveries.

Every delivery to a user (message, presence change, notification) is appended
to that user's inbox and gets the next sequence number, so a reader that
passes its cursor (``after=SEQ``) gets each item exactly once and in order::

    inbox = Inbox(retention=10_000)
    seq = inbox.append(orjson.dumps(item))
    page = inbox.read(after=0)            # Page(items=[(1, b"...")], last=1, gap=False)
    page = await inbox.wait(after=1, timeout_s=25.0)   # long poll

Push transports subscribe a listener called synchronously on append, in
sequence order. Only the newest ``retention`` items, and no more than
``max_bytes`` of them (the newest item is always kept), are kept; a reader
whose cursor fell behind them gets ``gap=True`` and ``first`` tells where the
kept items start, so the loss is visible, never silent.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Listener = Callable[[int, bytes], None]


@dataclass(frozen=True, slots=True)
class Page:
    """Items after a cursor: ``(seq, encoded item)`` pairs, the newest seq, and loss info."""

    items: list[tuple[int, bytes]]
    last: int
    gap: bool = False
    first: int = 1


class Inbox:
    """One user's delivery stream."""

    __slots__ = (
        "_items",
        "_listeners",
        "_waiters",
        "dropped",
        "last_seq",
        "max_bytes",
        "nbytes",
        "retention",
    )

    def __init__(self, retention: int = 10_000, max_bytes: int = 8 << 20) -> None:
        if retention < 1:
            raise ValueError("retention must be >= 1")
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        self.retention = retention
        self.max_bytes = max_bytes
        #: Bytes of the items kept.
        self.nbytes = 0
        self._items: deque[tuple[int, bytes]] = deque()
        self.last_seq = 0
        self.dropped = 0
        self._waiters: set[asyncio.Future[None]] = set()
        self._listeners: list[Listener] = []

    def append(self, item: bytes) -> int:
        """Add an encoded item; returns its sequence number."""
        self.last_seq += 1
        seq = self.last_seq
        self._items.append((seq, item))
        self.nbytes += len(item)
        while len(self._items) > self.retention or (
            self.nbytes > self.max_bytes and len(self._items) > 1
        ):
            self.nbytes -= len(self._items.popleft()[1])
            self.dropped += 1
        for listener in list(self._listeners):
            listener(seq, item)
        if self._waiters:
            waiters, self._waiters = self._waiters, set()
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
        return seq

    @property
    def first_kept(self) -> int:
        """Sequence number of the oldest item still kept (last+1 when empty)."""
        return self._items[0][0] if self._items else self.last_seq + 1

    def read(self, after: int, limit: int = 1000) -> Page:
        """Items with ``seq > after``, oldest first, at most ``limit`` of them."""
        if after < 0:
            raise ValueError("cursor must be >= 0")
        first = self.first_kept
        gap = after + 1 < first
        if not self._items or after >= self.last_seq:
            return Page([], self.last_seq, gap, first)
        # Sequence numbers are contiguous in the deque, so index arithmetic finds the cursor.
        start = max(0, after + 1 - first)
        items = [self._items[i] for i in range(start, min(len(self._items), start + limit))]
        return Page(items, self.last_seq, gap, first)

    async def wait(
        self,
        after: int,
        timeout_s: float,
        limit: int = 1000,
        abort: asyncio.Future[Any] | None = None,
    ) -> Page:
        """Like :meth:`read`, but hold until an item arrives, ``timeout_s`` passes or
        ``abort`` (if given) is done."""
        if self.last_seq > after or timeout_s <= 0:
            return self.read(after, limit)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            await asyncio.wait(
                (fut,) if abort is None else (fut, abort),
                timeout=timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            self._waiters.discard(fut)
        return self.read(after, limit)

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(seq, item)`` on every future append."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    @property
    def waiting(self) -> int:
        """Long polls currently held on this inbox."""
        return len(self._waiters)
