"""A cell's server sizing: its connections, its listen backlog capped by somaxconn."""

from __future__ import annotations

from pathlib import Path

import pytest
from scenario_toml import cell_table

from loadgen.run.capacity import listen_backlog, read_somaxconn, server_sizing, sizing_args
from loadgen.scenario import parse_scenario
from servers.common import DEFAULT_BACKLOG

# (connections, somaxconn, backlog)
BACKLOG_CASES = [
    pytest.param(10, 4096, DEFAULT_BACKLOG, id="small-cells-keep-the-default"),
    pytest.param(1000, 4096, 1000, id="a-slot-per-connection"),
    pytest.param(20_000, 4096, 4096, id="capped-by-somaxconn"),
    pytest.param(20_000, None, 20_000, id="unknown-somaxconn-uncapped"),
    pytest.param(10, 64, 64, id="somaxconn-below-the-default"),
]


@pytest.mark.parametrize(("connections", "somaxconn", "expected"), BACKLOG_CASES)
def test_listen_backlog(connections: int, somaxconn: int | None, expected: int) -> None:
    assert listen_backlog(connections, somaxconn) == expected


# (file text, what is read): anything but a positive number is unknown.
SOMAXCONN_CASES = [
    pytest.param("4096\n", 4096, id="number"),
    pytest.param("garbage", None, id="not-a-number"),
    pytest.param("0", None, id="zero"),
    pytest.param(None, None, id="missing"),
]


@pytest.mark.parametrize(("text", "expected"), SOMAXCONN_CASES)
def test_read_somaxconn(tmp_path: Path, text: str | None, expected: int | None) -> None:
    path = tmp_path / "somaxconn"
    if text is not None:
        path.write_text(text)
    assert read_somaxconn(path) == expected


SCENARIO = {
    "scenario": {"name": "big", "workload": "messaging"},
    "realtime": {"users": 3000, "group_size": 4, "message_rate": 1.0},
    "cells": [cell_table("http/aiohttp", delivery="long-poll"), cell_table("ws-aiohttp/aiohttp")],
}


def test_server_sizing_follows_each_cells_users() -> None:
    cells = {c.cell.transport: c for c in parse_scenario(SCENARIO).run_cells()}
    # Long polling holds up to two connections a user, at least one; a WebSocket one.
    polling = server_sizing(cells["http"], 1, 4096)
    assert polling == {"connections": 6000, "least_connections": 3000, "backlog": 4096}
    ws = server_sizing(cells["ws-aiohttp"], 1, None)
    assert ws == {"connections": 3000, "least_connections": 3000, "backlog": 3000}
    # The server must fit the least; it makes room for the rest itself.
    assert sizing_args(polling) == ["--backlog", "4096", "--connections", "3000"]
