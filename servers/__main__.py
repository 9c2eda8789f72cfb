"""Run one server: ``python -m servers KIND [--host H] [--port P] [--max-message-bytes N]``.

``--delay-ms X`` (test only) makes every echo request sleep X ms in the hub: a
deliberately slower server, to check that ``rtbench compare`` catches it.

KIND is ``http``, ``ws-aiohttp`` or ``ws-websockets``, or one of the ASGI
application's kinds (``http-uvicorn``, ``ws-uvicorn``, ``http-hypercorn``,
``ws-hypercorn``, ``http-granian``, ``ws-granian``: :mod:`servers.asgi_app` on uvicorn,
hypercorn or granian). A kind whose server cannot honour an option (granian: a TLS cap
below 1.3) exits 2 naming it. Once listening the
process prints one ``RTBENCH-READY {...}`` line to stdout (see
:func:`servers.common.parse_ready_line`) and serves until SIGTERM or SIGINT,
then prints its counters on one ``RTBENCH-STATS {...}`` line
(:func:`servers.common.parse_stats_line`) and exits 0. Only loopback hosts are
accepted unless ``--allow-non-loopback`` is given; a refused host exits 2. The
kernel link's server address (10.77.0.2) is accepted too, but only inside a
network namespace rtbench created (:func:`servers.common.host_allowed`).

Sign-in needs each user's key, derived from the secret in
``$RTBENCH_SIGNIN_SECRET`` (:mod:`servers.realtime.credentials`). Without
it the server makes a secret, writes it to a private temporary file, names
that file on stderr and in the ready line (``secret_file``) and removes it on
exit; ``--open-signin`` (demos only) accepts any user without a key.

Before serving it raises its open-files soft limit to fit ``--connections``
(exit 1, naming the limit, when the hard limit is too low) or, without it,
towards two connections per ``--max-users`` user as far as the hard limit
allows (:mod:`servers.fdlimit`); it listens with ``--backlog``. The ready line
reports both (``backlog``, ``fd_limit``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from servers import gcfreeze
from servers.common import (
    DEFAULT_BACKLOG,
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_KEEPALIVE_TIMEOUT_S,
    DEFAULT_WS_PING_INTERVAL_S,
    ServerConfig,
    bind_host,
    format_ready_line,
    format_stats_line,
    host_allowed,
    host_refusal_note,
    install_signal_handlers,
    loop_factory,
    remove_signal_handlers,
)
from servers.fdlimit import FdLimit, FdLimitTooLow, files_for, raise_fd_limit
from servers.hub import DEFAULT_SEND_QUEUE, Hub
from servers.protocol import DEFAULT_MAX_MESSAGE_BYTES
from servers.realtime.config import RealtimeConfig
from servers.realtime.credentials import SECRET_ENV, new_secret, secret_from_env

_RT_DEFAULTS = RealtimeConfig()

MODULES = {
    "http": "servers.http_server",
    "ws-aiohttp": "servers.ws_aiohttp",
    "ws-websockets": "servers.ws_websockets",
    # One ASGI app per stack serves every endpoint; the kind names the family a run uses.
    "http-uvicorn": "servers.http_uvicorn",
    "ws-uvicorn": "servers.ws_uvicorn",
    "http-hypercorn": "servers.http_hypercorn",
    "ws-hypercorn": "servers.ws_hypercorn",
    "http-granian": "servers.http_granian",
    "ws-granian": "servers.ws_granian",
}

EXIT_REFUSED = 2


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


#: The real-time limits set on the command line: flag, RealtimeConfig field, type, help.
#: Each flag's default is the field's.
_REALTIME_FLAGS: tuple[tuple[str, str, Callable[[str], Any], str], ...] = (
    (
        "--presence-timeout",
        "presence_timeout_s",
        float,
        "seconds without a poll or heartbeat before an HTTP user is offline",
    ),
    (
        "--idle-timeout",
        "idle_timeout_s",
        float,
        "seconds without activity that end a user's session (time on site)",
    ),
    (
        "--inbox-retention",
        "inbox_retention",
        _positive_int,
        "items kept per user inbox; readers further behind see a gap",
    ),
    (
        "--token-ttl",
        "token_ttl_s",
        float,
        "seconds a sign-in token stays valid (default %(default).0f); streams opened "
        "with it end within a second of its expiry",
    ),
    (
        "--max-users",
        "max_users",
        _positive_int,
        "users who may sign in; further ones are refused (limit_reached)",
    ),
    (
        "--inbox-max-bytes",
        "inbox_max_bytes",
        _positive_int,
        "bytes kept per inbox; older items are dropped and readers see a gap",
    ),
    (
        "--inbox-total-bytes",
        "inbox_total_bytes",
        _positive_int,
        "bytes kept by all inboxes together; sends beyond it are refused (limit_reached)",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser for ``python -m servers``."""
    parser = argparse.ArgumentParser(
        prog="python -m servers", description="Run one rtbench server until SIGTERM/SIGINT."
    )
    parser.add_argument("kind", choices=sorted(MODULES), help="which server to run")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port, 0 for any (default 0)")
    parser.add_argument(
        "--max-message-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_MESSAGE_BYTES,
        help=f"largest accepted request body or message (default {DEFAULT_MAX_MESSAGE_BYTES})",
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="event loop; auto uses uvloop when importable (default auto)",
    )
    for flag, name, kind, text in _REALTIME_FLAGS:
        metavar = flag.removeprefix("--").replace("-", "_").upper()
        default = getattr(_RT_DEFAULTS, name)
        parser.add_argument(flag, dest=name, metavar=metavar, type=kind, default=default, help=text)
    parser.add_argument(
        "--send-queue",
        type=_positive_int,
        default=DEFAULT_SEND_QUEUE,
        help="messages queued per push connection before it is closed as a slow consumer",
    )
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=0.0,
        help="test only: sleep this long in every echo request, to check that a "
        "performance gate catches a slower server (default 0)",
    )
    parser.add_argument("--tls-cert", help="PEM certificate chain: serve https/wss")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument(
        "--tls-version", choices=("1.2", "1.3"), default="1.3", help="highest TLS version offered"
    )
    parser.add_argument(
        "--tls-resumption",
        action="store_true",
        help="allow TLS session resumption (off: every connection pays a full handshake)",
    )
    parser.add_argument(
        "--sse-heartbeat",
        type=float,
        default=0.0,
        help="http: seconds without an event before GET /events sends a ': ping' comment "
        "(15 suits most proxies; default 0: off, so benchmark streams carry events only)",
    )
    parser.add_argument(
        "--keepalive-timeout",
        type=float,
        default=DEFAULT_KEEPALIVE_TIMEOUT_S,
        help="http, ws-aiohttp: seconds a connection may go without a complete request "
        "(idle, or still sending headers) before it is closed "
        f"(default {DEFAULT_KEEPALIVE_TIMEOUT_S:.0f})",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=DEFAULT_BODY_TIMEOUT_S,
        help="http: seconds a request body may take (408 after; "
        f"default {DEFAULT_BODY_TIMEOUT_S:.0f})",
    )
    parser.add_argument(
        "--ws-ping-interval",
        type=float,
        default=DEFAULT_WS_PING_INTERVAL_S,
        help="WebSocket servers: seconds between liveness pings; a client that does not answer "
        f"is disconnected and goes offline; 0: off (default {DEFAULT_WS_PING_INTERVAL_S:.0f})",
    )
    parser.add_argument(
        "--backlog",
        type=_positive_int,
        default=DEFAULT_BACKLOG,
        help="listen backlog: new connections the kernel queues until they are accepted "
        f"(capped by net.core.somaxconn; default {DEFAULT_BACKLOG})",
    )
    parser.add_argument(
        "--connections",
        type=_positive_int,
        default=None,
        help="connections to make room for in the open-files limit; a hard limit too low "
        "for them is an error (default: two per --max-users user, as far as the hard "
        "limit allows)",
    )
    parser.add_argument(
        "--open-signin",
        action="store_true",
        help="demos only: let anyone sign in as any user without a key (default off)",
    )
    parser.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="permit binding an address outside 127.0.0.0/8 and ::1",
    )
    return parser


