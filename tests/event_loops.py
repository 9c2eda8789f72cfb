"""Run a coroutine to completion in a fresh counting event loop, under uvloop or asyncio.

::

    @pytest.mark.parametrize("use_uvloop", LOOPS)
    def test_x(use_uvloop: bool) -> None:
        result = run_in(use_uvloop, main, timeout_s=20.0)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from loadgen.wire import new_event_loop

T = TypeVar("T")

#: Both loop kinds, as a ``use_uvloop`` parameter.
LOOPS = [pytest.param(True, id="uvloop"), pytest.param(False, id="asyncio")]


def run_in(use_uvloop: bool, main: Callable[[], Awaitable[T]], timeout_s: float) -> T:
    """Run ``main()`` to completion in a fresh counting loop, within ``timeout_s``."""
    loop = new_event_loop(use_uvloop)
    try:
        return loop.run_until_complete(asyncio.wait_for(main(), timeout_s))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
