"""The link emulator from the command line.

``python -m loadgen.link relay --profile wan --target 127.0.0.1:PORT``
    Run the userspace relay. ``--profile`` is a preset name (loopback, lan, wan,
    mobile, satellite) or a JSON table (``'{"rtt_ms": 80, "rate_mbit": 20}'``,
    ``'{"preset": "mobile", "jitter_ms": 20}'``). Once listening it prints one
    line to stdout, ``RTBENCH-LINK-READY {"port": ..., "profile": {...}, ...}``
    (see :func:`loadgen.link.command.parse_link_ready_line`), relays until SIGTERM
    or SIGINT, then prints ``RTBENCH-LINK-STATS {...}`` (counters and timer
    lateness) and exits 0. A profile or target it cannot honour exits 2 with the
    reason on stderr.

    ``--udp`` relays UDP too (HTTP/3 over QUIC): on the same port number as
    the TCP listener, to the target's UDP port with the same number, delayed
    by the same profile; the ready line then carries ``"udp": true`` and the
    stats line a ``"udp"`` table (flows, datagrams, bytes, drops, lateness).
    ``--udp-max-flows``, ``--udp-max-queue-bytes`` and ``--udp-idle-timeout-s``
    bound it. No port number free for both exits 2.

``python -m loadgen.link overhead [--n 1000]``
    Measure the relay's own overhead (zero-delay relay against a direct plain
    TCP echo) and print it as JSON (microseconds).

``python -m loadgen.link support [--link auto|kernel|userspace] [--profile P]``
    Print whether the kernel link (netns + veth + netem/tbf) is usable here,
    why (namespaces, netem and tbf each), and which link a run would use for
    profile P (default: any profile), as JSON. Exits 2 when an explicit
    ``--link kernel`` cannot be honoured.

``python -m loadgen.link cleanup``
    Delete ``rtbench-`` network namespaces left behind by crashed runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from loadgen.link.command import LINK_STATS_PREFIX, format_link_ready_line
from loadgen.link.namespaces import cleanup_stale
from loadgen.link.overhead import measure_relay_overhead
from loadgen.link.plan import LinkUnavailable, choose_link
from loadgen.link.probe import probe_kernel
from loadgen.link.profiles import LinkProfileError, resolve_profile
from loadgen.link.relay import (
    DEFAULT_MAX_BUFFER_BYTES,
    DEFAULT_MAX_CONNECTIONS,
    LinkPortUnavailable,
    LinkRelay,
    LinkUnsupported,
)
from loadgen.link.udp import DEFAULT_IDLE_TIMEOUT_S, DEFAULT_MAX_FLOWS, DEFAULT_MAX_QUEUE_BYTES

_PR_SET_TIMERSLACK = 29


def _parse_profile(text: str) -> Any:
    text = text.strip()
    if text.startswith("{"):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise LinkProfileError(f"--profile is not valid JSON: {exc}") from None
    return text


def _parse_target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise LinkUnsupported(f"--target must be HOST:PORT (127.0.0.1:8080), not {text!r}")
    return host.strip("[]"), int(port)


def _loop_factory(choice: str) -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    if choice != "asyncio":
        try:
            import uvloop

            return uvloop.new_event_loop, "uvloop"
        except ImportError:
            if choice == "uvloop":
                raise
    return asyncio.new_event_loop, "asyncio"


def _reduce_timer_slack() -> bool:
    """Ask Linux for 1 ns timer slack (50 µs by default) so timed releases wake sooner."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None).prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _make_relay(args: argparse.Namespace) -> LinkRelay:
    profile = resolve_profile(_parse_profile(args.profile))
    host, port = _parse_target(args.target)
    return LinkRelay(
        profile,
        host,
        port,
        listen_port=args.listen_port,
        max_connections=args.max_connections,
        max_buffer_bytes=args.max_buffer_bytes,
        burst_bytes=args.burst_bytes,
        seed=args.seed,
        udp=args.udp,
        udp_max_flows=args.udp_max_flows,
        udp_max_queue_bytes=args.udp_max_queue_bytes,
        udp_idle_timeout_s=args.udp_idle_timeout_s,
    )


