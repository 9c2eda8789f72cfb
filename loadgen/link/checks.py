"""What the userspace relay refuses, checked before it opens a socket.

::

    check_loopback_target("127.0.0.1")        # "127.0.0.1"; "10.0.0.1" raises LinkUnsupported
    check_relay_profile(resolve_profile(p))   # p; a profile with loss raises LinkUnsupported

The TCP relay (:mod:`loadgen.link.relay`), its datagram side
(:mod:`loadgen.link.udp`) and the command line that starts it
(:mod:`loadgen.link.command`) all refuse through these functions, so a refusal
reads the same wherever it is raised.
"""

from __future__ import annotations

import ipaddress

from loadgen.link.profiles import LinkProfile


class LinkUnsupported(ValueError):
    """A profile or target the userspace relay cannot emulate; the message says why."""


def check_loopback_target(host: str) -> str:
    """``host`` when it is a loopback IP address, else :class:`LinkUnsupported`."""
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise LinkUnsupported(
            f"relay target {host!r} is not an IP address: the relay only forwards to a "
            "loopback address such as 127.0.0.1 (names are not resolved)"
        ) from None
    if not addr.is_loopback:
        raise LinkUnsupported(
            f"relay target {host!r} is not a loopback address: the relay only forwards to "
            "127.0.0.0/8 or ::1 (it emulates a link on one machine, it is not a proxy)"
        )
    return host


def check_relay_profile(profile: LinkProfile) -> LinkProfile:
    """``profile`` when the relay can emulate it, else :class:`LinkUnsupported`."""
    if profile.loss_pct > 0:
        raise LinkUnsupported(
            f"the userspace relay cannot emulate packet loss (profile {profile.name!r} has "
            f"loss_pct = {profile.loss_pct:g}): it forwards the byte stream after each side's "
            "TCP has already recovered every segment, and a loss would have to be invented "
            "as retransmission delay that depends on segment boundaries, RTO and congestion "
            "window the relay cannot see. Use the kernel link (netem) or loss_pct = 0."
        )
    return profile
