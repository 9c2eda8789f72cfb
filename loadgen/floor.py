"""The load generator's own round-trip floor: a raw-TCP echo, measured once per run.

A run with echo cells measures, before its cells, what one round trip costs with
nothing but the kernel's loopback and an asyncio Protocol at each end: no HTTP,
no WebSocket, no client library. Each cell's p50 can then be read as a multiple of
it. Two processes, pinned like a cell's server and load generator::

    python -m loadgen.floor serve [--loop uvloop|asyncio]
    # RTBENCH-FLOOR-READY {"port": 40123, "pid": 1234, "cpus": [0]}
    python -m loadgen.floor measure --port 40123 --payload-bytes 64 [--duration-s 2]
    # {"count": 61234, "p50_ns": 28123, "p99_ns": 41234, ..., "cpus": [1]}

The server echoes every byte it receives. The client keeps one connection in a
closed loop: it writes ``payload_bytes`` (at least 1), waits until as many come
back, and writes again from the same callback; the first ``warmup_s`` are left
out. From the orchestrator::

    floor = measure_floor(placement.server_cpus, [1], 64, log_dir, loop="uvloop")
    floor["p50_ns"], floor["p99_ns"], floor["count"], floor["server_cpus"], floor["client_cpus"]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from loadgen.procs import start_ready_child, stop_process
from loadgen.wire import close_loop

READY_PREFIX = "RTBENCH-FLOOR-READY "
DURATION_S = 2.0
WARMUP_S = 0.3
#: Round trips at most, whatever the clock says: the loop is bounded.
MAX_ROUND_TRIPS = 5_000_000

clock = time.perf_counter_ns


def _cpus() -> list[int] | None:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def _new_loop(loop: str) -> asyncio.AbstractEventLoop:
    if loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class _Echo(asyncio.Protocol):
    """Writes back whatever arrives."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


def parse_ready(line: str) -> dict[str, Any] | None:
    """The floor server's ready line as a dict, or None for any other line."""
    if not line.startswith(READY_PREFIX):
        return None
    info = json.loads(line[len(READY_PREFIX) :])
    return info if isinstance(info, dict) and isinstance(info.get("port"), int) else None


async def _serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Echo, host, port)
    bound = server.sockets[0].getsockname()[1]
    info = {"port": bound, "pid": os.getpid(), "cpus": _cpus()}
    sys.stdout.write(READY_PREFIX + json.dumps(info) + "\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


class _Pinger(asyncio.Protocol):
    """One connection in a closed loop, driven from its own callbacks."""

    def __init__(self, payload: bytes, warmup_end: int, end: int, done: asyncio.Future[None]):
        self.payload = payload
        self.warmup_end = warmup_end
        self.end = end
        self.done = done
        self.got = 0
        self.sent_at = 0
        self.latencies: list[int] = []
        self.round_trips = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self._send()

    def _send(self) -> None:
        self.sent_at = clock()
        self.transport.write(self.payload)

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        if self.got < len(self.payload):
            return
        now = clock()
        self.got -= len(self.payload)
        self.round_trips += 1
        if self.sent_at >= self.warmup_end:
            self.latencies.append(now - self.sent_at)
        if now >= self.end or self.round_trips >= MAX_ROUND_TRIPS:
            if not self.done.done():
                self.done.set_result(None)
            return
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError("the floor server closed"))


async def _measure(
    host: str, port: int, payload_bytes: int, duration_s: float, warmup_s: float
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    start = clock()
    warmup_end = start + int(warmup_s * 1e9)
    end = warmup_end + int(duration_s * 1e9)
    payload = b"x" * max(1, payload_bytes)
    transport, proto = await loop.create_connection(
        lambda: _Pinger(payload, warmup_end, end, done), host, port
    )
    try:
        await asyncio.wait_for(done, duration_s + warmup_s + 10.0)
    finally:
        transport.close()
    lat = sorted(proto.latencies)
    if not lat:
        raise RuntimeError("no round trip completed after the warm-up")
    return {
        "count": len(lat),
        "p50_ns": lat[int(0.5 * (len(lat) - 1))],
        "p99_ns": lat[int(0.99 * (len(lat) - 1))],
        "min_ns": lat[0],
        "max_ns": lat[-1],
        "payload_bytes": len(payload),
        "duration_s": duration_s,
        "cpus": _cpus(),
    }


def measure_floor(
    server_cpus: list[int] | None,
    client_cpus: list[int] | None,
    payload_bytes: int,
    log_dir: Path,
    *,
    loop: str = "uvloop",
    duration_s: float = DURATION_S,
    warmup_s: float = WARMUP_S,
) -> dict[str, Any]:
    """Start the floor server on ``server_cpus``, measure from a client on ``client_cpus``.

    Returns ``p50_ns``, ``p99_ns``, ``min_ns``, ``max_ns``, ``count``, ``payload_bytes``,
    ``duration_s``, ``loop`` and the CPUs each process actually ran on
    (``server_cpus``, ``client_cpus``), or ``{"error": ...}`` (with ``payload_bytes``)
    when it could not be measured: a run goes on without its floor.
    """
    base: dict[str, Any] = {"payload_bytes": max(1, payload_bytes), "loop": loop}
    argv = [sys.executable, "-m", "loadgen.floor"]
    tag = f"floor-{payload_bytes}b"
    try:
        server = start_ready_child(
            "floor server",
            [*argv, "serve", "--loop", loop],
            server_cpus,
            log_dir / f"{tag}-server.log",
            parse_ready,
        )
    except RuntimeError as exc:
        return base | {"error": str(exc)}
    try:
        measure = [
            *argv,
            "measure",
            "--port",
            str(server.info["port"]),
            "--payload-bytes",
            str(payload_bytes),
            "--duration-s",
            str(duration_s),
            "--warmup-s",
            str(warmup_s),
            "--loop",
            loop,
        ]
        try:
            done = subprocess.run(
                measure,
                capture_output=True,
                timeout=duration_s + warmup_s + 30.0,
                preexec_fn=(lambda: os.sched_setaffinity(0, client_cpus)) if client_cpus else None,
                start_new_session=True,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return base | {"error": "the floor client did not finish in time"}
        (log_dir / f"{tag}-client.log").write_bytes(done.stderr)
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
            return base | {"error": f"the floor client exited with {done.returncode}: {tail}"}
        result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    finally:
        stop_process(server)
    client = result.pop("cpus", None)
    return base | result | {"server_cpus": server.cpus, "client_cpus": client}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadgen.floor")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="a raw-TCP echo server on loopback")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    measure = sub.add_parser("measure", help="one closed-loop connection against it")
    measure.add_argument("--port", type=int, required=True)
    measure.add_argument("--payload-bytes", type=int, default=64)
    measure.add_argument("--duration-s", type=float, default=DURATION_S)
    measure.add_argument("--warmup-s", type=float, default=WARMUP_S)
    measure.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args(argv)
    loop = _new_loop(args.loop)
    host = "127.0.0.1"  # loopback only, at both ends
    try:
        if args.command == "serve":
            loop.run_until_complete(_serve(host, args.port))
        else:
            result = loop.run_until_complete(
                _measure(host, args.port, args.payload_bytes, args.duration_s, args.warmup_s)
            )
            sys.stdout.write(json.dumps(result) + "\n")
    except KeyboardInterrupt:
        return 130
    except (OSError, RuntimeError, TimeoutError) as exc:
        sys.stderr.write(f"floor: {type(exc).__name__}: {exc}\n")
        return 1
    finally:
        close_loop(loop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
