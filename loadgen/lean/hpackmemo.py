"""hpack's encoder and decoder, remembering the header blocks that change nothing.

::

    conn = h2.connection.H2Connection(config=...)
    conn.encoder, conn.decoder = MemoEncoder(), MemoDecoder()   # before the first frame

A client that sends the same request header fields again and again, and a
server that answers with the same response fields, soon have every field in
HPACK's dynamic table: from then on each block is a list of indexes, and
encoding or decoding it again gives the same result without touching the
table. :class:`MemoEncoder` and :class:`MemoDecoder` keep such results (the
header list -> its block, the block -> its header list) for as long as their
table is unchanged, and hand them back instead of running hpack again. Any
change to the table (an entry added or evicted, a new size) forgets them all,
and a block that changed the table, or that started with a pending size
update, is never kept: what goes on the wire and what the peer is told are
always what hpack itself would produce. Header fields that must never be
indexed (:class:`hpack.NeverIndexedHeaderTuple`) are encoded by hpack every
time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hpack import Decoder, Encoder, HeaderTuple
from hpack.table import HeaderTable

#: Results kept at most: a peer that varies its fields (a new date each second) adds
#: to the table anyway, which forgets them.
KEPT = 32


class CountingTable(HeaderTable):
    """hpack's table, counting the changes to it (entries added, a new size)."""

    def __init__(self) -> None:
        super().__init__()
        self.changes = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.changes += 1
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        self.changes += 1
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


class MemoEncoder(Encoder):
    """An hpack Encoder that returns the block it made last time for the same fields,
    while its table is unchanged (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.header_table: CountingTable = CountingTable()
        self._blocks: dict[tuple[Any, ...], bytes] = {}
        self._changes = 0

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        table = self.header_table
        if table.resized or isinstance(headers, dict):
            return super().encode(headers, huffman)
        fields = tuple(headers)
        for field in fields:
            if type(field) is not tuple:  # a HeaderTuple may be one never to index
                return super().encode(fields, huffman)
        blocks = self._blocks
        if table.changes != self._changes:
            blocks.clear()
            self._changes = table.changes
        key = (huffman, *fields)
        block = blocks.get(key)
        if block is None:
            block = super().encode(fields, huffman)
            if table.changes == self._changes:
                if len(blocks) >= KEPT:
                    blocks.clear()
                blocks[key] = block
        return block


class MemoDecoder(Decoder):
    """An hpack Decoder that returns the fields it found last time in the same block,
    while its table and limits are unchanged (see the module docstring)."""

    def __init__(self, max_header_list_size: int = 2**16) -> None:
        super().__init__(max_header_list_size)
        self.header_table: CountingTable = CountingTable()
        self._fields: dict[bytes, tuple[HeaderTuple, ...]] = {}
        self._state: tuple[int, int, int, bool] | None = None

    def decode(self, data: bytes, raw: bool = False) -> Iterable[HeaderTuple]:
        table = self.header_table
        state = (table.changes, self.max_header_list_size, self.max_allowed_table_size, raw)
        found = self._fields
        if state != self._state:
            found.clear()
            self._state = state
        key = data if type(data) is bytes else bytes(data)
        fields = found.get(key)
        if fields is not None:
            return list(fields)
        decoded = list(super().decode(key, raw))
        if table.changes == state[0]:
            if len(found) >= KEPT:
                found.clear()
            found[key] = tuple(decoded)
        return decoded