async def run(
    module: ModuleType,
    config: ServerConfig,
    loop_name: str,
    hub: Hub | None = None,
    extra_info: Mapping[str, Any] | None = None,
) -> None:
    """Serve ``module`` with ``config``, printing the ready line, until a signal arrives;
    then print the stats line.

    ``extra_info`` adds keys to the ready line. The ready line's ``liveness`` is what the
    server serves with: a module's own ``liveness(config)`` when it has one (granian
    sends no WebSocket pings, whatever ``ws_ping_interval_s`` asked for).
    """
    stop = asyncio.Event()
    install_signal_handlers(stop)
    liveness = getattr(module, "liveness", None)

    def on_ready(port: int) -> None:
        info = {
            "kind": module.KIND,
            "host": config.host,
            "port": port,
            "pid": os.getpid(),
            "path": module.PATH,
            "loop": loop_name,
            "max_message_bytes": config.max_message_bytes,
            "tls": config.tls_version if config.tls else None,
            "liveness": liveness(config) if liveness is not None else config.liveness(),
            # The collector's settings change pauses, so the run records them.
            "gc": gcfreeze.describe(),
            # Whether it times late loop turns too (stats' "stalls"; RTBENCH_LOOP_WATCH).
            "loop_watch": hub.watch_loop if hub is not None else None,
            **(extra_info or {}),
        }
        print(format_ready_line(info), flush=True)

    try:
        hub = hub if hub is not None else Hub(config.max_message_bytes)
        await module.serve(config, hub, on_ready, stop)
        # What it refused or could not deliver, for the run's record (see servers.common).
        print(format_stats_line(hub.realtime.counters), flush=True)
    finally:
        remove_signal_handlers()


