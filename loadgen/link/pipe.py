"""One relayed connection: the client's side, the target's side and a timed FIFO each way.

::

    server = await loop.create_server(lambda: ClientProtocol(relay), "127.0.0.1", 0)

``relay`` is anything shaped like :class:`RelayHost` (in practice a
:class:`loadgen.link.relay.LinkRelay`): it holds the profile, the limits, the
shared :class:`~loadgen.link.scheduler.Scheduler` and the counters. Each
accepted connection becomes a :class:`Pipe` that dials the target and moves
bytes both ways through a :class:`~loadgen.link.timeline.LinkTimeline`: held
until the handshake charge is paid, then released at their scheduled times,
in order, with FIN, close and reset travelling after the data. A direction
stops reading its source while more than ``max_buffer_bytes`` wait or the
destination's write buffer is full. :func:`set_nodelay` and
:func:`reset_transport` are the two socket options the relay needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from collections import deque
from typing import Any, Protocol

from loadgen.link.profiles import LinkProfile
from loadgen.link.scheduler import Scheduler
from loadgen.link.timeline import LinkTimeline

_now = time.monotonic


class RelayHost(Protocol):
    """What a :class:`Pipe` reads from and counts into its relay."""

    profile: LinkProfile
    target_host: str
    target_port: int
    max_connections: int
    max_buffer_bytes: int
    burst_bytes: int
    rng: random.Random
    scheduler: Scheduler
    pipes: set[Pipe]
    closing: bool
    accepted: int
    refused: int
    target_failures: int
    peak_connections: int
    bytes_relayed: dict[str, int]

    def note_lateness(self, late_s: float) -> None: ...

    def note_buffered(self, queued: int) -> None: ...


_EOF = object()  # release a FIN: write_eof() on the destination
_CLOSE = object()  # the source went away: close the destination after what is queued
_ABORT = object()  # the source was reset: reset the destination after what is queued


class _Backpressure:
    """Pauses one direction's source while too much waits in it or its destination is full.

    ``update(queued)`` after the queue changes; ``set_dst_paused`` from the
    destination's pause_writing/resume_writing; ``release()`` when the
    destination has gone.
    """

    def __init__(self, relay: RelayHost) -> None:
        self.relay = relay
        self.src: asyncio.Transport | None = None
        self.dst_paused = False
        self.src_paused = False

    def set_dst_paused(self, paused: bool, queued: int) -> None:
        self.dst_paused = paused
        self.update(queued)

    def update(self, queued: int) -> None:
        src = self.src
        if src is None:
            return
        limit = self.relay.max_buffer_bytes
        if not self.src_paused and (queued > limit or self.dst_paused):
            self.src_paused = True
            with contextlib.suppress(Exception):
                src.pause_reading()
        elif self.src_paused and queued <= limit // 2 and not self.dst_paused:
            self.src_paused = False
            with contextlib.suppress(Exception):
                src.resume_reading()

    def release(self) -> None:
        if self.src_paused and self.src is not None:
            self.src_paused = False
            with contextlib.suppress(Exception):
                self.src.resume_reading()


class _Direction:
    """One direction of one relayed connection: a FIFO of timed chunks."""

    def __init__(self, pipe: Pipe, timeline: LinkTimeline, name: str) -> None:
        self.pipe = pipe
        self.relay = pipe.relay
        self.timeline = timeline
        self.name = name
        self.queue: deque[tuple[float, Any]] = deque()
        self.queued = 0
        self.flow = _Backpressure(pipe.relay)
        self.dst: asyncio.Transport | None = None
        self.dst_gone = False
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
        self.relay.note_buffered(self.queued)
        if was_empty:
            self._arm()
        self.update_flow()

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
        self.relay.scheduler.cancel(self.timer)
        self.timer = None
        if self.queue and self.dst is not None:
            self.timer = self.relay.scheduler.call_at(self.queue[0][0], self._fire)

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
            self.relay.note_lateness(now - queue[0][0])
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
            self.timer = self.relay.scheduler.call_at(queue[0][0], self._fire)
        self.update_flow()

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
        self.flow.set_dst_paused(paused, self.queued)

    def update_flow(self) -> None:
        self.flow.update(self.queued)

    def drop(self) -> None:
        """The destination went away: forget what was queued for it."""
        self.dst_gone = True
        self.relay.scheduler.cancel(self.timer)
        self.timer = None
        self.queue.clear()
        self.queued = 0
        self.flow.release()


class Pipe:
    """One relayed connection: the client's transport, the target's and two directions."""

    def __init__(self, relay: RelayHost, client: asyncio.Transport) -> None:
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
        self.c2s = self._direction(gate_c2s, "client_to_server")
        self.s2c = self._direction(gate_s2c, "server_to_client")
        self.c2s.flow.src = client
        self.s2c.dst = client
        self.client_lost = False
        self.target_lost = False
        self.target_failed = False
        self._connect_task: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(
            self._connect()
        )

    def _direction(self, gate: float, name: str) -> _Direction:
        """A direction on the relay's profile whose first byte may leave at ``gate``."""
        relay = self.relay
        profile = relay.profile
        timeline = LinkTimeline(
            profile.delay_s,
            profile.jitter_s,
            profile.rate_bytes_per_s,
            gate=gate,
            burst_bytes=relay.burst_bytes,
            rng=relay.rng,
        )
        return _Direction(self, timeline, name)

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
            relay.scheduler.call_at(self.gate, self._reset_client)
            self._maybe_done()
            return
        self._connect_task = None
        if relay.closing:
            transport.abort()
            return
        set_nodelay(transport)
        self.target = transport
        self.s2c.flow.src = transport
        # What the client sent meanwhile (even if it has gone since) is delivered in time.
        self.c2s.connected(transport)
        self.c2s.update_flow()

    def _reset_client(self) -> None:
        if not self.client_lost:
            reset_transport(self.client)

    def on_client_lost(self, exc: BaseException | None) -> None:
        self.client_lost = True
        self._side_lost(self.c2s, self.s2c, exc)

    def on_target_lost(self, exc: BaseException | None) -> None:
        self.target_lost = True
        self._side_lost(self.s2c, self.c2s, exc)

    def _side_lost(
        self, outgoing: _Direction, incoming: _Direction, exc: BaseException | None
    ) -> None:
        """A side went away: drop what was queued for it, and end what it sent after its data."""
        incoming.drop()
        outgoing.flow.src = None
        outgoing.feed_end(_CLOSE if exc is None else _ABORT)
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self.c2s.finished and self.s2c.finished:
            # Both FINs were delivered: close what is still open (buffers are flushed first).
            if not self.client_lost:
                self.client.close()
            if self.target is not None and not self.target_lost:
                self.target.close()
        if self.client_lost and (self.target_lost or self.target_failed):
            self.relay.pipes.discard(self)

    def abort(self) -> None:
        if self._connect_task is not None:
            self._connect_task.cancel()
        for direction in (self.c2s, self.s2c):
            self.relay.scheduler.cancel(direction.timer)
            direction.timer = None
        self.client.abort()
        if self.target is not None:
            self.target.abort()


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle off on ``transport``'s socket, so small writes leave at once."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def reset_transport(transport: asyncio.Transport) -> None:
    """Close with a TCP reset (SO_LINGER 0), so the peer sees ECONNRESET."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class ClientProtocol(asyncio.Protocol):
    """The relay's listening side: ``loop.create_server(lambda: ClientProtocol(relay), ...)``.

    Resets a client over ``max_connections`` or while the relay closes; else starts a :class:`Pipe`.
    """

    def __init__(self, relay: RelayHost) -> None:
        self.relay = relay
        self.pipe: Pipe | None = None

    def connection_made(self, transport: Any) -> None:  # uvloop's are not asyncio.Transport
        relay = self.relay
        if relay.closing or len(relay.pipes) >= relay.max_connections:
            relay.refused += 1
            reset_transport(transport)
            return
        relay.accepted += 1
        set_nodelay(transport)
        self.pipe = Pipe(relay, transport)
        relay.pipes.add(self.pipe)
        relay.peak_connections = max(relay.peak_connections, len(relay.pipes))

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
    def __init__(self, pipe: Pipe) -> None:
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
