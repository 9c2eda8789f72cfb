"""Each event-stream connection attempt is told to on_connect with its error code."""

from __future__ import annotations

import pytest

from loadgen.clients.errors import ClientError
from loadgen.realtime.sse import SseStream


def test_each_attempt_is_told_with_its_error_code() -> None:
    told: list[tuple[bool, str | None]] = []
    stream = SseStream(
        "http://127.0.0.1:1", 1.0, lambda *a: None, lambda t0, t1, e: told.append((t1 >= t0, e))
    )
    with stream.connecting():
        pass
    with pytest.raises(ClientError), stream.connecting():
        raise ClientError("http_401", "refused")
    with pytest.raises(KeyError), stream.connecting():
        raise KeyError("not a connection failure")
    assert told == [(True, None), (True, "http_401"), (True, None)]
