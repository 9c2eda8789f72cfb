"""Connections a cell and each load generator hold, and the open-files room made for them
(against a fake ``resource``: the machine's own limits are never touched)."""

from __future__ import annotations

import dataclasses
import resource
from typing import Any

import pytest

from loadgen.cellspec import CellRun
from loadgen.footprint import (
    cell_connections,
    locust_share,
    make_room,
    process_share,
    user_connections,
)
from loadgen.realtime.params import RealtimeParams
from servers import fdlimit
from servers.fdlimit import FD_HEADROOM, FdLimitTooLow


def rt_spec(delivery: str, **realtime: Any) -> CellRun:
    return CellRun(
        cell="c",
        transport="ws-aiohttp" if delivery == "push" else "http",
        client="aiohttp",
        conn_mode="keep-alive",
        base_url="http://127.0.0.1:1",
        workload="messaging",
        delivery=delivery,
        realtime={"users": 10, "group_size": 4, **realtime},
    )


# (delivery, connections a user holds)
USER_CASES = [
    pytest.param("push", 1, id="websocket-carries-everything"),
    pytest.param("sse", 2, id="event-stream-and-actions"),
    pytest.param("long-poll", 2, id="held-poll-and-actions"),
    pytest.param("short-poll", 2, id="polls-and-actions"),
    pytest.param("request", 2, id="unknown-mode-counts-two"),
]


@pytest.mark.parametrize(("delivery", "expected"), USER_CASES)
def test_user_connections(delivery: str, expected: int) -> None:
    assert user_connections(delivery) == expected


# (workload, echo connections, realtime, delivery, processes, cell's connections)
CELL_CASES = [
    pytest.param("echo", 16, None, "request", 1, 16, id="echo-its-connections"),
    pytest.param("messaging", 4, {"users": 10}, "push", 1, 12, id="whole-groups-of-4"),
    pytest.param("messaging", 4, {"users": 12}, "long-poll", 1, 24, id="two-per-polling-user"),
    pytest.param(
        "notifications",
        4,
        {"users": 12, "notification_rate": 5.0, "publishers": 2},
        "push",
        3,
        12 + 2 * 3,
        id="each-process-has-its-publishers",
    ),
    pytest.param(
        "messaging", 4, {"users": 12, "publishers": 2}, "sse", 1, 24, id="no-rate-no-publishers"
    ),
]


@pytest.mark.parametrize(
    ("workload", "connections", "realtime", "delivery", "processes", "expected"), CELL_CASES
)
def test_cell_connections(
    workload: str,
    connections: int,
    realtime: dict[str, Any] | None,
    delivery: str,
    processes: int,
    expected: int,
) -> None:
    params = None if realtime is None else RealtimeParams(group_size=4, **realtime)
    assert cell_connections(workload, connections, params, delivery, processes) == expected


# (users, processes, process index, users it runs): whole groups of 4, dealt out in turn.
SHARE_CASES = [
    pytest.param(10, 1, 0, 10, id="one-process-runs-everyone"),
    pytest.param(10, 2, 0, 6, id="groups-0-and-2"),
    pytest.param(10, 2, 1, 4, id="group-1"),
    pytest.param(8, 3, 2, 0, id="no-group-left"),
]


@pytest.mark.parametrize(("users", "processes", "index", "expected"), SHARE_CASES)
def test_process_share(users: int, processes: int, index: int, expected: int) -> None:
    spec = dataclasses.replace(
        rt_spec("push", users=users), processes=processes, process_index=index
    )
    assert process_share(spec) == expected


def test_process_share_of_echo_is_its_connections() -> None:
    spec = CellRun("c", "http", "aiohttp", "keep-alive", "http://x", connections=5, processes=2)
    assert process_share(spec) == 3
    assert process_share(dataclasses.replace(spec, process_index=1)) == 2


# (users, workers, people one worker runs at most): locust users are groups of 4.
LOCUST_CASES = [
    pytest.param(10, 1, 12, id="local-whole-groups"),
    pytest.param(10, 2, 8, id="three-groups-over-two"),
    pytest.param(16, 4, 4, id="one-group-each"),
]


@pytest.mark.parametrize(("users", "workers", "expected"), LOCUST_CASES)
def test_locust_share(users: int, workers: int, expected: int) -> None:
    assert locust_share(rt_spec("long-poll", users=users), workers) == expected


class FakeResource:
    RLIMIT_NOFILE = resource.RLIMIT_NOFILE
    RLIM_INFINITY = resource.RLIM_INFINITY

    def __init__(self, soft: int, hard: int) -> None:
        self.limits = (soft, hard)

    def getrlimit(self, which: int) -> tuple[int, int]:
        return self.limits

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        self.limits = limits


def test_make_room_records_what_it_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fdlimit, "resource", FakeResource(256, 4096))
    record = make_room(rt_spec("long-poll", users=200), 200)
    # 200 polling users hold 400 connections.
    assert record == {
        "share": 200,
        "connections": 400,
        "needed": 400 + FD_HEADROOM,
        "soft_before": 256,
        "hard_before": 4096,
        "soft_after": 400 + FD_HEADROOM,
        "hard_after": 4096,
    }


# (spec, share, what the message must say)
TOO_LOW_CASES = [
    pytest.param(
        rt_spec("long-poll", users=10_000),
        10_000,
        # one connection per user must fit; the second is room made where it can be
        f"10000 users need about {10_000 + FD_HEADROOM} open files; the hard limit "
        "(ulimit -Hn) is 4096: raise it, or lower [realtime] users",
        id="realtime-users",
    ),
    pytest.param(
        CellRun("c", "http", "aiohttp", "keep-alive", "http://x", connections=5000),
        5000,
        f"5000 connections need about {5000 + FD_HEADROOM} open files; the hard limit "
        "(ulimit -Hn) is 4096: raise it, or lower [load] connections",
        id="echo-connections",
    ),
]


@pytest.mark.parametrize(("spec", "share", "message"), TOO_LOW_CASES)
def test_make_room_refuses_a_share_beyond_the_hard_limit(
    monkeypatch: pytest.MonkeyPatch, spec: CellRun, share: int, message: str
) -> None:
    monkeypatch.setattr(fdlimit, "resource", FakeResource(1024, 4096))
    with pytest.raises(FdLimitTooLow) as info:
        make_room(spec, share)
    assert str(info.value) == message