async def _run_relay(args: argparse.Namespace, loop_name: str) -> int:
    relay = _make_relay(args)
    try:
        await relay.start()
    except LinkPortUnavailable as exc:
        print(f"loadgen.link relay: {exc.strerror}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        info: dict[str, Any] = {
            "port": relay.port,
            "profile": relay.profile.as_dict(),
            "target": f"{relay.target_host}:{relay.target_port}",
            "pid": os.getpid(),
            "loop": loop_name,
            "timer": relay.timer,
            "max_connections": relay.max_connections,
        }
        if relay.udp is not None:
            info["udp"] = True  # on the same port number as "port"
            info["udp_max_flows"] = relay.udp.max_flows
        print(format_link_ready_line(info), flush=True)
        await stop.wait()
        await relay.aclose()
        print(LINK_STATS_PREFIX + json.dumps(relay.stats()), flush=True)
    finally:
        await relay.aclose()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0


def _cmd_relay(args: argparse.Namespace) -> int:
    factory, loop_name = _loop_factory(args.loop)
    if not args.keep_timer_slack:
        _reduce_timer_slack()
    try:
        # Check everything before the loop starts, so a refusal is a clean exit 2.
        _make_relay(args)
    except (LinkProfileError, LinkUnsupported, ValueError) as exc:
        print(f"loadgen.link relay: {exc}", file=sys.stderr)
        return 2
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_run_relay(args, loop_name))


def _cmd_overhead(args: argparse.Namespace) -> int:
    factory, loop_name = _loop_factory(args.loop)
    if not args.keep_timer_slack:
        _reduce_timer_slack()
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(measure_relay_overhead(args.n, args.payload_bytes))
    print(json.dumps({**result.as_dict(), "loop": loop_name}))
    return 0


def _cmd_support(args: argparse.Namespace) -> int:
    support = probe_kernel()
    ok, reason = support.as_tuple()
    out: dict[str, Any] = {"kernel": ok, "reason": reason, "requested": args.link}
    out["support"] = support.as_dict()
    try:
        profile = None if args.profile is None else resolve_profile(_parse_profile(args.profile))
        if profile is not None:
            out["profile"] = profile.as_dict()
        out["choice"] = choose_link(args.link, profile, support=support).as_dict()
    except (LinkUnavailable, LinkProfileError) as exc:
        out["error"] = str(exc)
        print(json.dumps(out))
        return 2
    print(json.dumps(out))
    return 0


def _cmd_cleanup(args: argparse.Namespace) -> int:
    removed = cleanup_stale(args.prefix, only_dead_owners=not args.all)
    print(json.dumps({"removed": removed}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadgen.link",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    relay = sub.add_parser("relay", help="run the userspace link emulator")
    relay.add_argument("--profile", required=True, help="preset name or JSON table")
    relay.add_argument("--target", required=True, help="127.0.0.1:PORT of the real server")
    relay.add_argument("--listen-port", type=int, default=0)
    relay.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS)
    relay.add_argument("--max-buffer-bytes", type=int, default=DEFAULT_MAX_BUFFER_BYTES)
    relay.add_argument("--burst-bytes", type=int, default=0)
    relay.add_argument("--seed", type=int, default=None, help="seed of the jitter draws")
    relay.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    relay.add_argument("--keep-timer-slack", action="store_true", help="do not lower it")
    relay.add_argument(
        "--udp", action="store_true", help="relay UDP too, on the same port number (HTTP/3)"
    )
    relay.add_argument("--udp-max-flows", type=int, default=DEFAULT_MAX_FLOWS)
    relay.add_argument("--udp-max-queue-bytes", type=int, default=DEFAULT_MAX_QUEUE_BYTES)
    relay.add_argument("--udp-idle-timeout-s", type=float, default=DEFAULT_IDLE_TIMEOUT_S)
    relay.set_defaults(func=_cmd_relay)

    overhead = sub.add_parser("overhead", help="measure the relay's own overhead")
    overhead.add_argument("--n", type=int, default=1000)
    overhead.add_argument("--payload-bytes", type=int, default=64)
    overhead.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    overhead.add_argument("--keep-timer-slack", action="store_true")
    overhead.set_defaults(func=_cmd_overhead)

    support = sub.add_parser("support", help="can the kernel link be used here?")
    support.add_argument("--link", choices=("auto", "kernel", "userspace"), default="auto")
    support.add_argument("--profile", default=None, help="preset name or JSON table")
    support.set_defaults(func=_cmd_support)

    cleanup = sub.add_parser("cleanup", help="delete namespaces left by crashed runs")
    cleanup.add_argument("--prefix", default="rtbench-")
    cleanup.add_argument("--all", action="store_true", help="also those of live processes")
    cleanup.set_defaults(func=_cmd_cleanup)

    args = parser.parse_args(argv)
    with contextlib.suppress(BrokenPipeError):
        return int(args.func(args))
    return 1


if __name__ == "__main__":
    sys.exit(main())
