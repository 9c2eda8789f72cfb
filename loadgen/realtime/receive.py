"""What reaches a user's inbox reader, without I/O: items one by one, and gaps.

A reader hands what it received to these functions, which call
``on_item(seq, item, received_ns, via, nbytes)`` per item and ``on_gap(via)``
when the server says the reader fell behind its inbox retention (items it
was owed are gone)::

    cursor = take_page(reply_payload, after, nbytes, received_ns, "poll", on_item, on_gap)
    reply = take_ws_message(data, received_ns, on_item)    # None for a push
    if subscribe_gap(reply_payload): on_gap("push")

``via`` is ``"poll"``, ``"push"`` (WebSocket) or ``"sse"``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from servers import protocol

OnItem = Callable[[int, Any, int, str, int], None]
OnGap = Callable[[str], None]


def ws_frame_bytes(payload_len: int, masked: bool) -> int:
    """Bytes on the wire of one unfragmented WebSocket frame (RFC 6455 section 5.2)."""
    header = 2 if payload_len < 126 else (4 if payload_len < 65536 else 10)
    return header + (4 if masked else 0) + payload_len


def take_page(
    payload: Any,
    after: int,
    nbytes: int,
    received_ns: int,
    via: str,
    on_item: OnItem,
    on_gap: OnGap | None = None,
) -> int:
    """Hand on a ``poll`` reply's items (they share ``nbytes``); returns the new cursor."""
    page = payload if isinstance(payload, dict) else {}
    items = page.get("items", [])
    if page.get("gap") and on_gap is not None:
        on_gap(via)
    share = nbytes // max(1, len(items))
    cursor = after
    for entry in items:
        on_item(entry["seq"], entry["item"], received_ns, via, share)
        cursor = max(cursor, entry["seq"])
    return cursor


def subscribe_gap(payload: Any) -> bool:
    """Whether a ``subscribe_inbox`` reply says the replay skips items no longer kept."""
    return isinstance(payload, dict) and bool(payload.get("gap"))


def take_ws_message(data: bytes, received_ns: int, on_item: OnItem) -> protocol.Response | None:
    """Hand a push on to ``on_item``; returns a reply to match, None otherwise."""
    try:
        message = protocol.decode_server_message(data)
    except protocol.ProtocolError:
        return None
    if isinstance(message, protocol.Push):
        on_item(message.seq, message.item, received_ns, "push", ws_frame_bytes(len(data), False))
        return None
    return message
