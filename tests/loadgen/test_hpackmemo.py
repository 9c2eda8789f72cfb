"""The remembering HPACK encoder and decoder give exactly what hpack's own give."""

from __future__ import annotations

import pytest
from hpack import Decoder, Encoder, HeaderTuple, HPACKError, NeverIndexedHeaderTuple
from hypothesis import given
from hypothesis import strategies as st

from loadgen.lean.hpackmemo import MemoDecoder, MemoEncoder

FIELDS = [
    (b":method", b"POST"),
    (b":path", b"/rpc"),
    (b"content-type", b"application/json"),
    (b"x-id", b"1"),
    (b"x-id", b"2"),
    (b"date", b"Tue, 08 Dec 2026 04:54:49 GMT"),
    (b"x-long", b"v" * 300),
]

# A step: a header list (from a few, so that lists repeat), or a new table size.
lists = st.lists(st.sampled_from(FIELDS), min_size=1, max_size=5).map(tuple)
steps = st.lists(
    st.one_of(
        st.sampled_from([(FIELDS[0], FIELDS[1]), (FIELDS[2],), (FIELDS[0], FIELDS[3])]),
        lists,
        st.sampled_from([0, 64, 400, 4096]),
        st.just("never-indexed"),
    ),
    min_size=1,
    max_size=40,
)


@given(steps=steps)
def test_memo_encoder_and_decoder_match_hpack(steps: list[object]) -> None:
    plain, memo = Encoder(), MemoEncoder()
    plain_in, memo_in = Decoder(), MemoDecoder()
    for step in steps:
        if isinstance(step, int):
            plain.header_table_size = memo.header_table_size = step
            continue
        if step == "never-indexed":
            fields: tuple[object, ...] = (
                HeaderTuple(*FIELDS[2]),
                NeverIndexedHeaderTuple(*FIELDS[3]),
            )
        else:
            fields = step  # type: ignore[assignment]
        block = plain.encode(list(fields))
        assert memo.encode(list(fields)) == block
        try:
            decoded = plain_in.decode(block, raw=True)
        except HPACKError as exc:
            # hpack's encoder forgets a size change set twice to the same value, and its
            # decoder then finds an index it does not have: the same with both.
            with pytest.raises(type(exc)):
                memo_in.decode(block, raw=True)
            return
        assert memo_in.decode(block, raw=True) == decoded
        assert memo.header_table.dynamic_entries == plain.header_table.dynamic_entries
        assert memo_in.header_table.dynamic_entries == plain_in.header_table.dynamic_entries


def test_a_repeated_indexed_block_is_served_from_memory() -> None:
    encoder, decoder = MemoEncoder(), MemoDecoder()
    fields = [(b":path", b"/rpc"), (b"x-id", b"7")]
    first = encoder.encode(fields)  # adds x-id to the table: not kept
    decoder.decode(first, raw=True)
    second = encoder.encode(fields)  # indexes only: kept
    assert second != first and encoder.encode(fields) is second
    got = decoder.decode(second, raw=True)
    again = decoder.decode(second, raw=True)
    assert again == got == [(b":path", b"/rpc"), (b"x-id", b"7")] and again is not got
