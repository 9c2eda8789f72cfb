"""The conformance checks: every server rtbench ships passes them, and each check fails
on a server broken in the way it exists to catch (one mutation per check)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from serving import TEST_SECRET, running

from loadgen.conform import poll_checks, runner
from loadgen.conform.runner import FAILED, PASSED, SKIPPED, run_checks, verdict
from loadgen.conform.target import Target, find_offers, started
from servers import http_server, protocol
from servers.context import Context
from servers.hub import Hub, Session
from servers.realtime import ops
from servers.realtime.auth import Auth
from servers.realtime.config import RealtimeConfig
from servers.realtime.inbox import Inbox

KINDS = ("http", "ws-aiohttp", "ws-websockets")


@contextlib.asynccontextmanager
async def target_for(kind: str, hub: Hub | None = None, **overrides: Any) -> AsyncIterator[Target]:
    async with running(kind, hub=hub) as server:
        target = Target(server.base_url, TEST_SECRET, await find_offers(server.base_url))
        for name, value in overrides.items():
            setattr(target, name, value)
        yield target


@pytest.mark.parametrize("kind", KINDS)
async def test_every_shipped_server_conforms(kind: str) -> None:
    async with target_for(kind) as target:
        results = await run_checks(target)
    failed = [(r.id, r.expected, r.got) for r in results if r.status == FAILED]
    assert failed == []
    assert verdict(results)
    offered = {"http": {"rpc", "sse"}, "ws-aiohttp": {"ws"}, "ws-websockets": {"ws"}}[kind]
    assert {r.transport for r in results if r.status == PASSED} == offered
    assert all(r.status == SKIPPED for r in results if r.transport not in offered)


NODE_SERVER = Path(__file__).resolve().parents[2] / "servers" / "node"


@pytest.mark.skipif(
    shutil.which("node") is None, reason="node is not installed (apt-get install nodejs)"
)
@pytest.mark.skipif(
    not (NODE_SERVER / "node_modules" / "ws").is_dir(),
    reason="the node server's dependencies are missing: run make node-deps",
)
async def test_the_node_reference_server_conforms_on_every_transport() -> None:
    async with started(["node", str(NODE_SERVER / "server.js")]) as target:
        results = await run_checks(target)
    assert [(r.id, r.expected, r.got) for r in results if r.status != PASSED] == []
    assert {r.transport for r in results} == {"rpc", "sse", "ws"}


def _page_without_last(page: Any) -> dict[str, Any]:
    body = dict(ORIGINAL_PAGE_JSON(page))
    del body["last"]
    return body


def _page_with_text_gap(page: Any) -> dict[str, Any]:
    return {**ORIGINAL_PAGE_JSON(page), "gap": "no"}


ORIGINAL_PAGE_JSON = ops.page_json
ORIGINAL_READ = Inbox.read
ORIGINAL_FOLLOW = Session.follow


def _mutate(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Break the servers in the way ``name`` says (undone after the test)."""
    patch = monkeypatch.setattr
    if name == "wrong_status":
        patch(protocol.UnknownOp, "http_status", 200)
    elif name == "missing_field":
        patch(ops, "page_json", _page_without_last)
    elif name == "mistyped_field":
        patch(ops, "page_json", _page_with_text_gap)
    elif name == "cursor_repeats":
        patch(
            Inbox,
            "read",
            lambda self, after, limit=1000: ORIGINAL_READ(self, max(after - 1, 0), limit),
        )
    elif name == "cursor_skips":
        patch(Inbox, "read", lambda self, after, limit=1000: ORIGINAL_READ(self, after + 1, limit))
    elif name == "long_poll_early":

        async def at_once(
            self: Inbox, after: int, timeout_s: float, limit: int = 1000, abort: Any = None
        ) -> Any:
            return ORIGINAL_READ(self, after, limit)

        patch(Inbox, "wait", at_once)
    elif name == "sse_ignores_last_event_id":
        patch(http_server, "resume_after", lambda last_event_id, after: 0)
    elif name == "ws_push_loses_across_reconnect":
        patch(Session, "follow", lambda self, box, after: ORIGINAL_FOLLOW(self, box, box.last_seq))
    elif name == "acts_as_other":
        patch(ops.Realtime, "check_self", staticmethod(lambda payload, ctx: None))
    elif name == "signin_without_key":
        patch(Auth, "key_ok", lambda self, user, key: True)
    elif name == "bye_keeps_token":
        patch(Auth, "revoke", lambda self, token, reason="revoked": None)
    elif name == "echo_changes_payload":

        async def changed(self: Hub, req: Any, ctx: Any) -> Any:
            return {"not": "the payload"}

        patch(Hub, "_echo", changed)
    elif name == "wrong_error_code":
        patch(protocol.MalformedJSON, "code", "invalid_envelope")
    elif name in ("unknown_op_code", "unknown_user_code", "invalid_envelope_code"):
        cls = {"unknown_op_code": protocol.UnknownOp, "unknown_user_code": protocol.UnknownUser}
        patch(cls.get(name, protocol.InvalidEnvelope), "code", "protocol_error")
    elif name == "invalid_envelope_status":
        patch(protocol.InvalidEnvelope, "http_status", 422)
    elif name == "no_token_needed":
        patch(Hub, "register", _register_without_auth)
    elif name == "unknown_token_is_anonymous":
        patch(Hub, "authenticate", lambda self, token: Context())
    elif name == "unknown_user_status":
        patch(protocol.UnknownUser, "http_status", 400)
    elif name == "presence_leaks":
        patch(
            ops.Realtime,
            "_visible_status",
            lambda self, caller, user: {"status": "online", "last_seen": None},
        )
    elif name == "subscribe_forgets":

        async def forgets(self: Any, req: Any, ctx: Any) -> Any:
            return {"topic": req.payload["topic"], "subscribers": 1}

        patch(ops.Realtime, "op_subscribe", forgets)
    elif name == "unauthorized_status":
        patch(protocol.Unauthorized, "http_status", 403)
    elif name == "sse_without_ids":
        patch(http_server, "sse_event", lambda body: b"data: %b\n\n" % body)
    elif name == "signin_does_not_bind":
        patch(Session, "bind", lambda self, user, token: None)
    elif name == "inbox_ignores_limit":
        patch(http_server, "poll_request", _poll_request_without_limit)
    elif name == "payload_ints_unbounded":
        patch(ops, "field", _field_without_range)
    elif name == "long_poll_sleeps":

        async def sleeps(
            self: Inbox, after: int, timeout_s: float, limit: int = 1000, abort: Any = None
        ) -> Any:
            await asyncio.sleep(timeout_s)
            return ORIGINAL_READ(self, after, limit)

        patch(Inbox, "wait", sleeps)
        patch(poll_checks, "WAKE_WAIT_MS", 1500)
    else:
        raise AssertionError(name)


