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
reported by :meth:`LinkRelay.stats`; :func:`measure_overhead` measures what the
relay adds to a round trip when it delays nothing.

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
import ctypes
import ctypes.util
import heapq
import ipaddress
import itertools
import json
import math
import os
import random
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from loadgen.link.profiles import LinkProfile, resolve_profile

#: Prefix of the line the relay process prints once it is listening.
LINK_READY_PREFIX = "RTBENCH-LINK-READY "
#: Prefix of the line the relay process prints when it stops (its counters).
LINK_STATS_PREFIX = "RTBENCH-LINK-STATS "

DEFAULT_MAX_CONNECTIONS = 1024
#: Bytes one direction of one connection may hold before it stops reading its source.
DEFAULT_MAX_BUFFER_BYTES = 4 * 1024 * 1024
#: Smallest piece a rate-limited chunk is cut into (a typical TCP MSS).
MSS_BYTES = 1448
#: Timed releases whose lateness is kept for :meth:`LinkRelay.stats`.
LATENESS_SAMPLES = 100_000

_now = time.monotonic


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


# -- timing ---------------------------------------------------------------------------


class LinkTimeline:
    """When the chunks of one direction leave the emulated link (pure arithmetic).

    ``schedule(arrival, nbytes)`` returns ``[(release_time, piece_bytes), ...]``:
    the chunk cut into pieces (one piece unless rate-limited), each released no
    earlier than ``gate``, after crossing the token bucket, plus ``delay ±
    jitter``, and never before the previous release.
    """

    def __init__(
        self,
        delay_s: float,
        jitter_s: float = 0.0,
        rate_bytes_per_s: float | None = None,
        *,
        gate: float = -math.inf,
        burst_bytes: int = 0,
        rng: random.Random | None = None,
    ) -> None:
        self.delay_s = delay_s
        self.jitter_s = jitter_s
        self.rate = rate_bytes_per_s
        self.gate = gate
        self.burst = float(burst_bytes)
        self.rng = rng or random.Random()
        self.last_release = -math.inf
        self._tokens = float(burst_bytes)
        self._tokens_at: float | None = None
        self.piece_bytes = (
            0 if rate_bytes_per_s is None else max(MSS_BYTES, int(rate_bytes_per_s / 1000))
        )

    def _delay(self) -> float:
        if self.jitter_s:
            return self.delay_s + self.rng.uniform(-self.jitter_s, self.jitter_s)
        return self.delay_s

    def _release(self, sent: float) -> float:
        release = max(self.last_release, sent + self._delay())
        self.last_release = release
        return release

    def _transmitted(self, start: float, nbytes: int) -> float:
        """When ``nbytes`` offered at ``start`` have crossed the token bucket."""
        assert self.rate is not None
        if self._tokens_at is not None:
            self._tokens = min(self.burst, self._tokens + (start - self._tokens_at) * self.rate)
        self._tokens_at = start
        self._tokens -= nbytes
        return start if self._tokens >= 0 else start - self._tokens / self.rate

    def schedule(self, arrival: float, nbytes: int) -> list[tuple[float, int]]:
        start = max(arrival, self.gate)
        if self.rate is None or nbytes == 0:
            return [(self._release(start), nbytes)]
        out = []
        step = self.piece_bytes
        for offset in range(0, nbytes, step):
            size = min(step, nbytes - offset)
            out.append((self._release(self._transmitted(start, size)), size))
        return out

    def schedule_eof(self, arrival: float) -> float:
        """When a FIN (or reset) arriving at ``arrival`` is released, after all data."""
        return max(self.last_release, max(arrival, self.gate) + self.delay_s)


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _ITimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


