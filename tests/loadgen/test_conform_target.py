"""Finding the server to check: loopback URLs only, commands started, waited for and stopped."""

from __future__ import annotations

import sys

import pytest
from serving import TEST_SECRET, running

from loadgen.conform import target as target_mod
from loadgen.conform.target import TargetError, check_url, probe_url, started

PY = sys.executable


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://example.com:80", "not a loopback address"),
        ("http://10.0.0.1:8080/", "not a loopback address"),
        ("ftp://127.0.0.1:21", "must be an http:// URL"),
        ("127.0.0.1:8080", "must be an http:// URL"),
    ],
)
def test_only_loopback_http_urls_are_checked(url: str, problem: str) -> None:
    with pytest.raises(TargetError, match=problem):
        check_url(url)


def test_loopback_urls_lose_their_trailing_slash() -> None:
    assert check_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert check_url("http://[::1]:8080") == "http://[::1]:8080"
    assert check_url("http://localhost:1") == "http://localhost:1"


async def test_a_url_where_nothing_listens_names_it(dead_base_url: str) -> None:
    with pytest.raises(TargetError, match="nothing answers at"):
        await probe_url(dead_base_url, TEST_SECRET)


async def test_a_running_server_is_probed() -> None:
    async with running("http") as server:
        target = await probe_url(server.base_url + "/", TEST_SECRET)
    assert target.base_url == server.base_url
    assert target.offers == {"rpc", "sse"}
    assert target.name == server.base_url


async def test_a_started_command_is_checked_then_stopped_with_its_stats() -> None:
    async with started([PY, "-m", "servers", "http", "--port", "0"]) as target:
        assert target.ready is not None and target.ready["kind"] == "http"
        assert target.offers == {"rpc", "sse"}
        assert target.secret is not None and len(target.secret) >= 16
        assert target.base_url == f"http://127.0.0.1:{target.ready['port']}"
    assert target.stats is not None and "limit_refusals" in target.stats


async def test_a_command_that_exits_before_its_ready_line_says_so() -> None:
    code = "print('starting'); raise SystemExit(3)"
    with pytest.raises(
        TargetError, match=r"exited with 3 before its RTBENCH-READY line \(it printed: starting\)"
    ):
        async with started([PY, "-c", code]):
            pass


async def test_a_command_that_never_gets_ready_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(target_mod, "READY_TIMEOUT_S", 0.5)
    with pytest.raises(TargetError, match="printed no RTBENCH-READY line within"):
        async with started([PY, "-c", "import time; time.sleep(60)"]):
            pass


async def test_a_ready_line_naming_another_host_is_refused() -> None:
    ready = 'RTBENCH-READY {"kind": "x", "host": "192.0.2.1", "port": 80}'
    code = f"print({ready!r}, flush=True); import time; time.sleep(60)"
    with pytest.raises(TargetError, match=r"'192\.0\.2\.1', which is not a loopback address"):
        async with started([PY, "-c", code]):
            pass


async def test_a_missing_program_is_named() -> None:
    with pytest.raises(TargetError, match="cannot start 'no-such-program-rtbench'"):
        async with started(["no-such-program-rtbench"]):
            pass
