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
from reports.fmt import fmt_int, fmt_ms, fmt_pct, fmt_text
from reports.groups import cell_groups
from reports.stats import measured_deliveries

if TYPE_CHECKING:
    from reports.load import Run

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
    "What stopped the server or the load generator while users were connected, from the "
    "start of each repeat's clock to its end: the longest garbage collection (timed by "
    "gc.callbacks) and the longest late wake-up of the event loop (checked every 10 ms; it "
    "includes the collections and anything else that held the loop). A delivery is in a "
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
    """One row per real-time cell that recorded stalls, :data:`STALL_TABLE_COLUMNS`."""
    stalls = run.stalls
    if stalls.empty:
        return pd.DataFrame(columns=list(STALL_TABLE_COLUMNS))
    keys = ["run_id", "cell"]
    cols = [*keys, "repeat", "origin_ns", "latency_ns"]
    measured = measured_deliveries(run.deliveries, columns=cols)
    by_cell = {key: rows for key, rows in cell_groups(measured, keys)}
    long_ns = int(LONG_STALL_MS * 1e6)
    rows = []
    for key, cell_stalls in cell_groups(stalls, keys):
        row: dict[str, object] = dict(zip(keys, key, strict=True))
        for prefix, process in (("server", "server"), ("client", "load generator")):
            mine = cell_stalls[cell_stalls["process"] == process]
            gc = mine["duration_ns"][mine["kind"] != "loop"]
            loop = mine["duration_ns"][mine["kind"] == "loop"]
            row[f"{prefix}_gc_max_ms"] = gc.max() / 1e6 if len(gc) else np.nan
            row[f"{prefix}_loop_max_ms"] = loop.max() / 1e6 if len(loop) else np.nan
        is_long = (cell_stalls["kind"] == "loop") & (cell_stalls["duration_ns"] >= long_ns)
        long = cell_stalls[is_long]
        row["long_stalls"] = len(long)
        deliveries = by_cell.get(tuple(key), measured.iloc[:0])
        held = np.zeros(len(deliveries), dtype=bool)
        for repeat in pd.unique(deliveries["repeat"]):
            these = (deliveries["repeat"] == repeat).to_numpy()
            there = long[long["repeat"] == repeat]
            origin = deliveries["origin_ns"].to_numpy(dtype="int64")[these]
            received = origin + deliveries["latency_ns"].to_numpy(dtype="int64")[these]
            start = there["start_ns"].to_numpy(dtype="int64")
            held[these] = overlaps(
                origin, received, start, start + there["duration_ns"].to_numpy(dtype="int64")
            )
        latency = deliveries["latency_ns"].to_numpy(dtype="float64") / 1e6
        row["deliveries"] = len(latency)
        row["in_stall"] = int(held.sum())
        row["p99_ms"] = float(np.percentile(latency, 99)) if len(latency) else np.nan
        others = latency[~held]
        row["p99_outside_ms"] = float(np.percentile(others, 99)) if len(others) else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=list(STALL_TABLE_COLUMNS))


def stall_rows(run: Run) -> list[list[str]]:
    """:func:`stall_table` as display strings in :data:`STALL_HEADERS` order; ``[]``
    without recorded stalls."""
    out = []
    for _, r in stall_table(run).iterrows():
        share = r["in_stall"] / r["deliveries"] if r["deliveries"] else None
        out.append(
            [
                fmt_text(r["cell"]),
                fmt_ms(r["server_gc_max_ms"]),
                fmt_ms(r["server_loop_max_ms"]),
                fmt_ms(r["client_gc_max_ms"]),
                fmt_ms(r["client_loop_max_ms"]),
                fmt_int(r["long_stalls"]),
                f"{fmt_int(r['in_stall'])} ({fmt_pct(share)})",
                fmt_ms(r["p99_ms"]),
                fmt_ms(r["p99_outside_ms"]),
            ]
        )
    return out