ORIGINAL_REGISTER = Hub.register
ORIGINAL_FIELD = ops.field
ORIGINAL_POLL_REQUEST = http_server.poll_request


def _register_without_auth(self: Hub, op: str, handler: Any, auth: bool = False) -> None:
    ORIGINAL_REGISTER(self, op, handler, auth=False)


def _field_without_range(payload: Any, key: str, kind: Any, required: bool = True, **_: Any) -> Any:
    # Any integer the decoder reads (up to 2**64 - 1) is taken.
    return ORIGINAL_FIELD(payload, key, kind, required, low=-(2**64), high=2**64)


def _poll_request_without_limit(query: Any) -> Any:
    return ORIGINAL_POLL_REQUEST({k: v for k, v in query.items() if k != "limit"})


#: (mutation, server kind, the check that must fail on it).
MUTATIONS = [
    ("wrong_status", "http", "rpc.unknown_op"),
    ("missing_field", "http", "rpc.inbox_cursor"),
    ("missing_field", "ws-aiohttp", "ws.inbox_cursor"),
    ("mistyped_field", "http", "rpc.inbox_get"),
    ("cursor_repeats", "http", "rpc.inbox_cursor"),
    ("cursor_skips", "ws-websockets", "ws.inbox_cursor"),
    ("long_poll_early", "http", "rpc.long_poll_holds"),
    ("sse_ignores_last_event_id", "http", "sse.resume"),
    ("ws_push_loses_across_reconnect", "ws-aiohttp", "ws.push_resume"),
    ("ws_push_loses_across_reconnect", "ws-websockets", "ws.push_resume"),
    ("acts_as_other", "http", "rpc.act_as_other"),
    ("acts_as_other", "ws-aiohttp", "ws.act_as_other"),
    ("signin_without_key", "http", "rpc.signin"),
    ("bye_keeps_token", "ws-websockets", "ws.bye"),
    ("bye_keeps_token", "http", "rpc.bye"),
    ("echo_changes_payload", "http", "rpc.echo"),
    ("echo_changes_payload", "ws-aiohttp", "ws.echo"),
    ("wrong_error_code", "http", "rpc.malformed_json"),
    ("wrong_error_code", "ws-websockets", "ws.malformed_json"),
    ("invalid_envelope_status", "http", "rpc.invalid_envelope"),
    ("invalid_envelope_code", "ws-websockets", "ws.invalid_envelope"),
    ("unknown_op_code", "ws-aiohttp", "ws.unknown_op"),
    ("unknown_user_code", "ws-websockets", "ws.unknown_user"),
    ("no_token_needed", "http", "rpc.needs_token"),
    ("no_token_needed", "ws-aiohttp", "ws.needs_token"),
    ("unauthorized_status", "http", "rpc.bad_token"),
    ("unknown_token_is_anonymous", "ws-websockets", "ws.bad_token"),
    ("unknown_user_status", "http", "rpc.unknown_user"),
    ("presence_leaks", "http", "rpc.presence"),
    ("presence_leaks", "ws-aiohttp", "ws.presence"),
    ("subscribe_forgets", "http", "rpc.notifications"),
    ("subscribe_forgets", "ws-websockets", "ws.notifications"),
    ("unauthorized_status", "http", "sse.needs_token"),
    ("sse_without_ids", "http", "sse.stream"),
    ("signin_does_not_bind", "ws-aiohttp", "ws.signin_binds"),
    ("inbox_ignores_limit", "http", "rpc.inbox_get"),
    ("long_poll_sleeps", "http", "rpc.long_poll_wakes"),
    ("signin_without_key", "ws-aiohttp", "ws.signin"),
    ("cursor_skips", "ws-aiohttp", "ws.push_resume"),
    ("payload_ints_unbounded", "http", "rpc.int64"),
    ("payload_ints_unbounded", "ws-websockets", "ws.int64"),
]

