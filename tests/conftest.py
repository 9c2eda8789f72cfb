"""Fixtures that start rtbench servers on 127.0.0.1 (port 0) for the load-generator tests.

``serve_in_loop`` runs a server's ``serve()`` in the event loop the test is
already running (for instance one made by :func:`loadgen.wire.new_event_loop`)::

    def test_x(serve_in_loop):
        async def main():
            async with serve_in_loop("http") as server:
                ...  # server.base_url == "http://127.0.0.1:PORT"

``dead_base_url`` is a 127.0.0.1 port that is bound but not listening, so
connecting to it is refused at once (and no other process can take it).

Every test runs with ``$RTBENCH_SIGNIN_SECRET`` set to :data:`serving.TEST_SECRET`,
as a run's children do: hubs made in the test and the clients that sign in to
them share it.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from serving import HOST, TEST_SECRET, RunningServer, running

from servers.common import ServerConfig
from servers.realtime.credentials import SECRET_ENV


@contextlib.asynccontextmanager
async def _serve_in_loop(
    kind: str, max_message_bytes: int = 1 << 20
) -> AsyncIterator[RunningServer]:
    async with running(kind, config=ServerConfig(HOST, 0, max_message_bytes)) as server:
        yield server


@pytest.fixture(autouse=True)
def _signin_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, TEST_SECRET)


@pytest.fixture
def serve_in_loop() -> Callable[..., Any]:
    """``async with serve_in_loop(kind) as server`` runs ``kind`` in the running loop."""
    return _serve_in_loop


@pytest.fixture
def dead_base_url() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` where PORT is bound but not listening: connections are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, 0))
        yield f"http://{HOST}:{sock.getsockname()[1]}"
    finally:
        sock.close()
