"""The server under check: where it listens, what it offers, and how to sign in to it.

Either a running loopback server, or a command rtbench starts, waits for and stops::

    target = await probe_url("http://127.0.0.1:8080", secret)     # TargetError if unusable
    async with started(["node", "servers/node/server.js", "--port", "0"]) as target:
        target.base_url, target.offers, target.ready

``offers`` holds the transports the server answers: ``"rpc"`` (``POST /rpc`` and
``GET /inbox``), ``"sse"`` (``GET /events``) and ``"ws"`` (``GET /ws``), found by
asking each endpoint once (the ready line's ``endpoints``, when it has them, is
not trusted over what the server does).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from loadgen.conform.channel import REPLY_TIMEOUT_S, HttpChannel, WsChannel
from servers.common import is_loopback_host, parse_ready_line, parse_stats_line
from servers.protocol import DEFAULT_MAX_MESSAGE_BYTES
from servers.realtime.credentials import SECRET_ENV, new_secret

#: Seconds a started command may take to print its ready line.
READY_TIMEOUT_S = 30.0
#: Seconds a started command may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT_S = 10.0


class TargetError(Exception):
    """The target cannot be checked at all (not loopback, not listening, did not start)."""


@dataclass
class Target:
    """A server ready to be checked."""

    base_url: str
    secret: str | None
    offers: frozenset[str]
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    #: The ready line's object (command targets), else None.
    ready: dict[str, Any] | None = None
    #: What the command printed on its last ``RTBENCH-STATS`` line, once stopped.
    stats: dict[str, int] | None = None
    #: The command as started, for the table's title.
    command: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return " ".join(self.command) if self.command else self.base_url


def check_url(url: str) -> str:
    """``url`` without a trailing slash; TargetError unless it is http:// on a loopback host."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise TargetError(f"the target must be an http:// URL, got {url!r}")
    if not is_loopback_host(parts.hostname):
        raise TargetError(
            f"{parts.hostname!r} is not a loopback address: rtbench only checks servers "
            "on 127.0.0.0/8 or ::1"
        )
    return url.rstrip("/")


async def find_offers(base_url: str) -> frozenset[str]:
    """The transports ``base_url`` answers (an anonymous echo, an untokened stream, a handshake)."""
    offers: set[str] = set()
    async with aiohttp.ClientSession() as http:
        try:
            answer = await HttpChannel(http, base_url).call("echo", None)
        except aiohttp.ClientConnectorError as exc:
            raise TargetError(f"nothing answers at {base_url}: {exc}") from None
        except (aiohttp.ClientError, TimeoutError):
            pass  # a server without POST /rpc may drop the request
        else:
            if isinstance(answer.envelope, dict):
                offers.add("rpc")
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with asyncio.timeout(REPLY_TIMEOUT_S):
                async with http.get(f"{base_url}/events") as resp:
                    # A stream needs a token: a server that has one answers 401 with an
                    # envelope (a wrong status is for the checks to find, not the probe).
                    if resp.status not in (404, 405) and resp.content_type in (
                        "application/json",
                        "text/event-stream",
                    ):
                        offers.add("sse")
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            ws = await WsChannel.open(http, base_url)
            offers.add("ws")
            await ws.close()
    return frozenset(offers)


async def probe_url(url: str, secret: str | None) -> Target:
    """A running server at ``url`` as a :class:`Target`; TargetError when it answers nothing."""
    base = check_url(url)
    offers = await find_offers(base)
    if not offers:
        raise TargetError(
            f"{base} answers none of POST /rpc, GET /events, GET /ws with the rtbench protocol"
        )
    return Target(base, secret, offers)


async def _ready_line(proc: asyncio.subprocess.Process, command: list[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    seen: list[str] = []
    async with asyncio.timeout(READY_TIMEOUT_S):
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                code = await proc.wait()
                tail = "; ".join(seen[-3:]) or "nothing"
                raise TargetError(
                    f"{command[0]} exited with {code} before its RTBENCH-READY line "
                    f"(it printed: {tail})"
                )
            line = raw.decode("utf-8", "replace")
            info = parse_ready_line(line)
            if info is not None:
                return info
            seen.append(line.strip()[:200])


async def _drain(proc: asyncio.subprocess.Process, target: Target) -> None:
    # Keep reading stdout so the server never blocks on a full pipe; keep its stats line.
    assert proc.stdout is not None
    async for raw in proc.stdout:
        stats = parse_stats_line(raw.decode("utf-8", "replace"))
        if stats is not None:
            target.stats = stats


@contextlib.asynccontextmanager
async def started(command: list[str], secret: str | None = None) -> AsyncIterator[Target]:
    """Start ``command`` with a fresh sign-in secret in its environment, yield it as a Target
    once its ready line names a loopback port, and stop it (SIGTERM, then kill) afterwards."""
    if not command:
        raise TargetError("no command given after --")
    secret = secret or new_secret()
    env = {**os.environ, SECRET_ENV: secret}
    try:
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        raise TargetError(f"cannot start {command[0]!r}: {exc.strerror or exc}") from None
    drain: asyncio.Task[None] | None = None
    try:
        try:
            ready = await _ready_line(proc, command)
        except TimeoutError:
            raise TargetError(
                f"{command[0]} printed no RTBENCH-READY line within {READY_TIMEOUT_S:.0f} s"
            ) from None
        host = str(ready.get("host") or "127.0.0.1")
        if not is_loopback_host(host):
            raise TargetError(f"the ready line names {host!r}, which is not a loopback address")
        shown = f"[{host}]" if ":" in host else host
        base = f"http://{shown}:{ready['port']}"
        target = Target(base, secret, frozenset(), ready=ready, command=list(command))
        limit = ready.get("max_message_bytes")
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
            target.max_message_bytes = limit
        drain = asyncio.create_task(_drain(proc, target))
        target.offers = await find_offers(base)
        yield target
    finally:
        await _stop(proc)
        if drain is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await drain


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):
            await proc.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
