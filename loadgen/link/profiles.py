"""Link profiles: the network conditions a run emulates between client and server.

::

    profile = resolve_profile("wan")                       # a named preset
    profile = resolve_profile({"rtt_ms": 80, "rate_mbit": 20})
    profile = resolve_profile({"preset": "mobile", "loss_pct": 1.0})   # a preset, overridden
    profile.delay_ms, profile.rtt_ms                       # 25.0, 50.0 for "wan"

Delay is one-way; give either ``delay_ms`` or ``rtt_ms`` and the other is
derived (``rtt_ms == 2 * delay_ms``); both may be given only when they agree, so
``resolve_profile(p.as_dict()) == p``. The link is symmetric: every value
applies to each direction on its own (a 5 Mbit/s link carries 5 Mbit/s each
way, jitter is drawn per chunk and per direction).

``jitter_ms`` is the half-width of a uniform draw added to each chunk's one-way
delay (``delay ± jitter``, like ``netem delay D J``); it may not exceed the
delay. ``rate_mbit`` (None: unlimited) is the bottleneck rate each way.
``loss_pct`` needs the kernel link (netem); the userspace relay refuses it (see
:mod:`loadgen.link.relay`). ``handshake_rtts`` is what a new TCP connection is
charged before its first bytes pass (1: the SYN / SYN-ACK round trip); the
kernel link always pays the real handshake instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class LinkProfileError(ValueError):
    """A link profile that cannot be used; the message names the key or preset and why."""


#: Keys a custom profile may give (``preset`` is also accepted by :func:`resolve_profile`).
PROFILE_KEYS = (
    "name",
    "delay_ms",
    "rtt_ms",
    "jitter_ms",
    "rate_mbit",
    "loss_pct",
    "handshake_rtts",
)


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


class LinkProfile(BaseModel):
    """One-way delay (or RTT), jitter, rate, loss and the handshake charge of an emulated link."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    #: A label for reports: the preset's name, or what the scenario calls it.
    name: str = Field(default="custom", min_length=1, max_length=40, pattern=r"^[A-Za-z0-9._+-]+$")
    #: One-way delay, each direction (ms).
    delay_ms: float = Field(default=0.0, ge=0, le=10_000)
    #: Round-trip time, ``2 * delay_ms`` (ms).
    rtt_ms: float = Field(default=0.0, ge=0, le=20_000)
    #: Half-width of the uniform jitter added to each chunk's one-way delay (ms).
    jitter_ms: float = Field(default=0.0, ge=0, le=10_000)
    #: Bottleneck rate each way (Mbit/s, 10^6 bit/s); None is unlimited.
    rate_mbit: float | None = Field(default=None, gt=0, le=100_000)
    #: Packet loss each way (%); kernel link only.
    loss_pct: float = Field(default=0.0, ge=0, lt=100)
    #: Round trips a new connection is charged before its first bytes pass.
    handshake_rtts: float = Field(default=1.0, ge=0, le=10)

    @model_validator(mode="before")
    @classmethod
    def _delay_or_rtt(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        delay, rtt = data.get("delay_ms"), data.get("rtt_ms")
        if "delay_ms" in data and "rtt_ms" in data:
            if _is_number(delay) and _is_number(rtt) and not math.isclose(2 * delay, rtt):
                raise ValueError(
                    "give either 'delay_ms' (one-way) or 'rtt_ms' (round trip), not both: "
                    f"delay_ms = {delay} and rtt_ms = {rtt} disagree (rtt_ms must be 2 x delay_ms)"
                )
            return data
        if "rtt_ms" in data and _is_number(rtt):
            return {**data, "delay_ms": rtt / 2}
        if "delay_ms" in data and _is_number(delay):
            return {**data, "rtt_ms": delay * 2}
        return data

    @model_validator(mode="after")
    def _jitter_within_delay(self) -> LinkProfile:
        if self.jitter_ms > self.delay_ms:
            raise ValueError(
                f"'jitter_ms' ({self.jitter_ms:g}) must not exceed the one-way 'delay_ms' "
                f"({self.delay_ms:g}): a chunk's delay is delay_ms ± jitter_ms and cannot be "
                "negative"
            )
        return self

    # -- derived values -------------------------------------------------------------

    @property
    def delay_s(self) -> float:
        return self.delay_ms / 1000.0

    @property
    def rtt_s(self) -> float:
        return self.rtt_ms / 1000.0

    @property
    def jitter_s(self) -> float:
        return self.jitter_ms / 1000.0

    @property
    def rate_bytes_per_s(self) -> float | None:
        """The rate in bytes per second (None: unlimited)."""
        return None if self.rate_mbit is None else self.rate_mbit * 1e6 / 8

    @property
    def handshake_s(self) -> float:
        """What a new connection is charged before its first bytes pass (s)."""
        return self.handshake_rtts * self.rtt_s

    @property
    def is_zero(self) -> bool:
        """True when the link adds nothing (no delay, jitter, rate limit or loss)."""
        return (
            self.delay_ms == 0
            and self.jitter_ms == 0
            and self.rate_mbit is None
            and self.loss_pct == 0
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain values for meta.json; ``resolve_profile(p.as_dict()) == p``."""
        return self.model_dump()

    def describe(self) -> str:
        """``"wan: rtt 50 ms, jitter 0 ms, unlimited, loss 0 %, handshake 1 RTT"``."""
        rate = "unlimited" if self.rate_mbit is None else f"{self.rate_mbit:g} Mbit/s"
        return (
            f"{self.name}: rtt {self.rtt_ms:g} ms, jitter ±{self.jitter_ms:g} ms, {rate}, "
            f"loss {self.loss_pct:g} %, handshake {self.handshake_rtts:g} RTT"
        )


#: The named presets.
PRESETS: dict[str, LinkProfile] = {
    "loopback": LinkProfile(name="loopback"),
    "lan": LinkProfile(name="lan", rtt_ms=1.0),
    "wan": LinkProfile(name="wan", rtt_ms=50.0),
    "mobile": LinkProfile(name="mobile", rtt_ms=150.0, jitter_ms=5.0, rate_mbit=5.0),
    "satellite": LinkProfile(name="satellite", rtt_ms=600.0, rate_mbit=10.0),
}


def _format_errors(err: ValidationError, what: str) -> str:
    problems = []
    for item in err.errors():
        loc = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            problems.append(
                f"unknown key '{loc}' (known keys: {', '.join(PROFILE_KEYS)}, or 'preset')"
            )
        elif loc:
            problems.append(f"'{loc}': {item['msg']} (got {item.get('input')!r})")
        else:
            msg = item["msg"].removeprefix("Value error, ")
            problems.append(msg)
    return f"{what}: " + "; ".join(problems)


def _preset(name: Any) -> LinkProfile:
    if not isinstance(name, str) or name not in PRESETS:
        raise LinkProfileError(
            f"unknown link profile preset {name!r}; known presets: {', '.join(PRESETS)}"
        )
    return PRESETS[name]


def resolve_profile(spec: str | Mapping[str, Any] | LinkProfile) -> LinkProfile:
    """The :class:`LinkProfile` for a preset name, a table of values or a profile.

    A table may name a ``preset`` and override some of its values; the result is
    then called ``"<preset>-custom"`` unless the table gives a ``name``. Raises
    :class:`LinkProfileError` naming the unknown preset, the unknown key or the
    bad value.
    """
    if isinstance(spec, LinkProfile):
        return spec
    if isinstance(spec, str):
        return _preset(spec)
    if not isinstance(spec, Mapping):
        raise LinkProfileError(
            "a link profile is a preset name "
            f"({', '.join(PRESETS)}) or a table of values, not {type(spec).__name__}"
        )
    values = dict(spec)
    what = "link profile"
    if "preset" in values:
        preset_name = values.pop("preset")
        base = _preset(preset_name)
        what = f"link profile (preset {preset_name!r})"
        merged = base.as_dict()
        if "delay_ms" in values or "rtt_ms" in values:
            merged.pop("delay_ms")
            merged.pop("rtt_ms")
        merged["name"] = f"{preset_name}-custom" if values else preset_name
        merged.update(values)
        values = merged
    try:
        return LinkProfile.model_validate(values)
    except ValidationError as err:
        raise LinkProfileError(_format_errors(err, what)) from None
