"""Wire byte counting: a counting loop, a plain TCP echo server, raw asyncio streams."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import event_loops
import pytest
from event_loops import LOOPS

from loadgen.wire import WireCounter, close_loop, counting, loop_name, new_event_loop

pytestmark = pytest.mark.timeout(30)

#: A test's coroutine, in a fresh loop of its kind.
run_in = partial(event_loops.run_in, timeout_s=10.0)

HOST = "127.0.0.1"


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[asyncio.Server]:
    """``async with echo_server() as server``: a TCP echo server on 127.0.0.1:0, closed after."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, HOST, 0)
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()


def port_of(server: asyncio.Server) -> int:
    return server.sockets[0].getsockname()[1]


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()
    assert await reader.readexactly(len(data)) == data


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    await writer.wait_closed()


@pytest.mark.parametrize("use_uvloop", LOOPS)
def test_loop_name(use_uvloop: bool) -> None:
    loop = new_event_loop(use_uvloop)
    try:
        assert loop_name(loop) == ("uvloop" if use_uvloop else "asyncio")
    finally:
        loop.close()


@pytest.mark.parametrize("use_uvloop", LOOPS)
def test_counts_exact_bytes_each_way(use_uvloop: bool) -> None:
    messages = [b"hello", b"x" * 1000, bytes(range(256)) * 300]  # the last spans many reads

    async def main() -> WireCounter:
        counter = WireCounter()
        async with echo_server() as server:
            with counting(counter):
                reader, writer = await asyncio.open_connection(HOST, port_of(server))
            assert counter.snapshot() == (0, 0)
            for message in messages:
                before = counter.snapshot()
                await exchange(reader, writer, message)
                after = counter.snapshot()
                assert after[0] - before[0] == len(message)
                assert after[1] - before[1] == len(message)
            writer.writelines([b"ab", bytearray(b"cde"), memoryview(b"fghi")])
            await writer.drain()
            assert await reader.readexactly(9) == b"abcdefghi"
            await close(writer)
        return counter

    counter = run_in(use_uvloop, main)
    total = sum(len(m) for m in messages) + 9
    assert counter.sent == total
    assert counter.received == total
    assert counter.connections == 1


@pytest.mark.parametrize("use_uvloop", LOOPS)
def test_counts_connections(use_uvloop: bool) -> None:
    async def main() -> WireCounter:
        counter = WireCounter()
        async with echo_server() as server:
            with counting(counter):
                conns = [await asyncio.open_connection(HOST, port_of(server)) for _ in range(3)]
            for i, (reader, writer) in enumerate(conns):
                await exchange(reader, writer, b"%d" % i * (i + 1))
            for _, writer in conns:
                await close(writer)
        return counter

    counter = run_in(use_uvloop, main)
    assert counter.connections == 3
    assert counter.sent == counter.received == 1 + 2 + 3


@pytest.mark.parametrize("use_uvloop", LOOPS)
def test_connections_made_outside_counting_are_not_counted(use_uvloop: bool) -> None:
    async def main() -> tuple[WireCounter, WireCounter]:
        counter, other = WireCounter(), WireCounter()
        async with echo_server() as server:
            # Before any counting block: not counted anywhere.
            r0, w0 = await asyncio.open_connection(HOST, port_of(server))
            with counting(counter):
                r1, w1 = await asyncio.open_connection(HOST, port_of(server))
            # After the block: not counted either.
            r2, w2 = await asyncio.open_connection(HOST, port_of(server))
            # Inside another counter's block: counted there, not in ``counter``.
            with counting(other):
                r3, w3 = await asyncio.open_connection(HOST, port_of(server))
            await exchange(r0, w0, b"a" * 100)
            await exchange(r1, w1, b"b" * 7)
            await exchange(r2, w2, b"c" * 1000)
            await exchange(r3, w3, b"d" * 20)
            # A counting block does not capture traffic on connections made outside it.
            with counting(counter):
                await exchange(r2, w2, b"e" * 50)
            for w in (w0, w1, w2, w3):
                await close(w)
        return counter, other

    counter, other = run_in(use_uvloop, main)
    assert (counter.sent, counter.received, counter.connections) == (7, 7, 1)
    assert (other.sent, other.received, other.connections) == (20, 20, 1)


@pytest.mark.parametrize("use_uvloop", LOOPS)
def test_counting_follows_the_task_that_connected(use_uvloop: bool) -> None:
    # The counter is chosen when the connection is made, in the task that makes it;
    # concurrent tasks with their own counters do not mix.
    async def main() -> list[WireCounter]:
        counters = [WireCounter() for _ in range(4)]

        async def worker(i: int, port: int) -> None:
            with counting(counters[i]):
                reader, writer = await asyncio.open_connection(HOST, port)
                for _ in range(5):
                    await exchange(reader, writer, b"z" * (i + 1))
                    await asyncio.sleep(0)
                await close(writer)

        async with echo_server() as server:
            await asyncio.gather(*(worker(i, port_of(server)) for i in range(4)))
        return counters

    counters = run_in(use_uvloop, main)
    for i, c in enumerate(counters):
        assert (c.sent, c.received, c.connections) == (5 * (i + 1), 5 * (i + 1), 1)


@pytest.mark.parametrize("use_uvloop", LOOPS)
def test_refused_connection_is_not_counted(use_uvloop: bool, dead_base_url: str) -> None:
    port = int(dead_base_url.rsplit(":", 1)[1])

    async def main() -> WireCounter:
        counter = WireCounter()
        with counting(counter), pytest.raises(OSError):
            await asyncio.open_connection(HOST, port)
        return counter

    counter: Any = run_in(use_uvloop, main)
    assert (counter.sent, counter.received, counter.connections) == (0, 0, 0)


@pytest.mark.parametrize("use_uvloop", [True, False])
def test_close_loop_unwinds_pending_tasks_without_warnings(
    use_uvloop: bool, caplog: pytest.LogCaptureFixture
) -> None:
    loop = new_event_loop(use_uvloop)
    unwound: list[int] = []

    async def holds(i: int) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            unwound.append(i)

    async def fails() -> None:
        for i in range(50):
            loop.create_task(holds(i))
        await asyncio.sleep(0)
        raise RuntimeError("set-up failed")

    with pytest.raises(RuntimeError, match="set-up failed"):
        loop.run_until_complete(fails())
    assert close_loop(loop) == 50
    assert loop.is_closed()
    assert sorted(unwound) == list(range(50))
    gc.collect()
    assert "Task was destroyed" not in caplog.text
