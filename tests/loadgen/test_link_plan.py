"""Which link a profile goes over: the choice for one profile, the plan for a run, refusals."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from loadgen.link.iproute import CommandResult
from loadgen.link.plan import LinkUnavailable, choose_link, plan_link
from loadgen.link.probe import KernelSupport
from loadgen.link.profiles import resolve_profile


class FakeRunner:
    """Records every command it is asked to run; each succeeds."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> CommandResult:
        self.calls.append(list(argv))
        return CommandResult(0)


NO_NETEM = (False, "tc netem is not available (CONFIG_NET_SCH_NETEM is not set)")


def test_auto_falls_back_to_userspace_and_records_why() -> None:
    choice = choose_link("auto", "wan", support=NO_NETEM)
    assert choice.kind == "userspace" and choice.requested == "auto"
    assert "CONFIG_NET_SCH_NETEM is not set" in choice.reason
    assert choice.as_dict()["kernel_available"] is False


def test_explicit_kernel_request_is_refused_with_the_reason() -> None:
    with pytest.raises(LinkUnavailable, match=r"link = 'kernel' was requested.*NETEM is not set"):
        choose_link("kernel", "wan", support=NO_NETEM)


def test_kernel_is_chosen_when_available() -> None:
    assert choose_link("auto", support=(True, "all there")).kind == "kernel"
    assert choose_link("kernel", support=(True, "all there")).kind == "kernel"


def test_userspace_request_never_probes_and_refuses_loss() -> None:
    runner = FakeRunner()
    assert choose_link("userspace", "mobile", runner=runner).kind == "userspace"
    assert runner.calls == []
    with pytest.raises(LinkUnavailable, match="cannot emulate loss"):
        choose_link("userspace", {"rtt_ms": 20, "loss_pct": 1})


NS_AND_TBF = KernelSupport(
    namespaces=True,
    netem=False,
    tbf=True,
    reason="tc netem is not available (CONFIG_NET_SCH_NETEM is not set)",
    namespaces_reason="network namespaces work",
    netem_reason="tc netem is not available (CONFIG_NET_SCH_NETEM is not set)",
    tbf_reason="tc tbf is available",
)
PROFILES = [resolve_profile(p) for p in ("loopback", "wan", {"name": "tbf8", "rate_mbit": 8})]


def test_choice_is_per_profile() -> None:
    rate_only = choose_link("auto", {"name": "tbf8", "rate_mbit": 8}, support=NS_AND_TBF)
    assert rate_only.kind == "kernel" and rate_only.kernel_available is True
    assert choose_link("kernel", {"rate_mbit": 8}, support=NS_AND_TBF).kind == "kernel"
    wan = choose_link("auto", "wan", support=NS_AND_TBF)
    assert wan.kind == "userspace" and "needs tc netem" in wan.reason
    with pytest.raises(LinkUnavailable, match=r"'kernel' was requested.*needs tc netem"):
        choose_link("kernel", "wan", support=NS_AND_TBF)
    # Without a profile the question is "any profile", which needs netem.
    assert choose_link("auto", support=NS_AND_TBF).kind == "userspace"


def test_loss_without_a_kernel_link_is_refused() -> None:
    with pytest.raises(LinkUnavailable, match="needs the kernel link"):
        choose_link("auto", {"rtt_ms": 20, "loss_pct": 1}, support=NO_NETEM)
    with pytest.raises(ValueError, match="'auto', 'kernel' or 'userspace'"):
        choose_link("netem")


# -- the plan: which link each profile uses ---------------------------------------------


def test_auto_plans_the_kernel_link_per_profile() -> None:
    plan = plan_link("auto", PROFILES, support=NS_AND_TBF)
    links = {name: p["link"] for name, p in plan["profiles"].items()}
    assert links == {"loopback": "none", "wan": "userspace", "tbf8": "kernel"}
    assert plan["link"] == "mixed" and plan["requested"] == "auto"
    assert "netem" in plan["profiles"]["wan"]["reason"]
    assert "tbf" in plan["profiles"]["tbf8"]["reason"]
    assert plan["kernel_support"]["netem"] is False
    only_rate = plan_link("auto", PROFILES[2:], support=NS_AND_TBF)
    assert only_rate["link"] == "kernel" and "tbf" in only_rate["reason"]


def test_explicit_kernel_is_refused_when_a_profile_needs_netem() -> None:
    with pytest.raises(
        LinkUnavailable, match=r"cannot be honoured here: profile 'wan' needs tc netem"
    ):
        plan_link("kernel", PROFILES, support=NS_AND_TBF)
    plan = plan_link("kernel", [PROFILES[0], PROFILES[2]], support=NS_AND_TBF)
    assert plan["link"] == "kernel" and plan["profiles"]["loopback"]["link"] == "none"


def test_userspace_is_always_the_relay_and_never_probes() -> None:
    plan = plan_link("userspace", PROFILES)  # no support given: it would probe if it had to
    assert {p["link"] for p in plan["profiles"].values()} == {"none", "userspace"}
    assert plan["reason"] == "requested" and plan["kernel_support"] is None


def test_loss_is_refused_when_no_link_can_emulate_it() -> None:
    lossy = [resolve_profile({"name": "lossy", "rtt_ms": 20, "loss_pct": 1})]
    with pytest.raises(LinkUnavailable, match="needs the kernel link"):
        plan_link("auto", lossy, support=NS_AND_TBF)
    with pytest.raises(LinkUnavailable, match="cannot emulate loss"):
        plan_link("userspace", lossy)
    full = KernelSupport(True, True, True, "all there", "ok", "ok", "ok")
    assert plan_link("auto", lossy, support=full)["profiles"]["lossy"]["link"] == "kernel"
