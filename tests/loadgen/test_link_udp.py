"""The relay's UDP side: delay, order, flows, bounds, refusals and the shared port number.

Every test talks to a UDP echo on 127.0.0.1 through a relay in this process,
except the last ones, which start the relay process with ``--udp``. Timing is
checked only from below (a datagram never comes back before its round trip).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from loadgen import procs
from loadgen.link import (
    LINK_STATS_PREFIX,
    LinkPortUnavailable,
    LinkRelay,
    LinkUnsupported,
    UdpRelay,
    parse_link_ready_line,
    relay_command,
)
from loadgen.link import relay as relay_module
from loadgen.link.pipe import set_nodelay
from loadgen.link.scheduler import Scheduler
from loadgen.link.timeline import LinkTimeline

pytestmark = pytest.mark.timeout(20)

HOST = "127.0.0.1"
DELAY_MS = 20.0


class _Echo(asyncio.DatagramProtocol):
    """Sends every datagram back to where it came from; keeps the senders it saw."""

    def __init__(self) -> None:
        self.senders: list[tuple[str, int]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.senders.append(addr)
        self.transport.sendto(data, addr)


@contextlib.asynccontextmanager
async def udp_echo(sock: socket.socket | None = None) -> AsyncIterator[tuple[int, _Echo]]:
    """A UDP echo on 127.0.0.1 (port 0, or ``sock``'s); yields its port and protocol."""
    loop = asyncio.get_running_loop()
    if sock is None:
        transport, echo = await loop.create_datagram_endpoint(_Echo, local_addr=(HOST, 0))
    else:
        transport, echo = await loop.create_datagram_endpoint(_Echo, sock=sock)
    try:
        yield transport.get_extra_info("sockname")[1], echo
    finally:
        transport.close()


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait((time.monotonic(), data))


@contextlib.asynccontextmanager
async def udp_client(port: int) -> AsyncIterator[tuple[asyncio.DatagramTransport, _Client]]:
    """A UDP socket connected to 127.0.0.1:``port``; replies land in ``client.received``."""
    transport, client = await asyncio.get_running_loop().create_datagram_endpoint(
        _Client, remote_addr=(HOST, port)
    )
    try:
        yield transport, client
    finally:
        transport.close()


async def replies(client: _Client, n: int, timeout_s: float = 5.0) -> list[tuple[float, bytes]]:
    return [await asyncio.wait_for(client.received.get(), timeout_s) for _ in range(n)]


async def until(condition: Any, timeout_s: float = 3.0) -> None:
    """Wait until ``condition()`` is true (polling), or fail."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def echo_relay(**kwargs: Any) -> AsyncIterator[tuple[LinkRelay, _Echo]]:
    profile = kwargs.pop("profile", {"delay_ms": DELAY_MS})
    async with (
        udp_echo() as (port, echo),
        LinkRelay(profile, HOST, port, seed=1, udp=True, **kwargs) as relay,
    ):
        yield relay, echo


# -- datagrams through the link ---------------------------------------------------------


async def test_datagrams_come_back_no_sooner_than_the_round_trip() -> None:
    async with echo_relay() as (relay, echo), udp_client(relay.port) as (transport, client):
        assert relay.udp is not None and relay.udp.port == relay.port
        for i in range(3):
            sent = time.monotonic()
            transport.sendto(b"ping %d" % i)
            ((arrived, data),) = await replies(client, 1)
            assert data == b"ping %d" % i
            assert arrived - sent >= 2 * DELAY_MS / 1000
        stats = relay.stats()["udp"]
    assert stats["datagrams"] == {"client_to_server": 3, "server_to_client": 3}
    assert stats["bytes"]["client_to_server"] == stats["bytes"]["server_to_client"] == 18
    assert stats["flows"]["opened"] == 1 and stats["timer"]["releases"] == 6
    assert len(set(echo.senders)) == 1  # one upstream socket for the one client


async def test_a_jittered_flow_keeps_its_order() -> None:
    profile = {"delay_ms": 10, "jitter_ms": 8}
    async with (
        echo_relay(profile=profile) as (relay, _),
        udp_client(relay.port) as (transport, client),
    ):
        for i in range(120):
            transport.sendto(b"%05d" % i)
            if i % 10 == 9:
                await asyncio.sleep(0.001)  # spread over several jitter draws
        got = [data for _, data in await replies(client, 120)]
    assert got == [b"%05d" % i for i in range(120)]


async def test_each_client_address_gets_its_own_replies() -> None:
    async with (
        echo_relay() as (relay, echo),
        udp_client(relay.port) as (first, first_client),
        udp_client(relay.port) as (second, second_client),
    ):
        for i in range(3):
            first.sendto(b"a%d" % i)
            second.sendto(b"b%d" % i)
        assert [d for _, d in await replies(first_client, 3)] == [b"a0", b"a1", b"a2"]
        assert [d for _, d in await replies(second_client, 3)] == [b"b0", b"b1", b"b2"]
        await asyncio.sleep(0.05)
        assert first_client.received.empty() and second_client.received.empty()
        assert len(set(echo.senders)) == 2  # one upstream socket per client
        assert relay.stats()["udp"]["flows"] == {
            "active": 2,
            "opened": 2,
            "peak": 2,
            "expired": 0,
            "failed": 0,
        }


def test_a_datagram_crosses_the_token_bucket_whole() -> None:
    line = LinkTimeline(0.005, 0.0, 1_000_000.0)  # 8 Mbit/s: 1200 bytes take 1.2 ms
    assert line.schedule_datagram(0.0, 1200) == pytest.approx(0.0012 + 0.005)
    assert line.schedule_datagram(0.0, 1200) == pytest.approx(0.0024 + 0.005)  # behind it
    assert line.schedule_datagram(1.0, 1200) == pytest.approx(1.0012 + 0.005)  # idle again


# -- bounds --------------------------------------------------------------------------------


async def test_a_full_queue_drops_and_counts() -> None:
    size, limit, sent = 1000, 4000, 10
    async with (
        echo_relay(profile={"delay_ms": 100}, udp_max_queue_bytes=limit) as (relay, _),
        udp_client(relay.port) as (transport, client),
    ):
        for i in range(sent):  # all arrive well within one delay: only 4 fit
            transport.sendto(bytes([i]) * size)
        got = await replies(client, limit // size)
        await asyncio.sleep(0.05)
        assert client.received.empty()
        stats = relay.stats()["udp"]
    assert [data[0] for _, data in got] == [0, 1, 2, 3]  # the tail was dropped
    assert stats["dropped"]["queue_full"] == {"client_to_server": 6, "server_to_client": 0}
    assert stats["datagrams"]["client_to_server"] == 4
    assert stats["peak_queued_bytes"] == limit


async def test_new_clients_over_the_flow_limit_are_dropped_and_counted() -> None:
    async with (
        echo_relay(udp_max_flows=1) as (relay, _),
        udp_client(relay.port) as (first, first_client),
        udp_client(relay.port) as (second, second_client),
    ):
        first.sendto(b"first")
        assert [d for _, d in await replies(first_client, 1)] == [b"first"]
        second.sendto(b"second")
        second.sendto(b"again")
        first.sendto(b"still here")
        assert [d for _, d in await replies(first_client, 1)] == [b"still here"]
        assert second_client.received.empty()
        stats = relay.stats()["udp"]
    assert stats["dropped"]["flow_limit"] == 2 and stats["flows"]["opened"] == 1


async def test_idle_flows_are_closed_and_a_later_datagram_opens_a_new_one() -> None:
    async with (
        echo_relay(profile={"delay_ms": 2}, udp_idle_timeout_s=0.1) as (relay, echo),
        udp_client(relay.port) as (transport, client),
    ):
        transport.sendto(b"one")
        await replies(client, 1)
        assert relay.udp is not None
        await until(lambda: relay.udp is not None and not relay.udp.flows)
        transport.sendto(b"two")
        assert [d for _, d in await replies(client, 1)] == [b"two"]
        stats = relay.stats()["udp"]
    assert stats["flows"]["expired"] == 1 and stats["flows"]["opened"] == 2
    assert len(set(echo.senders)) == 2  # the new flow has a new upstream socket


# -- refusals --------------------------------------------------------------------------------


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


async def test_a_target_nobody_listens_on_is_counted_as_refused() -> None:
    dead_port = _free_udp_port()
    async with (
        LinkRelay({"delay_ms": 2}, HOST, dead_port, udp=True) as relay,
        udp_client(relay.port) as (transport, client),
    ):
        transport.sendto(b"anyone?")
        await until(lambda: relay.stats()["udp"]["target_refused"] >= 1)
        transport.sendto(b"still?")  # the refusal is reported once, the flow stays usable
        await until(lambda: relay.stats()["udp"]["datagrams"]["client_to_server"] == 2)
        assert client.received.empty()


@pytest.mark.parametrize("host", ["10.0.0.1", "8.8.8.8", "0.0.0.0", "localhost"])
async def test_non_loopback_targets_are_refused(host: str) -> None:
    with pytest.raises(LinkUnsupported, match="loopback"):
        LinkRelay("wan", host, 8080, udp=True)
    with pytest.raises(LinkUnsupported, match="loopback"):
        relay_command("wan", 8080, target_host=host, udp=True)
    scheduler = Scheduler(asyncio.get_running_loop())
    try:
        with pytest.raises(LinkUnsupported, match="loopback"):
            UdpRelay(LinkRelay("wan", HOST, 8080).profile, host, 8080, scheduler)
    finally:
        scheduler.close()


def test_udp_limits_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="max_queue_bytes"):
        LinkRelay("wan", HOST, 8080, udp=True, udp_max_queue_bytes=100)
    with pytest.raises(ValueError, match="max_flows"):
        LinkRelay("wan", HOST, 8080, udp=True, udp_max_flows=0)


# -- one port number for TCP and UDP ----------------------------------------------------------


@contextlib.contextmanager
def _udp_taken() -> Iterator[int]:
    """A port number whose UDP port is bound here and whose TCP port is free."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
            holder.bind((HOST, 0))
            port = holder.getsockname()[1]
            try:
                socket.create_server((HOST, port)).close()
            except OSError:
                continue  # that TCP port is in use: find another number
            yield port
            return
    pytest.fail("no port number with a free TCP side")


async def test_a_told_port_whose_udp_side_is_taken_is_a_clear_error() -> None:
    with _udp_taken() as port:
        relay = LinkRelay("wan", HOST, 8080, listen_port=port, udp=True)
        with pytest.raises(LinkPortUnavailable, match=rf"TCP and UDP.*port {port}"):
            await relay.start()
        with socket.create_server((HOST, port)):  # the TCP side was closed again
            pass


async def test_a_taken_udp_port_makes_the_relay_try_another_then_give_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tried: list[int] = []
    real_bind = relay_module.bind_udp

    def bind_taken_twice(host: str, port: int) -> socket.socket:
        tried.append(port)
        if len(tried) <= 2:
            raise OSError(errno.EADDRINUSE, "Address already in use")
        return real_bind(host, port)

    monkeypatch.setattr(relay_module, "bind_udp", bind_taken_twice)
    async with LinkRelay("wan", HOST, 8080, udp=True) as relay:
        assert len(tried) == 3 and tried[-1] == relay.port
        assert relay.udp is not None and relay.udp.port == relay.port

    def always_taken(host: str, port: int) -> socket.socket:
        raise OSError(errno.EADDRINUSE, "Address already in use")

    monkeypatch.setattr(relay_module, "bind_udp", always_taken)
    with pytest.raises(LinkPortUnavailable, match=r"one port number free for TCP and UDP"):
        await LinkRelay("wan", HOST, 8080, udp=True).start()


def test_relay_command_and_start_link_pass_udp_on(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "--udp" not in relay_command("wan", 8080)
    assert relay_command("wan", 8080, udp=True, extra=["--seed", "1"])[-3:] == [
        "--udp",
        "--seed",
        "1",
    ]
    started: list[list[str]] = []
    monkeypatch.setattr(procs, "start_ready_child", lambda _n, argv, *_a: started.append(argv))
    procs.start_link("wan", 8080, None, Path("link.log"), udp=True)
    procs.start_link("wan", 8080, None, Path("link.log"))
    assert started == [relay_command("wan", 8080, udp=True), relay_command("wan", 8080)]


# -- the relay process ------------------------------------------------------------------------


class _TcpEcho(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        set_nodelay(transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


@contextlib.asynccontextmanager
async def tcp_and_udp_echo() -> AsyncIterator[int]:
    """TCP and UDP echoes on one port number of 127.0.0.1, as the project's servers serve."""
    loop = asyncio.get_running_loop()
    for _ in range(20):
        server = await loop.create_server(_TcpEcho, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((HOST, port))
        except OSError:
            sock.close()
            server.close()
            continue
        try:
            async with udp_echo(sock):
                yield port
        finally:
            server.close()
        return
    pytest.fail("no port number free for both TCP and UDP")


async def test_the_relay_process_with_udp_relays_both_on_one_port_number() -> None:
    async with tcp_and_udp_echo() as echo_port:
        argv = relay_command({"delay_ms": DELAY_MS, "handshake_rtts": 0}, echo_port, udp=True)
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 15)
            info = parse_link_ready_line(line.decode())
            assert info is not None, line
            assert info["udp"] is True and info["target"] == f"{HOST}:{echo_port}"
            port = info["port"]

            reader, writer = await asyncio.open_connection(HOST, port)
            sent = time.monotonic()
            writer.write(b"over tcp")
            assert await asyncio.wait_for(reader.readexactly(8), 5) == b"over tcp"
            assert time.monotonic() - sent >= 2 * DELAY_MS / 1000
            writer.close()

            async with udp_client(port) as (transport, client):
                sent = time.monotonic()
                transport.sendto(b"over udp")
                ((arrived, data),) = await replies(client, 1)
            assert data == b"over udp" and arrived - sent >= 2 * DELAY_MS / 1000

            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 10)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, err.decode()
    (stats_line,) = [ln for ln in out.decode().splitlines() if ln.startswith(LINK_STATS_PREFIX)]
    stats = json.loads(stats_line[len(LINK_STATS_PREFIX) :])
    assert stats["accepted"] == 1 and stats["bytes"]["client_to_server"] == 8
    assert stats["udp"]["port"] == port
    assert stats["udp"]["datagrams"] == {"client_to_server": 1, "server_to_client": 1}
    assert stats["udp"]["bytes"] == {"client_to_server": 8, "server_to_client": 8}


async def test_the_relay_process_without_udp_has_no_udp_keys() -> None:
    async with tcp_and_udp_echo() as echo_port:
        proc = await asyncio.create_subprocess_exec(
            *relay_command("lan", echo_port),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            info = parse_link_ready_line(
                (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
            )
            assert info is not None and "udp" not in info
            proc.send_signal(signal.SIGTERM)
            out, _ = await asyncio.wait_for(proc.communicate(), 10)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    (stats_line,) = [ln for ln in out.decode().splitlines() if ln.startswith(LINK_STATS_PREFIX)]
    assert "udp" not in json.loads(stats_line[len(LINK_STATS_PREFIX) :])


async def test_the_relay_process_exits_2_when_the_udp_side_of_its_port_is_taken() -> None:
    with _udp_taken() as port:
        argv = relay_command("wan", 8080, udp=True, extra=["--listen-port", str(port)])
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 2 and out == b""
    assert f"UDP port {port} is taken".encode() in err
