"""summary.json's nested cells as flat DataFrame rows, the columns of :mod:`reports.columns`::

    rows = [identity_defaults(c) | flatten(c) for c in summary["cells"]]
    cells = cell_frame(rows, CELL_COLUMNS, run_id)   # every column present, tidy dtypes

``flatten`` turns ``{"latency_ms": {"p50": 1.2}}`` into ``{"p50_ms": 1.2}`` and every other
nested block ``{"block": {"key": v}}`` into ``block_key``; ``cell_frame`` makes latency,
volume and resource columns floats and counters nullable integers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from loadgen.schema import family
from reports.columns import (
    INT_COLUMNS,
    LATENCY_KEYS,
    POLL_MODES,
    REALTIME_COLUMNS,
    REQUEST_DELIVERY,
    RESOURCE_COLUMNS,
    VOLUME_COLUMNS,
    delivery_col,
    delivery_type_col,
    latency_col,
    latency_columns,
)

#: Columns read as float64 whatever summary.json held (null, int or float).
_FLOAT_COLUMNS = frozenset(
    (
        "target_rate",
        *VOLUME_COLUMNS,
        *latency_columns(corrected=True),
        *latency_columns(corrected=False),
        *RESOURCE_COLUMNS,
        *REALTIME_COLUMNS,
    )
) - frozenset(INT_COLUMNS)

#: Latency statistics in ms whose names depend on the data (``presence_online_p99_ms``).
_LATENCY_NAME = re.compile(r"[a-z0-9_]+_(?:p\d+(?:_\d+)?|max)_ms")

#: summary.json keys whose dict value stays one column (its keys vary from run to run, or
#: it holds lists: ``server_process``, a server_url's process and its readings per repeat).
KEEP_AS_DICT = frozenset({"errors_by_code", "server_process"})


def identity_defaults(entry: Mapping[str, Any]) -> dict[str, Any]:
    """``delivery`` and ``workload`` of a cell, inferred when summary.json lacks them.

    Schema 1 cells are echo (``delivery`` ``"request"``); a real-time cell (one with a
    ``deliveries`` block) without ``delivery`` pushes over WebSocket, and polls over HTTP
    as its name's last part says (``.../long-poll``).
    """
    realtime = isinstance(entry.get("deliveries"), Mapping)
    delivery = entry.get("delivery")
    if not isinstance(delivery, str) or not delivery:
        delivery = REQUEST_DELIVERY
        if realtime:
            transport = str(entry.get("transport") or "")
            last = str(entry.get("cell") or "").rsplit("/", 1)[-1]
            poll = last if last in POLL_MODES else None
            delivery = "push" if family(transport) == "ws" else poll
    workload = entry.get("workload")
    if not isinstance(workload, str) or not workload:
        workload = None if realtime else "echo"
    return {"delivery": delivery, "workload": workload}


def flatten(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One summary.json cell (or per_repeat entry) as a flat row; see reports.columns."""
    row: dict[str, Any] = {}
    for key, value in entry.items():
        if key == "per_repeat":
            continue
        if key in KEEP_AS_DICT:
            row[key] = value
        elif key in LATENCY_KEYS:
            for label, v in (value or {}).items():
                row[latency_col(label, corrected=LATENCY_KEYS[key])] = v
        elif key == "delivery_latency_ms":
            for label, v in (value or {}).items():
                row[delivery_col(label)] = v
        elif key == "delivery_latency_by_type_ms":
            for item_type, block in (value or {}).items():
                for label, v in (block or {}).items():
                    row[delivery_type_col(str(item_type), label)] = v
        elif key == "per_useful_message":
            for inner, v in (value or {}).items():
                stem = inner.removeprefix("cpu_s_")
                name = (
                    f"cpu_s_per_useful_message_{stem}"
                    if inner.startswith("cpu_s_")
                    else f"{inner}_per_useful_message"
                )
                row[name] = v
        elif key in _NULLABLE_BLOCKS and value is None:
            continue
        elif isinstance(value, dict):
            for inner, v in value.items():
                row[f"{key}_{inner}".replace(".", "_")] = v
        else:
            row[key] = value
    return row


#: Nested blocks that are null when they do not apply (their columns stay missing).
_NULLABLE_BLOCKS = frozenset({"activity"})


def cell_frame(rows: Sequence[dict[str, Any]], columns: Sequence[str], run_id: str) -> pd.DataFrame:
    """Rows as a DataFrame with ``columns`` first (all present), extras after, tidy dtypes."""
    df = pd.DataFrame(list(rows))
    for name in columns:
        if name not in df.columns:
            df[name] = pd.Series([None] * len(df), dtype=object)
    df = df[[*columns, *(c for c in df.columns if c not in columns)]].copy()
    df["run_id"] = run_id
    for name in df.columns:
        if name in _FLOAT_COLUMNS or (name not in INT_COLUMNS and _LATENCY_NAME.fullmatch(name)):
            df[name] = pd.to_numeric(df[name], errors="coerce").astype("float64")
        elif name in INT_COLUMNS:
            df[name] = pd.to_numeric(df[name], errors="coerce").round().astype("Int64")
    if "family" in df.columns and "transport" in df.columns:
        df["family"] = [
            f if isinstance(f, str) and f else (family(t) if isinstance(t, str) else None)
            for f, t in zip(df["family"], df["transport"], strict=True)
        ]
    if "part" in df.columns:
        df["part"] = pd.Series(
            [p if isinstance(p, str) and p else None for p in df["part"]],
            index=df.index,
            dtype=object,
        )
    if "failures" in df.columns:
        df["failures"] = [list(f) if isinstance(f, list) else [] for f in df["failures"]]
    return df
