"""Who is with whom: groups, churners, topics."""

from __future__ import annotations

import pytest

from loadgen.realtime.groups import churners_of, split_groups, topic_count
from loadgen.realtime.params import RealtimeParams

pytestmark = pytest.mark.timeout(10)


def test_split_groups_keeps_order_and_leaves_a_smaller_last_group() -> None:
    names = [f"u{i}" for i in range(5)]
    assert split_groups(names, 2) == [["u0", "u1"], ["u2", "u3"], ["u4"]]
    assert split_groups(names, 5) == [names]
    assert split_groups([], 3) == []


def test_churners_are_the_last_members_and_never_the_whole_group() -> None:
    half = RealtimeParams(users=8, group_size=4, churn_fraction=0.5)
    assert churners_of(["a", "b", "c", "d"], half) == ["c", "d"]
    assert churners_of(["a", "b"], half) == ["b"]
    assert churners_of(["a"], half) == []
    assert churners_of(["a", "b", "c", "d"], RealtimeParams(users=8, group_size=4)) == []


@pytest.mark.parametrize(
    ("people", "fanout", "topics"), [(40, 10, 4), (41, 10, 5), (3, 10, 1), (0, 10, 1)]
)
def test_topic_count_rounds_up_and_has_at_least_one(people: int, fanout: int, topics: int) -> None:
    assert topic_count(people, fanout) == topics
