"""The conformance checks' registry, and what every check is handed.

A check is an async function of a :class:`Probe` that returns when the server
behaved and raises :class:`Mismatch` (what was expected, what came back) when
it did not::

    @check("rpc", "echo", "echo returns its op, id, ts and payload")
    async def echo(p: Probe) -> None:
        answer = await p.chan().call("echo", {"n": 1})
        p.expect(answer.ok, "a success envelope", answer.shown())

Checks are grouped by transport (``rpc``, ``sse``, ``ws``); :func:`registered`
lists them in the order they run. The modules that define them are imported
by :mod:`loadgen.conform.runner`.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from loadgen.conform.channel import Answer, HttpChannel, WsChannel
from loadgen.conform.target import Target
from servers import wire_schema
from servers.protocol import ProtocolError
from servers.realtime.credentials import signin_payload, user_key

#: The ``max_watch`` bound a server has when its ready line does not name one.
DEFAULT_MAX_WATCH = 1000


def _error_classes(cls: type[ProtocolError]) -> list[type[ProtocolError]]:
    return [cls, *(c for sub in cls.__subclasses__() for c in _error_classes(sub))]


#: The HTTP status each error code is answered with (docs/protocol.md), read from the
#: reference's error classes once, when the suite is loaded.
STATUS_OF = {cls.code: cls.http_status for cls in _error_classes(ProtocolError)}


class Mismatch(Exception):
    """The server did not do what the protocol says: ``expected`` against ``got``."""

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"expected {expected}; got {got}")
        self.expected = expected
        self.got = got


Channel = HttpChannel | WsChannel


@dataclass
class Probe:
    """What a check works with: the target, one HTTP client session, fresh users."""

    target: Target
    http: aiohttp.ClientSession
    transport: str
    _tag: str = field(default_factory=lambda: secrets.token_hex(3))
    _n: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _open: list[WsChannel] = field(default_factory=list)

    # -- users and channels ------------------------------------------------------

    def user(self, role: str = "u") -> str:
        """A user name no other check uses."""
        return f"cf{self._tag}-{role}{next(self._n)}"

    @property
    def base_url(self) -> str:
        return self.target.base_url

    @property
    def max_watch(self) -> int:
        limits = (self.target.ready or {}).get("limits")
        value = limits.get("max_watch") if isinstance(limits, dict) else None
        return value if isinstance(value, int) and value > 0 else DEFAULT_MAX_WATCH

    async def chan(self, token: str | None = None) -> Channel:
        """A channel of the transport under check (a new WebSocket for ``ws``)."""
        if self.transport == "ws":
            return await self.ws(token)
        return HttpChannel(self.http, self.base_url, token)

    async def ws(self, token: str | None = None) -> WsChannel:
        """A new WebSocket, closed when the check ends."""
        ws = await WsChannel.open(self.http, self.base_url, token)
        self._open.append(ws)
        return ws

    async def rpc(self, token: str | None = None) -> Channel:
        """A channel for set-up requests: ``POST /rpc`` when offered, else a WebSocket."""
        if "rpc" in self.target.offers:
            return HttpChannel(self.http, self.base_url, token)
        return await self.ws(token)

    def signin_body(self, user: str) -> dict[str, str]:
        return signin_payload(user, self.target.secret) if self.target.secret else {"user": user}

    def key_of(self, user: str) -> str:
        return user_key(self.target.secret, user) if self.target.secret else ""

    async def signin(self, user: str | None = None) -> tuple[str, str]:
        """Sign a fresh (or the given) user in; ``(user, token)``, Mismatch if refused."""
        user = user or self.user()
        chan = await self.rpc()
        answer = await chan.call("signin", self.signin_body(user))
        token = answer.payload.get("token") if isinstance(answer.payload, dict) else None
        if not answer.ok or not isinstance(token, str) or not token:
            hint = "" if self.target.secret else " (no sign-in secret was given)"
            raise Mismatch(f"signin of {user!r} to succeed with a token{hint}", answer.shown())
        return user, token

    async def send(self, token: str, to: str, mids: range | list[int]) -> None:
        """Direct messages from the token's user to ``to``, one per mid; Mismatch if refused."""
        chan = await self.rpc(token)
        for mid in mids:
            answer = await chan.call("send", {"to": to, "mid": mid, "ts": mid, "body": f"m{mid}"})
            if not answer.ok:
                raise Mismatch(f"send of mid {mid} to {to!r} to succeed", answer.shown())

    async def close(self) -> None:
        for ws in self._open:
            await ws.close()
        self._open.clear()

    # -- expectations ------------------------------------------------------------

    @staticmethod
    def expect(cond: bool, expected: str, got: str) -> None:
        """Raise :class:`Mismatch` unless ``cond``."""
        if not cond:
            raise Mismatch(expected, got)

    def expect_error(self, answer: Answer, code: str, what: str = "") -> None:
        """``answer`` is an error envelope with ``code`` (and, over HTTP, its status)."""
        status = STATUS_OF[code]
        want = f"{what}: " if what else ""
        if answer.status is not None:
            want += f"HTTP {status} with error code {code!r}"
            ok = answer.status == status and answer.code == code
        else:
            want += f"an error envelope with code {code!r}"
            ok = answer.code == code
        self.expect(ok and answer.envelope.get("ok") is False, want, answer.shown())
        self.expect_valid(wire_schema.reply_problems("", answer.envelope), "error envelope")

    def expect_ok(self, answer: Answer, op: str, what: str = "") -> Any:
        """``answer`` is a success reply to ``op`` (HTTP 200) matching the op's schema."""
        want = f"{what}: " if what else ""
        want += f"a success reply to {op!r}" + (" with HTTP 200" if answer.status else "")
        self.expect(answer.ok and answer.status in (None, 200), want, answer.shown())
        self.expect_valid(wire_schema.reply_problems(op, answer.envelope), f"{op!r} reply")
        return answer.payload

    @staticmethod
    def expect_valid(problems: list[str], what: str) -> None:
        """No schema problems in ``what``."""
        if problems:
            shown = "; ".join(problems[:3]) + (
                f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            )
            raise Mismatch(f"the {what} to match its JSON Schema", shown)


CheckFn = Callable[[Probe], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Check:
    """One registered check: ``id`` is ``TRANSPORT.NAME``."""

    transport: str
    name: str
    title: str
    fn: CheckFn

    @property
    def id(self) -> str:
        return f"{self.transport}.{self.name}"


_CHECKS: list[Check] = []


def check(transports: str | tuple[str, ...], name: str, title: str) -> Callable[[CheckFn], CheckFn]:
    """Register ``fn`` as the check ``NAME`` for each transport named."""

    def register(fn: CheckFn) -> CheckFn:
        for transport in (transports,) if isinstance(transports, str) else transports:
            _CHECKS.append(Check(transport, name, title, fn))
        return fn

    return register


def registered() -> list[Check]:
    """Every check, grouped by transport (rpc, sse, ws), in registration order."""
    order = {"rpc": 0, "sse": 1, "ws": 2}
    return sorted(_CHECKS, key=lambda c: order.get(c.transport, 9))
