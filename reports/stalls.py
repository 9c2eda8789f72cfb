"""The "Stalls" table: how much of each real-time cell's delivery tail waited on a stalled
process (a collection, or anything else that held an event loop) rather than on its
protocol::

    from reports.stalls import STALL_HEADERS, stall_rows, stall_table
    stall_table(run)   # one row per real-time cell with recorded stalls, raw figures
    stall_rows(run)    # the same rows as display strings, STALL_HEADERS order

A measured delivery is *in a stall* when the span from its cause to its arrival overlaps
an event-loop stall of :data:`LONG_STALL_MS` or more of the server or of the load
generator (``run.stalls``, same clock as ``run.deliveries``). The delivery p99 of the
other deliveries says what the tail would be without those stalls. Cells without
stalls.parquet rows (echo cells, older runs) are left out. The strings are not escaped:
the HTML template autoescapes, and :mod:`reports.markdown` escapes them for Markdown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from loadgen.stall_records import LONG_STALL_MS
from reports.fmt import as_float, fmt_int, fmt_ms, fmt_pct, fmt_text
from reports.groups import cell_groups
from reports.stats import measured_deliveries, realtime_cells
from servers.stalls import MIN_EVENT_MS

if TYPE_CHECKING:
    from reports.load import Run

#: :func:`stall_table`'s figures from ``run.cells`` (summary.json's ``stalls`` block).
_FIGURES: dict[str, str] = {
    "server_gc_max_ms": "stalls_server_longest_gc_ms",
    "server_loop_max_ms": "stalls_server_longest_loop_ms",
    "client_gc_max_ms": "stalls_load_generator_longest_gc_ms",
    "client_loop_max_ms": "stalls_load_generator_longest_loop_ms",
}
#: The long loop stalls of both processes, added for :func:`stall_table`.
_LONG_COUNTS = ("stalls_server_long_loop_stalls", "stalls_load_generator_long_loop_stalls")

#: Columns of :func:`stall_table`.
STALL_TABLE_COLUMNS: tuple[str, ...] = (
    "run_id",
    "cell",
    "server_gc_max_ms",
    "server_loop_max_ms",
    "client_gc_max_ms",
    "client_loop_max_ms",
    "long_stalls",
    "deliveries",
    "in_stall",
    "p99_ms",
    "p99_outside_ms",
)

#: Column headers of :func:`stall_rows`.
STALL_HEADERS: tuple[str, ...] = (
    "Cell",
    "Server: longest collection ms",
    "Server: longest loop stall ms",
    "Load generator: longest collection ms",
    "Load generator: longest loop stall ms",
    f"Loop stalls ≥ {LONG_STALL_MS:g} ms",
    "Deliveries in a stall",
    "Delivery p99 ms",
    "p99 of the others ms",
)

#: What the table's figures are, for the note under its title.
STALL_NOTE = (
    "What stopped the server or the load generator inside the measured window: the longest "
    "garbage collection (timed by gc.callbacks) and the longest late wake-up of the event "
    "loop (checked every 10 ms; it includes the collections and anything else that held "
    f"the loop; < {MIN_EVENT_MS:g}: none that long; –: not watched, as a server's loop is "
    "only with RTBENCH_LOOP_WATCH=1, since each check costs the CPU its figures measure), "
    f"and how many loop stalls of the watched ones lasted {LONG_STALL_MS:g} ms or more. "
    "A delivery is in a "
    f"stall when its span, from its cause to its arrival, overlaps a loop stall of "
    f"{LONG_STALL_MS:g} ms or more of either process; the last column is the delivery p99 "
    "of the measured deliveries that were not. When the two p99s differ widely, the tail "
    "is the stalls', not the protocol's (stalls.parquet has each one)."
)


def _merged(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping intervals joined: sorted, disjoint ``(starts, ends)``."""
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    out_s: list[int] = []
    out_e: list[int] = []
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        if out_e and s <= out_e[-1]:
            out_e[-1] = max(out_e[-1], e)
        else:
            out_s.append(s)
            out_e.append(e)
    return np.array(out_s, dtype="int64"), np.array(out_e, dtype="int64")


