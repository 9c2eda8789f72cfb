"""The relay as its own process: the command line that starts it and the lines it prints.

::

    argv = relay_command("wan", server_port)          # python -m loadgen.link relay ...
    ...                                               # start argv, read its stdout
    info = parse_link_ready_line(line)                # {"port": ..., "profile": {...}, ...}
    if info is not None:
        relay_port = info["port"]                     # where clients connect instead

    argv = relay_command("wan", server_port, udp=True)   # ... --udp: UDP on the same port too
                                                         # (the ready line has "udp": true)

The relay process (``python -m loadgen.link relay``, :mod:`loadgen.link.__main__`)
prints :func:`format_link_ready_line` once it listens and a
:data:`LINK_STATS_PREFIX` line with its counters when it stops. Whoever starts it
(tests, :func:`loadgen.procs.start_link`) builds the argv and reads the ready
line through these functions only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from loadgen.link.checks import check_loopback_target, check_relay_profile
from loadgen.link.profiles import LinkProfile, resolve_profile

#: Prefix of the line the relay process prints once it is listening.
LINK_READY_PREFIX = "RTBENCH-LINK-READY "
#: Prefix of the line the relay process prints when it stops (its counters).
LINK_STATS_PREFIX = "RTBENCH-LINK-STATS "


def format_link_ready_line(info: Mapping[str, Any]) -> str:
    """``RTBENCH-LINK-READY {"port": ..., "profile": {...}, ...}`` (one line, no newline)."""
    ordered = {key: info[key] for key in ("port", "profile") if key in info}
    ordered.update({k: v for k, v in info.items() if k not in ordered})
    return LINK_READY_PREFIX + json.dumps(ordered)


def parse_link_ready_line(line: str) -> dict[str, Any] | None:
    """The JSON object of a relay's ready line, or None when ``line`` is not one."""
    line = line.strip()
    prefix = LINK_READY_PREFIX.strip()
    if not line.startswith(prefix + " "):
        return None
    try:
        info = json.loads(line[len(prefix) :])
    except ValueError:
        return None
    if (
        not isinstance(info, dict)
        or type(info.get("port")) is not int
        or not isinstance(info.get("profile"), dict)
    ):
        return None
    return info


def relay_command(
    profile: LinkProfile | str | Mapping[str, Any],
    target_port: int,
    *,
    target_host: str = "127.0.0.1",
    python: str | None = None,
    udp: bool = False,
    extra: list[str] | None = None,
) -> list[str]:
    """The argv that runs the relay as its own process (see ``python -m loadgen.link``).

    ``profile`` is resolved and checked first: a profile with loss or a target that is
    not a loopback address raises :class:`~loadgen.link.relay.LinkUnsupported` here,
    not in the child. ``udp=True`` adds ``--udp``: the relay also relays UDP on its
    port number, to ``target_port``'s UDP port (HTTP/3). ``extra`` is appended
    (``["--seed", "1"]``).
    """
    resolved = check_relay_profile(resolve_profile(profile))
    check_loopback_target(target_host)
    return [
        python or sys.executable,
        "-m",
        "loadgen.link",
        "relay",
        "--profile",
        json.dumps(resolved.as_dict()),
        "--target",
        f"{target_host}:{target_port}",
        *(["--udp"] if udp else []),
        *(extra or []),
    ]
