"""The userspace link emulator: delay, rate, handshake charge, ordering, limits and its CLI.

Timing tests measure a plain TCP echo through the relay and take the median of
several round trips (the machine is small and noisy); tolerances are the
issue's: delay within 10 % + 1 ms, rate within 15 %.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import pytest

from loadgen.link import (
    LINK_STATS_PREFIX,
    LinkRelay,
    LinkUnsupported,
    parse_link_ready_line,
    relay_command,
    tcp_echo_server,
)

pytestmark = pytest.mark.timeout(20)

HOST = "127.0.0.1"
T = TypeVar("T")


def within(measured_ms: float, expected_ms: float) -> bool:
    """The issue's tolerance: 10 % of the expected value plus 1 ms."""
    return abs(measured_ms - expected_ms) <= 0.1 * expected_ms + 1.0


async def round_trip_ms(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes = b"ping"
) -> float:
    start = time.perf_counter()
    writer.write(payload)
    assert await reader.readexactly(len(payload)) == payload
    return (time.perf_counter() - start) * 1000


async def settled(
    measure: Callable[[], Awaitable[T]], ok: Callable[[T], bool], attempts: int = 3
) -> tuple[T, list[T]]:
    """``measure()`` again (up to ``attempts`` times) while the result is off.

    A burst of noise from another process on this 2-core machine can delay a
    whole batch of round trips; a relay that is wrong is off every time.
    Returns the last result and all of them (for the failure message).
    """
    results = [await measure()]
    while not ok(results[-1]) and len(results) < attempts:
        results.append(await measure())
    return results[-1], results


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()


# -- delay, handshake, rate through real sockets ---------------------------------------


@contextlib.asynccontextmanager
async def echo_through(profile: dict, **kwargs: object) -> AsyncIterator[LinkRelay]:
    async with (
        tcp_echo_server() as port,
        LinkRelay(profile, HOST, port, seed=1, **kwargs) as relay,  # type: ignore[arg-type]
    ):
        yield relay


@pytest.mark.parametrize(("rtt_ms", "precise"), [(20, True), (100, True), (20, False)])
async def test_round_trip_matches_the_configured_rtt(rtt_ms: float, precise: bool) -> None:
    async with echo_through({"rtt_ms": rtt_ms}, precise_timer=precise) as relay:
        kinds = ("timerfd", "loop.call_later") if precise else ("loop.call_later",)
        assert relay.timer in kinds
        reader, writer = await asyncio.open_connection(HOST, relay.port)
        await round_trip_ms(reader, writer)  # pays the handshake charge

        async def median_of_7() -> float:
            return statistics.median([await round_trip_ms(reader, writer) for _ in range(7)])

        median, batches = await settled(median_of_7, lambda m: within(m, rtt_ms))
        await close(writer)
        stats = relay.stats()
    assert within(median, rtt_ms), f"medians {batches} ms for rtt {rtt_ms} ms"
    assert stats["timer"]["releases"] >= 14 and stats["timer"]["late_p50_us"] >= 0


@pytest.mark.parametrize("handshake_rtts", [1, 2, 0])
async def test_handshake_is_charged_to_new_connections_only(handshake_rtts: int) -> None:
    rtt_ms = 40.0
    expected_first = (1 + handshake_rtts) * rtt_ms
    async with echo_through({"rtt_ms": rtt_ms, "handshake_rtts": handshake_rtts}) as relay:

        async def three_connections() -> tuple[float, float]:
            firsts, laters = [], []
            for _ in range(3):
                start = time.perf_counter()
                reader, writer = await asyncio.open_connection(HOST, relay.port)
                writer.write(b"hello")
                await reader.readexactly(5)
                firsts.append((time.perf_counter() - start) * 1000)
                laters.append(await round_trip_ms(reader, writer))
                laters.append(await round_trip_ms(reader, writer))
                await close(writer)
            return statistics.median(firsts), statistics.median(laters)

        (first, later), batches = await settled(
            three_connections, lambda r: within(r[0], expected_first) and within(r[1], rtt_ms)
        )
        assert relay.accepted == 3 * len(batches)
    assert within(first, expected_first), f"(first, later) medians: {batches}"
    assert within(later, rtt_ms), f"(first, later) medians: {batches}"


class _Sink(asyncio.Protocol):
    """Counts what it receives; ``done`` resolves with the time the last byte came."""

    def __init__(self, expected: int, done: asyncio.Future[float]) -> None:
        self.expected, self.done, self.got = expected, done, 0

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        if self.got >= self.expected and not self.done.done():
            self.done.set_result(time.perf_counter())


