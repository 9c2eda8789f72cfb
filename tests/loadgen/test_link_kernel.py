"""The kernel link: detection, refusal, the link choice and the always-remove cleanup path.

Most tests inject a fake command runner, so they check exactly which commands
run and that every namespace created is deleted, even when a step fails or a
Ctrl-C lands half-way. The ``real`` tests need root and iproute2 (``.ci/run``
runs as root) and create and delete real ``rtbench-`` namespaces; they never
touch the host's own interfaces.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence

import pytest

from loadgen.link import kernel
from loadgen.link import probe as kernel_probe
from loadgen.link.iproute import CommandResult, run_command
from loadgen.link.kernel import KernelLink
from loadgen.link.namespaces import (
    NS_PREFIX,
    KernelLinkError,
    cleanup_stale,
    list_namespaces,
    pid_in_namespace,
)
from loadgen.link.probe import KernelSupport, kernel_support, probe_kernel

pytestmark = pytest.mark.timeout(30)

Matcher = Callable[[list[str]], bool]


class FakeRunner:
    """Records every command; fails (or raises) on the first command a matcher picks."""

    def __init__(
        self,
        fail_on: Matcher | None = None,
        *,
        stderr: str = "boom",
        raise_on: Matcher | None = None,
        exc: BaseException | None = None,
        netns_list: str = "",
    ) -> None:
        self.calls: list[list[str]] = []
        self.fail_on, self.stderr = fail_on, stderr
        self.raise_on, self.exc = raise_on, exc
        self.netns_list = netns_list

    def __call__(self, argv: Sequence[str]) -> CommandResult:
        argv = list(argv)
        self.calls.append(argv)
        if self.raise_on is not None and self.raise_on(argv):
            self.raise_on = None
            raise self.exc or KeyboardInterrupt()
        if self.fail_on is not None and self.fail_on(argv):
            self.fail_on = None
            return CommandResult(2, "", self.stderr)
        if argv[:3] == ["ip", "netns", "list"]:
            return CommandResult(0, self.netns_list, "")
        return CommandResult(0, "", "")

    def added(self) -> list[str]:
        return [c[3] for c in self.calls if c[:3] == ["ip", "netns", "add"]]

    def deleted(self) -> list[str]:
        return [c[3] for c in self.calls if c[:3] == ["ip", "netns", "del"]]

    def assert_every_namespace_deleted(self) -> None:
        added = self.added()
        assert added, "nothing was created"
        for name in added:
            assert name.startswith(NS_PREFIX)
            assert name in self.deleted(), f"{name} was created and never deleted"
            first_add = next(i for i, c in enumerate(self.calls) if c[3:4] == [name])
            last_del = max(i for i, c in enumerate(self.calls) if c == ["ip", "netns", "del", name])
            assert last_del > first_add


def is_cmd(*words: str) -> Matcher:
    return lambda argv: all(w in argv for w in words)


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel_probe, "_is_root", lambda: True)
    monkeypatch.setattr(kernel_probe, "_which", lambda program: f"/usr/sbin/{program}")


# -- detection --------------------------------------------------------------------------


def test_support_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel_probe, "_is_root", lambda: False)
    runner = FakeRunner()
    ok, reason = kernel_support(runner)
    assert not ok and "needs root" in reason
    assert runner.calls == []


def test_support_needs_iproute2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel_probe, "_is_root", lambda: True)
    monkeypatch.setattr(kernel_probe, "_which", lambda p: None if p == "tc" else "/usr/sbin/ip")
    ok, reason = kernel_support(FakeRunner())
    assert not ok and "iproute2 is not installed (tc not on PATH)" in reason
    assert "apt-get install iproute2" in reason


def test_support_without_netem_names_the_kernel_config(
    as_root: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kernel_probe, "netem_kernel_config", lambda: "n")
    runner = FakeRunner(is_cmd("netem"), stderr="Error: Specified qdisc kind is unknown.")
    ok, reason = kernel_support(runner)
    assert not ok
    assert "tc netem is not available: Error: Specified qdisc kind is unknown." in reason
    assert "CONFIG_NET_SCH_NETEM is not set" in reason
    runner.assert_every_namespace_deleted()
    probe = next(c for c in runner.calls if "netem" in c)
    assert probe[:4] == ["ip", "netns", "exec", runner.added()[0]]  # never on the host's lo


def test_support_when_namespaces_cannot_be_created(as_root: None) -> None:
    runner = FakeRunner(is_cmd("netns", "add"), stderr="mount --make-shared /run/netns failed")
    ok, reason = kernel_support(runner)
    assert not ok and reason.startswith("cannot create a network namespace")
    assert not any("netem" in c for c in runner.calls)


def test_support_when_everything_is_there(as_root: None) -> None:
    runner = FakeRunner()
    assert kernel_support(runner) == (
        True,
        "root, iproute2, network namespaces, tc netem and tbf are available",
    )
    runner.assert_every_namespace_deleted()
    probes = [c for c in runner.calls if "qdisc" in c]
    assert [c[6] for c in probes] == ["add", "del", "add"]  # netem, removed, then tbf
    assert "netem" in probes[0] and "tbf" in probes[2]
    for c in probes:
        assert c[:4] == ["ip", "netns", "exec", runner.added()[0]]


def test_probe_without_netem_still_finds_namespaces_and_tbf(
    as_root: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kernel_probe, "netem_kernel_config", lambda: "n")
    runner = FakeRunner(is_cmd("netem"), stderr="Error: Specified qdisc kind is unknown.")
    support = probe_kernel(runner)
    assert (support.namespaces, support.netem, support.tbf) == (True, False, True)
    assert support.as_tuple() == (False, support.netem_reason)
    assert "CONFIG_NET_SCH_NETEM is not set" in support.netem_reason
    assert support.tbf_reason == "tc tbf is available"
    runner.assert_every_namespace_deleted()
    # The failed netem left nothing to remove: tbf is added straight away.
    assert not any("del" in c and "qdisc" in c for c in runner.calls)


def test_probe_without_tbf(as_root: None) -> None:
    runner = FakeRunner(is_cmd("tbf"), stderr="Error: Specified qdisc kind is unknown.")
    support = probe_kernel(runner)
    assert (support.namespaces, support.netem, support.tbf) == (True, True, False)
    assert support.as_tuple() == (False, "tc tbf is not available: " + runner.stderr)
    runner.assert_every_namespace_deleted()


def test_probe_is_removed_on_ctrl_c_during_the_tbf_probe(as_root: None) -> None:
    runner = FakeRunner(raise_on=is_cmd("tbf"))
    with pytest.raises(KeyboardInterrupt):
        probe_kernel(runner)
    runner.assert_every_namespace_deleted()


def test_support_probe_is_removed_on_ctrl_c(as_root: None) -> None:
    runner = FakeRunner(raise_on=is_cmd("netem"))
    with pytest.raises(KeyboardInterrupt):
        kernel_support(runner)
    runner.assert_every_namespace_deleted()


NO_NETEM = (False, "tc netem is not available (CONFIG_NET_SCH_NETEM is not set)")

NS_AND_TBF = KernelSupport(
    namespaces=True,
    netem=False,
    tbf=True,
    reason=NO_NETEM[1],
    namespaces_reason="namespaces work",
    netem_reason=NO_NETEM[1],
    tbf_reason="tc tbf is available",
)


def test_support_is_per_profile() -> None:
    ok, why = NS_AND_TBF.for_profile({"name": "tbf8", "rate_mbit": 8})
    assert ok and "tc tbf" in why and "needs no netem" in why
    assert NS_AND_TBF.for_profile("loopback")[0]
    for profile, words in [
        ("wan", "delay_ms = 25"),
        ({"name": "j", "delay_ms": 5, "jitter_ms": 1}, "jitter_ms = 1"),
        ({"name": "lossy", "loss_pct": 1}, "loss_pct = 1"),
        ({"name": "dsl", "rtt_ms": 30, "rate_mbit": 16}, "delay_ms = 15"),
    ]:
        ok, why = NS_AND_TBF.for_profile(profile)
        assert not ok and "needs tc netem" in why and words in why
        assert "CONFIG_NET_SCH_NETEM is not set" in why
    no_tbf = KernelSupport(True, True, False, "no tbf", "ok", "ok", "tc tbf is not available: x")
    assert no_tbf.for_profile("wan")[0]
    ok, why = no_tbf.for_profile({"rate_mbit": 8})
    assert not ok and "needs tc tbf (rate_mbit = 8)" in why
    no_ns = KernelSupport.from_tuple(False, "needs root")
    assert no_ns.for_profile({"rate_mbit": 8}) == (False, "needs root")


# -- the link's commands and cleanup ----------------------------------------------------


def test_setup_commands_shape_each_end() -> None:
    link = KernelLink("mobile", runner=FakeRunner())
    cmds = link.setup_commands()
    assert link.client_ns.startswith(f"{NS_PREFIX}{os.getpid()}-")
    assert link.client_ns.endswith("-c") and link.server_ns.endswith("-s")
    veth = next(c for c in cmds if "veth" in c)
    assert veth[:3] == ["ip", "-n", link.client_ns] and veth[-2:] == ["netns", link.server_ns]
    for ns in (link.client_ns, link.server_ns):
        tc = [c for c in cmds if c[:4] == ["ip", "netns", "exec", ns]]
        netem, tbf = tc
        assert netem[netem.index("delay") + 1 : netem.index("delay") + 3] == ["75000us", "5000us"]
        assert "root" in netem and "1:" in netem
        assert tbf[tbf.index("parent") + 1] == "1:1" and "5000kbit" in tbf
    # Every command is run inside a namespace or creates one: nothing on the host's interfaces.
    for c in cmds:
        assert c[:3] == ["ip", "netns", "add"] or c[1] == "-n" or c[:3] == ["ip", "netns", "exec"]


def test_rate_only_and_zero_profiles_need_no_netem() -> None:
    rate_only = KernelLink({"rate_mbit": 8}, runner=FakeRunner()).setup_commands()
    assert not any("netem" in c for c in rate_only)
    assert sum("tbf" in c and "root" in c for c in rate_only) == 2
    zero = KernelLink("loopback", runner=FakeRunner()).setup_commands()
    assert not any("tc" in c for c in zero)
    lossy = KernelLink({"rtt_ms": 10, "loss_pct": 0.5}, runner=FakeRunner()).setup_commands()
    assert any(c[-2:] == ["loss", "0.5%"] for c in lossy)


def test_link_removes_namespaces_on_exit() -> None:
    runner = FakeRunner()
    before = signal.getsignal(signal.SIGTERM)
    with KernelLink("wan", runner=runner) as link:
        assert link._atexit_registered
        if before in (signal.SIG_DFL, None):
            assert signal.getsignal(signal.SIGTERM) is kernel._sigterm_to_exit
        assert runner.deleted() == []
    runner.assert_every_namespace_deleted()
    assert not link._atexit_registered and signal.getsignal(signal.SIGTERM) == before
    assert link.close() == []  # idempotent: nothing left to delete
    assert runner.calls[-1][:3] == ["ip", "netns", "del"]


def test_link_removes_namespaces_when_the_body_raises() -> None:
    runner = FakeRunner()
    with pytest.raises(RuntimeError, match="benchmark crashed"), KernelLink("wan", runner=runner):
        raise RuntimeError("benchmark crashed")
    runner.assert_every_namespace_deleted()


def _setup_steps() -> list[int]:
    return list(range(len(KernelLink("mobile", runner=FakeRunner()).setup_commands())))


@pytest.mark.parametrize("step", _setup_steps())
def test_a_failing_setup_step_removes_what_was_created(step: int) -> None:
    calls: list[int] = []

    def nth(argv: list[str]) -> bool:
        calls.append(1)
        return len(calls) == step + 1

    runner = FakeRunner(nth, stderr="RTNETLINK answers: Operation not permitted")
    link = KernelLink("mobile", runner=runner)
    with pytest.raises(KernelLinkError, match="Operation not permitted") as err:
        link.__enter__()
    assert " ".join(link.setup_commands()[step]) in str(err.value)
    runner.assert_every_namespace_deleted()
    # Nothing ran after the failing step but the deletions.
    assert all(c[:3] == ["ip", "netns", "del"] for c in runner.calls[step + 1 :])
    assert not link._atexit_registered


@pytest.mark.parametrize("which", ["second-add", "veth", "tc"])
def test_ctrl_c_during_setup_removes_what_was_created(which: str) -> None:
    matchers = {
        "second-add": lambda argv: argv[:3] == ["ip", "netns", "add"] and argv[3].endswith("-s"),
        "veth": is_cmd("veth"),
        "tc": is_cmd("tbf"),
    }
    runner = FakeRunner(raise_on=matchers[which])
    with pytest.raises(KeyboardInterrupt), KernelLink("mobile", runner=runner):
        pytest.fail("the body must not run")
    runner.assert_every_namespace_deleted()
    if which == "second-add":  # the namespace whose creation was interrupted is deleted too
        assert len(runner.deleted()) == 2


def test_a_failing_deletion_does_not_stop_the_others() -> None:
    runner = FakeRunner()
    link = KernelLink("wan", runner=runner).__enter__()
    runner.fail_on = lambda argv: argv[:3] == ["ip", "netns", "del"] and argv[3].endswith("-s")
    errors = link.close()
    assert len(errors) == 1 and link.server_ns in errors[0]
    assert set(runner.deleted()) == {link.client_ns, link.server_ns}
    assert link.cleanup_errors == errors


def test_someone_elses_namespace_is_never_deleted() -> None:
    runner = FakeRunner(is_cmd("netns", "add"), stderr="Cannot create namespace file: File exists")
    link = KernelLink("wan", runner=runner)
    with pytest.raises(KernelLinkError, match="File exists"):
        link.__enter__()
    assert runner.deleted() == []


def test_prefix_must_be_rtbench() -> None:
    with pytest.raises(ValueError, match="must start with 'rtbench-'"):
        KernelLink("wan", prefix="lab-")
    with pytest.raises(ValueError, match="only deletes 'rtbench-'"):
        cleanup_stale("", runner=FakeRunner())


def test_sigterm_runs_the_cleanup(tmp_path: os.PathLike[str]) -> None:
    """A SIGTERM while the link is open exits 143 after deleting the namespaces."""
    log = os.path.join(tmp_path, "calls.txt")
    script = textwrap.dedent(
        f"""
        import os, signal, time
        from loadgen.link.iproute import CommandResult
        from loadgen.link.kernel import KernelLink

        def runner(argv):
            with open({log!r}, "a") as fh:
                fh.write(" ".join(argv) + "\\n")
            return CommandResult(0, "", "")

        with KernelLink("wan", runner=runner):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=20, check=False)
    assert done.returncode == 143
    with open(log) as fh:
        lines = fh.read().splitlines()
    added = [ln.split()[3] for ln in lines if ln.startswith("ip netns add")]
    deleted = [ln.split()[3] for ln in lines if ln.startswith("ip netns del")]
    assert len(added) == 2 and set(added) == set(deleted)


