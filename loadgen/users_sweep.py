"""A users sweep: the same real-time cells run at rising numbers of connected users.

``[realtime] users = [1000, 2000, 5000]`` (a list instead of one number) runs every
cell once per user count, counts rising, each a cell of its own named
``CELL@1000u``. :class:`loadgen.scenario.Scenario` calls these before and after
validating its tables::

    data = split_users(raw)      # the list leaves [realtime] for Scenario.users_sweep
    check_users(users, realtime_params, client_processes=2)   # ValueError naming the key
    users_id("ws-aiohttp/aiohttp/persistent", 1000)   # "ws-aiohttp/aiohttp/persistent@1000u"
"""

from __future__ import annotations

import itertools
from typing import Any

from pydantic import ValidationError

from loadgen.realtime.params import RealtimeParams

#: The key a users sweep is given under, as error messages name it.
KEY = "[realtime] users"

#: At most this many user counts in one sweep (as many as a rate sweep's rates).
MAX_STEPS = 50

#: The field of :class:`loadgen.scenario.Scenario` that holds the list once read.
FIELD = "users_sweep"


def users_id(cell_id: str, users: int) -> str:
    """The id of ``cell_id`` run at ``users`` connected users: ``CELL@USERSu``."""
    return f"{cell_id}@{users}u"


def split_users(data: Any) -> Any:
    """A raw scenario document with a ``[realtime] users`` list moved to ``users_sweep``.

    ``[realtime] users`` becomes the smallest count, so the table validates as one
    run would; the list's shape (non-empty whole numbers, rising, none below
    ``group_size``) is checked here, raising ValueError naming the key. Anything else
    is returned unchanged.
    """
    if not isinstance(data, dict):
        return data
    if FIELD in data:
        # Only this function may fill the field: in a file it is an unknown key.
        raise ValueError(f"unknown key {FIELD!r}; a users sweep is {KEY} = [...]")
    realtime = data.get("realtime")
    if not isinstance(realtime, dict) or not isinstance(realtime.get("users"), list):
        return data
    users = realtime["users"]
    _check_shape(
        users, realtime.get("group_size", RealtimeParams.model_fields["group_size"].default)
    )
    return {**data, "realtime": {**realtime, "users": users[0]}, FIELD: list(users)}


def _check_shape(users: list[Any], group_size: Any) -> None:
    if not users:
        raise ValueError(f"{KEY}: an empty list sweeps nothing; give user counts or one number")
    if len(users) > MAX_STEPS:
        raise ValueError(f"{KEY}: at most {MAX_STEPS} user counts, got {len(users)}")
    for n in users:
        if isinstance(n, bool) or not isinstance(n, int):
            raise ValueError(f"{KEY}: every user count must be a whole number, got {n!r}")
    for before, after in itertools.pairwise(users):
        if after == before:
            raise ValueError(f"{KEY}: {after} is given twice; each user count runs once")
        if after < before:
            raise ValueError(
                f"{KEY}: user counts must rise, but {after} comes after {before}; "
                f"sort them ({sorted(set(users))})"
            )
    whole = isinstance(group_size, int) and not isinstance(group_size, bool)
    if whole and users[0] < group_size:
        raise ValueError(
            f"{KEY}: {users[0]} is below group_size = {group_size}; every count "
            "needs at least one whole group"
        )


def check_users(users: list[int], realtime: RealtimeParams, client_processes: int) -> None:
    """Refuse a user count the ``[realtime]`` table or ``client_processes`` cannot run.

    Each count must be a valid ``users`` of ``realtime`` (its bounds), and make at
    least one group of ``group_size`` per load-generator process. Raises ValueError
    naming :data:`KEY`.
    """
    for n in users:
        try:
            RealtimeParams.model_validate({**realtime.model_dump(), "users": n})
        except ValidationError as exc:
            why = "; ".join(e["msg"] for e in exc.errors())
            raise ValueError(f"{KEY}: {n}: {why}") from None
        groups = -(-n // realtime.group_size)
        if groups < client_processes:
            raise ValueError(
                f"{KEY}: {n} users in groups of {realtime.group_size} make {groups} "
                f"group(s), fewer than client_processes = {client_processes} (each process "
                "runs whole groups)"
            )
