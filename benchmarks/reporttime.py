"""Time ``rtbench report`` on a large synthetic run against its limits.

::

    python -m benchmarks.reporttime                    # 10M samples, 30 s, 2 GB
    python -m benchmarks.reporttime --samples 200000 --no-profile

The run is generated once by :mod:`benchmarks.reportscale` into ``--cache/SAMPLES`` (again
when that folder lacks a file); then ``rtbench report`` runs as a child process whose wall
time and peak RSS (its process tree, polled) are printed. With ``--profile`` (the default)
a second report runs under cProfile and the report's own functions that took the most
cumulative time are printed. Exits 1 when the timed report is over a limit.
"""

from __future__ import annotations

import argparse
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from loadgen.schema import DELIVERIES_FILE, META_FILE, SAMPLES_FILE, SUMMARY_FILE

RUN_FILES = (SAMPLES_FILE, DELIVERIES_FILE, SUMMARY_FILE, META_FILE)
RTBENCH = Path(sys.executable).with_name("rtbench")
POLL_S = 0.02


def ensure_run(cache: Path, samples: int) -> Path:
    """The cached run of ``samples`` rows, generated first when any file is missing."""
    folder = cache / str(samples)
    if all((folder / name).is_file() for name in RUN_FILES):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    print(f"perf-report: generating {samples:,} samples into {folder}", flush=True)
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "benchmarks.reportscale", "--samples", str(samples)]
    subprocess.run([*cmd, "--out", str(folder)], check=True)
    print(f"perf-report: generated in {time.perf_counter() - start:.1f} s", flush=True)
    return folder


def timed(cmd: list[str]) -> tuple[float, int, int]:
    """Run ``cmd`` (output discarded); its wall seconds, peak RSS in bytes and exit code."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    watched = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [watched, *watched.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:  # the child ended between poll() and reading it
            pass
        time.sleep(POLL_S)
    return time.perf_counter() - start, peak, proc.returncode


#: Report stages as (label, file ending, function): cumulative seconds of each are printed.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("import reports", "reports/__init__.py", "<module>"),
    ("load parquet + summary.json", "reports/load.py", "load_many"),
    ("verdict table (stats, bootstrap)", "reports/verdict.py", "verdict_table"),
    ("  of which bootstrap", "reports/bootstrap.py", "two_sample_ci"),
    ("terminal summary tables", "reports/table.py", "print_summary"),
    ("summary.md, verdict.csv", "reports/markdown.py", "summary_markdown"),
    ("HTML report, all of it", "reports/html.py", "render_report"),
    ("  request charts", "reports/html_charts.py", "request_charts"),
    ("  delivery charts", "reports/html_charts.py", "delivery_charts"),
    ("    percentile spectrum", "reports/charts/latency.py", "delivery_spectrum"),
    ("    CDF", "reports/charts/latency.py", "delivery_cdf"),
    ("    over time", "reports/charts/over_time.py", "delivery_over_time"),
    ("    drawing and PNG encoding", "reports/charts/style.py", "fig_to_data_uri"),
)


def profile(folder: Path, out: Path, top: int) -> None:
    """Run the report under cProfile; print the time of each of :data:`STAGES` and the
    ``top`` functions of reports/ by cumulative time."""
    stats_file = out / "report.prof"
    cmd = [sys.executable, "-m", "cProfile", "-o", str(stats_file), str(RTBENCH), "report"]
    subprocess.run([*cmd, str(folder), "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    stats = pstats.Stats(str(stats_file))
    table = stats.stats  # type: ignore[attr-defined]  # {(file, line, name): (cc, nc, tt, ct, callers)}
    total = max(entry[3] for entry in table.values())
    print(f"\nWhere the time goes (cProfile, {total:.1f} s profiled; profiling slows it):")
    for label, ending, name in STAGES:
        cum = sum(v[3] for (f, _, n), v in table.items() if n == name and f.endswith(ending))
        print(f"  {label:<36} {cum:7.2f} s")
    print(f"\nTop {top} functions of reports/ by cumulative time:")
    stats.sort_stats("cumulative").print_stats(r"reports/", top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reporttime")
    parser.add_argument("--samples", type=int, default=10_000_000)
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "rtbench-reportscale"
    )
    parser.add_argument("--max-seconds", type=float, default=30.0)
    parser.add_argument("--max-gb", type=float, default=2.0)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    folder = ensure_run(args.cache, args.samples)
    with tempfile.TemporaryDirectory(prefix="rtbench-report-") as tmp:
        out = Path(tmp)
        wall, peak, code = timed([str(RTBENCH), "report", str(folder), "--out", str(out)])
        gb = peak / 1e9
        print(
            f"rtbench report on {args.samples:,} samples: {wall:.1f} s wall, {gb:.2f} GB peak RSS"
        )
        if code != 0:
            print(f"perf-report: rtbench report exited with {code}", file=sys.stderr)
            return 1
        if args.profile:
            profile(folder, out, args.top)
    over = [f"{wall:.1f} s > {args.max_seconds:g} s"] if wall > args.max_seconds else []
    over += [f"{gb:.2f} GB > {args.max_gb:g} GB"] if gb > args.max_gb else []
    if over:
        print(f"perf-report: over the limit: {'; '.join(over)}", file=sys.stderr)
        return 1
    print(f"perf-report: within {args.max_seconds:g} s and {args.max_gb:g} GB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
