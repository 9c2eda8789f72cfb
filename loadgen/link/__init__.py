"""Emulated network links between the load generator and the server.

Loopback has no round trip for WebSocket to save, so rtbench runs scenarios
through an emulated link described by a :class:`LinkProfile` (one-way delay or
RTT, jitter, rate, loss, the handshake charge; presets ``loopback``, ``lan``,
``wan``, ``mobile``, ``satellite``). Two implementations:

* **userspace** (:class:`LinkRelay`, :mod:`loadgen.link.relay`): an asyncio TCP
  relay on 127.0.0.1, and with ``udp=True`` (``--udp``) a UDP relay on the same
  port number for HTTP/3 (:class:`UdpRelay`, :mod:`loadgen.link.udp`), no root
  needed; run it in-process or as its own process (:func:`relay_command` builds
  its argv, :func:`parse_link_ready_line` reads the line it prints once
  listening);
* **kernel** (:class:`KernelLink`, :mod:`loadgen.link.kernel`): network
  namespaces, a veth pair and ``tc netem``/``tbf``, when root and netem allow.

:func:`choose_link` and :func:`plan_link` (:mod:`loadgen.link.plan`) pick one per
profile (``"auto"``: kernel where it can emulate that profile here, see
:func:`probe_kernel`) and say why, or raise :class:`LinkUnavailable`.

Modules, one job each: ``profiles`` (what a link is), ``timeline`` (when bytes
leave), ``scheduler`` (firing at those times), ``pipe`` (one relayed
connection), ``udp`` (datagram flows), ``relay`` (the listening relay),
``checks`` (what the relay refuses), ``overhead`` (what the relay adds),
``command`` (the relay as a process), ``kernel`` (netns + netem), ``plan``
(which link, why).
"""

from loadgen.link.command import (
    LINK_READY_PREFIX,
    LINK_STATS_PREFIX,
    format_link_ready_line,
    parse_link_ready_line,
    relay_command,
)
from loadgen.link.iproute import CommandResult
from loadgen.link.kernel import KernelLink
from loadgen.link.namespaces import KernelLinkError, cleanup_stale
from loadgen.link.overhead import (
    Overhead,
    measure_overhead,
    measure_relay_overhead,
    tcp_echo_server,
)
from loadgen.link.plan import LinkChoice, LinkUnavailable, choose_link, plan_link
from loadgen.link.probe import KernelSupport, kernel_support, probe_kernel
from loadgen.link.profiles import PRESETS, LinkProfile, LinkProfileError, resolve_profile
from loadgen.link.relay import LinkPortUnavailable, LinkRelay, LinkUnsupported
from loadgen.link.udp import UdpRelay

__all__ = [
    "LINK_READY_PREFIX",
    "LINK_STATS_PREFIX",
    "PRESETS",
    "CommandResult",
    "KernelLink",
    "KernelLinkError",
    "KernelSupport",
    "LinkChoice",
    "LinkPortUnavailable",
    "LinkProfile",
    "LinkProfileError",
    "LinkRelay",
    "LinkUnavailable",
    "LinkUnsupported",
    "Overhead",
    "UdpRelay",
    "choose_link",
    "cleanup_stale",
    "format_link_ready_line",
    "kernel_support",
    "measure_overhead",
    "measure_relay_overhead",
    "parse_link_ready_line",
    "plan_link",
    "probe_kernel",
    "relay_command",
    "resolve_profile",
    "tcp_echo_server",
]
