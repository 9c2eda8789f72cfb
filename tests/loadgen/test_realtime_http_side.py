"""The HTTP side both drivers share: headers, poll shapes, byte counts."""

from __future__ import annotations

from typing import Any

from loadgen.realtime.http_side import HttpSide
from servers import protocol


def _side() -> HttpSide:
    return HttpSide(keep_alive=True, timeout_s=2.0, on_request=lambda *a: None)


def test_headers_carry_the_token_once_signed_in() -> None:
    side = _side()
    assert side.headers() == {"Content-Type": "application/json"}
    side.token = "t0k"
    assert side.headers()["Authorization"] == "Bearer t0k"


def test_a_poll_is_held_on_top_of_the_request_timeout() -> None:
    assert _side().poll_target(5, 1500) == ("/inbox?after=5&wait_ms=1500", 3.5)


def test_a_poll_page_shares_the_bytes_received_since_it_began() -> None:
    side = _side()
    side.counters["poll"].received = 100
    before = side.poll_received()
    side.counters["poll"].received = 160
    side.counters["action"].sent = 7
    page = {"items": [{"seq": 6, "item": "a"}, {"seq": 9, "item": "b"}]}
    resp = protocol.Response(op="poll", id=1, ts=1, ok=True, payload=page)
    got: list[Any] = []
    cursor = side.take_poll(resp, 5, before, "poll", lambda *a: got.append(a), None)
    assert cursor == 9
    assert [(g[0], g[4]) for g in got] == [(6, 30), (9, 30)]
    assert side.wire_totals() == (7, 160)
