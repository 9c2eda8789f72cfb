"""Link checks around a run: stale namespaces, the relay's own cost, a kernel-link server.

::

    removed = remove_stale_namespaces(console)     # names of the namespaces deleted
    overhead = relay_overhead()                   # dict, or {"error": ...}
    problem = check_kernel_server(server, klink, record)   # None when all is right
"""

from __future__ import annotations

import asyncio
from typing import Any

from rich.console import Console

from loadgen.link.namespaces import KernelLinkError, cleanup_stale, pid_in_namespace
from loadgen.link.overhead import measure_relay_overhead
from loadgen.procs import Child


def remove_stale_namespaces(console: Console) -> list[str]:
    """Delete ``rtbench-`` namespaces left by runs that were killed (their owner is gone)."""
    try:
        removed = cleanup_stale()
    except KernelLinkError as exc:
        console.print(f"[yellow]note:[/] could not remove stale namespaces: {exc}")
        return []
    if removed:
        console.print(f"[yellow]note:[/] removed namespaces of killed runs: {', '.join(removed)}")
    return removed


def relay_overhead() -> dict[str, Any] | None:
    """What the userspace relay itself adds to a round trip (zero-delay relay vs direct)."""
    try:
        return asyncio.run(measure_relay_overhead(n=300)).as_dict()
    except OSError as exc:
        return {"error": str(exc)}


def check_kernel_server(server: Child, klink: Any, record: dict[str, Any]) -> str | None:
    """Record where a kernel-link server runs; why that is wrong, if it is.

    ``ip netns exec`` executes the server in place, so the pid started is the
    one serving (the one pinned, sampled and stopped), inside the server namespace.
    """
    record["port"] = server.info["port"]
    record["server_cpus"] = server.cpus
    same_pid = server.info.get("pid") == server.proc.pid
    in_ns = pid_in_namespace(server.proc.pid, klink.server_ns)
    record["server_pid_in_place"] = same_pid
    record["server_in_namespace"] = in_ns
    if not same_pid:
        return (
            f"the server's pid {server.info.get('pid')} is not the pid started "
            f"({server.proc.pid}): ip netns exec did not execute it in place, so "
            "pinning, CPU sampling and stopping would miss it"
        )
    if in_ns is False:
        return f"the server (pid {server.proc.pid}) is not in namespace {klink.server_ns}"
    return None
