"""rtbench's network namespaces: their names, deleting them, and those crashed runs left.

::

    name = owned_name(NS_PREFIX, "probe")      # rtbench-<pid>-<hex>-probe
    with signals_deferred():                   # a second Ctrl-C waits for the deletion
        error = delete_namespace(runner, name)   # None once it is gone
    removed = cleanup_stale()                  # those whose owning process is gone
    pid_in_namespace(pid, name)                # True, False, or None when unknown
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading
from collections.abc import Iterator

from loadgen.link.iproute import Runner, run_command, short_output

#: Every namespace rtbench creates starts with this; :func:`cleanup_stale` only deletes these.
NS_PREFIX = "rtbench-"


class KernelLinkError(RuntimeError):
    """A step of setting up the kernel link failed; the message names the command."""


def owned_name(prefix: str, role: str) -> str:
    """``PREFIX<pid>-<hex>-ROLE``: a namespace name that carries its creator's pid."""
    return f"{prefix}{os.getpid()}-{secrets.token_hex(3)}-{role}"


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Block SIGINT, SIGTERM and SIGHUP (main thread) so a cleanup runs to the end."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "pthread_sigmask"
    ):
        yield
        return
    blocked = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def delete_namespace(runner: Runner, name: str) -> str | None:
    """Delete ``name``; None when it is gone (or never existed), else the error."""
    result = runner(["ip", "netns", "del", name])
    if result.returncode == 0:
        return None
    text = short_output(result)
    if "No such file" in text or "not found" in text.lower():
        return None
    return f"ip netns del {name}: {text}"


def pid_in_namespace(pid: int, name: str, netns_dir: str = "/run/netns") -> bool | None:
    """Whether process ``pid`` runs in the named network namespace; None when unknown."""
    try:
        theirs = os.stat(f"/proc/{pid}/ns/net")
        named = os.stat(os.path.join(netns_dir, name))
    except OSError:
        return None
    return (theirs.st_dev, theirs.st_ino) == (named.st_dev, named.st_ino)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_namespaces(runner: Runner = run_command) -> list[str]:
    """Names of the network namespaces ``ip netns list`` shows."""
    result = runner(["ip", "netns", "list"])
    if result.returncode != 0:
        return []
    return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


def cleanup_stale(
    prefix: str = NS_PREFIX, *, runner: Runner = run_command, only_dead_owners: bool = True
) -> list[str]:
    """Delete namespaces named ``prefix...`` left behind by crashed runs; returns their names.

    A name carries its creator's pid (``rtbench-<pid>-<hex>-<role>``); with
    ``only_dead_owners`` (the default) the namespaces of a process still alive
    are kept, so a concurrent run is not broken. ``prefix`` must start with
    ``rtbench-``: nothing else is ever deleted. Raises :class:`KernelLinkError`
    when a deletion fails (after trying all of them).
    """
    if not prefix.startswith(NS_PREFIX):
        raise ValueError(f"cleanup_stale only deletes {NS_PREFIX!r} namespaces, not {prefix!r}")
    removed: list[str] = []
    errors: list[str] = []
    for name in list_namespaces(runner):
        if not name.startswith(prefix):
            continue
        if only_dead_owners:
            owner = name[len(NS_PREFIX) :].split("-", 1)[0]
            if owner.isdigit() and _pid_alive(int(owner)):
                continue
        with signals_deferred():
            error = delete_namespace(runner, name)
        if error:
            errors.append(error)
        else:
            removed.append(name)
    if errors:
        raise KernelLinkError("; ".join(errors) + f" (removed: {', '.join(removed) or 'none'})")
    return removed
