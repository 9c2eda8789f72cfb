"""Raising the open-files limit: the target as a table, and raise_fd_limit against a fake
``resource`` (the machine's own limits are never touched)."""

from __future__ import annotations

import resource
from typing import Any

import pytest

from servers import fdlimit
from servers.fdlimit import FD_HEADROOM, FdLimitTooLow, files_for, raise_fd_limit, soft_target

INF = resource.RLIM_INFINITY


class FakeResource:
    """``resource``'s RLIMIT_NOFILE calls over a pair of numbers; ``refuse`` fails setrlimit."""

    RLIMIT_NOFILE = resource.RLIMIT_NOFILE
    RLIM_INFINITY = INF

    def __init__(self, soft: int, hard: int, refuse: bool = False) -> None:
        self.limits = (soft, hard)
        self.refuse = refuse
        self.set_calls: list[tuple[int, int]] = []

    def getrlimit(self, which: int) -> tuple[int, int]:
        assert which == self.RLIMIT_NOFILE
        return self.limits

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        assert which == self.RLIMIT_NOFILE
        self.set_calls.append(limits)
        if self.refuse:
            raise ValueError("not allowed to raise maximum limit")
        self.limits = limits


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(soft: int, hard: int, refuse: bool = False) -> FakeResource:
        res = FakeResource(soft, hard, refuse)
        monkeypatch.setattr(fdlimit, "resource", res)
        return res

    return install


# (needed, soft, hard, expected soft to set; None: leave it). None limits are unlimited.
TARGET_CASES = [
    pytest.param(5000, 1024, 20000, 5000, id="raised-to-what-is-needed"),
    pytest.param(5000, 8000, 20000, None, id="already-enough-never-lowered"),
    pytest.param(5000, 5000, 20000, None, id="exactly-enough"),
    pytest.param(30000, 1024, 20000, 20000, id="capped-by-the-hard-limit"),
    pytest.param(30000, 20000, 20000, None, id="already-at-the-hard-limit"),
    pytest.param(5000, 1024, None, 5000, id="unlimited-hard"),
    pytest.param(5000, None, None, None, id="unlimited-soft"),
]


@pytest.mark.parametrize(("needed", "soft", "hard", "expected"), TARGET_CASES)
def test_soft_target(needed: int, soft: int | None, hard: int | None, expected: int | None) -> None:
    assert soft_target(needed, soft, hard) == expected


def test_files_for_adds_headroom() -> None:
    assert files_for(10_000) == 10_000 + FD_HEADROOM
    assert files_for(0) == FD_HEADROOM


# (needed, soft, hard, strict, soft after, setrlimit called)
RAISE_CASES = [
    pytest.param(5000, 1024, 20000, True, 5000, True, id="raised"),
    pytest.param(500, 1024, 20000, True, 1024, False, id="enough-untouched"),
    pytest.param(30000, 1024, 20000, False, 20000, True, id="not-strict-goes-to-hard"),
    pytest.param(5000, 1024, INF, True, 5000, True, id="unlimited-hard"),
]


@pytest.mark.parametrize(("needed", "soft", "hard", "strict", "after", "called"), RAISE_CASES)
def test_raise_fd_limit(
    fake: Any, needed: int, soft: int, hard: int, strict: bool, after: int, called: bool
) -> None:
    res = fake(soft, hard)
    limit = raise_fd_limit(needed, "many users", "lower them", strict=strict)
    assert bool(res.set_calls) == called
    # The hard limit is kept as it was.
    assert all(h == hard for _, h in res.set_calls)
    want_hard = None if hard == INF else hard
    assert limit.as_dict() == {
        "needed": needed,
        "soft_before": soft,
        "hard_before": want_hard,
        "soft_after": after,
        "hard_after": want_hard,
    }


def test_hard_limit_too_low_names_the_limit_the_numbers_and_the_way_out(fake: Any) -> None:
    res = fake(1024, 4096)
    with pytest.raises(FdLimitTooLow) as info:
        raise_fd_limit(20_064, "10000 users", "lower [realtime] users")
    assert str(info.value) == (
        "10000 users need about 20064 open files; the hard limit (ulimit -Hn) is 4096: "
        "raise it, or lower [realtime] users"
    )
    # Nothing was changed on the way.
    assert res.set_calls == [] and res.limits == (1024, 4096)


def test_a_refused_raise_is_an_error_when_strict(fake: Any) -> None:
    fake(1024, INF, refuse=True)
    with pytest.raises(FdLimitTooLow, match="could not be raised from 1024 to 5000"):
        raise_fd_limit(5000, "many users", "lower them")


def test_a_refused_raise_keeps_the_old_limit_when_not_strict(fake: Any) -> None:
    fake(1024, INF, refuse=True)
    limit = raise_fd_limit(5000, "many users", "lower them", strict=False)
    assert (limit.soft_before, limit.soft_after, limit.hard_after) == (1024, 1024, None)
