"""Sign-in and bearer tokens: every operation but echo/signin acts as one user.

::

    auth = Auth()
    token = auth.sign_in("alice")
    auth.user_for(token)      # "alice"; None for an unknown token
"""

from __future__ import annotations

import re
import secrets

USER_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class Auth:
    """Issues random bearer tokens and maps them back to users."""

    def __init__(self) -> None:
        self._users: dict[str, str] = {}

    def sign_in(self, user: str) -> str:
        """A new token for ``user``; raises ValueError for an invalid user name."""
        if not isinstance(user, str) or not USER_RE.match(user):
            raise ValueError("user must be 1-64 characters of letters, digits, '_', '.', '-'")
        token = secrets.token_urlsafe(24)
        self._users[token] = user
        return token

    def user_for(self, token: str | None) -> str | None:
        """The user a token was issued to, or None."""
        if not token:
            return None
        return self._users.get(token)

    def sign_out(self, token: str) -> None:
        """Forget a token."""
        self._users.pop(token, None)


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header value, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
