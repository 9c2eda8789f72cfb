"""servers/realtime/payload.py: typed payload fields and inbox pages as replies."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from servers.protocol import InvalidEnvelope
from servers.realtime.inbox import Page
from servers.realtime.payload import field, name_field, page_json

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
