"""The relay's datagram side: UDP flows delayed by the same timeline and timer as TCP.

::

    sock = bind_udp("127.0.0.1", relay_port)     # the TCP listener's port number
    udp = UdpRelay(profile, "127.0.0.1", server_port, scheduler, rng=rng)
    udp.start(sock)                               # in the running loop; relays until close()
    udp.stats()                                   # counters, see UdpRelay.stats
    udp.close()

:class:`loadgen.link.relay.LinkRelay` does this when made with ``udp=True``:
HTTP/3 runs over QUIC, that is UDP, and must cross the same emulated link as
TCP, on the same port number (servers serve HTTP/3 on the UDP port numbered
like their TCP port).

Each client address (ip, port) is a *flow* with its own upstream socket,
connected to the target (a loopback address), so the target's replies map
back to that client. Each datagram, each direction, leaves at ``max(previous
release of that direction of that flow, arrival + delay ± jitter)``, after
crossing that direction's token bucket whole (serialised by its size):
:meth:`~loadgen.link.timeline.LinkTimeline.schedule_datagram` computes the
time and the relay's :class:`~loadgen.link.scheduler.Scheduler` fires it, the
same code that times TCP. A flow never reorders. No handshake is charged:
QUIC's handshake is real datagrams, which the delay already charges.

UDP has no back-pressure, so the bounds drop and count instead of waiting:

* at most ``max_flows`` flows: a datagram from a new client address beyond
  that is dropped;
* at most ``max_queue_bytes`` waiting in each direction of a flow, the delay
  line included (on a rate-limited link the bottleneck's buffer is what is
  left after ``rate x delay``): a datagram beyond that is dropped, as a full
  router queue drops its tail;
* a flow with no datagram either way for ``idle_timeout_s`` is closed with its
  upstream socket; the client's next datagram opens a new flow (from a new
  upstream port, which the target sees as the client having moved).

A target port nobody listens on answers with ICMP port unreachable, which the
upstream socket reports as ECONNREFUSED: it is counted (``target_refused``)
and the client hears nothing, as it would from a real path (the relay cannot
forward ICMP). Sockets are driven by ``loop.add_reader`` and non-blocking
sends: a datagram the kernel will not take at once is dropped and counted
(``send_failed``), never buffered without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from loadgen.link.checks import LinkUnsupported, check_loopback_target, check_relay_profile
from loadgen.link.profiles import LinkProfile
from loadgen.link.scheduler import LATENESS_SAMPLES, Scheduler, lateness_summary
from loadgen.link.timeline import MSS_BYTES, LinkTimeline

_now = time.monotonic

DEFAULT_MAX_FLOWS = 1024
#: Bytes one direction of one flow may hold; more are dropped.
DEFAULT_MAX_QUEUE_BYTES = 4 * 1024 * 1024
#: Above QUIC's usual idle timeouts (30-60 s), so a live connection keeps its flow.
DEFAULT_IDLE_TIMEOUT_S = 120.0
#: Largest UDP payload one read may return.
MAX_DATAGRAM_BYTES = 65535
#: Datagrams read per wake-up of one socket, so one busy flow cannot starve the others.
READ_BATCH = 64
#: Kernel socket buffers asked for (best effort): QUIC sends a window's datagrams in bursts.
SOCKET_BUFFER_BYTES = 1 << 20

C2S = "client_to_server"
S2C = "server_to_client"

Address = tuple[Any, ...]


def _udp_socket(host: str) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
    return sock


def bind_udp(host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to ``(host, port)``, ``host`` a loopback address.

    Raises OSError (``EADDRINUSE``) when the port is taken. SO_REUSEADDR is left off:
    on Linux it would let this socket share a UDP port that another socket holds.
    """
    sock = _udp_socket(check_loopback_target(host))
    try:
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class _Direction:
    """One direction of one flow: datagrams waiting for their release times, in order."""

    def __init__(self, udp: UdpRelay, name: str, send: Callable[[bytes], None]) -> None:
        profile = udp.profile
        self.udp = udp
        self.name = name
        self.send = send
        self.timeline = LinkTimeline(
            profile.delay_s,
            profile.jitter_s,
            profile.rate_bytes_per_s,
            burst_bytes=udp.burst_bytes,
            rng=udp.rng,
        )
        self.queue: deque[tuple[float, bytes]] = deque()
        self.queued = 0
        self.timer: list[Any] | None = None

    def feed(self, data: bytes, arrival: float) -> None:
        udp = self.udp
        if self.queued + len(data) > udp.max_queue_bytes:
            # Dropped before the timeline: a datagram that never crosses takes no tokens.
            udp.dropped_queue_full[self.name] += 1
            return
        release = self.timeline.schedule_datagram(arrival, len(data))
        queue = self.queue
        if not queue and release <= _now():
            self.send(data)  # nothing to wait for: the zero-delay fast path
            return
        queue.append((release, data))
        self.queued += len(data)
        udp.note_queued(self.queued)
        if len(queue) == 1:
            self.timer = udp.scheduler.call_at(release, self._fire)

    def _fire(self) -> None:
        self.timer = None
        now = _now()
        queue = self.queue
        if queue and queue[0][0] <= now:
            self.udp.lateness.append(now - queue[0][0])
        while queue and queue[0][0] <= now:
            data = queue.popleft()[1]
            self.queued -= len(data)
            self.send(data)
        if queue:
            self.timer = self.udp.scheduler.call_at(queue[0][0], self._fire)

    def close(self) -> None:
        Scheduler.cancel(self.timer)
        self.timer = None
        self.queue.clear()
        self.queued = 0


