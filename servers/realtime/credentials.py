"""Sign-in credentials: a per-run secret and each user's key derived from it. No I/O.

The load generator makes one secret per run (:func:`new_secret`) and hands it
to the server and to its own worker processes in the environment variable
:data:`SECRET_ENV` (never on a command line, where ``ps`` shows it). A user's
key is HMAC-SHA256(secret, user name), so both ends derive it and no list of
passwords travels anywhere::

    secret = new_secret()
    signin_payload("alice", secret)    # {"user": "alice", "key": "9f2c..."}
    key_matches(secret, "alice", key)  # True for that key, False for any other

Every client builds its ``signin`` payload with :func:`signin_payload`; with
no secret given it reads :data:`SECRET_ENV`, and with none there it sends the
bare user name, which only a server started with ``--open-signin`` accepts.

From a shell (the secret in the environment or in a file)::

    python -m servers.realtime.credentials alice --secret-file /tmp/rtbench-secret-x/secret
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

#: Environment variable carrying the run's sign-in secret to servers and load generators.
SECRET_ENV = "RTBENCH_SIGNIN_SECRET"

#: Shortest secret accepted, in characters: a guessable secret would make every key guessable.
MIN_SECRET_CHARS = 16


def new_secret() -> str:
    """A fresh random secret (64 hex characters)."""
    return secrets.token_hex(32)


def check_secret(secret: str) -> str:
    """``secret`` stripped of surrounding white space; ValueError when it is too short."""
    text = secret.strip()
    if len(text) < MIN_SECRET_CHARS:
        raise ValueError(
            f"the sign-in secret must be at least {MIN_SECRET_CHARS} characters, got {len(text)}"
        )
    return text


def secret_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The secret in :data:`SECRET_ENV` (checked), or None when it is unset or empty."""
    value = (os.environ if environ is None else environ).get(SECRET_ENV, "")
    return check_secret(value) if value.strip() else None


def user_key(secret: str, user: str) -> str:
    """``user``'s sign-in key under ``secret``: HMAC-SHA256, hex."""
    return hmac.new(secret.encode(), user.encode(), hashlib.sha256).hexdigest()


def key_matches(secret: str, user: str, key: object) -> bool:
    """Whether ``key`` is ``user``'s key under ``secret`` (constant-time comparison)."""
    if not isinstance(key, str) or not key.isascii():
        return False
    return hmac.compare_digest(user_key(secret, user), key)


def signin_payload(user: str, secret: str | None = None) -> dict[str, str]:
    """The payload of a ``signin`` request for ``user``.

    ``secret`` defaults to :func:`secret_from_env`; without one the payload
    names the user only (accepted by an ``--open-signin`` server alone).
    """
    secret = secret if secret is not None else secret_from_env()
    if secret is None:
        return {"user": user}
    return {"user": user, "key": user_key(secret, user)}


def main(argv: list[str] | None = None) -> int:
    """Print a user's ``signin`` payload as JSON; the secret from a file or the environment."""
    parser = argparse.ArgumentParser(
        prog="python -m servers.realtime.credentials",
        description=f"Print the signin payload of USER (secret: --secret-file or ${SECRET_ENV}).",
    )
    parser.add_argument("user")
    parser.add_argument("--secret-file", type=Path, help="file holding the server's secret")
    args = parser.parse_args(argv)
    try:
        if args.secret_file is not None:
            secret: str | None = check_secret(args.secret_file.read_text())
        else:
            secret = secret_from_env()
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    if secret is None:
        parser.error(f"no secret: pass --secret-file or set {SECRET_ENV}")
    print(json.dumps(signin_payload(args.user, secret)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
