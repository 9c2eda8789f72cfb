"""reports.parquet: row group by row group gives what arrow's own conversion gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reports.parquet import read_frame

names = st.one_of(st.none(), st.sampled_from(["a", "b", "<c>", "ü", ""]))
rows = st.lists(
    st.tuples(names, st.one_of(st.none(), st.integers(-(2**40), 2**40)), st.booleans()),
    max_size=40,
)


def write(path: Path, data: list, row_group_size: int) -> Path:
    table = pa.table(
        {
            "name": pa.array([r[0] for r in data], pa.string()),
            "value": pa.array([r[1] for r in data], pa.int64()),
            "flag": pa.array([r[2] for r in data], pa.bool_()),
        }
    )
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


@settings(max_examples=60, deadline=None)
@given(data=rows, group=st.integers(1, 8))
def test_same_frame_as_arrow(
    tmp_path_factory: pytest.TempPathFactory, data: list, group: int
) -> None:
    path = write(tmp_path_factory.mktemp("pq") / "t.parquet", data, group)
    got = read_frame(path, columns=["name", "value", "flag"], strings=["name"])
    want = pq.read_table(path).to_pandas(strings_to_categorical=True)
    assert list(got.columns) == ["name", "value", "flag"]
    assert got["name"].astype(object).where(got["name"].notna(), None).tolist() == (
        want["name"].astype(object).where(want["name"].notna(), None).tolist()
    )
    assert isinstance(got["name"].dtype, pd.CategoricalDtype)
    np.testing.assert_array_equal(got["value"].to_numpy(), want["value"].to_numpy())
    assert got["flag"].tolist() == want["flag"].tolist()
    if data and all(r[1] is not None for r in data):
        assert got["value"].dtype == np.int64  # no null: integers stay integers


def test_nulls_in_a_later_row_group_widen_the_column(tmp_path: Path) -> None:
    path = write(tmp_path / "t.parquet", [("a", 1, True), ("b", None, False)], 1)
    got = read_frame(path, columns=["value"])
    assert got["value"].dtype == np.float64
    assert got["value"].iloc[0] == 1 and np.isnan(got["value"].iloc[1])


def test_convert_adds_columns_per_row_group(tmp_path: Path) -> None:
    path = write(tmp_path / "t.parquet", [("a", 1, True), ("b", 2, False), ("a", 3, True)], 2)

    def doubled(table: pa.Table) -> pa.Table:
        return table.append_column("twice", pc.multiply(table.column("value"), 2))

    got = read_frame(path, columns=["name", "twice"], read=["name", "value"], convert=doubled)
    assert got["twice"].tolist() == [2, 4, 6]
    assert list(got.columns) == ["name", "twice"]


def test_a_file_without_rows_keeps_its_types(tmp_path: Path) -> None:
    path = write(tmp_path / "t.parquet", [], 4)
    got = read_frame(path, columns=["name", "value"], strings=["name"])
    assert len(got) == 0 and got["value"].dtype == np.int64


def test_a_file_that_is_not_parquet_raises_arrows_error(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(pa.ArrowException):
        read_frame(path, columns=["name"])
