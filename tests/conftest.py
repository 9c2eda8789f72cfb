"""Fixtures that start rtbench servers on 127.0.0.1 (port 0) for the load-generator tests.

``serve_in_loop`` runs a server's ``serve()`` in the event loop the test is
already running (for instance one made by :func:`loadgen.wire.new_event_loop`)::

    def test_x(serve_in_loop):
        async def main():
            async with serve_in_loop("http") as server:
                ...  # server.base_url == "http://127.0.0.1:PORT"

``dead_base_url`` is a 127.0.0.1 port that is bound but not listening, so
connecting to it is refused at once (and no other process can take it).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from servers.__main__ import MODULES
from servers.common import ServerConfig
from servers.hub import Hub

HOST = "127.0.0.1"
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class RunningServer:
    """A server listening on 127.0.0.1."""

    kind: str
    port: int
    hub: Hub

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"


@contextlib.asynccontextmanager
async def _serve_in_loop(
    kind: str, max_message_bytes: int = 1 << 20
) -> AsyncIterator[RunningServer]:
    module = importlib.import_module(MODULES[kind])
    hub = Hub(max_message_bytes)
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        module.serve(ServerConfig(HOST, 0, max_message_bytes), hub, ready.set_result, stop)
    )
    done, _ = await asyncio.wait(
        {ready, task}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
    )
    if task in done:
        task.result()  # serve() failed: raise its exception
    if ready not in done:
        task.cancel()
        raise RuntimeError(f"server {kind} was not ready within {READY_TIMEOUT_S}s")
    try:
        yield RunningServer(kind, ready.result(), hub)
    finally:
        stop.set()
        async with asyncio.timeout(STOP_TIMEOUT_S):
            await task


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
