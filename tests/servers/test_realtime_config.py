"""servers/realtime/config.py: the real-time settings refuse bounds that could never hold."""

from __future__ import annotations

from dataclasses import fields

import pytest

from servers.realtime.config import RealtimeConfig

#: Every integer setting is a bound; a new one that is not checked fails here.
BOUNDS = [f.name for f in fields(RealtimeConfig) if f.type == "int"]


@pytest.mark.parametrize("name", BOUNDS)
def test_a_bound_below_one_is_refused_by_name(name: str) -> None:
    with pytest.raises(ValueError, match=f"{name} must be >= 1, got 0"):
        RealtimeConfig(**{name: 0})


@pytest.mark.parametrize("ttl", [0.0, -1.0])
def test_a_token_lifetime_must_be_positive(ttl: float) -> None:
    with pytest.raises(ValueError, match="token_ttl_s must be > 0"):
        RealtimeConfig(token_ttl_s=ttl)


def test_the_smallest_bounds_are_accepted() -> None:
    assert len(BOUNDS) == 9, BOUNDS
    config = RealtimeConfig(**{name: 1 for name in BOUNDS})
    assert config.max_users == 1