#: Checks failed by a server set up differently rather than patched (the tests below).
FAILED_BY_SETTINGS = {"rpc.limit", "ws.limit", "rpc.too_large", "ws.too_large"}


def test_every_check_has_a_mutation_it_fails_on() -> None:
    covered = {check_id for _, _, check_id in MUTATIONS} | FAILED_BY_SETTINGS
    assert {c.id for c in runner.registered()} - covered == set()


@pytest.mark.parametrize(("mutation", "kind", "check_id"), MUTATIONS)
async def test_each_check_fails_on_its_mutation(
    monkeypatch: pytest.MonkeyPatch, mutation: str, kind: str, check_id: str
) -> None:
    _mutate(monkeypatch, mutation)
    async with target_for(kind) as target:
        (result,) = await run_checks(target, only=[check_id])
    assert result.status == FAILED, (mutation, result)
    assert result.expected and result.got


@pytest.mark.parametrize(("kind", "check_id"), [("http", "rpc.limit"), ("ws-aiohttp", "ws.limit")])
async def test_a_limit_the_server_does_not_enforce_fails(kind: str, check_id: str) -> None:
    # The server holds 100,000 watched names while the protocol's default bound is 1,000.
    hub = Hub(realtime=RealtimeConfig(max_watch=100_000))
    async with target_for(kind, hub=hub) as target:
        (result,) = await run_checks(target, only=[check_id])
    assert result.status == FAILED
    assert "limit_reached" in result.expected


@pytest.mark.parametrize("kind", ["http", "ws-aiohttp"])
async def test_a_message_limit_the_server_does_not_enforce_fails(kind: str) -> None:
    # The target says 1,000 bytes; the server takes up to 1 MiB.
    async with target_for(kind, max_message_bytes=1000) as target:
        (result,) = await run_checks(
            target, only=[f"{'rpc' if kind == 'http' else 'ws'}.too_large"]
        )
    assert result.status == FAILED
    assert "1001 bytes" in result.expected


async def test_a_check_that_raises_is_a_failed_row_and_the_rest_still_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def boom(p: Any) -> None:
        raise ConnectionResetError("reset by peer")

    checks = runner.registered()
    first = checks[0]
    patched = [runner.Check(first.transport, first.name, first.title, boom), *checks[1:3]]
    monkeypatch.setattr(runner, "registered", lambda: patched)
    async with target_for("http") as target:
        results = await run_checks(target)
    assert [r.status for r in results] == [FAILED, PASSED, PASSED]
    assert results[0].got == "ConnectionResetError: reset by peer"


async def test_only_selects_checks_by_glob() -> None:
    async with target_for("http") as target:
        seen: list[str] = []
        results = await run_checks(
            target, only=["sse.*", "rpc.echo"], progress=lambda r: seen.append(r.id)
        )
    assert (
        [r.id for r in results]
        == seen
        == ["rpc.echo", "sse.needs_token", "sse.stream", "sse.resume"]
    )


async def test_the_probe_finds_what_each_server_offers() -> None:
    for kind, offers in (
        ("http", {"rpc", "sse"}),
        ("ws-aiohttp", {"ws"}),
        ("ws-websockets", {"ws"}),
    ):
        async with running(kind) as server:
            assert await find_offers(server.base_url) == offers


def test_every_check_has_a_unique_id_and_a_title() -> None:
    checks = runner.registered()
    ids = [c.id for c in checks]
    assert len(ids) == len(set(ids))
    assert all(c.title and c.transport in ("rpc", "sse", "ws") for c in checks)
    assert [c.transport for c in checks] == sorted(
        (c.transport for c in checks), key=("rpc", "sse", "ws").index
    )