class _Source(asyncio.Protocol):
    """Writes ``size`` bytes as soon as a client connects."""

    def __init__(self, size: int) -> None:
        self.size = size

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(b"d" * self.size)  # type: ignore[attr-defined]


async def test_upload_rate_matches_the_configured_rate() -> None:
    size, rate_mbit = 1 << 20, 8.0
    loop = asyncio.get_running_loop()
    done: asyncio.Future[float] = loop.create_future()
    server = await loop.create_server(lambda: _Sink(size, done), HOST, 0)
    port = server.sockets[0].getsockname()[1]
    async with LinkRelay({"rate_mbit": rate_mbit}, HOST, port) as relay:
        _, writer = await asyncio.open_connection(HOST, relay.port)
        start = time.perf_counter()
        writer.write(b"u" * size)
        end = await asyncio.wait_for(done, 10)
        await close(writer)
    server.close()
    measured = size * 8 / (end - start) / 1e6
    assert abs(measured - rate_mbit) <= 0.15 * rate_mbit, f"{measured:.2f} Mbit/s"


async def test_download_rate_matches_the_configured_rate_after_the_delay() -> None:
    size, rate_mbit, rtt_ms = 1 << 19, 8.0, 20.0
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Source(size), HOST, 0)
    port = server.sockets[0].getsockname()[1]
    profile = {"rate_mbit": rate_mbit, "rtt_ms": rtt_ms, "handshake_rtts": 0}
    async with LinkRelay(profile, HOST, port) as relay:
        start = time.perf_counter()
        reader, writer = await asyncio.open_connection(HOST, relay.port)
        await reader.readexactly(size)
        elapsed = time.perf_counter() - start - rtt_ms / 2000  # minus the one-way delay
        await close(writer)
    server.close()
    measured = size * 8 / elapsed / 1e6
    assert abs(measured - rate_mbit) <= 0.15 * rate_mbit, f"{measured:.2f} Mbit/s"


async def test_jittered_stream_arrives_in_order() -> None:
    messages = [f"<{i:05d}>".encode() for i in range(300)]
    expected = b"".join(messages)
    async with echo_through({"rtt_ms": 10, "jitter_ms": 5}) as relay:
        reader, writer = await asyncio.open_connection(HOST, relay.port)

        async def send() -> None:
            for i, message in enumerate(messages):
                writer.write(message)
                if i % 3 == 0:
                    await asyncio.sleep(0.0005)

        sender = asyncio.create_task(send())
        received = await asyncio.wait_for(reader.readexactly(len(expected)), 10)
        await sender
        await close(writer)
        assert received == expected
        assert relay.stats()["timer"]["releases"] > 10


# -- refusals and limits --------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["10.0.0.1", "192.168.1.10", "8.8.8.8", "0.0.0.0", "localhost", "example.com"]
)
def test_non_loopback_targets_are_refused(host: str) -> None:
    with pytest.raises(LinkUnsupported, match="loopback"):
        LinkRelay("wan", host, 8080)


def test_loopback_targets_are_accepted_and_bad_values_refused() -> None:
    LinkRelay("wan", "127.0.0.1", 8080)
    LinkRelay("wan", "127.0.0.2", 8080)
    LinkRelay("wan", "::1", 8080)
    with pytest.raises(LinkUnsupported, match="loopback"):
        LinkRelay("wan", HOST, 8080, listen_host="0.0.0.0")
    with pytest.raises(LinkUnsupported, match="port"):
        LinkRelay("wan", HOST, 0)


def test_loss_is_refused_with_the_reason() -> None:
    with pytest.raises(LinkUnsupported, match=r"cannot emulate packet loss.*kernel link"):
        LinkRelay({"preset": "mobile", "loss_pct": 1}, HOST, 8080)
    with pytest.raises(LinkUnsupported):
        relay_command({"rtt_ms": 10, "loss_pct": 2}, 8080)


async def test_connections_over_the_limit_are_reset() -> None:
    async with echo_through({"rtt_ms": 2}, max_connections=1) as relay:
        reader, writer = await asyncio.open_connection(HOST, relay.port)
        await round_trip_ms(reader, writer)
        reader2, writer2 = await asyncio.open_connection(HOST, relay.port)
        with contextlib.suppress(ConnectionError):
            writer2.write(b"x")
            assert await asyncio.wait_for(reader2.read(1), 5) == b""
        assert relay.refused == 1 and relay.active_connections == 1
        await round_trip_ms(reader, writer)  # the first one is unaffected
        await close(writer)
        await close(writer2)


