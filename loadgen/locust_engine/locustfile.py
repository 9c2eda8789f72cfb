"""Locust user classes for every rtbench transport and workload.

- :class:`EchoHttpUser` (a ``FastHttpUser``): echo request/response over
  ``POST /rpc``, keep-alive or a new connection per request.
- :class:`EchoWsUser`: echo over one WebSocket (``websocket-client``, which
  cooperates with gevent).
- :class:`HttpGroupUser` (a ``FastHttpUser``) and :class:`WsGroupUser`: the
  real-time workloads (messaging, presence, notifications, activity, mix).
  One locust user is one *group* (room) of ``group_size`` people, each with
  their own connections: short or long polling ``GET /inbox`` over HTTP, or
  WebSocket push. Whole groups sit in one process, so every delivery a
  sender causes is accounted for by that process's tracker.

The users find their process's :class:`~loadgen.locust_engine.world.World`
as ``environment.rtbench``. Every request fires locust's ``request`` event
with its response time measured with ``time.perf_counter_ns`` (not rounded),
and every delivery fires one with its real latency (request type ``PUSH`` or
``POLL``, name ``"<type> delivery"``). Requests sent before the measured
window are named with a ``" [warm-up]"`` suffix in locust's statistics.

Load is closed loop per user, as locust's always is: one request in flight
per user. An ``open`` cell paces each user at its share of the rate (the
asyncio engine's schedule); a user that falls behind sends at once and the
request is charged from its intended time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.pool
from geventhttpclient.url import URL
from locust import FastHttpUser, User, task

from loadgen.cellspec import CellRun
from loadgen.clients.errors import ClientError
from loadgen.locust_engine.engine import sleep_until
from loadgen.locust_engine.net import (
    CountingClientPool,
    WireCounter,
    http_exchange,
    ws_close,
    ws_connect,
)
from loadgen.locust_engine.users import VirtualUser
from loadgen.locust_engine.world import World, group_count
from loadgen.pacer import Pacer, split_rate
from loadgen.realtime.params import RealtimeParams
from loadgen.realtime.replies import check_echo_reply
from loadgen.realtime.samples import echo_sample
from loadgen.schema import WS_TRANSPORTS
from servers import protocol

clock = time.perf_counter_ns

#: How long a user that has nothing more to do waits to be stopped.
IDLE_S = 3600.0


def _world(environment: Any) -> World:
    world = getattr(environment, "rtbench", None)
    if world is None:
        raise RuntimeError("no rtbench World attached to this locust environment")
    return world


class _EchoMixin:
    """Pacing, measuring and recording shared by the echo users.

    A user's task asks :meth:`_due` when its next request is due,
    then sends it with :meth:`_measure` through its own ``exchange(body) ->
    (status, reply)``, which raises ClientError when the request failed.
    """

    environment: Any
    world: World
    counter: WireCounter

    def _init_echo(self) -> None:
        world = self.world
        spec = world.spec
        self.conn = world.new_conn()
        self.payload = protocol.make_payload(spec.payload_bytes)
        self.sent_count = 0
        self.busy_until = 0
        self.base_ns = 0
        self.pacer: Pacer | None = None
        if spec.model == "open" and spec.rate:
            pacers = split_rate(spec.rate, max(spec.connections, self.conn + 1))
            self.pacer = pacers[self.conn]

    def _begin(self) -> None:
        """After set-up: wait for the clock, then pace from the shared start."""
        self.world.user_ready()
        self.world.go.wait()
        self.base_ns = clock() if self.world.interactive else self.world.start_ns

    def wait_time(self) -> float:
        if self.pacer is not None:
            return 0.0  # the task sleeps until each request's intended time itself
        return self.world.spec.think_time_s

    def _next_intended(self) -> int | None:
        """When the next request is due, or None when this user is done."""
        world = self.world
        if world.stop.is_set():
            return None
        if self.pacer is not None:
            intended = self.base_ns + self.pacer.intended_ns(self.sent_count)
            if intended >= world.end_ns:
                return None
            if not sleep_until(intended, world.stop):
                return None
        else:
            intended = clock()
            if intended >= world.end_ns:
                return None
        if not world.take_budget():
            return None
        self.sent_count += 1
        return intended

    def _due(self) -> int | None:
        """:meth:`_next_intended`; when this user is done, None after idling a while."""
        intended = self._next_intended()
        if intended is None:
            self._idle()
        return intended

    def _idle(self) -> None:
        self.world.finished.wait()
        gevent.sleep(IDLE_S)

    def _charge(self, intended: int, sent: int, received: int) -> int:
        # Coordinated omission: a request that waited for the previous reply is
        # charged from its intended time; one whose user was free, from its send.
        origin = intended if self.busy_until > intended else sent
        self.busy_until = received
        return origin

    def _delta(self, before: tuple[int, int]) -> tuple[int, int]:
        """Bytes sent and received on this user's connection since ``before``."""
        return self.counter.since(before)

    def _measure(
        self,
        intended: int,
        exchange: Callable[[bytes], tuple[int, bytes]],
        request_type: str,
        name: str,
    ) -> None:
        """Send one echo request due at ``intended`` through ``exchange``, and record it."""
        world = self.world
        spec = world.spec
        req_id = world.next_id()
        before = self.counter.snapshot()
        world.in_flight += 1
        sent = clock()
        body = protocol.encode_request(
            protocol.Request(op=spec.op, id=req_id, ts=sent, payload=self.payload)
        )
        world.echo_stats.issued += 1
        try:
            status, reply = exchange(body)
            received = clock()
            error = check_echo_reply(status, reply, req_id)
        except ClientError as exc:
            received = clock()
            error = exc.code
        finally:
            world.in_flight -= 1
        delta = self._delta(before)
        origin = self._charge(intended, sent, received)
        sample = echo_sample(
            spec,
            "request",
            self.conn,
            intended,
            sent,
            received,
            world.warmup_end_ns,
            delta,
            error,
            origin,
        )
        world.echo(sample, request_type, name)


