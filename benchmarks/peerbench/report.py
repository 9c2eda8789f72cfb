"""The run's results: ``peers.json`` (every point and ratio), ``peers.md`` (how the run
was made, then the ratio table) and the table on the terminal.

::

    write_results(out, record)           # record: settings, placement, versions, points, ratios
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from .tables import markdown_table, md_cell, print_terminal_table


def write_results(out: Path, record: dict[str, Any]) -> None:
    """``peers.json`` and ``peers.md`` in ``out``; the table is printed too (fitted to
    the terminal, :func:`print_terminal_table`)."""
    (out / "peers.json").write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2))
    table = markdown_table(record["ratios"])
    (out / "peers.md").write_text(markdown_report(record, table))
    print()
    print_terminal_table(record["ratios"])
    print(f"peers: wrote {out / 'peers.json'} and {out / 'peers.md'}")


def _loads(values: Sequence[float] | None) -> str:
    return ", ".join(f"{v:.1f}" for v in values) if values else "unknown"


def markdown_report(record: dict[str, Any], table: str) -> str:
    """``peers.md``: how the run was made (pinning, versions, commit), then the table."""
    env, st, pl, peers = (
        record["environment"],
        record["settings"],
        record["placement"],
        record["peer_versions"],
    )
    versions = ", ".join(f"{name} {v}" for name, v in record["client_versions"].items())
    commit = (env.get("git_commit") or "unknown")[:12] + (
        " (dirty)" if env.get("git_dirty") else ""
    )
    lines = [
        "# rtbench's load generator against wrk and node's ws",
        "",
        f"- {st['rounds']} rounds, interleaved; {st['warmup_s']} s warm-up and "
        f"{st['duration_s']} s measured per point; a fresh server for every point; "
        f"{st['payload_bytes']}-byte payload in rtbench's echo envelope.",
        f"- Pinning ({pl['placement']}): server on CPUs {pl['server_cpus']}, load generator on "
        f"CPUs {pl['client_cpus']}. {pl['note']}".rstrip(),
        f"- Peers: {peers.get('wrk')}; {peers.get('h2load')}; node {peers.get('node')} with "
        f"ws {peers.get('ws')}.",
        f"- rtbench {commit}, Python {env.get('python')}, {versions}; "
        f"client loop {st['client_loop']}; CPU {env.get('cpu_model')}.",
        "- Each figure is the lowest-highest over the rounds; a ratio pairs a client's round "
        "with the peer's round run next to it. CPU % is of one core over the measured window; "
        "the last column is what else (other processes, interrupts) used of a pinned core.",
        f"- Load average (1, 5, 15 min) at the start {_loads(st.get('load_average_at_start'))}, "
        f"at the end {_loads(env.get('load_average'))}.",
    ]
    busy = busiest_others(record["points"])
    if busy is not None and busy >= BUSY_WARN_PCT:
        lines.append(f"- Warning: {busy_warning(busy)}")
    lines += ["", table]
    return "\n".join(md_cell(line) if line.startswith("- ") else line for line in lines)


#: Other processes' CPU % on a pinned core above which the run is flagged as disturbed.
BUSY_WARN_PCT = 10.0


def busiest_others(points: Sequence[dict[str, Any]]) -> float | None:
    """The most CPU % anything else used of a pinned core during any point, or None."""
    keys = ("server_core_others_pct", "client_core_others_pct")
    values = [p[k] for p in points for k in keys if p.get(k) is not None]
    return max(values) if values else None


def busy_warning(busy: float) -> str:
    """The sentence that flags a run disturbed by other work on the pinned cores."""
    return (
        f"other processes or interrupts used up to {busy:.0f} % of a pinned core during a point; "
        "these figures measure a shared machine, run again when it is idle."
    )