class _Stuck(asyncio.Protocol):
    """A server that accepts and never reads."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.pause_reading()  # type: ignore[attr-defined]


async def test_a_reader_that_stops_holds_the_sender_back() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Stuck, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    limit = 256 * 1024
    async with LinkRelay({"rtt_ms": 2}, HOST, port, max_buffer_bytes=limit) as relay:
        _, writer = await asyncio.open_connection(HOST, relay.port)
        block, total, sent = b"b" * (1 << 20), 64 << 20, 0

        async def push() -> None:
            nonlocal sent
            while sent < total:
                writer.write(block)
                await writer.drain()
                sent += len(block)

        pusher = asyncio.create_task(push())
        await asyncio.sleep(1.0)
        assert not pusher.done(), "64 MiB went through to a server that never reads"
        pusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pusher
        # The relay's own queue stays near its limit (one read may overshoot it).
        assert relay.peak_buffered_bytes <= limit + 512 * 1024
        writer.transport.abort()
    server.close()


async def test_close_from_the_client_reaches_the_server_after_the_data() -> None:
    async with echo_through({"rtt_ms": 10}) as relay:
        reader, writer = await asyncio.open_connection(HOST, relay.port)
        writer.write(b"last words")
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b"last words"  # then EOF
        await close(writer)
        for _ in range(100):
            if relay.active_connections == 0:
                break
            await asyncio.sleep(0.01)
        assert relay.active_connections == 0


async def test_a_refused_target_resets_the_client_after_the_handshake() -> None:
    with socket.socket() as bound:  # bound, not listening: connecting to it is refused
        bound.bind((HOST, 0))
        dead_port = bound.getsockname()[1]
        async with LinkRelay({"rtt_ms": 30}, HOST, dead_port) as relay:
            start = time.perf_counter()
            reader, writer = await asyncio.open_connection(HOST, relay.port)
            writer.write(b"anyone?")
            with contextlib.suppress(ConnectionError):
                assert await asyncio.wait_for(reader.read(), 5) == b""
            elapsed_ms = (time.perf_counter() - start) * 1000
            await close(writer)
            await asyncio.sleep(0.01)
            assert relay.target_failures == 1 and relay.active_connections == 0
    assert elapsed_ms >= 25


async def test_shutdown_closes_connections_and_the_port() -> None:
    async with tcp_echo_server() as port:
        relay = LinkRelay({"rtt_ms": 50}, HOST, port)
        async with relay:
            reader, writer = await asyncio.open_connection(HOST, relay.port)
            writer.write(b"in flight")
            await asyncio.sleep(0.01)
            listen_port = relay.port
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(reader.read(), 5) == b""
        await close(writer)
        assert relay.active_connections == 0
        with pytest.raises(OSError):
            await asyncio.open_connection(HOST, listen_port)
        await relay.aclose()  # idempotent
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert not others


# -- the relay process ----------------------------------------------------------------


async def test_cli_relay_prints_ready_relays_and_stops_on_sigterm() -> None:
    async with tcp_echo_server() as echo_port:
        argv = relay_command({"preset": "lan", "rtt_ms": 20}, echo_port)
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 15)
            info = parse_link_ready_line(line.decode())
            assert info is not None, line
            assert info["profile"]["rtt_ms"] == 20 and info["target"] == f"{HOST}:{echo_port}"
            reader, writer = await asyncio.open_connection(HOST, info["port"])
            await round_trip_ms(reader, writer)

            async def median_of_5() -> float:
                return statistics.median([await round_trip_ms(reader, writer) for _ in range(5)])

            median, batches = await settled(median_of_5, lambda m: within(m, 20))
            assert within(median, 20), batches
            await close(writer)
            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 10)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, err.decode()
    (stats_line,) = [ln for ln in out.decode().splitlines() if ln.startswith(LINK_STATS_PREFIX)]
    stats = json.loads(stats_line[len(LINK_STATS_PREFIX) :])
    assert stats["accepted"] == 1
    assert stats["bytes"]["client_to_server"] == stats["bytes"]["server_to_client"]
    assert stats["bytes"]["client_to_server"] % 4 == 0 and stats["timer"]["releases"] > 0


async def test_cli_refuses_a_non_loopback_target() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "loadgen.link",
        "relay",
        "--profile",
        "wan",
        "--target",
        "10.1.2.3:80",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 2 and b"loopback" in err and out == b""