class EchoHttpUser(_EchoMixin, FastHttpUser):
    """Echo over ``POST /rpc`` on geventhttpclient, one connection per user."""

    concurrency = 1

    def __init__(self, environment: Any) -> None:
        world = _world(environment)
        spec = world.spec
        self.world = world
        self.network_timeout = self.connection_timeout = spec.timeout_s
        self.counter = WireCounter()
        # FastHttpUser's own client (self.client) shares this counting pool.
        self.client_pool = CountingClientPool(self.counter, spec.timeout_s)
        super().__init__(environment)
        self._init_echo()
        self.url = URL((self.host or spec.base_url).rstrip("/") + "/")
        self.headers = {"Content-Type": "application/json"}
        if spec.conn_mode == "new-connection":
            self.headers["Connection"] = "close"

    def on_start(self) -> None:
        self._begin()

    def _exchange(self, body: bytes) -> tuple[int, bytes]:
        """``POST /rpc`` with ``body`` on this user's connection."""
        timeout_s = self.world.spec.timeout_s
        return http_exchange(
            self.client_pool, self.url, "POST", "/rpc", body, self.headers, timeout_s
        )

    @task
    def echo(self) -> None:
        intended = self._due()
        if intended is None:
            return
        self._measure(intended, self._exchange, "POST", f"/rpc {self.world.spec.op}")