def _signin_secret(open_signin: bool) -> tuple[str | None, Path | None]:
    """The server's sign-in secret and, when it had to make one, the file holding it.

    ``$RTBENCH_SIGNIN_SECRET`` when set (rtbench runs hand theirs this way); else a
    fresh secret written to a new private file, so whoever started the server by
    hand can derive keys from it; None with ``--open-signin``. Raises ValueError
    for a secret too short to be safe.
    """
    if open_signin:
        return None, None
    secret = secret_from_env()
    if secret is not None:
        return secret, None
    secret = new_secret()
    folder = Path(tempfile.mkdtemp(prefix="rtbench-secret-"))  # mode 0700
    path = folder / "secret"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    return secret, path


def _remove_secret_file(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()
            path.parent.rmdir()


def fd_limit(connections: int | None, max_users: int) -> FdLimit:
    """Raise the open-files limit for ``connections`` (FdLimitTooLow when it cannot) and
    towards twice that where it can, or,
    when None, towards two connections per user the server admits, as far as it goes."""
    if connections is not None:
        least = raise_fd_limit(
            files_for(connections),
            f"{connections} connections",
            "lower --connections (in a run: [realtime] users)",
        )
        # Polling and SSE users may hold a second connection while they act: room for
        # twice as many where the hard limit allows, without refusing to start.
        room = raise_fd_limit(files_for(2 * connections), "", "", strict=False)
        return FdLimit(
            least.needed, least.soft_before, least.hard_before, room.soft_after, room.hard_after
        )
    # A WebSocket or event stream and an HTTP connection at most, per user.
    return raise_fd_limit(
        files_for(2 * max_users), f"{max_users} users", "lower --max-users", strict=False
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.allow_non_loopback and not host_allowed(args.host):
        print(
            f"python -m servers: error: refusing to bind non-loopback host {args.host!r} "
            "(use 127.0.0.0/8, ::1 or localhost, or pass --allow-non-loopback)"
            + host_refusal_note(args.host),
            file=sys.stderr,
        )
        return EXIT_REFUSED
    try:
        secret, secret_file = _signin_secret(args.open_signin)
    except ValueError as exc:
        parser.error(f"${SECRET_ENV}: {exc}")
    try:
        config = ServerConfig(
            bind_host(args.host),
            args.port,
            args.max_message_bytes,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_version=args.tls_version,
            tls_resumption=args.tls_resumption,
            sse_heartbeat_s=args.sse_heartbeat,
            keepalive_timeout_s=args.keepalive_timeout,
            body_timeout_s=args.body_timeout,
            ws_ping_interval_s=args.ws_ping_interval,
            backlog=args.backlog,
        )
        hub = Hub(
            config.max_message_bytes,
            RealtimeConfig(
                signin_secret=secret,
                open_signin=args.open_signin,
                **{name: getattr(args, name) for _, name, _, _ in _REALTIME_FLAGS},
            ),
            send_queue=args.send_queue,
            echo_delay_s=args.delay_ms / 1000.0,
        )
    except ValueError as exc:
        _remove_secret_file(secret_file)
        parser.error(str(exc))
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.delay_ms:
        print(
            f"python -m servers: test slowdown: every echo sleeps {args.delay_ms} ms",
            file=sys.stderr,
        )
    if args.open_signin:
        print("python -m servers: open sign-in: anyone may sign in as anyone", file=sys.stderr)
    elif secret_file is not None:
        print(
            f"python -m servers: no ${SECRET_ENV}: made a sign-in secret in {secret_file} "
            "(removed on exit); a user's signin payload: python -m "
            f"servers.realtime.credentials USER --secret-file {secret_file}",
            file=sys.stderr,
        )
    info: dict[str, Any] = {
        "signin": "open" if args.open_signin else "key",
        "secret_file": str(secret_file) if secret_file is not None else None,
    }
    module = importlib.import_module(MODULES[args.kind])
    refusal = getattr(module, "refusal", None)
    refused = refusal(config) if refusal is not None else None
    if refused is not None:
        _remove_secret_file(secret_file)
        print(f"python -m servers: error: {args.kind}: {refused}", file=sys.stderr)
        return EXIT_REFUSED
    try:
        factory, loop_name = loop_factory(args.loop)
    except ImportError as exc:
        _remove_secret_file(secret_file)
        parser.error(f"--loop {args.loop}: {exc}")
    try:
        limit = fd_limit(args.connections, args.max_users)
    except FdLimitTooLow as exc:
        _remove_secret_file(secret_file)
        print(f"python -m servers: error: {exc}", file=sys.stderr)
        return 1
    info["backlog"] = args.backlog
    info["fd_limit"] = limit.as_dict()
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(run(module, config, loop_name, hub, info))
    except OSError as exc:
        print(
            f"python -m servers: error: cannot serve on {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    finally:
        _remove_secret_file(secret_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
