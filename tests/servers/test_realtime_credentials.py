"""Sign-in keys derived from a run's secret, and the token store (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from serving import TEST_SECRET

from servers.realtime.auth import Auth
from servers.realtime.credentials import (
    SECRET_ENV,
    check_secret,
    key_matches,
    main,
    new_secret,
    secret_from_env,
    signin_payload,
    user_key,
)

SECRET = "0123456789abcdef-secret"
S = 1_000_000_000  # one second in ns


def test_keys_depend_on_the_secret_and_the_user() -> None:
    key = user_key(SECRET, "alice")
    assert key == user_key(SECRET, "alice")
    assert key != user_key(SECRET, "bob")
    assert key != user_key(new_secret(), "alice")
    assert key_matches(SECRET, "alice", key)
    for wrong in (user_key(SECRET, "bob"), "", key.upper(), None, 7, "é" * 64):
        assert not key_matches(SECRET, "alice", wrong)


def test_signin_payload_takes_the_secret_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert signin_payload("bob") == {"user": "bob", "key": user_key(TEST_SECRET, "bob")}
    assert signin_payload("bob", SECRET)["key"] == user_key(SECRET, "bob")
    monkeypatch.delenv(SECRET_ENV)
    assert signin_payload("bob") == {"user": "bob"}  # for an --open-signin server only


def test_a_short_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        check_secret("too-short")
    monkeypatch.setenv(SECRET_ENV, "  ")
    assert secret_from_env() is None
    monkeypatch.setenv(SECRET_ENV, "short")
    with pytest.raises(ValueError):
        secret_from_env()


def test_cli_prints_a_users_payload(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    assert main(["alice", "--secret-file", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == signin_payload("alice", SECRET)


def test_auth_resolves_its_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Auth(SECRET).key_ok("alice", user_key(SECRET, "alice"))
    assert Auth().key_ok("alice", user_key(TEST_SECRET, "alice"))  # from the environment
    monkeypatch.delenv(SECRET_ENV)
    # Neither given nor in the environment: a random secret, so no key is accepted.
    auth = Auth()
    assert auth.secret is not None
    assert not auth.key_ok("alice", user_key(TEST_SECRET, "alice"))
    assert not auth.key_ok("alice", None)
    assert Auth(None, open_signin=True).key_ok("alice", None)


def test_tokens_expire_after_the_ttl() -> None:
    auth = Auth(SECRET, token_ttl_s=10)
    token = auth.issue("alice", 0)
    assert auth.user_for(token, 9 * S) == "alice"
    assert auth.user_for(token, 10 * S) is None
    assert auth.tokens == 0  # an expired token is forgotten when seen


def test_expire_drops_only_expired_tokens() -> None:
    auth = Auth(SECRET, token_ttl_s=10)
    old = auth.issue("alice", 0)
    new = auth.issue("bob", 5 * S)
    assert auth.expire(11 * S) == 1
    assert auth.user_for(old, 0) is None
    assert auth.user_for(new, 11 * S) == "bob"


def test_revoke_forgets_one_token() -> None:
    auth = Auth(SECRET)
    first, second = auth.issue("alice", 0), auth.issue("alice", 0)
    auth.revoke(first)
    auth.revoke(first)  # twice is harmless
    auth.revoke(None)
    assert auth.user_for(first, 0) is None
    assert auth.user_for(second, 0) == "alice"


def test_tokens_per_user_are_bounded() -> None:
    auth = Auth(SECRET, max_tokens_per_user=3)
    tokens = [auth.issue("alice", 0) for _ in range(5)]
    assert [auth.user_for(t, 0) for t in tokens] == [None, None, "alice", "alice", "alice"]
    assert auth.tokens == 3
    with pytest.raises(ValueError):
        auth.issue("no spaces", 0)
