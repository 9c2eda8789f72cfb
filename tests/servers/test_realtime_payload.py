"""servers/realtime/payload.py: typed payload fields and inbox pages as replies."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from servers.protocol import MAX_ID, InvalidEnvelope
from servers.realtime.inbox import Page
from servers.realtime.payload import INT64_MAX, INT64_MIN, field, is_int64, name_field, page_json

REFUSED = [
    # (payload, key, kind, required, the words the error must carry)
    ([1, 2], "mid", int, True, "must be a JSON object"),  # not an object at all
    ({}, "mid", int, True, "'mid' is required"),  # absent and required
    ({"mid": "7"}, "mid", int, True, "'mid' has the wrong type"),  # a string for an int
    ({"mid": True}, "mid", int, True, "'mid' has the wrong type"),  # a bool is never an int
    ({"to": 3}, "to", str, False, "'to' has the wrong type"),  # optional, but present and wrong
]


@pytest.mark.parametrize(("payload", "key", "kind", "required", "words"), REFUSED)
def test_field_refuses_naming_the_field(payload, key, kind, required, words) -> None:
    with pytest.raises(InvalidEnvelope, match=words):
        field(payload, key, kind, required)


def test_field_reads_present_and_absent_values() -> None:
    assert field({"mid": 7}, "mid", int) == 7
    assert field({}, "to", str, required=False) is None
    assert field({"ok": True}, "ok", bool) is True
    assert field({"n": 2.5}, "n", (int, float)) == 2.5


def test_the_signed_64_bit_range_is_the_envelopes() -> None:
    assert (INT64_MIN, INT64_MAX) == (-(2**63), 2**63 - 1)
    assert INT64_MAX == MAX_ID  # ids, cursors and payload integers end at the same place


@pytest.mark.parametrize("value", [INT64_MIN, -1, 0, 1, 2**53 + 1, INT64_MAX])
def test_an_int_field_takes_every_signed_64_bit_integer(value: int) -> None:
    assert field({"mid": value}, "mid", int) == value
    assert is_int64(value)


@pytest.mark.parametrize("value", [INT64_MAX + 1, 2**64 - 1, 2**64, INT64_MIN - 1, -(2**70)])
def test_an_int_field_refuses_what_is_past_64_bits_naming_field_and_range(value: int) -> None:
    words = f"payload field 'mid' must be an integer from {INT64_MIN} to {INT64_MAX}, got {value}"
    with pytest.raises(InvalidEnvelope) as caught:
        field({"mid": value}, "mid", int)
    assert str(caught.value) == words
    assert not is_int64(value)


@pytest.mark.parametrize(
    ("value", "low", "refused"),
    [(0, 0, False), (-1, 0, True), (INT64_MIN, 0, True), (1, 1, False), (0, 1, True)],
)
def test_a_narrower_range_is_refused_with_its_own_bounds(
    value: int, low: int, refused: bool
) -> None:
    if not refused:
        assert field({"after": value}, "after", int, required=False, low=low) == value
        return
    words = f"payload field 'after' must be an integer from {low} to {INT64_MAX}, got {value}"
    with pytest.raises(InvalidEnvelope) as caught:
        field({"after": value}, "after", int, required=False, low=low)
    assert str(caught.value) == words


def test_the_range_is_for_ints_only() -> None:
    # A bool is never an int, and a float (allowed by its kind) has no range.
    assert field({"ok": True}, "ok", bool) is True
    assert field({"n": 1e300}, "n", (int, float)) == 1e300
    assert not is_int64(True) and not is_int64(1.0) and not is_int64("1")


@given(st.integers(min_value=-(2**66), max_value=2**66), st.sampled_from([INT64_MIN, 0, 1]))
def test_an_int_field_accepts_exactly_its_range(value: int, low: int) -> None:
    if low <= value <= INT64_MAX:
        assert field({"k": value}, "k", int, low=low) == value
    else:
        with pytest.raises(InvalidEnvelope, match=f"'k' must be an integer from {low} to"):
            field({"k": value}, "k", int, low=low)


@given(st.integers(min_value=INT64_MIN, max_value=2**64 - 1))
def test_decoded_integers_are_refused_exactly_past_the_signed_range(value: int) -> None:
    # orjson reads integers up to 2**64 - 1; the top half of that is refused.
    decoded = orjson.loads(b'{"mid": %d}' % value)
    if value <= INT64_MAX:
        assert field(decoded, "mid", int) == value
    else:
        with pytest.raises(InvalidEnvelope, match="must be an integer from"):
            field(decoded, "mid", int)


@pytest.mark.parametrize("name", ["a", "room-1", "u.2_x", "x" * 64])
def test_name_field_accepts_names(name: str) -> None:
    assert name_field({"room": name}, "room") == name


@pytest.mark.parametrize("name", ["", "a b", "<b>", "x" * 65, "é", "a\n"])
def test_name_field_refuses_what_is_not_a_name(name: str) -> None:
    with pytest.raises(InvalidEnvelope, match="'room' must be 1-64"):
        name_field({"room": name}, "room")


items = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=2**53),
        st.dictionaries(
            st.text(max_size=8),
            st.integers(min_value=-(2**53), max_value=2**53) | st.text(max_size=8),
            max_size=3,
        ),
    ),
    max_size=5,
)


@given(items, st.booleans(), st.integers(min_value=1, max_value=2**53))
def test_page_json_round_trips_its_items(pairs, gap: bool, first: int) -> None:
    page = Page(
        [(seq, orjson.dumps(item)) for seq, item in pairs], last=first + 9, gap=gap, first=first
    )
    decoded = orjson.loads(orjson.dumps(page_json(page)))
    assert decoded == {
        "items": [{"seq": seq, "item": item} for seq, item in pairs],
        "last": first + 9,
        "gap": gap,
        "first": first,
    }
