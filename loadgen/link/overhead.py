"""What the userspace relay itself adds to a round trip, measured on a plain TCP echo.

::

    overhead = await measure_relay_overhead(n=300)   # a fresh echo and a zero-delay relay
    overhead.added_p50_us, overhead.as_dict()

    async with tcp_echo_server() as echo_port:        # or against a relay of your own
        async with LinkRelay("loopback", "127.0.0.1", echo_port) as relay:
            overhead = await measure_overhead(relay, echo_port, 500)

The command line has it too: ``python -m loadgen.link overhead --n 1000``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

from loadgen.link.pipe import set_nodelay
from loadgen.link.relay import LinkRelay
from loadgen.link.scheduler import percentile


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        set_nodelay(transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def eof_received(self) -> bool:
        return False  # close once the echo is written


@contextlib.asynccontextmanager
async def tcp_echo_server(host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[int]:
    """A plain TCP echo server in the running loop; yields its port."""
    server = await asyncio.get_running_loop().create_server(_Echo, host, port)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5.0)


@dataclass(frozen=True)
class Overhead:
    """Round trips on a plain TCP echo, direct and through a zero-delay relay (µs)."""

    n: int
    payload_bytes: int
    direct_p50_us: float
    direct_p99_us: float
    relayed_p50_us: float
    relayed_p99_us: float
    added_p50_us: float
    added_p99_us: float
    timer: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _round_trip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes
) -> float:
    start = time.perf_counter_ns()
    writer.write(payload)
    await reader.readexactly(len(payload))
    return (time.perf_counter_ns() - start) / 1000.0


async def measure_overhead(
    relay: LinkRelay,
    target_echo_port: int,
    n: int = 500,
    *,
    payload_bytes: int = 64,
    warmup: int = 20,
) -> Overhead:
    """What ``relay`` adds to a round trip: ``n`` round trips on a plain TCP echo.

    ``relay`` must be running with a zero profile (``"loopback"``) and forward
    to ``127.0.0.1:target_echo_port``. Round trips direct to the echo and
    through the relay alternate (each on its own established connection, the
    order swapped every time so neither always goes first); the added latency is
    the relayed percentile minus the direct one.
    """
    if not relay.profile.is_zero:
        raise ValueError(
            "measure the relay's overhead through a zero-delay relay (profile 'loopback'), "
            f"not {relay.profile.describe()}"
        )
    if relay.target_port != target_echo_port:
        raise ValueError(
            f"the relay forwards to port {relay.target_port}, not to the echo on {target_echo_port}"
        )
    if n < 1 or payload_bytes < 1:
        raise ValueError("n and payload_bytes must be >= 1")
    payload = b"x" * payload_bytes
    direct = await asyncio.open_connection("127.0.0.1", target_echo_port)
    relayed = await asyncio.open_connection("127.0.0.1", relay.port)
    direct_us: list[float] = []
    relayed_us: list[float] = []
    try:
        for _ in range(warmup):
            await _round_trip(*direct, payload)
            await _round_trip(*relayed, payload)
        for i in range(n):
            if i % 2:
                direct_us.append(await _round_trip(*direct, payload))
                relayed_us.append(await _round_trip(*relayed, payload))
            else:
                relayed_us.append(await _round_trip(*relayed, payload))
                direct_us.append(await _round_trip(*direct, payload))
    finally:
        for _, writer in (direct, relayed):
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    direct_us.sort()
    relayed_us.sort()
    d50, d99 = percentile(direct_us, 50), percentile(direct_us, 99)
    r50, r99 = percentile(relayed_us, 50), percentile(relayed_us, 99)
    return Overhead(
        n=n,
        payload_bytes=payload_bytes,
        direct_p50_us=round(d50, 1),
        direct_p99_us=round(d99, 1),
        relayed_p50_us=round(r50, 1),
        relayed_p99_us=round(r99, 1),
        added_p50_us=round(r50 - d50, 1),
        added_p99_us=round(r99 - d99, 1),
        timer=relay.timer,
    )


async def measure_relay_overhead(n: int = 500, payload_bytes: int = 64) -> Overhead:
    """:func:`measure_overhead` on a fresh echo server and a fresh zero-delay relay."""
    async with (
        tcp_echo_server() as echo_port,
        LinkRelay("loopback", "127.0.0.1", echo_port) as relay,
    ):
        return await measure_overhead(relay, echo_port, n, payload_bytes=payload_bytes)
