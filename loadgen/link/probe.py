"""What the kernel link can do on this machine: root, iproute2, namespaces, netem and tbf.

::

    ok, reason = kernel_support()          # (False, "tc netem is not available: ...") here
    support = probe_kernel()               # namespaces, netem and tbf, each with its reason
    support.for_profile({"rate_mbit": 8})  # (True, ...): a rate-only profile needs no netem
"""

from __future__ import annotations

import gzip
import os
import shutil
from dataclasses import asdict, dataclass
from typing import Any

from loadgen.link.iproute import Runner, run_command, short_output
from loadgen.link.namespaces import NS_PREFIX, delete_namespace, owned_name, signals_deferred
from loadgen.link.profiles import LinkProfile, resolve_profile

KERNEL_CONFIG = "/proc/config.gz"


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _which(program: str) -> str | None:
    return shutil.which(program)


def netem_kernel_config(path: str = KERNEL_CONFIG) -> str | None:
    """``"y"``, ``"m"`` or ``"n"`` (not set) for CONFIG_NET_SCH_NETEM; None when unknown."""
    try:
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("CONFIG_NET_SCH_NETEM="):
                    return line.strip().split("=", 1)[1]
                if line.startswith("# CONFIG_NET_SCH_NETEM is not set"):
                    return "n"
    except (OSError, EOFError, ValueError):
        return None
    return "n"


def needs_netem(profile: LinkProfile) -> bool:
    """Whether the kernel link needs ``tc netem`` for ``profile`` (delay, jitter or loss)."""
    return profile.delay_ms > 0 or profile.jitter_ms > 0 or profile.loss_pct > 0


def needs_tbf(profile: LinkProfile) -> bool:
    """Whether the kernel link needs ``tc tbf`` for ``profile`` (a rate limit)."""
    return profile.rate_mbit is not None


def _netem_parts(profile: LinkProfile) -> str:
    parts = []
    if profile.delay_ms > 0:
        parts.append(f"delay_ms = {profile.delay_ms:g}")
    if profile.jitter_ms > 0:
        parts.append(f"jitter_ms = {profile.jitter_ms:g}")
    if profile.loss_pct > 0:
        parts.append(f"loss_pct = {profile.loss_pct:g}")
    return ", ".join(parts)


@dataclass(frozen=True)
class KernelSupport:
    """What :func:`probe_kernel` found: namespaces, netem and tbf, each with its reason.

    ``namespaces`` covers root, iproute2 and creating a namespace; ``netem`` and
    ``tbf`` whether each qdisc can be added inside one. :meth:`for_profile`
    says whether the kernel link can emulate one profile (a rate-only profile
    needs tbf but no netem); :attr:`full` whether it can emulate any.
    """

    namespaces: bool
    netem: bool
    tbf: bool
    reason: str
    namespaces_reason: str = ""
    netem_reason: str = ""
    tbf_reason: str = ""

    @classmethod
    def from_tuple(cls, ok: bool, reason: str) -> KernelSupport:
        """All-or-nothing support, as :func:`kernel_support` reports it."""
        return cls(ok, ok, ok, reason, reason, reason, reason)

    @property
    def full(self) -> bool:
        return self.namespaces and self.netem and self.tbf

    def as_tuple(self) -> tuple[bool, str]:
        return self.full, self.reason

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def for_profile(self, profile: LinkProfile | str | dict[str, Any]) -> tuple[bool, str]:
        """``(usable, reason)`` for the kernel link emulating ``profile`` here."""
        p = resolve_profile(profile)
        if not self.namespaces:
            return False, self.namespaces_reason or self.reason
        missing = []
        if needs_netem(p) and not self.netem:
            missing.append(f"needs tc netem ({_netem_parts(p)}) and {self.netem_reason}")
        if needs_tbf(p) and not self.tbf:
            missing.append(f"needs tc tbf (rate_mbit = {p.rate_mbit:g}) and {self.tbf_reason}")
        if missing:
            return False, f"profile {p.name!r} " + "; it also ".join(missing)
        used = ["network namespaces"]
        if needs_netem(p):
            used.append("tc netem")
        if needs_tbf(p):
            used.append("tc tbf")
        why = f"{' and '.join(used)} work for profile {p.name!r}"
        if not needs_netem(p) and not self.netem:
            why += " (it needs no netem, which is unavailable here)"
        return True, why


def probe_kernel(runner: Runner = run_command) -> KernelSupport:
    """Find out what the kernel link can do here (see :class:`KernelSupport`).

    Checks root, iproute2 (``ip`` and ``tc``), that a network namespace can be
    created, and that ``tc qdisc add dev lo root netem`` and ``... tbf`` work
    inside it (in a throwaway ``rtbench-`` namespace that is always deleted; the
    host's own interfaces are never touched). A reason names what is missing;
    netem's adds what ``/proc/config.gz`` says about CONFIG_NET_SCH_NETEM.
    """
    if not _is_root():
        uid = os.geteuid() if hasattr(os, "geteuid") else "?"
        return KernelSupport.from_tuple(
            False,
            "the kernel link needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN to create network "
            f"namespaces and qdiscs); running as uid {uid}",
        )
    missing = [program for program in ("ip", "tc") if _which(program) is None]
    if missing:
        return KernelSupport.from_tuple(
            False,
            f"iproute2 is not installed ({' and '.join(missing)} not on PATH); "
            "install it (apt-get install iproute2)",
        )
    config = netem_kernel_config()
    name = owned_name(NS_PREFIX, "probe")
    try:
        created = runner(["ip", "netns", "add", name])
        if created.returncode != 0:
            return KernelSupport.from_tuple(
                False, f"cannot create a network namespace (ip netns add): {short_output(created)}"
            )
        runner(["ip", "-n", name, "link", "set", "lo", "up"])
        tc = ["ip", "netns", "exec", name, "tc", "qdisc"]
        probe = runner([*tc, "add", "dev", "lo", "root", "netem", "delay", "1ms"])
        netem_ok = probe.returncode == 0
        netem_reason = "tc netem is available"
        if not netem_ok:
            netem_reason = f"tc netem is not available: {short_output(probe)}"
            if config == "n":
                netem_reason += " (kernel config: CONFIG_NET_SCH_NETEM is not set)"
            elif config == "m":
                netem_reason += " (kernel config: sch_netem is a module that could not be loaded)"
        else:
            runner([*tc, "del", "dev", "lo", "root"])
        shape = ["tbf", "rate", "8mbit", "burst", "16384", "limit", "131072"]
        tbf = runner([*tc, "add", "dev", "lo", "root", *shape])
        tbf_ok = tbf.returncode == 0
        tbf_reason = (
            "tc tbf is available" if tbf_ok else f"tc tbf is not available: {short_output(tbf)}"
        )
        problems = [why for ok, why in ((netem_ok, netem_reason), (tbf_ok, tbf_reason)) if not ok]
        reason = "; ".join(problems) or (
            "root, iproute2, network namespaces, tc netem and tbf are available"
        )
        return KernelSupport(
            True,
            netem_ok,
            tbf_ok,
            reason,
            "root, iproute2 and network namespaces are available",
            netem_reason,
            tbf_reason,
        )
    finally:
        with signals_deferred():
            delete_namespace(runner, name)


def kernel_support(runner: Runner = run_command) -> tuple[bool, str]:
    """``(usable, reason)``: whether the kernel link can emulate every profile here.

    The all-or-nothing view of :func:`probe_kernel` (namespaces, netem and tbf
    all work); use :meth:`KernelSupport.for_profile` for one profile.
    """
    return probe_kernel(runner).as_tuple()
