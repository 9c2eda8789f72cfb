"""Who is with whom in a real-time workload: groups (rooms), churners, topics.

::

    groups = split_groups(["u0", "u1", "u2", "u3", "u4"], 2)  # [[u0, u1], [u2, u3], [u4]]
    churners_of(["u0", "u1", "u2", "u3"], params)             # the group's last members
    topic_count(people=40, fanout=10)                         # 4 topics of up to 10
"""

from __future__ import annotations

from loadgen.realtime.params import RealtimeParams


def split_groups(names: list[str], size: int) -> list[list[str]]:
    """``names`` in consecutive groups of ``size`` (the last one may be smaller)."""
    return [names[i : i + size] for i in range(0, len(names), size)]


def churners_of(group: list[str], params: RealtimeParams) -> list[str]:
    """The members of ``group`` who go offline and back: its last ones, never all."""
    k = min(params.churners_per_group, len(group) - 1)
    return group[len(group) - k :] if k > 0 else []


def topic_count(people: int, fanout: int) -> int:
    """How many notification topics ``people`` subscribers make at ``fanout`` each."""
    return max(1, -(-people // fanout))
