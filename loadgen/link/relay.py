"""The userspace link emulator: a TCP and UDP relay that delays, shapes and charges handshakes.

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

**UDP** (``udp=True``, for HTTP/3 over QUIC): the relay also binds a UDP
socket on 127.0.0.1 with the same port number as its TCP listener (if that UDP
port is taken it closes both and tries another port, at most
:data:`PORT_PAIR_ATTEMPTS` times) and forwards each client address's datagrams
to the target's UDP port with the target's TCP port number, delayed and shaped
by the same timeline and timer, whole datagrams in order, with no handshake
charge; see :mod:`loadgen.link.udp` for its bounds and counters
(``stats()["udp"]``).

The parts: :mod:`loadgen.link.timeline` computes release times,
:mod:`loadgen.link.scheduler` fires them, :mod:`loadgen.link.pipe` moves one
connection's bytes, :mod:`loadgen.link.udp` moves datagrams, this module
listens and counts, :mod:`loadgen.link.checks` says what is refused, and
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
import errno
import random
from collections import deque
from collections.abc import Mapping
from typing import Any

from loadgen.link.checks import LinkUnsupported, check_loopback_target, check_relay_profile
from loadgen.link.pipe import ClientProtocol, Pipe
from loadgen.link.profiles import LinkProfile, resolve_profile
from loadgen.link.scheduler import LATENESS_SAMPLES, Scheduler, lateness_summary
from loadgen.link.timeline import MSS_BYTES
from loadgen.link.udp import (
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_MAX_FLOWS,
    DEFAULT_MAX_QUEUE_BYTES,
    UdpRelay,
    bind_udp,
    check_udp_limits,
)

DEFAULT_MAX_CONNECTIONS = 1024
#: Bytes one direction of one connection may hold before it stops reading its source.
DEFAULT_MAX_BUFFER_BYTES = 4 * 1024 * 1024
#: Ports tried for a TCP listener whose UDP port number is free too, before giving up.
PORT_PAIR_ATTEMPTS = 20


class LinkPortUnavailable(OSError):
    """No port number free for both the TCP listener and the UDP socket; the message says why."""


class LinkRelay:
    """The userspace link emulator: ``async with LinkRelay("wan", "127.0.0.1", port) as r``.

    ``profile`` is a :class:`LinkProfile`, a preset name or a table (see
    :func:`resolve_profile`). Raises :class:`LinkUnsupported` for a non-loopback
    target or listen address, or a profile with loss. With ``udp=True`` it relays
    UDP too, on the same port number (:attr:`port`), to ``target_port``'s UDP
    port, within ``udp_max_flows``, ``udp_max_queue_bytes`` and
    ``udp_idle_timeout_s`` (see :mod:`loadgen.link.udp`); :meth:`start` raises
    :class:`LinkPortUnavailable` when no port number is free for both.
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
        udp: bool = False,
        udp_max_flows: int = DEFAULT_MAX_FLOWS,
        udp_max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        udp_idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
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
        if udp:
            check_udp_limits(udp_max_flows, udp_max_queue_bytes, udp_idle_timeout_s)
        self.udp_enabled = udp
        self.udp_max_flows = udp_max_flows
        self.udp_max_queue_bytes = udp_max_queue_bytes
        self.udp_idle_timeout_s = udp_idle_timeout_s
        self.udp: UdpRelay | None = None
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
            self._server = await self._listen(loop)
        except BaseException:
            self.scheduler.close()
            raise
        return self

    async def _listen(self, loop: asyncio.AbstractEventLoop) -> asyncio.Server:
        """The TCP listener, and with ``udp`` the UDP socket on the same port number."""
        udp = None
        if self.udp_enabled:
            udp = UdpRelay(
                self.profile,
                self.target_host,
                self.target_port,
                self.scheduler,
                rng=self.rng,
                burst_bytes=self.burst_bytes,
                max_flows=self.udp_max_flows,
                max_queue_bytes=self.udp_max_queue_bytes,
                idle_timeout_s=self.udp_idle_timeout_s,
            )
        attempts = PORT_PAIR_ATTEMPTS if udp is not None and self.listen_port == 0 else 1
        for _ in range(attempts):
            server = await loop.create_server(
                lambda: ClientProtocol(self),
                self.listen_host,
                self.listen_port,
                reuse_address=True,
                backlog=min(4096, max(128, self.max_connections)),
            )
            if udp is None:
                return server
            port = server.sockets[0].getsockname()[1]
            try:
                sock = bind_udp(self.listen_host, port)
            except OSError as exc:
                server.close()
                await server.wait_closed()
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue  # another socket holds that UDP port: try a new TCP port
            except BaseException:
                server.close()
                raise
            try:
                udp.start(sock)
            except BaseException:
                sock.close()
                server.close()
                raise
            self.udp = udp
            return server
        taken = (
            f"UDP port {self.listen_port} is taken"
            if self.listen_port
            else f"the UDP port of each of the {attempts} TCP ports the kernel offered was taken"
        )
        raise LinkPortUnavailable(
            errno.EADDRINUSE,
            f"the relay needs one port number free for TCP and UDP on {self.listen_host} "
            f"(clients find HTTP/3 on the UDP port numbered like the TCP one), but {taken} "
            "by another socket",
        )

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
        if self.udp is not None:
            self.udp.close()
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
        """Counters and the lateness of timed releases (microseconds).

        ``"timer"`` is the TCP connections' releases; with UDP, ``"udp"`` holds
        :meth:`loadgen.link.udp.UdpRelay.stats` (its own ``"timer"`` included).
        """
        timer = {
            "kind": self.scheduler.kind if hasattr(self, "scheduler") else None,
            **lateness_summary(self._lateness),
        }
        stats = {
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
        if self.udp is not None:
            stats["udp"] = self.udp.stats()
        return stats