class EchoWsUser(_EchoMixin, User):
    """Echo over one WebSocket per user (websocket-client on a counting gevent socket)."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.world = _world(environment)
        spec = self.world.spec
        self.ws_url = "ws" + (self.host or spec.base_url)[len("http") :].rstrip("/") + "/ws"
        self.counter = WireCounter()
        self.ws: Any = None
        self.connected = False
        self._init_echo()

    def _connect(self) -> bool:
        world = self.world
        spec = world.spec
        before = self.counter.snapshot()
        t0 = clock()
        error: str | None = None
        try:
            self.ws = ws_connect(self.ws_url, self.counter, spec.timeout_s)
        except ClientError as exc:
            error = exc.code
        t1 = clock()
        if error is None:
            world.echo_stats.connects += 1
        else:
            world.echo_stats.connect_errors += 1
        delta = self._delta(before)
        sample = echo_sample(
            spec, "connect", self.conn, t0, t0, t1, world.warmup_end_ns, delta, error
        )
        world.echo(sample, "WS", "ws connect")
        return error is None

    def _close(self) -> None:
        ws, self.ws = self.ws, None
        ws_close(ws, 1.0)

    def on_start(self) -> None:
        self.connected = self._connect()
        self._begin()

    def on_stop(self) -> None:
        self._close()

    def _exchange(self, body: bytes) -> tuple[int, bytes]:
        """Send ``body``, read the reply; a failure marks the WebSocket for reconnecting."""
        try:
            return self._send_and_receive(body)
        except ClientError:
            self.connected = False
            raise

    def _send_and_receive(self, body: bytes) -> tuple[int, bytes]:
        import websocket

        timer = gevent.Timeout(self.world.spec.timeout_s)
        timer.start()
        try:
            self.ws.send(body)
            opcode, data = self.ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise ClientError("closed", "server closed the WebSocket")
            return 200, data
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            raise ClientError("timeout", "no reply in time") from None
        except websocket.WebSocketTimeoutException:
            raise ClientError("timeout", "no reply in time") from None
        except (websocket.WebSocketException, OSError) as exc:
            raise ClientError("closed", f"{type(exc).__name__}: {exc}") from None
        finally:
            timer.close()

    @task
    def echo(self) -> None:
        intended = self._due()
        if intended is None:
            return
        if not self.connected:
            # Reconnect in line with the schedule, so a dead server shows as errors.
            self._close()
            self.connected = self._connect()
            if not self.connected:
                if self.pacer is None:
                    gevent.sleep(0.05)
                return
        self._measure(intended, self._exchange, "WS", f"ws {self.world.spec.op}")


class _GroupMixin:
    """A group (room) of people: set up at start, then their behaviours until the end.

    It comes first among a user class's bases, so its ``on_start`` and ``on_stop`` are
    the user's; the ``live`` task is declared on each user class, where locust finds tasks.
    """

    environment: Any
    world: World
    members: list[VirtualUser]
    behaviours: gevent.pool.Group | None

    def on_start(self) -> None:
        world = self.world
        self.members = world.new_group()
        self.behaviours = None
        self.ok = False
        try:
            world.setup_group(self.members)
        except Exception as exc:
            world.user_failed(f"{type(exc).__name__}: {exc}")
            return
        self.ok = True
        world.user_ready()

    def _live(self) -> None:
        world = self.world
        world.go.wait()
        if self.ok and self.behaviours is None:
            self.behaviours = world.spawn_behaviours(self.members)
            self.behaviours.join()
        world.finished.wait()
        gevent.sleep(IDLE_S)

    def on_stop(self) -> None:
        if self.behaviours is not None:
            self.behaviours.kill(block=True, timeout=2.0)
        if self.world.interactive:
            for p in self.members:
                p.stop()


class HttpGroupUser(_GroupMixin, FastHttpUser):
    """A group of people polling ``GET /inbox`` (short or long) and acting over ``POST /rpc``."""

    concurrency = 1

    def __init__(self, environment: Any) -> None:
        self.world = _world(environment)
        self.network_timeout = self.connection_timeout = self.world.spec.timeout_s
        super().__init__(environment)

    @task
    def live(self) -> None:
        self._live()


class WsGroupUser(_GroupMixin, User):
    """A group of people each on a WebSocket with inbox pushes."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.world = _world(environment)

    @task
    def live(self) -> None:
        self._live()


ALL_USER_CLASSES: list[type[User]] = [EchoHttpUser, EchoWsUser, HttpGroupUser, WsGroupUser]


def user_class_for(spec: CellRun) -> type[User]:
    """The user class that runs ``spec``."""
    if spec.workload == "echo":
        return EchoWsUser if spec.transport in WS_TRANSPORTS else EchoHttpUser
    return WsGroupUser if spec.delivery == "push" else HttpGroupUser


def user_count_for(spec: CellRun) -> int:
    """How many locust users ``spec`` is: connections (echo) or groups (real time)."""
    if spec.workload == "echo":
        return spec.connections
    return group_count(RealtimeParams.model_validate(spec.realtime or {}))
