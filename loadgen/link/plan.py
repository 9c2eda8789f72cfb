"""Which link each profile of a run goes over, and why: the kernel link, the relay or none.

::

    choice = choose_link("auto", "wan")              # one profile: a LinkChoice
    choice.kind, choice.reason                       # ("userspace", "kernel link unavailable...")
    network = plan_link("auto", scenario_profiles)   # every profile: the record for meta.json
    network["profiles"]["wan"]["link"]               # "kernel", "userspace" or "none"

Both raise :class:`LinkUnavailable` (the one exception for a link request that
cannot be honoured here; its message says why) before anything starts: an
explicit ``kernel`` the kernel link cannot serve, or loss that no available link
can emulate. Pass ``support`` (a :class:`~loadgen.link.kernel.KernelSupport`,
or an all-or-nothing ``(ok, reason)``) to skip the detection, as tests do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from loadgen.link.iproute import Runner, run_command
from loadgen.link.probe import KernelSupport, probe_kernel
from loadgen.link.profiles import LinkProfile, resolve_profile

LinkKind = Literal["kernel", "userspace"]


class LinkUnavailable(ValueError):
    """The requested link cannot be used here; the message says why."""


@dataclass(frozen=True)
class LinkChoice:
    """Which link a run uses and why (recorded in meta.json)."""

    kind: LinkKind
    requested: str
    reason: str
    kernel_available: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_link(
    requested: str = "auto",
    profile: LinkProfile | str | dict[str, Any] | None = None,
    *,
    support: KernelSupport | tuple[bool, str] | None = None,
    runner: Runner = run_command,
) -> LinkChoice:
    """The link to use for ``requested`` (``"auto"``, ``"kernel"`` or ``"userspace"``).

    ``auto`` is the kernel link when it can emulate ``profile`` here (without a
    profile: any profile, :func:`kernel_support`), else the userspace relay (the
    reason says why); so a rate-only profile uses the kernel link on a machine
    with tbf but no netem. An explicit ``kernel`` that cannot be honoured, or a
    profile with loss that only the kernel link could emulate, raises
    :class:`LinkUnavailable`. ``support`` (a :class:`KernelSupport`, or an
    all-or-nothing ``(ok, reason)``) short-cuts the detection.
    """
    if requested not in ("auto", "kernel", "userspace"):
        raise ValueError(f"link must be 'auto', 'kernel' or 'userspace', not {requested!r}")
    resolved = None if profile is None else resolve_profile(profile)
    lossy = resolved is not None and resolved.loss_pct > 0
    if requested == "userspace":
        if lossy:
            assert resolved is not None
            raise LinkUnavailable(
                f"link = 'userspace' cannot emulate loss_pct = {resolved.loss_pct:g} "
                f"(profile {resolved.name!r}): the relay only sees the byte stream after TCP "
                "has recovered every segment; use link = 'kernel' or loss_pct = 0"
            )
        return LinkChoice("userspace", requested, "userspace relay requested")
    if support is None:
        found = probe_kernel(runner)
    elif isinstance(support, KernelSupport):
        found = support
    else:
        found = KernelSupport.from_tuple(*support)
    ok, why = found.as_tuple() if resolved is None else found.for_profile(resolved)
    if ok:
        return LinkChoice("kernel", requested, f"kernel link available: {why}", True)
    if requested == "kernel":
        raise LinkUnavailable(
            f"link = 'kernel' was requested but the kernel link cannot be used here: {why}. "
            "Use link = 'userspace' (the asyncio relay, no root needed) or 'auto'."
        )
    if lossy:
        assert resolved is not None
        raise LinkUnavailable(
            f"profile {resolved.name!r} has loss_pct = {resolved.loss_pct:g}, which needs the "
            f"kernel link, and the kernel link cannot be used here: {why}"
        )
    return LinkChoice(
        "userspace", requested, f"kernel link unavailable ({why}); using the userspace relay", False
    )


def plan_link(
    requested: str, profiles: Sequence[Any] = (), *, support: Any = None
) -> dict[str, Any]:
    """Which link each profile runs over, and why; raises LinkUnavailable for a refused request.

    Per profile (``profiles`` are :class:`~loadgen.link.profiles.LinkProfile`):
    ``"none"`` when it adds nothing (client and server talk over loopback),
    ``"kernel"`` (network namespaces, veth, netem/tbf) when ``requested`` is
    ``auto`` or ``kernel`` and the kernel link can emulate that profile here (a
    rate-only profile needs tbf but no netem), else ``"userspace"`` (the relay).
    An explicit ``kernel`` that some profile cannot use is refused with the
    reason, as is loss the chosen link cannot emulate. ``support`` (a
    :class:`~loadgen.link.kernel.KernelSupport`) skips the detection.
    """
    if requested not in ("auto", "kernel", "userspace"):
        raise LinkUnavailable(f'link must be "auto", "kernel" or "userspace", not {requested!r}')
    emulated = [p for p in profiles if not p.is_zero]
    if support is None and requested != "userspace" and emulated:
        support = probe_kernel()
    elif isinstance(support, tuple):
        support = KernelSupport.from_tuple(*support)
    if requested == "kernel":
        refused = [why for ok, why in (support.for_profile(p) for p in emulated) if not ok]
        if refused:
            raise LinkUnavailable(
                f'link = "kernel" cannot be honoured here: {"; ".join(refused)}. '
                'Use link = "auto" (the kernel link where it can, else the userspace relay) '
                'or "userspace".'
            )
    chosen: dict[str, dict[str, str]] = {}
    for p in profiles:
        if p.is_zero:
            reason = "the profile adds nothing: client and server talk directly over loopback"
            chosen[p.name] = {"link": "none", "reason": reason}
            continue
        choice = choose_link(requested, p, support=support)
        chosen[p.name] = {"link": choice.kind, "reason": choice.reason}
    kinds = sorted({c["link"] for c in chosen.values()} - {"none"})
    link = kinds[0] if len(kinds) == 1 else ("mixed" if kinds else "none")
    reasons = {c["reason"] for c in chosen.values() if c["link"] != "none"}
    if requested == "userspace":
        reason = "requested"
    elif len(reasons) == 1:
        reason = reasons.pop()
    elif reasons:
        per = ", ".join(f"{n}: {c['link']}" for n, c in chosen.items() if c["link"] != "none")
        reason = f"chosen per profile ({per}); see profiles for why"
    else:
        reason = "no profile needs an emulated link"
    return {
        "link": link,
        "requested": requested,
        "reason": reason,
        "kernel_support": support.as_dict() if support is not None else None,
        "profiles": chosen,
    }