# -- crashed runs -------------------------------------------------------------------------


def test_cleanup_stale_removes_only_dead_owners_namespaces() -> None:
    listing = "\n".join(
        [
            "rtbench-999999999-abcdef-c (id: 3)",
            "rtbench-999999999-abcdef-s (id: 4)",
            f"rtbench-{os.getpid()}-123456-c",  # ours, alive: kept
            "rtbench-probe-left",  # no owner pid: removed
            "vpn-ns (id: 1)",  # not ours: never touched
        ]
    )
    runner = FakeRunner(netns_list=listing)
    removed = cleanup_stale(runner=runner)
    assert removed == [
        "rtbench-999999999-abcdef-c",
        "rtbench-999999999-abcdef-s",
        "rtbench-probe-left",
    ]
    assert runner.deleted() == removed
    everything = cleanup_stale(runner=FakeRunner(netns_list=listing), only_dead_owners=False)
    assert f"rtbench-{os.getpid()}-123456-c" in everything and "vpn-ns" not in everything


def test_cleanup_stale_reports_a_failed_deletion() -> None:
    runner = FakeRunner(
        is_cmd("del"), stderr="Device or resource busy", netns_list="rtbench-999999999-a-c"
    )
    with pytest.raises(KernelLinkError, match="busy"):
        cleanup_stale(runner=runner)


