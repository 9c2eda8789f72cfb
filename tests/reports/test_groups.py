"""reports.groups: grouping on one code per cell gives what pandas' groupby on every key does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reports.groups import cell_codes, cell_groups, cell_totals

KEYS = ["run_id", "cell", "transport"]
TRANSPORT = {"a": "http", "b": "ws-aiohttp", "c": "ws-websockets", None: None}


def frame(run_ids: list[str], cells: list[str | None], categorical: bool) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "run_id": run_ids,
            "cell": cells,
            "transport": [TRANSPORT[c] for c in cells],
            "bytes": np.arange(len(cells), dtype="int64"),
        }
    )
    if categorical:
        out = out.astype({"run_id": "category", "cell": "category", "transport": "category"})
    return out


rows = st.lists(st.tuples(st.sampled_from(["r1", "r2"]), st.sampled_from(["a", "b", "c", None])))


def expected_groups(data: pd.DataFrame) -> list[tuple[tuple, list[int]]]:
    grouped = data.groupby(KEYS, sort=False, observed=True, dropna=False)
    return [(tuple(k), list(g["bytes"])) for k, g in grouped]


def same_key(a: tuple, b: tuple) -> bool:
    return all(
        (x is y) or (x == y) or (pd.isna(x) and pd.isna(y)) for x, y in zip(a, b, strict=True)
    )


@settings(max_examples=60, deadline=None)
@given(rows=rows, categorical=st.booleans())
def test_cell_groups_match_pandas_groupby(rows: list, categorical: bool) -> None:
    data = frame([r for r, _ in rows], [c for _, c in rows], categorical)
    got = [(key, list(g["bytes"])) for key, g in cell_groups(data, KEYS)]
    want = expected_groups(data)
    assert len(got) == len(want)
    for (gk, gv), (wk, wv) in zip(got, want, strict=True):
        assert same_key(gk, wk) and gv == wv


@settings(max_examples=60, deadline=None)
@given(rows=rows, data_mask=st.data())
def test_cell_totals_match_pandas_sums_and_sizes(rows: list, data_mask: st.DataObject) -> None:
    data = frame([r for r, _ in rows], [c for _, c in rows], categorical=True)
    mask = np.array(data_mask.draw(st.lists(st.booleans(), min_size=len(rows), max_size=len(rows))))
    picked = data.loc[mask] if len(rows) else data
    grouped = picked.groupby(KEYS, sort=False, observed=True, dropna=False)
    sums = cell_totals(data, KEYS, rows=mask, column="bytes")
    sizes = cell_totals(data, KEYS, rows=mask)
    want_sums = [(tuple(k), float(v)) for k, v in grouped["bytes"].sum().items()]
    want_sizes = [(tuple(k), float(v)) for k, v in grouped.size().items()]
    for got, want in ((sums, want_sums), (sizes, want_sizes)):
        assert len(got) == len(want)
        for (gk, gv), (wk, wv) in zip(got.items(), want, strict=True):
            assert same_key(gk, wk) and gv == wv


def test_interleaved_cells_are_grouped_in_order_of_first_row() -> None:
    data = frame(["r1"] * 5, ["b", "a", "b", "a", "c"], categorical=True)
    got = [(key[1], list(g["bytes"])) for key, g in cell_groups(data, KEYS)]
    assert got == [("b", [0, 2]), ("a", [1, 3]), ("c", [4])]


def test_codes_tell_runs_apart_and_need_neither_column() -> None:
    data = frame(["r1", "r2", "r1"], ["a", "a", "a"], categorical=False)
    codes = cell_codes(data)
    assert codes[0] == codes[2] != codes[1]
    assert list(cell_codes(pd.DataFrame({"x": [1, 2]}))) == [0, 0]


def test_empty_frames() -> None:
    data = frame([], [], categorical=True)
    assert list(cell_groups(data, KEYS)) == []
    assert cell_totals(data, KEYS, column="bytes") == {}


@pytest.mark.parametrize("categorical", [True, False])
def test_key_values_are_those_of_the_cells_first_row(categorical: bool) -> None:
    data = frame(["r1", "r1"], ["a", "b"], categorical)
    assert [k for k, _ in cell_groups(data, ["cell", "transport"])] == [
        ("a", "http"),
        ("b", "ws-aiohttp"),
    ]
