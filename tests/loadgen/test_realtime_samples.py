"""One Sample row per request or connect, as both engines record them."""

from __future__ import annotations

import pytest

from loadgen.cellspec import CellRun
from loadgen.realtime.samples import build_sample
from loadgen.recorder import Sample

pytestmark = pytest.mark.timeout(10)

SPEC = CellRun(
    cell="c", transport="http", client="aiohttp", conn_mode="keep-alive", base_url="", repeat=2
)


def test_a_real_time_request_is_unpaced() -> None:
    sample = build_sample(
        SPEC, "poll", 1_000, 1_600, 500, bytes_sent=10, bytes_received=20, items=3
    )
    assert sample == Sample(
        "c", "http", "aiohttp", "keep-alive", 2, 0, "poll",
        1_000, 1_000, 1_600, 600, 600, 10, 20, 3, True, None, False,
    )  # fmt: skip


def test_an_echo_request_is_charged_from_its_origin() -> None:
    sample = build_sample(
        SPEC, "request", 1_300, 1_600, 500, conn=4, intended=1_000, origin=1_000, items=1
    )
    assert (sample.conn, sample.intended_ns, sample.sent_ns) == (4, 1_000, 1_300)
    assert (sample.latency_ns, sample.latency_uncorrected_ns) == (600, 300)
    # Without an origin, latency counts from the intended time.
    assert build_sample(SPEC, "request", 1_300, 1_600, 500, intended=1_100).latency_ns == 500


@pytest.mark.parametrize(
    ("intended", "warmup_end", "warmup"),
    [(400, 500, True), (500, 500, False), (900, 500, False), (900, 0, True)],
)
def test_warmup_is_before_the_window_or_before_the_clock_started(
    intended: int, warmup_end: int, warmup: bool
) -> None:
    assert build_sample(SPEC, "connect", intended, intended + 5, warmup_end).warmup is warmup


def test_an_error_is_not_ok() -> None:
    sample = build_sample(SPEC, "send", 1, 2, 0, error="timeout")
    assert (sample.ok, sample.error) == (False, "timeout")
