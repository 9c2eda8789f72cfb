"""The client-frame mask check, on frames serialised by the websockets library."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from servers.ws_frames import MaskCheck

payloads = st.binary(max_size=300) | st.sampled_from(
    [b"", b"x" * 125, b"x" * 126, b"x" * 65_535, b"x" * 65_536]
)


def frame(payload: bytes, masked: bool = True) -> bytes:
    return Frame(Opcode.BINARY, payload).serialize(mask=masked, extensions=None)


def feed_in_pieces(check: MaskCheck, data: bytes, cuts: list[int]) -> bool:
    ok = True
    start = 0
    for end in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        ok = check.feed(data[start:end]) if end >= start else ok
        start = max(start, end)
    return ok


@given(st.lists(payloads, max_size=4), st.lists(st.integers(min_value=0), max_size=8))
def test_masked_frames_pass_however_they_are_split(frames: list[bytes], cuts: list[int]) -> None:
    data = b"".join(frame(p) for p in frames)
    check = MaskCheck()
    assert feed_in_pieces(check, data, cuts)
    assert not check.violated


@given(
    st.lists(payloads, max_size=3),
    payloads,
    st.lists(st.integers(min_value=0), max_size=8),
)
def test_an_unmasked_frame_is_caught_wherever_it_starts(
    before: list[bytes], bad: bytes, cuts: list[int]
) -> None:
    good = b"".join(frame(p) for p in before)
    check = MaskCheck()
    assert check.feed(good)
    assert not feed_in_pieces(check, frame(bad, masked=False) + frame(b"after"), cuts)
    assert check.violated
    assert not check.feed(frame(b"more"))  # stays caught


def test_one_byte_at_a_time() -> None:
    data = frame(b"a" * 300) + frame(b"b" * 70_000) + frame(b"", masked=False)
    check = MaskCheck()
    results = [check.feed(data[i : i + 1]) for i in range(len(data))]
    first_bad = len(data) - len(frame(b"", masked=False)) + 1  # its second byte
    assert all(results[:first_bad])
    assert not any(results[first_bad:])
