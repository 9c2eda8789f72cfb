"""Emulated network links between the load generator and the server.

Loopback has no round trip for WebSocket to save, so rtbench runs scenarios
through an emulated link described by a :class:`LinkProfile` (one-way delay or
RTT, jitter, rate, loss, the handshake charge; presets ``loopback``, ``lan``,
``wan``, ``mobile``, ``satellite``). Two implementations:

* **userspace** (:class:`LinkRelay`, :mod:`loadgen.link.relay`): an asyncio TCP
  relay on 127.0.0.1, no root needed; run it in-process or as its own process
  with ``python -m loadgen.link relay --profile wan --target 127.0.0.1:PORT``;
* **kernel** (:class:`KernelLink`, :mod:`loadgen.link.kernel`): network
  namespaces, a veth pair and ``tc netem``/``tbf``, when root and netem allow.

:func:`choose_link` picks one per profile (``"auto"``: kernel where it can emulate
that profile here, see :func:`probe_kernel`) and says why.
"""

from loadgen.link.kernel import (
    CommandResult,
    KernelLink,
    KernelLinkError,
    KernelSupport,
    LinkChoice,
    LinkUnavailable,
    choose_link,
    cleanup_stale,
    kernel_support,
    probe_kernel,
)
from loadgen.link.profiles import PRESETS, LinkProfile, LinkProfileError, resolve_profile
from loadgen.link.relay import (
    LINK_READY_PREFIX,
    LINK_STATS_PREFIX,
    LinkRelay,
    LinkUnsupported,
    Overhead,
    measure_overhead,
    measure_relay_overhead,
    parse_link_ready_line,
    relay_command,
    tcp_echo_server,
)

__all__ = [
    "LINK_READY_PREFIX",
    "LINK_STATS_PREFIX",
    "PRESETS",
    "CommandResult",
    "KernelLink",
    "KernelLinkError",
    "KernelSupport",
    "LinkChoice",
    "LinkProfile",
    "LinkProfileError",
    "LinkRelay",
    "LinkUnavailable",
    "LinkUnsupported",
    "Overhead",
    "choose_link",
    "cleanup_stale",
    "kernel_support",
    "measure_overhead",
    "measure_relay_overhead",
    "parse_link_ready_line",
    "probe_kernel",
    "relay_command",
    "resolve_profile",
    "tcp_echo_server",
]