def overlaps(
    origin_ns: np.ndarray, received_ns: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> np.ndarray:
    """For each span ``[origin, received]``, whether it overlaps any ``[start, end]``."""
    if len(starts) == 0:
        return np.zeros(len(origin_ns), dtype=bool)
    s, e = _merged(np.asarray(starts, dtype="int64"), np.asarray(ends, dtype="int64"))
    # The last interval starting at or before the arrival; intervals are disjoint and
    # sorted, so it has the latest end of those: it overlaps iff it ends at or after the cause.
    i = np.searchsorted(s, received_ns, side="right") - 1
    return (i >= 0) & (e[np.maximum(i, 0)] >= origin_ns)


def stall_table(run: Run) -> pd.DataFrame:
    """One row per real-time cell that watched its stalls, :data:`STALL_TABLE_COLUMNS`:
    the longest stalls inside the window from ``run.cells`` (summary.json's ``stalls``),
    the deliveries in flight during a long one from ``run.stalls``."""
    cells = realtime_cells(run.cells)
    watched = [c for c in _FIGURES.values() if c in cells.columns]
    if not watched:
        return pd.DataFrame(columns=list(STALL_TABLE_COLUMNS))
    cells = cells[cells[watched].notna().any(axis=1)]
    keys = ["run_id", "cell"]
    measured = measured_deliveries(
        run.deliveries, columns=[*keys, "repeat", "origin_ns", "latency_ns"]
    )
    by_cell = {tuple(key): rows for key, rows in cell_groups(measured, keys)}
    stalls = run.stalls
    long = stalls[(stalls["kind"] == "loop") & (stalls["duration_ns"] >= LONG_STALL_MS * 1e6)]
    long_by_cell = {tuple(key): rows for key, rows in cell_groups(long, keys)}
    rows = []
    for _, cell in cells.iterrows():
        key = (cell["run_id"], cell["cell"])
        row: dict[str, object] = dict(zip(keys, key, strict=True))
        for name, column in _FIGURES.items():
            row[name] = cell[column] if column in cells.columns else np.nan
        counts = [cell[c] for c in _LONG_COUNTS if c in cells.columns and pd.notna(cell[c])]
        row["long_stalls"] = int(sum(counts)) if counts else pd.NA
        there = long_by_cell.get(key, long.iloc[:0])
        deliveries = by_cell.get(key, measured.iloc[:0])
        held = np.zeros(len(deliveries), dtype=bool)
        for repeat in pd.unique(deliveries["repeat"]):
            these = (deliveries["repeat"] == repeat).to_numpy()
            mine = there[there["repeat"] == repeat]
            origin = deliveries["origin_ns"].to_numpy(dtype="int64")[these]
            received = origin + deliveries["latency_ns"].to_numpy(dtype="int64")[these]
            start = mine["start_ns"].to_numpy(dtype="int64")
            end = start + mine["duration_ns"].to_numpy(dtype="int64")
            held[these] = overlaps(origin, received, start, end)
        latency = deliveries["latency_ns"].to_numpy(dtype="float64") / 1e6
        row["deliveries"] = len(latency)
        row["in_stall"] = int(held.sum())
        row["p99_ms"] = float(np.percentile(latency, 99)) if len(latency) else np.nan
        others = latency[~held]
        row["p99_outside_ms"] = float(np.percentile(others, 99)) if len(others) else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=list(STALL_TABLE_COLUMNS))


def _fmt_stall(ms: object) -> str:
    # The recorders keep stalls of MIN_EVENT_MS or more: 0 means none that long.
    value = as_float(ms)
    if value is not None and value < MIN_EVENT_MS:
        return f"< {MIN_EVENT_MS:g}"
    return fmt_ms(ms)


def stall_rows(run: Run) -> list[list[str]]:
    """:func:`stall_table` as display strings in :data:`STALL_HEADERS` order; ``[]``
    without recorded stalls."""
    out = []
    for _, r in stall_table(run).iterrows():
        share = r["in_stall"] / r["deliveries"] if r["deliveries"] else None
        out.append(
            [
                fmt_text(r["cell"]),
                _fmt_stall(r["server_gc_max_ms"]),
                _fmt_stall(r["server_loop_max_ms"]),
                _fmt_stall(r["client_gc_max_ms"]),
                _fmt_stall(r["client_loop_max_ms"]),
                fmt_int(r["long_stalls"]),
                f"{fmt_int(r['in_stall'])} ({fmt_pct(share)})",
                fmt_ms(r["p99_ms"]),
                fmt_ms(r["p99_outside_ms"]),
            ]
        )
    return out
