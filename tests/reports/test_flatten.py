"""reports/flatten.py: summary.json cells as flat rows, and those rows as a typed frame."""

from __future__ import annotations

import pandas as pd
import pytest

from reports.flatten import cell_frame, flatten, identity_defaults

FLATTENED = [
    # (one summary.json cell entry, the flat row it becomes)
    ({"latency_ms": {"p50": 1.5, "p99.9": 9.0}}, {"p50_ms": 1.5, "p99_9_ms": 9.0}),
    ({"latency_uncorrected_ms": {"p50": 1.0}}, {"p50_uncorrected_ms": 1.0}),
    ({"delivery_latency_ms": {"p99": 4.0}}, {"delivery_p99_ms": 4.0}),
    (  # per item type: dashes and dots become underscores
        {"delivery_latency_by_type_ms": {"presence-online": {"p50": 2.0}}},
        {"presence_online_p50_ms": 2.0},
    ),
    (  # CPU seconds keep their prefix, other per-message figures gain a suffix
        {"per_useful_message": {"cpu_s_server": 1e-5, "bytes": 300}},
        {"cpu_s_per_useful_message_server": 1e-5, "bytes_per_useful_message": 300},
    ),
    ({"errors_by_code": {"timeout": 2}}, {"errors_by_code": {"timeout": 2}}),  # kept whole
    ({"activity": None}, {}),  # a block that does not apply leaves its columns missing
    ({"server": {"cpu.s": 1.0}}, {"server_cpu_s": 1.0}),  # any other block: block_key
    ({"cell": "a", "per_repeat": [{"x": 1}]}, {"cell": "a"}),  # repeats are rows of their own
]


@pytest.mark.parametrize(("entry", "row"), FLATTENED)
def test_flatten(entry: dict, row: dict) -> None:
    assert flatten(entry) == row


IDENTITIES = [
    # (cell entry, the delivery and workload it is read as)
    ({"cell": "echo/ws"}, {"delivery": "request", "workload": "echo"}),  # schema 1: echo
    (
        {"cell": "m/ws", "transport": "ws-aiohttp", "deliveries": {}},
        {"delivery": "push", "workload": None},
    ),
    (
        {"cell": "m/long-poll", "transport": "http", "deliveries": {}},
        {"delivery": "long-poll", "workload": None},
    ),
    (
        {"delivery": "sse", "workload": "presence"},
        {"delivery": "sse", "workload": "presence"},
    ),  # as written
]


@pytest.mark.parametrize(("entry", "identity"), IDENTITIES)
def test_identity_defaults(entry: dict, identity: dict) -> None:
    assert identity_defaults(entry) == identity


def test_cell_frame_puts_columns_first_and_types_them() -> None:
    rows = [{"extra": "x", "p50_ms": 1, "transport": "ws-aiohttp", "part": ""}, {"p50_ms": None}]
    df = cell_frame(rows, ["cell", "p50_ms", "transport", "family", "part", "failures"], "r1")
    assert list(df.columns[:6]) == ["cell", "p50_ms", "transport", "family", "part", "failures"]
    assert df["p50_ms"].dtype == "float64"
    assert pd.isna(df["p50_ms"][1])
    assert df["family"][0] == "ws"  # inferred from the transport when absent
    assert df["part"].tolist() == [None, None]  # "" is no part
    assert df["failures"].tolist() == [[], []]
    assert (df["run_id"] == "r1").all()
