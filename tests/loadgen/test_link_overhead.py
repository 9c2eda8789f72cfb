"""What the relay adds to a round trip: numbers from a real echo, and the refusals."""

from __future__ import annotations

import math

import pytest

from loadgen.link.overhead import measure_overhead, tcp_echo_server
from loadgen.link.relay import LinkRelay

pytestmark = pytest.mark.timeout(20)

HOST = "127.0.0.1"


async def test_overhead_measurement_returns_numbers() -> None:
    async with tcp_echo_server() as port, LinkRelay("loopback", HOST, port) as relay:
        result = await measure_overhead(relay, port, 200)
    values = result.as_dict()
    for key in ("direct_p50_us", "direct_p99_us", "relayed_p50_us", "relayed_p99_us"):
        assert math.isfinite(values[key]) and values[key] > 0, key
    assert math.isfinite(result.added_p50_us) and math.isfinite(result.added_p99_us)
    assert result.relayed_p50_us >= result.direct_p50_us * 0.8  # a relay cannot be faster
    assert result.added_p50_us < 5000  # and should add tens of microseconds, not milliseconds
    assert result.n == 200 and result.timer in ("timerfd", "loop.call_later")


async def test_overhead_needs_a_zero_relay_on_the_echo_port() -> None:
    async with tcp_echo_server() as port:
        async with LinkRelay("lan", HOST, port) as relay:
            with pytest.raises(ValueError, match="zero-delay relay"):
                await measure_overhead(relay, port, 10)
        async with LinkRelay("loopback", HOST, port) as relay:
            with pytest.raises(ValueError, match="forwards to port"):
                await measure_overhead(relay, port + 1, 10)