class _Flow:
    """One client address: its own upstream socket, connected to the target, and two directions."""

    def __init__(self, udp: UdpRelay, client: Address, now: float) -> None:
        self.udp = udp
        self.client = client
        self.last_active = now
        sock = _udp_socket(udp.target_host)
        try:
            # A UDP connect sends nothing: it fixes the peer, so the kernel delivers
            # only the target's datagrams here and reports its ICMP errors.
            sock.connect((udp.target_host, udp.target_port))
            udp.loop.add_reader(sock.fileno(), self._readable)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.c2s = _Direction(udp, C2S, self._send_upstream)
        self.s2c = _Direction(udp, S2C, self._send_client)

    @property
    def idle(self) -> bool:
        return not self.c2s.queue and not self.s2c.queue

    def touch(self, now: float) -> None:
        self.last_active = now
        self.udp.flows.move_to_end(self.client)

    def _readable(self) -> None:
        udp = self.udp
        for _ in range(READ_BATCH):
            try:
                data = self.sock.recv(MAX_DATAGRAM_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionRefusedError:
                udp.target_refused += 1  # ICMP port unreachable for an earlier datagram
                continue
            except OSError:
                udp.socket_errors += 1
                continue
            now = _now()
            self.touch(now)
            self.s2c.feed(data, now)

    def _send_upstream(self, data: bytes) -> None:
        udp = self.udp
        for _ in range(2):
            try:
                self.sock.send(data)
            except ConnectionRefusedError:
                # The error is an earlier datagram's ICMP reply, reported (and cleared) by
                # this send, which did not go out: it gets one more try of its own.
                udp.target_refused += 1
                continue
            except OSError:
                break
            udp.count_sent(C2S, len(data))
            return
        udp.send_failed[C2S] += 1

    def _send_client(self, data: bytes) -> None:
        self.udp.send_to_client(data, self.client)

    def close(self) -> None:
        self.c2s.close()
        self.s2c.close()
        with contextlib.suppress(Exception):
            self.udp.loop.remove_reader(self.sock.fileno())
        self.sock.close()


class UdpRelay:
    """Relays UDP datagrams to ``target_host:target_port`` through the emulated link.

    ``profile`` is a resolved :class:`LinkProfile` (no loss); ``scheduler`` is the
    relay's, shared with its TCP connections. Raises :class:`LinkUnsupported` for a
    non-loopback target and ValueError for limits out of range. Call :meth:`start`
    with a bound socket (:func:`bind_udp`) in the running loop, :meth:`close` to stop.
    """

    def __init__(
        self,
        profile: LinkProfile,
        target_host: str,
        target_port: int,
        scheduler: Scheduler,
        *,
        rng: random.Random | None = None,
        burst_bytes: int = 0,
        max_flows: int = DEFAULT_MAX_FLOWS,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    ) -> None:
        self.profile = check_relay_profile(profile)
        self.target_host = check_loopback_target(target_host)
        if not 0 < target_port < 65536:
            raise LinkUnsupported(f"relay target port {target_port} is not in 1..65535")
        self.target_port = target_port
        check_udp_limits(max_flows, max_queue_bytes, idle_timeout_s)
        if burst_bytes < 0:
            raise ValueError("burst_bytes >= 0")
        self.scheduler = scheduler
        self.rng = rng or random.Random()
        self.burst_bytes = burst_bytes
        self.max_flows = max_flows
        self.max_queue_bytes = max_queue_bytes
        self.idle_timeout_s = idle_timeout_s
        self.loop: asyncio.AbstractEventLoop
        self.sock: socket.socket | None = None
        self.port: int | None = None
        # Least recently active first, so idle flows are found at the front.
        self.flows: OrderedDict[Address, _Flow] = OrderedDict()
        self._expiry: asyncio.TimerHandle | None = None
        self.lateness: deque[float] = deque(maxlen=LATENESS_SAMPLES)
        self.flows_opened = 0
        self.flows_expired = 0
        self.flows_failed = 0
        self.peak_flows = 0
        self.peak_queued_bytes = 0
        self.target_refused = 0
        self.socket_errors = 0
        self.dropped_flow_limit = 0
        self.datagrams = {C2S: 0, S2C: 0}
        self.bytes_relayed = {C2S: 0, S2C: 0}
        self.dropped_queue_full = {C2S: 0, S2C: 0}
        self.send_failed = {C2S: 0, S2C: 0}

    def start(self, sock: socket.socket) -> None:
        """Relay what arrives on ``sock`` (a bound UDP socket, see :func:`bind_udp`)."""
        self.loop = asyncio.get_running_loop()
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self.loop.add_reader(sock.fileno(), self._readable)
        self.sock = sock

    def close(self) -> None:
        """Close every flow and the listening socket; what was queued is dropped."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        for flow in self.flows.values():
            flow.close()
        self.flows.clear()
        if self.sock is not None:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    # datagrams in and out

    def _readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        for _ in range(READ_BATCH):
            try:
                data, client = sock.recvfrom(MAX_DATAGRAM_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.socket_errors += 1
                continue
            now = _now()
            flow = self.flows.get(client)
            if flow is None:
                flow = self._open(client, now)
                if flow is None:
                    continue
            else:
                flow.touch(now)
            flow.c2s.feed(data, now)

    def send_to_client(self, data: bytes, client: Address) -> None:
        if self.sock is None:
            return
        try:
            self.sock.sendto(data, client)
        except OSError:
            self.send_failed[S2C] += 1
            return
        self.count_sent(S2C, len(data))

    def count_sent(self, direction: str, nbytes: int) -> None:
        self.datagrams[direction] += 1
        self.bytes_relayed[direction] += nbytes

    def note_queued(self, queued: int) -> None:
        """Keep the largest number of bytes one direction of one flow held at once."""
        if queued > self.peak_queued_bytes:
            self.peak_queued_bytes = queued

    # flows

    def _open(self, client: Address, now: float) -> _Flow | None:
        if len(self.flows) >= self.max_flows:
            self.dropped_flow_limit += 1
            return None
        try:
            flow = _Flow(self, client, now)
        except OSError:  # out of file descriptors or ports: this datagram is lost
            self.flows_failed += 1
            return None
        self.flows[client] = flow
        self.flows_opened += 1
        self.peak_flows = max(self.peak_flows, len(self.flows))
        if self._expiry is None:
            self._arm_expiry(now + self.idle_timeout_s)
        return flow

    def _arm_expiry(self, when: float) -> None:
        self._expiry = self.loop.call_later(max(0.0, when - _now()), self._expire)

    def _expire(self) -> None:
        self._expiry = None
        now = _now()
        flows = self.flows
        while flows:
            client, flow = next(iter(flows.items()))
            if flow.last_active + self.idle_timeout_s > now:
                break
            if not flow.idle:
                flow.touch(now)  # datagrams are still crossing: not idle yet
                continue
            del flows[client]
            flow.close()
            self.flows_expired += 1
        if flows:
            self._arm_expiry(next(iter(flows.values())).last_active + self.idle_timeout_s)

    def stats(self) -> dict[str, Any]:
        """Counters per direction, drops by cause, flows, and the lateness of timed releases."""
        return {
            "port": self.port,
            "target": f"{self.target_host}:{self.target_port}",
            "max_flows": self.max_flows,
            "max_queue_bytes": self.max_queue_bytes,
            "idle_timeout_s": self.idle_timeout_s,
            "flows": {
                "active": len(self.flows),
                "opened": self.flows_opened,
                "peak": self.peak_flows,
                "expired": self.flows_expired,
                "failed": self.flows_failed,
            },
            "datagrams": dict(self.datagrams),
            "bytes": dict(self.bytes_relayed),
            "dropped": {
                "flow_limit": self.dropped_flow_limit,
                "queue_full": dict(self.dropped_queue_full),
                "send_failed": dict(self.send_failed),
            },
            "target_refused": self.target_refused,
            "socket_errors": self.socket_errors,
            "peak_queued_bytes": self.peak_queued_bytes,
            "timer": lateness_summary(self.lateness),
        }


def check_udp_limits(max_flows: int, max_queue_bytes: int, idle_timeout_s: float) -> None:
    """ValueError unless ``max_flows >= 1``, ``max_queue_bytes >= 1448`` and the timeout > 0."""
    if max_flows < 1 or max_queue_bytes < MSS_BYTES or not idle_timeout_s > 0:
        raise ValueError(
            f"udp limits: max_flows >= 1, max_queue_bytes >= {MSS_BYTES}, idle_timeout_s > 0 "
            f"(got {max_flows}, {max_queue_bytes}, {idle_timeout_s})"
        )
