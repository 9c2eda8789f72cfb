"""Link profiles: presets, delay/RTT consistency, and errors that name the bad key or preset."""

from __future__ import annotations

import pydantic
import pytest

from loadgen.link.profiles import PRESETS, LinkProfile, LinkProfileError, resolve_profile


def test_presets_have_the_documented_round_trips() -> None:
    assert set(PRESETS) == {"loopback", "lan", "wan", "mobile", "satellite"}
    assert PRESETS["loopback"].is_zero and PRESETS["loopback"].rtt_ms == 0
    assert PRESETS["lan"].rtt_ms == 1.0
    assert PRESETS["wan"].rtt_ms == 50.0 and PRESETS["wan"].delay_ms == 25.0
    mobile = PRESETS["mobile"]
    assert mobile.rtt_ms == 150.0 and mobile.rate_mbit == 5.0 and mobile.jitter_ms > 0
    satellite = PRESETS["satellite"]
    assert satellite.rtt_ms == 600.0 and satellite.rate_mbit == 10.0
    for name, profile in PRESETS.items():
        assert profile.name == name
        assert profile.loss_pct == 0  # every preset runs on the userspace relay
        assert profile.handshake_rtts == 1
        assert resolve_profile(name) is profile


def test_rtt_and_delay_are_stored_consistently() -> None:
    assert resolve_profile({"rtt_ms": 20}).delay_ms == 10.0
    assert resolve_profile({"delay_ms": 10}).rtt_ms == 20.0
    both = resolve_profile({"delay_ms": 10, "rtt_ms": 20.0})
    assert both == resolve_profile({"rtt_ms": 20})
    profile = resolve_profile({"rtt_ms": 80, "jitter_ms": 3, "rate_mbit": 20})
    assert profile.delay_s == pytest.approx(0.04) and profile.rtt_s == pytest.approx(0.08)
    assert profile.rate_bytes_per_s == pytest.approx(2.5e6)
    assert profile.handshake_s == pytest.approx(0.08)
    assert resolve_profile(profile.as_dict()) == profile


def test_delay_and_rtt_that_disagree_are_refused() -> None:
    with pytest.raises(LinkProfileError, match=r"either 'delay_ms'.*or 'rtt_ms'.*disagree"):
        resolve_profile({"delay_ms": 10, "rtt_ms": 50})


def test_unknown_preset_is_named_with_the_known_ones() -> None:
    with pytest.raises(LinkProfileError, match=r"unknown link profile preset 'wann'.*wan"):
        resolve_profile("wann")
    with pytest.raises(LinkProfileError, match=r"preset 'moon'"):
        resolve_profile({"preset": "moon", "rtt_ms": 5})


def test_unknown_key_is_named() -> None:
    with pytest.raises(LinkProfileError, match=r"unknown key 'latency_ms'"):
        resolve_profile({"latency_ms": 20})


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"rtt_ms": -1}, "rtt_ms"),
        ({"delay_ms": "20"}, "delay_ms"),  # strict: no string coercion
        ({"rtt_ms": 20, "rate_mbit": 0}, "rate_mbit"),
        ({"rtt_ms": 20, "loss_pct": 100}, "loss_pct"),
        ({"rtt_ms": 20, "handshake_rtts": -1}, "handshake_rtts"),
        ({"rtt_ms": 20, "jitter_ms": True}, "jitter_ms"),
        ({"name": "has space"}, "name"),
    ],
)
def test_bad_values_name_their_key(values: dict, key: str) -> None:
    with pytest.raises(LinkProfileError, match=f"'{key}'"):
        resolve_profile(values)


def test_jitter_may_not_exceed_the_delay() -> None:
    with pytest.raises(LinkProfileError, match=r"'jitter_ms' \(6\) must not exceed"):
        resolve_profile({"rtt_ms": 10, "jitter_ms": 6})
    assert resolve_profile({"rtt_ms": 10, "jitter_ms": 5}).jitter_ms == 5


def test_a_preset_can_be_overridden() -> None:
    profile = resolve_profile({"preset": "mobile", "loss_pct": 1.5})
    assert profile.rtt_ms == 150 and profile.rate_mbit == 5 and profile.loss_pct == 1.5
    assert profile.name == "mobile-custom"
    faster = resolve_profile({"preset": "wan", "delay_ms": 5, "name": "wan-fast"})
    assert faster.rtt_ms == 10 and faster.name == "wan-fast"
    assert resolve_profile({"preset": "lan"}) == PRESETS["lan"]


def test_other_types_are_refused() -> None:
    with pytest.raises(LinkProfileError, match="preset name"):
        resolve_profile(50)  # type: ignore[arg-type]


def test_profiles_are_immutable_and_strict() -> None:
    profile = resolve_profile("wan")
    with pytest.raises(pydantic.ValidationError):
        profile.rtt_ms = 1  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        LinkProfile(rtt_ms=20, bogus=1)  # type: ignore[call-arg]


def test_describe_reads_well() -> None:
    assert PRESETS["mobile"].describe() == (
        "mobile: rtt 150 ms, jitter ±5 ms, 5 Mbit/s, loss 0 %, handshake 1 RTT"
    )
