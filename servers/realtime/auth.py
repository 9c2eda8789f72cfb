"""Sign-in and bearer tokens: every operation but echo/signin acts as one user.

A user signs in with the key derived from the server's secret
(:mod:`servers.realtime.credentials`); the token they get expires after
``token_ttl_s`` and is revoked by ``bye``::

    auth = Auth(secret)                          # or Auth(None, open_signin=True) for demos
    auth.key_ok("alice", key)                    # checks the credential
    token = auth.issue("alice", now_ns)
    auth.user_for(token, now_ns)                 # "alice"; None once expired, revoked or unknown
    stop = auth.watch(token, on_end)             # on_end(EXPIRED or REVOKED) once; stop() forgets
    auth.revoke(token)
    auth.expire(now_ns)                          # the periodic sweep: ends expired tokens

A stream opened with a token (a WebSocket, an SSE stream, a held long poll)
watches it, so it ends when the token does: at expiry (noticed by the next
:meth:`Auth.expire` sweep or lookup), on ``bye``, or when the user's oldest
token is evicted by too many sign-ins.

The secret is ``secret`` when given, else :data:`~servers.realtime.credentials.SECRET_ENV`,
else a fresh random one nobody else knows (so nobody can sign in): a server never
falls back to accepting any name unless ``open_signin`` says so.
"""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from servers.protocol import Unauthorized
from servers.realtime.credentials import check_secret, key_matches, new_secret, secret_from_env

#: `\Z`, not `$`: `$` would also accept a name that ends in a newline.
USER_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")

#: Default token lifetime: longer than any benchmark cell, short enough that a
#: leaked token stops working the same hour.
DEFAULT_TOKEN_TTL_S = 3600.0

#: Tokens kept per user (one per tab or reconnect); signing in again beyond it
#: revokes that user's oldest token, so repeated sign-ins cannot grow memory.
MAX_TOKENS_PER_USER = 16

#: Why a token ended, as told to its watchers.
EXPIRED = "expired"
REVOKED = "revoked"

#: Called once with :data:`EXPIRED` or :data:`REVOKED` when a watched token ends.
OnEnd = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class _Grant:
    user: str
    expires_ns: int


class Auth:
    """Checks credentials, issues random bearer tokens and maps them back to users."""

    def __init__(
        self,
        secret: str | None = None,
        open_signin: bool = False,
        token_ttl_s: float = DEFAULT_TOKEN_TTL_S,
        max_tokens_per_user: int = MAX_TOKENS_PER_USER,
    ) -> None:
        if token_ttl_s <= 0:
            raise ValueError(f"token_ttl_s must be > 0, got {token_ttl_s}")
        if max_tokens_per_user < 1:
            raise ValueError("max_tokens_per_user must be >= 1")
        self.open_signin = open_signin
        if secret is not None:
            self.secret: str | None = check_secret(secret)
        elif open_signin:
            self.secret = None
        else:
            self.secret = secret_from_env() or new_secret()
        self.ttl_ns = int(token_ttl_s * 1e9)
        self.max_tokens_per_user = max_tokens_per_user
        # Issue order is expiry order (one TTL for all), so expired tokens are at the front.
        self._grants: OrderedDict[str, _Grant] = OrderedDict()
        self._by_user: dict[str, deque[str]] = {}
        self._watchers: dict[str, list[OnEnd]] = {}

    def key_ok(self, user: str, key: object) -> bool:
        """Whether ``key`` lets ``user`` sign in (always, with ``open_signin``)."""
        if self.open_signin:
            return True
        assert self.secret is not None
        return key_matches(self.secret, user, key)

    def issue(self, user: str, now_ns: int) -> str:
        """A new token for ``user`` valid for the TTL; raises ValueError for an invalid name."""
        if not isinstance(user, str) or not USER_RE.match(user):
            raise ValueError("user must be 1-64 characters of letters, digits, '_', '.', '-'")
        token = secrets.token_urlsafe(24)
        self._grants[token] = _Grant(user, now_ns + self.ttl_ns)
        mine = self._by_user.setdefault(user, deque())
        mine.append(token)
        while len(mine) > self.max_tokens_per_user:
            self.revoke(mine[0])
        return token

    def user_for(self, token: str | None, now_ns: int) -> str | None:
        """The user a token was issued to; None when unknown, revoked or expired."""
        if not token:
            return None
        grant = self._grants.get(token)
        if grant is None:
            return None
        if now_ns >= grant.expires_ns:
            self.revoke(token, EXPIRED)
            return None
        return grant.user

    def expires_ns(self, token: str) -> int | None:
        """When ``token`` expires (``perf_counter_ns`` clock), or None if it is not valid."""
        grant = self._grants.get(token)
        return None if grant is None else grant.expires_ns

    def watch(self, token: str, on_end: OnEnd) -> Callable[[], None]:
        """Call ``on_end(reason)`` once when ``token`` ends; returns a function that stops
        watching. A token already unknown ends at once (``on_end(REVOKED)``)."""
        if token not in self._grants:
            on_end(REVOKED)
            return _nothing
        watchers = self._watchers.setdefault(token, [])
        watchers.append(on_end)

        def stop() -> None:
            if on_end in watchers:
                watchers.remove(on_end)
                if not watchers and self._watchers.get(token) is watchers:
                    del self._watchers[token]

        return stop

    def revoke(self, token: str | None, reason: str = REVOKED) -> None:
        """Forget a token (``bye``, expiry, eviction) and tell its watchers ``reason``;
        unknown tokens are ignored."""
        grant = self._grants.pop(token, None) if token else None
        if grant is None:
            return
        assert token is not None
        mine = self._by_user.get(grant.user)
        if mine is not None:
            mine.remove(token)
            if not mine:
                del self._by_user[grant.user]
        for on_end in self._watchers.pop(token, ()):
            on_end(reason)

    def expire(self, now_ns: int) -> int:
        """End every expired token, telling its watchers; returns how many (called
        periodically, so streams end within one sweep period of their token's expiry)."""
        dropped = 0
        while self._grants:
            token, grant = next(iter(self._grants.items()))
            if grant.expires_ns > now_ns:
                break
            self.revoke(token, EXPIRED)
            dropped += 1
        return dropped

    @property
    def watchers(self) -> int:
        """Streams currently watching a token."""
        return sum(len(w) for w in self._watchers.values())

    @property
    def tokens(self) -> int:
        """Tokens currently valid or not yet swept."""
        return len(self._grants)


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header value, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def request_token(header: str | None, query_token: str | None) -> str | None:
    """The token a request carries: its ``Authorization: Bearer TOKEN`` header, else its
    ``?token=`` value, else None. A header that is there but not ``Bearer TOKEN`` raises
    :class:`~servers.protocol.Unauthorized` (401) on every transport, never falling back."""
    if header is not None:
        token = bearer_token(header)
        if token is None:
            raise Unauthorized("Authorization must be 'Bearer TOKEN'")
        return token
    return query_token or None


def _nothing() -> None:
    return None