def test_pid_in_namespace(tmp_path: os.PathLike[str]) -> None:
    netns = os.path.join(tmp_path, "netns")
    os.mkdir(netns)
    os.symlink(f"/proc/{os.getpid()}/ns/net", os.path.join(netns, "ours"))  # stat follows it
    assert pid_in_namespace(os.getpid(), "ours", netns) is True
    open(os.path.join(netns, "other"), "w").close()
    assert pid_in_namespace(os.getpid(), "other", netns) is False
    assert pid_in_namespace(os.getpid(), "missing", netns) is None


def test_run_command_reports_a_missing_program() -> None:
    assert run_command(["definitely-not-a-program-rtbench"]).returncode == 127


# -- real namespaces (root + iproute2) ----------------------------------------------------

real = pytest.mark.skipif(
    not (
        hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("ip") and shutil.which("tc")
    ),
    reason="needs root and iproute2 (ip, tc): apt-get install iproute2",
)


def _ours() -> list[str]:
    return [n for n in list_namespaces() if n.startswith(f"{NS_PREFIX}{os.getpid()}-")]


@real
def test_real_support_detection_leaves_nothing_behind() -> None:
    ok, reason = kernel_support()
    assert reason
    if kernel_probe.netem_kernel_config() == "n":
        assert not ok and "netem" in reason and "CONFIG_NET_SCH_NETEM is not set" in reason
    support = probe_kernel()
    assert support.as_tuple()[0] == ok
    if support.namespaces and support.tbf:
        assert support.for_profile({"rate_mbit": 8})[0]
    assert _ours() == []