class _TimerFd:
    """A CLOCK_MONOTONIC timerfd armed at absolute times (Linux, through libc)."""

    _CLOCK_MONOTONIC = 1
    _TFD_NONBLOCK = os.O_NONBLOCK
    _TFD_CLOEXEC = 0o2000000
    _TFD_TIMER_ABSTIME = 1

    def __init__(self) -> None:
        if not sys.platform.startswith("linux"):
            raise OSError("timerfd is Linux only")
        if "CLOCK_MONOTONIC" not in time.get_clock_info("monotonic").implementation:
            raise OSError("time.monotonic() is not CLOCK_MONOTONIC")
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        self._create = libc.timerfd_create
        self._create.argtypes = [ctypes.c_int, ctypes.c_int]
        self._settime = libc.timerfd_settime
        self._settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_ITimerspec),
            ctypes.c_void_p,
        ]
        fd = self._create(self._CLOCK_MONOTONIC, self._TFD_NONBLOCK | self._TFD_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.fd = fd
        self._spec = _ITimerspec()

    def arm(self, when: float) -> None:
        sec = int(when)
        nsec = int((when - sec) * 1e9)
        if sec <= 0 and nsec <= 0:
            sec, nsec = 0, 1  # an all-zero value would disarm the timer
        self._spec.it_value.tv_sec = sec
        self._spec.it_value.tv_nsec = nsec
        if self._settime(self.fd, self._TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            os.read(self.fd, 8)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _Scheduler:
    """Calls callbacks at absolute ``time.monotonic()`` times, sharing one timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, precise: bool = True) -> None:
        self._loop = loop
        self._heap: list[list[Any]] = []
        self._seq = itertools.count()
        self._armed = math.inf
        self._running = False
        self._closed = False
        self._handle: asyncio.TimerHandle | None = None
        self._timerfd: _TimerFd | None = None
        if precise:
            try:
                self._timerfd = _TimerFd()
                loop.add_reader(self._timerfd.fd, self._on_timerfd)
            except (OSError, AttributeError, NotImplementedError):
                if self._timerfd is not None:
                    self._timerfd.close()
                self._timerfd = None
        self.kind = "timerfd" if self._timerfd is not None else "loop.call_later"

    def call_at(self, when: float, callback: Callable[[], None]) -> list[Any]:
        entry = [when, next(self._seq), callback]
        if self._closed:
            return entry  # the relay is shutting down: nothing fires any more
        heapq.heappush(self._heap, entry)
        if when < self._armed and not self._running:
            self._arm(when)
        return entry

    @staticmethod
    def cancel(entry: list[Any] | None) -> None:
        if entry is not None:
            entry[2] = None

    def _arm(self, when: float) -> None:
        self._armed = when
        if self._timerfd is not None:
            self._timerfd.arm(when)
            return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_later(max(0.0, when - _now()), self._run)

    def _on_timerfd(self) -> None:
        if self._timerfd is not None:
            self._timerfd.drain()
        self._run()

    def _run(self) -> None:
        self._armed = math.inf
        self._handle = None
        heap = self._heap
        now = _now()
        self._running = True
        try:
            while heap and heap[0][0] <= now:
                callback = heapq.heappop(heap)[2]
                if callback is not None:
                    try:
                        callback()
                    except Exception as exc:  # one connection's failure must not stop others
                        self._loop.call_exception_handler(
                            {"message": "link relay callback failed", "exception": exc}
                        )
        finally:
            self._running = False
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
        if heap:
            self._arm(heap[0][0])

    def close(self) -> None:
        self._closed = True
        self._heap.clear()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._timerfd is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._timerfd.fd)
            self._timerfd.close()
            self._timerfd = None


# -- one connection -------------------------------------------------------------------

_EOF = object()  # release a FIN: write_eof() on the destination
_CLOSE = object()  # the source went away: close the destination after what is queued
_ABORT = object()  # the source was reset: reset the destination after what is queued


class _Direction:
    """One direction of one relayed connection: a FIFO of timed chunks."""

    def __init__(self, pipe: _Pipe, timeline: LinkTimeline, name: str) -> None:
        self.pipe = pipe
        self.relay = pipe.relay
        self.timeline = timeline
        self.name = name
        self.queue: deque[tuple[float, Any]] = deque()
        self.queued = 0
        self.src: asyncio.Transport | None = None
        self.dst: asyncio.Transport | None = None
        self.dst_gone = False
        self.dst_paused = False
        self.src_paused = False
        self.finished = False  # a FIN, close or reset was released
        self.ended = False  # a FIN, close or reset was queued
        self.timer: list[Any] | None = None

    # input

    def feed(self, data: bytes) -> None:
        if self.ended or self.dst_gone:
            return
        now = _now()
        plan = self.timeline.schedule(now, len(data))
        queue = self.queue
        was_empty = not queue
        if len(plan) == 1:
            release = plan[0][0]
            if release <= now and was_empty and self.dst is not None:
                self.dst.write(data)  # nothing to wait for: the zero-delay fast path
                self.relay.bytes_relayed[self.name] += len(data)
                return
            queue.append((release, data))
        else:
            view = memoryview(data)
            offset = 0
            for release, size in plan:
                queue.append((release, view[offset : offset + size]))
                offset += size
        self.queued += len(data)
        self.relay._note_buffered(self.queued)
        if was_empty:
            self._arm()
        self._update_flow()

    def feed_end(self, marker: object) -> None:
        if self.ended:
            return
        self.ended = True
        if self.dst_gone:
            return
        self.queue.append((self.timeline.schedule_eof(_now()), marker))
        if len(self.queue) == 1:
            self._arm()

    # output

    def _arm(self) -> None:
        self.relay._scheduler.cancel(self.timer)
        self.timer = None
        if self.queue and self.dst is not None:
            self.timer = self.relay._scheduler.call_at(self.queue[0][0], self._fire)

    def connected(self, dst: asyncio.Transport) -> None:
        self.dst = dst
        self._arm()

    def _fire(self) -> None:
        self.timer = None
        dst = self.dst
        if dst is None or self.dst_gone:
            return
        now = _now()
        queue = self.queue
        if queue and queue[0][0] <= now:
            self.relay._note_lateness(now - queue[0][0])
        chunks: list[Any] = []
        released = 0
        marker = None
        while queue and queue[0][0] <= now:
            payload = queue.popleft()[1]
            if payload is _EOF or payload is _CLOSE or payload is _ABORT:
                marker = payload
                break
            chunks.append(payload)
            released += len(payload)
        if chunks and not dst.is_closing():
            if len(chunks) == 1:
                chunk = chunks[0]
                dst.write(chunk if isinstance(chunk, bytes) else bytes(chunk))
            else:
                dst.write(b"".join(chunks))
        self.queued -= released
        self.relay.bytes_relayed[self.name] += released
        if marker is not None:
            self._finish(dst, marker)
            return
        if queue:
            self.timer = self.relay._scheduler.call_at(queue[0][0], self._fire)
        self._update_flow()

    def _finish(self, dst: asyncio.Transport, marker: object) -> None:
        self.finished = True
        if marker is _ABORT:
            dst.abort()
        elif marker is _CLOSE:
            dst.close()
        elif dst.can_write_eof() and not dst.is_closing():
            dst.write_eof()
        else:
            dst.close()
        self.pipe._maybe_done()

    # flow control

    def set_dst_paused(self, paused: bool) -> None:
        self.dst_paused = paused
        self._update_flow()

    def _update_flow(self) -> None:
        src = self.src
        if src is None:
            return
        limit = self.relay.max_buffer_bytes
        if not self.src_paused and (self.queued > limit or self.dst_paused):
            self.src_paused = True
            with contextlib.suppress(Exception):
                src.pause_reading()
        elif self.src_paused and self.queued <= limit // 2 and not self.dst_paused:
            self.src_paused = False
            with contextlib.suppress(Exception):
                src.resume_reading()

    def drop(self) -> None:
        """The destination went away: forget what was queued for it."""
        self.dst_gone = True
        self.relay._scheduler.cancel(self.timer)
        self.timer = None
        self.queue.clear()
        self.queued = 0
        if self.src_paused and self.src is not None:
            self.src_paused = False
            with contextlib.suppress(Exception):
                self.src.resume_reading()


class _Pipe:
    """One relayed connection: the client's transport, the target's and two directions."""

    def __init__(self, relay: LinkRelay, client: asyncio.Transport) -> None:
        self.relay = relay
        self.client = client
        self.target: asyncio.Transport | None = None
        profile = relay.profile
        accepted = _now()
        charge = profile.handshake_s
        # The client may send once its SYN-ACK is back; the server's side of the
        # handshake completes one one-way delay later (when the final ACK arrives).
        gate_c2s = accepted + charge
        gate_s2c = gate_c2s + (profile.delay_s if charge > 0 else 0.0)
        self.gate = gate_c2s
        rate = profile.rate_bytes_per_s
        rng = relay._rng
        self.c2s = _Direction(
            self,
            LinkTimeline(
                profile.delay_s,
                profile.jitter_s,
                rate,
                gate=gate_c2s,
                burst_bytes=relay.burst_bytes,
                rng=rng,
            ),
            "client_to_server",
        )
        self.s2c = _Direction(
            self,
            LinkTimeline(
                profile.delay_s,
                profile.jitter_s,
                rate,
                gate=gate_s2c,
                burst_bytes=relay.burst_bytes,
                rng=rng,
            ),
            "server_to_client",
        )
        self.c2s.src = client
        self.s2c.dst = client
        self.client_lost = False
        self.target_lost = False
        self.target_failed = False
        self._connect_task: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(
            self._connect()
        )

    async def _connect(self) -> None:
        relay = self.relay
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_connection(
                lambda: _TargetProtocol(self), relay.target_host, relay.target_port
            )
        except OSError:
            self._connect_task = None
            relay.target_failures += 1
            self.target_failed = True
            # A refused connect reaches the client after the handshake charge, as a reset.
            relay._scheduler.call_at(self.gate, self._reset_client)
            self._maybe_done()
            return
        self._connect_task = None
        if relay._closing:
            transport.abort()
            return
        _set_nodelay(transport)
        self.target = transport
        self.s2c.src = transport
        # What the client sent meanwhile (even if it has gone since) is delivered in time.
        self.c2s.connected(transport)
        self.c2s._update_flow()

    def _reset_client(self) -> None:
        if not self.client_lost:
            _reset(self.client)

    def on_client_lost(self, exc: BaseException | None) -> None:
        self.client_lost = True
        self.s2c.drop()
        self.c2s.src = None
        self.c2s.feed_end(_CLOSE if exc is None else _ABORT)
        self._maybe_done()

    def on_target_lost(self, exc: BaseException | None) -> None:
        self.target_lost = True
        self.c2s.drop()
        self.s2c.src = None
        self.s2c.feed_end(_CLOSE if exc is None else _ABORT)
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self.c2s.finished and self.s2c.finished:
            # Both FINs were delivered: close what is still open (buffers are flushed first).
            if not self.client_lost:
                self.client.close()
            if self.target is not None and not self.target_lost:
                self.target.close()
        if self.client_lost and (self.target_lost or self.target_failed):
            self.relay._pipes.discard(self)

    def abort(self) -> None:
        if self._connect_task is not None:
            self._connect_task.cancel()
        for direction in (self.c2s, self.s2c):
            self.relay._scheduler.cancel(direction.timer)
            direction.timer = None
        self.client.abort()
        if self.target is not None:
            self.target.abort()


def _set_nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _reset(transport: asyncio.Transport) -> None:
    """Close with a TCP reset (SO_LINGER 0), so the peer sees ECONNRESET."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _ClientProtocol(asyncio.Protocol):
    def __init__(self, relay: LinkRelay) -> None:
        self.relay = relay
        self.pipe: _Pipe | None = None

    def connection_made(self, transport: Any) -> None:  # uvloop's are not asyncio.Transport
        relay = self.relay
        if relay._closing or len(relay._pipes) >= relay.max_connections:
            relay.refused += 1
            _reset(transport)
            return
        relay.accepted += 1
        _set_nodelay(transport)
        self.pipe = _Pipe(relay, transport)
        relay._pipes.add(self.pipe)
        relay.peak_connections = max(relay.peak_connections, len(relay._pipes))

    def data_received(self, data: bytes) -> None:
        if self.pipe is not None:
            self.pipe.c2s.feed(data)

    def eof_received(self) -> bool:
        if self.pipe is not None:
            self.pipe.c2s.feed_end(_EOF)
        return True

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.pipe is not None:
            self.pipe.on_client_lost(exc)

    def pause_writing(self) -> None:
        if self.pipe is not None:
            self.pipe.s2c.set_dst_paused(True)

    def resume_writing(self) -> None:
        if self.pipe is not None:
            self.pipe.s2c.set_dst_paused(False)


class _TargetProtocol(asyncio.Protocol):
    def __init__(self, pipe: _Pipe) -> None:
        self.pipe = pipe

    def data_received(self, data: bytes) -> None:
        self.pipe.s2c.feed(data)

    def eof_received(self) -> bool:
        self.pipe.s2c.feed_end(_EOF)
        return True

    def connection_lost(self, exc: BaseException | None) -> None:
        self.pipe.on_target_lost(exc)

    def pause_writing(self) -> None:
        self.pipe.c2s.set_dst_paused(True)

    def resume_writing(self) -> None:
        self.pipe.c2s.set_dst_paused(False)


# -- the relay ------------------------------------------------------------------------


def _percentile(sorted_values: list[float], q: float) -> float:
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
        self._rng = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._scheduler: _Scheduler
        self._pipes: set[_Pipe] = set()
        self._closing = False
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
        return len(self._pipes)

    @property
    def timer(self) -> str:
        """``"timerfd"`` or ``"loop.call_later"``: what times the releases."""
        return self._scheduler.kind

    async def start(self) -> LinkRelay:
        loop = asyncio.get_running_loop()
        self._scheduler = _Scheduler(loop, self.precise_timer)
        try:
            self._server = await loop.create_server(
                lambda: _ClientProtocol(self),
                self.listen_host,
                self.listen_port,
                reuse_address=True,
                backlog=min(4096, max(128, self.max_connections)),
            )
        except BaseException:
            self._scheduler.close()
            raise
        return self

    async def aclose(self) -> None:
        """Stop listening, reset every open connection and stop the timer."""
        if self._closing:
            return
        self._closing = True
        if self._server is not None:
            self._server.close()
        for pipe in list(self._pipes):
            pipe.abort()
        self._pipes.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)
        await asyncio.sleep(0)  # let connection_lost callbacks run
        self._scheduler.close()

    async def __aenter__(self) -> LinkRelay:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _note_lateness(self, late_s: float) -> None:
        self._lateness.append(late_s)

    def _note_buffered(self, queued: int) -> None:
        if queued > self.peak_buffered_bytes:
            self.peak_buffered_bytes = queued

    def stats(self) -> dict[str, Any]:
        """Counters and the lateness of timed releases (microseconds)."""
        late = sorted(self._lateness)
        timer = {
            "kind": self._scheduler.kind if hasattr(self, "_scheduler") else None,
            "releases": len(late),
            "late_p50_us": round(_percentile(late, 50) * 1e6, 1) if late else None,
            "late_p99_us": round(_percentile(late, 99) * 1e6, 1) if late else None,
            "late_max_us": round(late[-1] * 1e6, 1) if late else None,
        }
        return {
            "profile": self.profile.as_dict(),
            "accepted": self.accepted,
            "refused": self.refused,
            "target_failures": self.target_failures,
            "active": len(self._pipes),
            "peak_connections": self.peak_connections,
            "peak_buffered_bytes": self.peak_buffered_bytes,
            "bytes": dict(self.bytes_relayed),
            "timer": timer,
        }


# -- a plain TCP echo and the overhead measurement -------------------------------------


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        _set_nodelay(transport)

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
    d50, d99 = _percentile(direct_us, 50), _percentile(direct_us, 99)
    r50, r99 = _percentile(relayed_us, 50), _percentile(relayed_us, 99)
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


# -- the relay process's ready line --------------------------------------------------


def format_link_ready_line(info: Mapping[str, Any]) -> str:
    """``RTBENCH-LINK-READY {"port": ..., "profile": {...}, ...}`` (one line, no newline)."""
    ordered = {key: info[key] for key in ("port", "profile") if key in info}
    ordered.update({k: v for k, v in info.items() if k not in ordered})
    return LINK_READY_PREFIX + json.dumps(ordered)


def parse_link_ready_line(line: str) -> dict[str, Any] | None:
    """The JSON object of a relay's ready line, or None when ``line`` is not one."""
    line = line.strip()
    prefix = LINK_READY_PREFIX.strip()
    if not line.startswith(prefix + " "):
        return None
    try:
        info = json.loads(line[len(prefix) :])
    except ValueError:
        return None
    if (
        not isinstance(info, dict)
        or type(info.get("port")) is not int
        or not isinstance(info.get("profile"), dict)
    ):
        return None
    return info


def relay_command(
    profile: LinkProfile | str | Mapping[str, Any],
    target_port: int,
    *,
    target_host: str = "127.0.0.1",
    python: str | None = None,
    extra: list[str] | None = None,
) -> list[str]:
    """The argv that runs the relay as its own process (see ``python -m loadgen.link``)."""
    resolved = check_relay_profile(resolve_profile(profile))
    check_loopback_target(target_host)
    return [
        python or sys.executable,
        "-m",
        "loadgen.link",
        "relay",
        "--profile",
        json.dumps(resolved.as_dict()),
        "--target",
        f"{target_host}:{target_port}",
        *(extra or []),
    ]
