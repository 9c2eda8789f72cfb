"""Room for open files: raise this process's RLIMIT_NOFILE soft limit to fit its connections.

::

    limit = raise_fd_limit(files_for(10_000), "10000 users", "lower [realtime] users")
    limit.as_dict()   # {"needed": 10064, "soft_before": 1024, "hard_before": 20000, ...}

Every open connection is a file descriptor, and a common default soft limit
(1024) is far below what thousands of users hold. The soft limit is raised to
what is needed, never above the hard limit and never lowered. When even the
hard limit is too low, :class:`FdLimitTooLow` says so with the numbers and what
to do; ``strict=False`` instead goes as far as the hard limit allows (a server
sizing itself from a generous bound rather than from what it was asked for).
In the record, None stands for unlimited.
"""

from __future__ import annotations

import resource
from dataclasses import asdict, dataclass

#: Files a process holds besides its connections: standard streams, logs, the event
#: loop's own descriptors, listening sockets, pipes to its parent.
FD_HEADROOM = 64


class FdLimitTooLow(RuntimeError):
    """The hard limit on open files is below what the process needs (the message says what)."""


@dataclass(frozen=True, slots=True)
class FdLimit:
    """The open-files limit before and after :func:`raise_fd_limit` (None: unlimited)."""

    needed: int
    soft_before: int | None
    hard_before: int | None
    soft_after: int | None
    hard_after: int | None

    def as_dict(self) -> dict[str, int | None]:
        return asdict(self)


def files_for(connections: int) -> int:
    """Open files a process holding ``connections`` connections needs."""
    return max(0, connections) + FD_HEADROOM


def _finite(value: int) -> int | None:
    return None if value == resource.RLIM_INFINITY else value


def soft_target(needed: int, soft: int | None, hard: int | None) -> int | None:
    """The soft limit to set for ``needed`` files (None: leave it), capped by ``hard``.

    ``soft`` and ``hard`` are the current limits, None when unlimited.
    """
    if soft is None or soft >= needed:
        return None
    target = needed if hard is None else min(needed, hard)
    return target if target > soft else None


def raise_fd_limit(needed: int, what: str, remedy: str, *, strict: bool = True) -> FdLimit:
    """Raise the soft limit on open files towards ``needed``; returns what was set.

    ``what`` names the load (``"10000 users"``) and ``remedy`` the other way out
    (``"lower [realtime] users"``) in the error raised when the hard limit is below
    ``needed`` (unless ``strict`` is False) or the kernel refuses the new limit.
    """
    soft, hard = (_finite(v) for v in resource.getrlimit(resource.RLIMIT_NOFILE))
    if strict and hard is not None and hard < needed:
        raise FdLimitTooLow(
            f"{what} need about {needed} open files; the hard limit (ulimit -Hn) is {hard}: "
            f"raise it, or {remedy}"
        )
    target = soft_target(needed, soft, hard)
    if target is not None:
        raw_hard = resource.RLIM_INFINITY if hard is None else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, raw_hard))
        except (ValueError, OSError) as exc:
            # An unlimited hard limit is still capped by the kernel (fs.nr_open).
            if strict:
                raise FdLimitTooLow(
                    f"{what} need about {needed} open files; the soft limit (ulimit -n) "
                    f"could not be raised from {soft} to {target} ({exc}): raise the limit, "
                    f"or {remedy}"
                ) from exc
    soft_after, hard_after = (_finite(v) for v in resource.getrlimit(resource.RLIMIT_NOFILE))
    return FdLimit(needed, soft, hard, soft_after, hard_after)
