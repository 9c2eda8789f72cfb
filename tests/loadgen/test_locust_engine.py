"""The locust engine: headless runs with local (and joined) workers against real servers.

Locust monkey-patches the process that imports it, so every locust run here is a
subprocess (``python -m loadgen.locust_engine.worker``); this process only
imports the engine's gevent-free modules. Servers listen on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import psutil
import pyarrow.parquet as pq
import pytest
from realtime_cells import realtime_cell
from test_realtime_gaps import CHURN

from loadgen.cellspec import CellRun
from loadgen.locust_engine import MODULE, join_master, parse_master, worker_argv
from loadgen.locust_engine.compat import check_compat, node_info
from loadgen.locust_engine.merge import merge_results, merged_tables
from loadgen.procs import Child, start_server, stop_process
from loadgen.recorder import decode_histogram, encode_histogram, new_histogram
from loadgen.schema import DELIVERY_SCHEMA, SAMPLE_SCHEMA

pytestmark = pytest.mark.timeout(30)

RUN_TIMEOUT_S = 25.0


@contextlib.contextmanager
def server(kind: str, tmp_path: Path) -> Iterator[str]:
    child: Child = start_server(kind, None, tmp_path / f"{kind}.log", 1 << 20)
    try:
        yield f"http://127.0.0.1:{child.info['port']}"
    finally:
        stop_process(child)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def echo_spec(base_url: str, transport: str, conn_mode: str = "keep-alive") -> CellRun:
    return CellRun(
        cell=f"{transport}/locust",
        transport=transport,
        client="aiohttp",
        conn_mode=conn_mode if transport == "http" else "",
        base_url=base_url,
        model="closed",
        connections=4,
        duration_s=1.5,
        warmup_s=0.3,
        timeout_s=3.0,
    )


def messaging_spec(base_url: str, transport: str) -> CellRun:
    return CellRun(
        cell=f"{transport}/push",
        transport=transport,
        client="websockets",
        conn_mode="",
        base_url=base_url,
        model="open",
        duration_s=2.0,
        warmup_s=0.5,
        timeout_s=3.0,
        workload="messaging",
        delivery="push",
        realtime={
            "users": 16,
            "group_size": 4,
            "message_rate": 3.0,
            "direct_ratio": 0.5,
            "drain_s": 2.0,
        },
    )


def write_spec(tmp_path: Path, spec: CellRun) -> Path:
    path = tmp_path / "spec.json"
    path.write_bytes(orjson.dumps(spec.to_dict()))
    return path


def events_of(stdout: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def run_engine(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def check_events(events: list[dict[str, Any]]) -> None:
    kinds = [(e["event"], e.get("phase")) for e in events]
    assert kinds.index(("phase", "warm-up")) < kinds.index(("phase", "measure"))
    assert kinds.index(("phase", "measure")) < kinds.index(("phase", "drain"))
    assert kinds[-1] == ("done", None)
    assert all(e["event"] in ("phase", "progress", "done") for e in events)
    assert set(events[-1]) == {"event", "count", "errors", "loop"}


def read_part(prefix: Path) -> dict[str, Any]:
    return orjson.loads(prefix.with_suffix(".json").read_bytes())


def check_locust_part(part: dict[str, Any], workers: int) -> None:
    assert part["engine"] == "locust"
    assert part["locust_workers"] == workers
    assert part["closed_loop"] is True
    assert part["locust_version"]
    assert part["partial"] is False and part["worker_failures"] == []
    assert part["count"] > 0 and part["errors"] == 0
    assert decode_histogram(part["hdr_corrected"]).get_total_count() == part["count"]
    assert len(part["workers"]) == workers


def read_samples(prefix: Path) -> Any:
    table = pq.read_table(prefix.with_suffix(".parquet"))
    assert table.schema.equals(SAMPLE_SCHEMA)
    return table.to_pandas()


def run_two_local_workers(
    tmp_path: Path, kind: str, spec_of: Callable[[str], CellRun], name: str
) -> tuple[Path, str, dict[str, Any]]:
    """Serve ``kind``, run ``spec_of(base_url)`` on two local workers into ``tmp_path/name``.

    Asserts the run exited 0 and wrote a locust part of two workers; returns the results
    prefix, the engine's stdout and that part.
    """
    with server(kind, tmp_path) as base:
        spec_path = write_spec(tmp_path, spec_of(base))
        prefix = tmp_path / name
        proc = run_engine(worker_argv(spec_path, prefix, workers=2))
    assert proc.returncode == 0, proc.stderr
    part = read_part(prefix)
    check_locust_part(part, 2)
    return prefix, proc.stdout, part


def test_echo_http_keep_alive_two_local_workers(tmp_path: Path) -> None:
    spec_of = partial(echo_spec, transport="http")
    prefix, stdout, part = run_two_local_workers(tmp_path, "http", spec_of, "000-http-r0")
    check_events(events_of(stdout))
    assert {w["users"] for w in part["workers"]} == {2}
    samples = read_samples(prefix)
    measured = samples[(samples.kind == "request") & ~samples.warmup]
    assert len(measured) == part["count"]
    assert sorted(samples.conn.unique()) == [0, 1, 2, 3]
    assert (measured.latency_ns > 0).all() and (measured.bytes_sent > 0).all()
    # Sub-millisecond precision: not whole milliseconds, as locust's own stats keep them.
    assert (measured.latency_ns % 1_000_000 != 0).any()
    stats_csv = (tmp_path / "000-http-r0.locust_stats.csv").read_text()
    assert "/rpc echo" in stats_csv and (tmp_path / "000-http-r0.locust.html").exists()


def test_echo_ws_with_a_joined_worker(tmp_path: Path) -> None:
    """One local worker plus one that joins the master (as from another machine)."""
    port = free_port()
    with server("ws-aiohttp", tmp_path) as base:
        spec_path = write_spec(tmp_path, echo_spec(base, "ws-aiohttp"))
        prefix = tmp_path / "001-ws-r0"
        argv = worker_argv(spec_path, prefix, workers=1, remote_workers=1, master_port=port)
        master = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        joined: list[int] = []
        joiner = threading.Thread(
            target=lambda: joined.append(join_master("127.0.0.1", port, connect_timeout_s=15))
        )
        joiner.start()
        try:
            stdout, stderr = master.communicate(timeout=RUN_TIMEOUT_S)
        finally:
            master.kill()
        joiner.join(timeout=10)
    assert master.returncode == 0, stderr
    assert joined == [0]
    check_events(events_of(stdout))
    part = read_part(prefix)
    check_locust_part(part, 2)
    samples = read_samples(prefix)
    connects = samples[samples.kind == "connect"]
    assert len(connects) == 4 and connects.ok.all()
    assert (samples[samples.kind == "request"].latency_ns > 0).all()


def test_messaging_ws_push_two_local_workers(tmp_path: Path) -> None:
    spec_of = partial(messaging_spec, transport="ws-websockets")
    prefix, stdout, part = run_two_local_workers(tmp_path, "ws-websockets", spec_of, "002-push-r0")
    check_events(events_of(stdout))
    counts = part["deliveries"]
    assert counts["expected"] > 0
    assert counts["delivered"] == counts["expected"] and counts["lost"] == 0
    assert counts["duplicated"] == 0 and counts["unexpected"] == 0 and counts["gaps"] == 0
    assert part["stats"]["users"] == 16
    # Each worker made room in its open files for its 8 people, a WebSocket each.
    limits = part["fd_limits"]
    assert [(f["share"], f["connections"]) for f in limits] == [(8, 8), (8, 8)]
    assert all(f["soft_after"] is None or f["soft_after"] >= f["needed"] for f in limits)
    assert decode_histogram(part["delivery_hdr"]["all"]).get_total_count() > 0
    deliveries = pq.read_table(prefix.with_suffix(".deliveries.parquet"))
    assert deliveries.schema.equals(DELIVERY_SCHEMA)
    rows = deliveries.to_pandas()
    assert len(rows) == counts["delivered"]
    assert (rows.via == "push").all() and (rows.latency_ns > 0).all()
    # Whole groups per worker: each worker's people received their own deliveries.
    assert {r[:2] for r in rows.recipient} == {"w0", "w1"}
    assert (rows.recipient.str[:2] == rows.sender.str[:2]).all()
    samples = read_samples(prefix)
    assert set(samples.kind) >= {"connect", "signin", "join", "subscribe_inbox", "send"}
    # locust's stats hold every push with its real (nonzero) latency.
    stats = (tmp_path / "002-push-r0.locust_stats.csv").read_text().splitlines()
    push = [line.split(",") for line in stats if line.startswith("PUSH,message delivery,")]
    assert push and float(push[0][5]) > 0  # average response time, ms
    assert int(push[0][2]) == sum(not w for w in rows.warmup)
    # Both workers timed their hub's wake-ups and collections; the server its own.
    stalls = part["stats"]["stalls"]
    assert stalls["loop"]["checks"] > 0 and len(stalls["gc"]["collections"]) == 3
    assert part["stats"]["server_stats"]["stalls"]["loop"]["checks"] == 0  # not asked
    assert part["stats"]["gc"]["policy"] == "promoted"


def test_messaging_sse_two_local_workers(tmp_path: Path) -> None:
    def spec_of(base: str) -> CellRun:
        spec = messaging_spec(base, "http")
        return CellRun.from_dict(spec.to_dict() | {"delivery": "sse", "conn_mode": "keep-alive"})

    prefix, _, part = run_two_local_workers(tmp_path, "http", spec_of, "005-sse-r0")
    counts = part["deliveries"]
    assert counts["expected"] > 0 and counts["delivered"] == counts["expected"]
    assert counts["gaps"] == 0
    rows = pq.read_table(prefix.with_suffix(".deliveries.parquet")).to_pandas()
    assert (rows.via == "sse").all() and (rows.latency_ns > 0).all() and (rows.bytes > 0).all()
    assert part["push_bytes_measured"] > 0
    samples = read_samples(prefix)
    assert (samples[samples.kind == "connect"].ok).all()


@pytest.mark.parametrize(
    ("kind", "delivery"),
    [("http", "short-poll"), ("ws-websockets", "push"), ("http", "sse")],
)
def test_churners_behind_the_inbox_retention_count_gaps(
    tmp_path: Path, kind: str, delivery: str
) -> None:
    """Churners away while their group sends 20 messages/s, on a server keeping 3 per inbox."""
    args = ["--inbox-retention", "3", "--presence-timeout", "0.3"]
    child = start_server(kind, None, tmp_path / "server.log", 1 << 20, extra_args=args)
    try:
        spec = realtime_cell(
            kind,
            delivery,
            f"http://127.0.0.1:{child.info['port']}",
            conn_mode="keep-alive" if kind == "http" else "",
            duration_s=2.0,
            warmup_s=0.2,
            workload="messaging",
            realtime=CHURN,
        )
        prefix = tmp_path / "007-gaps-r0"
        proc = run_engine(worker_argv(write_spec(tmp_path, spec), prefix))
    finally:
        stop_process(child)
    assert proc.returncode == 0, proc.stderr
    counts = read_part(prefix)["deliveries"]
    assert counts["gaps"] > 0 and counts["lost"] > 0, counts


def test_echo_over_tls(tmp_path: Path) -> None:
    from loadgen.tls import make_certificates

    certs = make_certificates(tmp_path / "tls")
    args = ["--tls-version", "1.3", "--tls-cert", certs.cert, "--tls-key", certs.key]
    child = start_server("http", None, tmp_path / "https.log", 1 << 20, extra_args=args)
    try:
        spec = echo_spec(f"https://127.0.0.1:{child.info['port']}", "http")
        spec = CellRun.from_dict(spec.to_dict() | {"tls": "1.3", "ca_file": certs.ca})
        prefix = tmp_path / "006-https-r0"
        proc = run_engine(worker_argv(write_spec(tmp_path, spec), prefix))
    finally:
        stop_process(child)
    assert proc.returncode == 0, proc.stderr
    part = read_part(prefix)
    check_locust_part(part, 1)
    assert part["locust_mode"] == "local"
    measured = read_samples(prefix).query("kind == 'request' and not warmup")
    # Wire bytes of TLS connections are TLS records (from TCP_INFO), so nonzero.
    assert (measured.bytes_sent > 0).any() and (measured.bytes_received > 0).any()


def test_worker_dying_mid_run_keeps_the_others_results(tmp_path: Path) -> None:
    with server("http", tmp_path) as base:
        spec = echo_spec(base, "http")
        spec = CellRun.from_dict(spec.to_dict() | {"duration_s": 3.0})
        spec_path = write_spec(tmp_path, spec)
        prefix = tmp_path / "003-http-r0"
        master = subprocess.Popen(
            worker_argv(spec_path, prefix, workers=2),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert master.stdout is not None
            for line in master.stdout:
                if '"measure"' in line:
                    break
            time.sleep(0.5)
            children = psutil.Process(master.pid).children()
            assert len(children) == 2
            children[0].kill()
            rest, stderr = master.communicate(timeout=RUN_TIMEOUT_S)
        finally:
            master.kill()
    assert master.returncode == 0, stderr
    assert "locust worker failed" in stderr and "exited with code" in stderr
    assert events_of(rest)[-1]["event"] == "done"
    part = read_part(prefix)
    assert part["partial"] is True and len(part["worker_failures"]) == 1
    assert len(part["workers"]) == 1 and part["count"] > 0
    assert len(read_samples(prefix)) > 0


def test_unreachable_master_is_a_clear_error(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    argv = [sys.executable, "-m", MODULE, "--join", f"127.0.0.1:{port}", "--connect-timeout", "2"]
    t0 = time.monotonic()
    proc = run_engine(argv)
    assert proc.returncode == 2
    assert f"could not reach the locust master at 127.0.0.1:{port}" in proc.stderr
    assert time.monotonic() - t0 < 15


def test_locust_version_mismatch_is_refused(tmp_path: Path) -> None:
    port = free_port()
    spec_path = write_spec(tmp_path, echo_spec("http://127.0.0.1:9", "http"))
    argv = worker_argv(spec_path, tmp_path / "004", workers=0, remote_workers=1, master_port=port)
    master = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        worker = run_engine(
            [
                sys.executable,
                "-m",
                MODULE,
                "--join",
                f"127.0.0.1:{port}",
                "--connect-timeout",
                "10",
                "--advertise-version",
                "0.0.1",
            ]
        )
        _, stderr = master.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        master.kill()
    assert worker.returncode == 2
    assert "refused this worker" in worker.stderr and "locust version mismatch" in worker.stderr
    assert master.returncode == 1
    assert "locust version mismatch" in stderr and "runs locust 0.0.1" in stderr


def test_web_ui_serves_the_cell(tmp_path: Path) -> None:
    port = free_port()
    spec_path = write_spec(tmp_path, echo_spec("http://127.0.0.1:9", "http"))
    argv = [sys.executable, "-m", MODULE, str(spec_path), "--web-ui", "--web-port", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_compat_and_master_address() -> None:
    master = node_info("2.47.0")
    assert check_compat(master, node_info("2.47.0")) is None
    problem = check_compat(master, node_info("2.30.0"))
    assert problem is not None and "locust version mismatch" in problem
    assert "pip install 'locust==2.47.0'" in problem
    assert check_compat(master, node_info("2.47.0") | {"protocol": 99}) is not None
    assert parse_master("10.1.2.3") == ("10.1.2.3", 5557)
    assert parse_master("host:6000") == ("host", 6000)
    assert parse_master("[::1]:6000") == ("::1", 6000)
    with pytest.raises(ValueError):
        parse_master("host:port")


def test_merge_adds_histograms_and_concatenates_samples() -> None:
    import io

    import pyarrow as pa

    spec = CellRun(
        cell="c", transport="http", client="aiohttp", conn_mode="keep-alive", base_url=""
    )

    def result(values: list[int], window: float) -> dict[str, Any]:
        hist = new_histogram()
        for v in values:
            hist.record_value(v)
        rows = {name: [] for name in SAMPLE_SCHEMA.names}
        for v in values:
            row = ["c", "http", "aiohttp", "keep-alive", 0, 0, "request", 0, 5, v, v, v, 1, 1]
            for name, value in zip(SAMPLE_SCHEMA.names, [*row, 1, True, None, False], strict=True):
                rows[name].append(value)
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pydict(rows, schema=SAMPLE_SCHEMA), buf)
        return {
            "samples": buf.getvalue(),
            "count": len(values),
            "errors": 0,
            "bytes_sent": len(values),
            "bytes_received": len(values),
            "max_ns": max(values),
            "hdr_corrected": encode_histogram(hist),
            "hdr_uncorrected": encode_histogram(hist),
            "window_s": window,
            "stats": {"issued": len(values), "errors_by_code": {"x": 1}},
        }

    results = [result([10_000, 20_000], 1.0), result([30_000], 1.2)]
    samples, deliveries = merged_tables(spec, results)
    part = merge_results(spec, results, samples, {"engine": "locust"})
    assert deliveries is None and samples.num_rows == 3
    assert part["count"] == 3 and part["max_ns"] == 30_000 and part["window_s"] == 1.2
    assert decode_histogram(part["hdr_corrected"]).get_total_count() == 3
    assert part["stats"]["issued"] == 3 and part["stats"]["errors_by_code"] == {"x": 2}
    assert part["send_lag_ms"]["max"] == 5e-6
    assert part["engine"] == "locust"


def test_this_process_is_not_monkey_patched() -> None:
    monkey = sys.modules.get("gevent.monkey")
    assert monkey is None or not monkey.is_module_patched("socket")
    assert "locust" not in sys.modules
