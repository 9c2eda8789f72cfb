"""Run an rtbench server inside the test's own event loop, on 127.0.0.1:0.

::

    async with running("http", hub=Hub(send_queue=8)) as server:
        server.port, server.hub, server.base_url
    async with serve("ws-aiohttp") as (port, hub):
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from servers.__main__ import MODULES
from servers.common import ServerConfig
from servers.hub import Hub

HOST = "127.0.0.1"
#: The sign-in secret every test runs with (``$RTBENCH_SIGNIN_SECRET``, see conftest).
TEST_SECRET = "rtbench-tests-signin-secret"
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
async def running(
    kind: str, hub: Hub | None = None, config: ServerConfig | None = None
) -> AsyncIterator[RunningServer]:
    """Serve ``kind`` until the block ends; a fresh Hub and a loopback config by default."""
    module = importlib.import_module(MODULES[kind])
    config = config or ServerConfig(HOST, 0)
    hub = hub or Hub(config.max_message_bytes)
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(module.serve(config, hub, ready.set_result, stop))
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


@contextlib.asynccontextmanager
async def serve(kind: str, hub: Hub | None = None) -> AsyncIterator[tuple[int, Hub]]:
    """:func:`running`, yielding ``(port, hub)``."""
    async with running(kind, hub) as server:
        yield server.port, server.hub
