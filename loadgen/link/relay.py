"""The userspace link emulator: an asyncio TCP relay that delays, shapes and charges handshakes.

::

    async with tcp_echo_server() as echo_port:
        async with LinkRelay("wan", "127.0.0.1", echo_port) as relay:
            reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
            ...                                   # every round trip now costs ~50 ms

The relay listens on 127.0.0.1 (port 0 unless told) and forwards each accepted
connection to one target, which must be a loopback address. Per direction:

* **delay**: every chunk read is released ``delay ± jitter`` after it arrived,
  never before the chunk read ahead of it: ``release = max(previous release,
  arrival + delay + jitter sample)``, so nothing is ever reordered (a burst of
  jitter holds back what follows, as a FIFO link would);
* **rate**: a token bucket (``rate_mbit``, burst ``burst_bytes``, 0 by default:
  a plain serialising link) sets when each chunk has finished crossing the
  bottleneck; the delay starts from then. Chunks are cut into pieces of at most
  one MSS or 1 ms of transmission (whichever is larger) so a big write streams
  out at the rate instead of arriving all at once;
* **handshake**: a connection's bytes are held until ``handshake_rtts x RTT``
  after it was accepted (the server's first bytes one one-way delay later than
  the client's), then delayed as usual. On loopback the client's ``connect()``
  returns at once and a relay would otherwise hide the SYN / SYN-ACK round
  trip, so a new connection's first round trip costs ``(1 + handshake_rtts) x
  RTT`` and later ones ``RTT``. A target that refuses is reported to the client
  as a reset at the same moment.

Release times are absolute (``time.monotonic()``), so timer lateness never
accumulates; on Linux the timer is a ``timerfd`` armed for the next release
(nanosecond resolution, where ``loop.call_at`` would round to milliseconds),
elsewhere ``loop.call_later``. The lateness of every timed release is kept and
reported by :meth:`LinkRelay.stats`; :func:`loadgen.link.overhead.measure_overhead`
measures what the relay adds to a round trip when it delays nothing.

The parts: :mod:`loadgen.link.timeline` computes release times,
:mod:`loadgen.link.scheduler` fires them, :mod:`loadgen.link.pipe` moves one
connection's bytes, this module listens and counts, and
:mod:`loadgen.link.command` runs it as its own process.

Resources are bounded: at most ``max_connections`` connections at once (more are
reset on accept), and a direction stops reading its source while more than
``max_buffer_bytes`` wait in the relay or the destination's write buffer is
full, so a fast sender is held back by TCP flow control rather than by memory.

How it differs from a real network path:

* no packets: it shapes the byte stream the kernel hands it, so there is no
  loss (``loss_pct > 0`` is refused: TCP has already recovered every segment
  before the relay sees the stream, and inventing retransmission delays would
  need the segment boundaries, RTO and congestion window the relay cannot see;
  use the kernel link for loss), no MTU or fragmentation effects, and no
  per-packet header overhead at the rate (only payload bytes are counted);
* no TCP slow start or congestion control across the emulated path: both real
  TCP connections run over loopback, so a new connection can send a full
  window at once, where a real one would ramp up over several round trips;
* the handshake is a fixed charge, not a real SYN exchange: it does not grow
  with loss, and a refused target is reported as a reset after the charge;
* ACKs are not delayed: each side's own TCP acknowledges the relay at once, so
  the sender's window is never limited by the bandwidth-delay product (only by
  ``max_buffer_bytes``);
* closing (FIN) travels with the data in order and is delayed like it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import random
from collections import deque
from collections.abc import Mapping
from typing import Any

from loadgen.link.pipe import ClientProtocol, Pipe
from loadgen.link.profiles import LinkProfile, resolve_profile
from loadgen.link.scheduler import Scheduler
from loadgen.link.timeline import MSS_BYTES

DEFAULT_MAX_CONNECTIONS = 1024
#: Bytes one direction of one connection may hold before it stops reading its source.
DEFAULT_MAX_BUFFER_BYTES = 4 * 1024 * 1024
#: Timed releases whose lateness is kept for :meth:`LinkRelay.stats`.
LATENESS_SAMPLES = 100_000


class LinkUnsupported(ValueError):
    """A profile or target the userspace relay cannot emulate; the message says why."""


def check_loopback_target(host: str) -> str:
    """``host`` when it is a loopback IP address, else :class:`LinkUnsupported`."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise LinkUnsupported(
            f"relay target {host!r} is not an IP address: the relay only forwards to a "
            "loopback address such as 127.0.0.1 (names are not resolved)"
        ) from None
    if not addr.is_loopback:
        raise LinkUnsupported(
            f"relay target {host!r} is not a loopback address: the relay only forwards to "
            "127.0.0.0/8 or ::1 (it emulates a link on one machine, it is not a proxy)"
        )
    return host


