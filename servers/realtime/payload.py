"""Reading operation payloads: typed fields with errors that name them, and inbox pages.

::

    mid = field(req.payload, "mid", int)      # InvalidEnvelope if absent, not an int
                                              # or not a signed 64-bit integer
    after = field(req.payload, "after", int, required=False, low=0)  # 0 .. 2**63 - 1
    to = field(req.payload, "to", str, required=False)
    room = name_field(req.payload, "room")    # a field that must be a valid name
    return page_json(box.read(after, limit))  # {items, last, gap, first}
"""

from __future__ import annotations

from typing import Any

import orjson

from servers.protocol import InvalidEnvelope
from servers.realtime.auth import USER_RE
from servers.realtime.config import NAME_MAX
from servers.realtime.inbox import Page

#: The range of every integer in a request payload (a signed 64-bit integer), unless its
#: field has a narrower one (cursors, waits and limits start at 0 or 1).
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


def is_int64(value: Any) -> bool:
    """Whether ``value`` is an int (not a bool) from :data:`INT64_MIN` to :data:`INT64_MAX`."""
    return (
        isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX
    )


def field(
    payload: Any,
    key: str,
    kind: type | tuple[type, ...],
    required: bool = True,
    *,
    low: int = INT64_MIN,
    high: int = INT64_MAX,
) -> Any:
    """``payload[key]`` checked to be a ``kind`` (a bool is never an int).

    An int must also lie from ``low`` to ``high`` (by default the signed 64-bit range:
    the decoder reads integers up to 2**64 - 1). None when ``required`` is False and
    the key is absent.
    """
    if not isinstance(payload, dict):
        raise InvalidEnvelope("payload must be a JSON object")
    if key not in payload:
        if required:
            raise InvalidEnvelope(f"payload field {key!r} is required")
        return None
    value = payload[key]
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise InvalidEnvelope(f"payload field {key!r} has the wrong type")
    if not isinstance(value, kind):
        raise InvalidEnvelope(f"payload field {key!r} has the wrong type")
    if isinstance(value, int) and not isinstance(value, bool) and not low <= value <= high:
        raise InvalidEnvelope(
            f"payload field {key!r} must be an integer from {low} to {high}, got {value}"
        )
    return value


def name_field(payload: Any, key: str) -> str:
    """``payload[key]`` as a user, room or topic name (:data:`USER_RE`)."""
    value = field(payload, key, str)
    if not USER_RE.match(value):
        raise InvalidEnvelope(f"{key!r} must be 1-{NAME_MAX} letters, digits, '_', '.', '-'")
    return value


def page_json(page: Page) -> dict[str, Any]:
    """An inbox page as a poll's reply; items are spliced in as already-encoded JSON."""
    return {
        "items": [{"seq": seq, "item": orjson.Fragment(item)} for seq, item in page.items],
        "last": page.last,
        "gap": page.gap,
        "first": page.first,
    }