@real
def test_real_link_creates_and_removes_namespaces() -> None:
    """A rate-only profile needs tbf, not netem, so it works even without netem."""
    with KernelLink({"rate_mbit": 8}) as link:
        assert {link.client_ns, link.server_ns} <= set(list_namespaces())
        qdiscs = run_command([*link.exec_prefix("server"), "tc", "qdisc", "show", "dev", "rtb0"])
        assert "tbf" in qdiscs.stdout and "8Mbit" in qdiscs.stdout
        addrs = run_command(["ip", "-n", link.client_ns, "addr", "show", "dev", "rtb0"])
        assert f"{link.client_addr}/30" in addrs.stdout
        # A TCP round trip across the veth pair, server in one namespace, client in the other.
        server = subprocess.Popen(
            [*link.exec_prefix("server"), sys.executable, "-c", _ECHO_SERVER],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "listening"
            client = subprocess.run(
                [*link.exec_prefix("client"), sys.executable, "-c", _ECHO_CLIENT],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
            assert client.stdout.strip() == "echoed", client.stderr
        finally:
            server.kill()
            server.wait()
    assert _ours() == []
    assert "rtb0" not in run_command(["ip", "link", "show"]).stdout  # nothing on the host


_ECHO_SERVER = f"""
import socket
s = socket.create_server(("{kernel.SERVER_ADDR}", 7777))
print("listening", flush=True)
c, _ = s.accept()
c.sendall(c.recv(100))
"""

_ECHO_CLIENT = f"""
import socket
c = socket.create_connection(("{kernel.SERVER_ADDR}", 7777), timeout=10)
c.sendall(b"hello")
print("echoed" if c.recv(100) == b"hello" else "wrong")
"""


@real
def test_real_link_is_removed_when_a_step_fails() -> None:
    """On a kernel without netem the netem step fails; what was created is still removed."""
    if kernel_probe.netem_kernel_config() != "n":
        pytest.skip("this kernel has netem; the failing step cannot be provoked")
    with pytest.raises(KernelLinkError, match="netem"), KernelLink("wan"):
        pytest.fail("the body must not run")
    assert _ours() == []


@real
def test_real_cleanup_stale_removes_a_crashed_runs_namespace() -> None:
    name = f"{NS_PREFIX}999999999-{os.urandom(3).hex()}-c"
    assert run_command(["ip", "netns", "add", name]).returncode == 0
    try:
        assert name in cleanup_stale()
        assert name not in list_namespaces()
    finally:
        run_command(["ip", "netns", "del", name])