def check_relay_profile(profile: LinkProfile) -> LinkProfile:
    """``profile`` when the relay can emulate it, else :class:`LinkUnsupported`."""
    if profile.loss_pct > 0:
        raise LinkUnsupported(
            f"the userspace relay cannot emulate packet loss (profile {profile.name!r} has "
            f"loss_pct = {profile.loss_pct:g}): it forwards the byte stream after each side's "
            "TCP has already recovered every segment, and a loss would have to be invented "
            "as retransmission delay that depends on segment boundaries, RTO and congestion "
            "window the relay cannot see. Use the kernel link (netem) or loss_pct = 0."
        )
    return profile


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100) of a sorted, non-empty list."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


class LinkRelay:
    """The userspace link emulator: ``async with LinkRelay("wan", "127.0.0.1", port) as r``.

    ``profile`` is a :class:`LinkProfile`, a preset name or a table (see
    :func:`resolve_profile`). Raises :class:`LinkUnsupported` for a non-loopback
    target or listen address, or a profile with loss.
    """

    def __init__(
        self,
        profile: LinkProfile | str | Mapping[str, Any],
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        burst_bytes: int = 0,
        seed: int | None = None,
        precise_timer: bool = True,
    ) -> None:
        self.profile = check_relay_profile(resolve_profile(profile))
        self.target_host = check_loopback_target(target_host)
        if not 0 < target_port < 65536:
            raise LinkUnsupported(f"relay target port {target_port} is not in 1..65535")
        self.target_port = target_port
        self.listen_host = check_loopback_target(listen_host)
        self.listen_port = listen_port
        if max_connections < 1 or max_buffer_bytes < MSS_BYTES or burst_bytes < 0:
            raise ValueError("max_connections >= 1, max_buffer_bytes >= 1448, burst_bytes >= 0")
        self.max_connections = max_connections
        self.max_buffer_bytes = max_buffer_bytes
        self.burst_bytes = burst_bytes
        self.precise_timer = precise_timer
        # What each connection's Pipe reads and counts into (loadgen.link.pipe.RelayHost).
        self.rng = random.Random(seed)
        self._server: asyncio.Server | None = None
        self.scheduler: Scheduler
        self.pipes: set[Pipe] = set()
        self.closing = False
        self._lateness: deque[float] = deque(maxlen=LATENESS_SAMPLES)
        self.accepted = 0
        self.refused = 0
        self.target_failures = 0
        self.peak_connections = 0
        self.peak_buffered_bytes = 0
        self.bytes_relayed = {"client_to_server": 0, "server_to_client": 0}

    @property
    def port(self) -> int:
        """The port the relay listens on (127.0.0.1)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the relay is not listening: use 'async with' or await start()")
        return self._server.sockets[0].getsockname()[1]

    @property
    def active_connections(self) -> int:
        return len(self.pipes)

    @property
    def timer(self) -> str:
        """``"timerfd"`` or ``"loop.call_later"``: what times the releases."""
        return self.scheduler.kind

    async def start(self) -> LinkRelay:
        loop = asyncio.get_running_loop()
        self.scheduler = Scheduler(loop, self.precise_timer)
        try:
            self._server = await loop.create_server(
                lambda: ClientProtocol(self),
                self.listen_host,
                self.listen_port,
                reuse_address=True,
                backlog=min(4096, max(128, self.max_connections)),
            )
        except BaseException:
            self.scheduler.close()
            raise
        return self

    async def aclose(self) -> None:
        """Stop listening, reset every open connection and stop the timer."""
        if self.closing:
            return
        self.closing = True
        if self._server is not None:
            self._server.close()
        for pipe in list(self.pipes):
            pipe.abort()
        self.pipes.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)
        await asyncio.sleep(0)  # let connection_lost callbacks run
        self.scheduler.close()

    async def __aenter__(self) -> LinkRelay:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def note_lateness(self, late_s: float) -> None:
        """Keep how late one timed release fired (seconds), for :meth:`stats`."""
        self._lateness.append(late_s)

    def note_buffered(self, queued: int) -> None:
        """Keep the largest number of bytes one direction held at once."""
        if queued > self.peak_buffered_bytes:
            self.peak_buffered_bytes = queued

    def stats(self) -> dict[str, Any]:
        """Counters and the lateness of timed releases (microseconds)."""
        late = sorted(self._lateness)
        timer = {
            "kind": self.scheduler.kind if hasattr(self, "scheduler") else None,
            "releases": len(late),
            "late_p50_us": round(percentile(late, 50) * 1e6, 1) if late else None,
            "late_p99_us": round(percentile(late, 99) * 1e6, 1) if late else None,
            "late_max_us": round(late[-1] * 1e6, 1) if late else None,
        }
        return {
            "profile": self.profile.as_dict(),
            "accepted": self.accepted,
            "refused": self.refused,
            "target_failures": self.target_failures,
            "active": len(self.pipes),
            "peak_connections": self.peak_connections,
            "peak_buffered_bytes": self.peak_buffered_bytes,
            "bytes": dict(self.bytes_relayed),
            "timer": timer,
        }
