"""Fixtures that start rtbench servers on 127.0.0.1 (port 0) for the load-generator tests.

``serve_in_loop`` runs a server's ``serve()`` in the event loop the test is
already running (for instance one made by :func:`loadgen.wire.new_event_loop`)::

    def test_x(serve_in_loop):
        async def main():
            async with serve_in_loop("http") as server:
                ...  # server.base_url == "http://127.0.0.1:PORT"

``dead_base_url`` is a 127.0.0.1 port that is bound but not listening, so
connecting to it is refused at once (and no other process can take it).

Every test runs with ``$RTBENCH_SIGNIN_SECRET`` set to :data:`serving.TEST_SECRET`,
as a run's children do: hubs made in the test and the clients that sign in to
them share it.

``real_runs`` is one tiny real echo run and one tiny real messaging run, made
once per session and shared by every test that reads real results.

End-to-end tests (whole ``rtbench run`` launches, locust masters and workers,
several load-generator processes, killed processes, a browser) carry the
``e2e`` marker: ``make test`` leaves them out, ``make test-e2e`` runs only them,
``make test-all`` (and CI) runs both. A test is end to end when its name is in
:data:`E2E_TESTS` or it uses a fixture in :data:`E2E_FIXTURES`.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from reports_fixtures import RealRuns
from reports_fixtures import real_runs as make_real_runs
from serving import HOST, TEST_SECRET, RunningServer, running

from servers.common import ServerConfig
from servers.realtime.credentials import SECRET_ENV

# Tests check behaviour, never speed: no hypothesis deadline, and a slow first draw on a
# busy machine is not a failure.
settings.register_profile("rtbench", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("rtbench")

#: Tests that launch whole runs or several real processes (see the module docstring).
E2E_TESTS = frozenset(
    {
        "test_trimmed_matrix_runs_and_reports_a_verdict_per_part",
        "test_locust_engine_with_two_workers",
        "test_e2e_two_real_runs_compare_in_report_only_mode",
        "test_real_multi_part_run",
        "test_one_html_section_per_part",
        "test_cells_run_over_each_profile_through_the_relay",
        "test_kernel_link_run_with_a_rate_only_profile",
        "test_sigterm_during_a_kernel_link_run_removes_the_namespaces",
        "test_rtbench_report_writes_the_matrix_for_a_two_link_run",
        "test_a_killed_child_fails_its_repeat_only",
        "test_a_server_too_small_for_its_users_has_its_refusals_reported",
        "test_a_stalled_server_shows_in_the_corrected_latency",
        "test_messaging_sse_two_local_workers",
        "test_worker_dying_mid_run_keeps_the_others_results",
        "test_messaging_ws_push_two_local_workers",
        "test_echo_http_keep_alive_two_local_workers",
        "test_echo_ws_with_a_joined_worker",
        "test_churners_behind_the_inbox_retention_count_gaps",
        "test_unreachable_master_is_a_clear_error",
        "test_locust_version_mismatch_is_refused",
        "test_echo_over_tls",
        "test_run_checks_slo_when_the_report_fails",
        "test_run_with_a_mathtext_cell_name_writes_report_and_checks_slo",
        "test_run_with_tls_cells",
        "test_sigterm_leaves_partial_results_and_exits_130",
        "test_sigterm_while_starting_a_child_stops_the_run_and_the_child",
        "test_engine_counts_gaps_when_churners_fall_behind",
        "test_sigkilled_rtbench_takes_server_relay_and_load_generator_along",
        "test_rtbench_run_with_an_sse_cell_loses_nothing",
        "test_node_cells_run_every_delivery_mode_and_lose_nothing",
        "test_a_run_on_a_running_server_measures_it_by_its_port",
        "test_rtbench_run_pairs_http2_delivery_with_the_websocket_cell",
        "test_rtbench_run_delivers_over_http3_without_loss",
    }
)

#: Fixtures that make real runs: every test using one is end to end.
E2E_FIXTURES = frozenset(
    {"real_runs", "runs", "lean_runs", "two_process_run", "finished_run", "report_html"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        name = getattr(item, "originalname", item.name)
        if name in E2E_TESTS or E2E_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> RealRuns:
    """A tiny real echo run and a tiny real messaging run, once per session."""
    return make_real_runs(tmp_path_factory.getbasetemp())


@contextlib.asynccontextmanager
async def _serve_in_loop(
    kind: str, max_message_bytes: int = 1 << 20
) -> AsyncIterator[RunningServer]:
    async with running(kind, config=ServerConfig(HOST, 0, max_message_bytes)) as server:
        yield server


@pytest.fixture(autouse=True)
def _signin_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, TEST_SECRET)


@pytest.fixture
def serve_in_loop() -> Callable[..., Any]:
    """``async with serve_in_loop(kind) as server`` runs ``kind`` in the running loop."""
    return _serve_in_loop


@pytest.fixture
def dead_base_url() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` where PORT is bound but not listening: connections are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, 0))
        yield f"http://{HOST}:{sock.getsockname()[1]}"
    finally:
        sock.close()
