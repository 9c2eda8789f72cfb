"""The kernel link: two network namespaces joined by a veth pair, shaped by netem and tbf.

::

    ok, reason = kernel_support()          # (False, "tc netem is not available: ...") here
    support = probe_kernel()               # namespaces, netem and tbf, each with its reason
    support.for_profile({"rate_mbit": 8})  # (True, ...): a rate-only profile needs no netem
    plan.choose_link("auto", profile, support=support)  # kernel or userspace, per profile
    with KernelLink(profile) as link:      # namespaces, veth, qdiscs; always removed
        server = ["ip", "netns", "exec", link.server_ns, ...]   # link.exec_prefix("server")
        ...                                # the client dials link.server_addr

:class:`KernelLink` creates ``rtbench-<pid>-<hex>-c`` (client side) and
``rtbench-<pid>-<hex>-s`` (server side), a veth pair ``rtb0`` with one end in
each (10.77.0.1/30 and 10.77.0.2/30), and on each end ``netem delay D J loss L``
(when the profile has delay, jitter or loss) with ``tbf`` as its child (when it
has a rate), or ``tbf`` alone. It never touches the host's own interfaces: the
veth pair is created inside the client namespace with its peer moved straight
into the server namespace, and deleting a namespace deletes its end.

Removal is guaranteed as far as a process can guarantee it: every namespace
name is recorded *before* the command that creates it runs, ``close()`` runs on
leaving the ``with`` block (exception or not), on a failure half-way through
set-up, at interpreter exit (``atexit``) and on SIGTERM (turned into
``SystemExit`` while a link is open, when the process had no handler of its
own); SIGINT/SIGTERM/SIGHUP are blocked while the namespaces are deleted, so a
second Ctrl-C cannot interrupt the cleanup (it is delivered afterwards). A
SIGKILL or a power cut cannot be caught: :func:`cleanup_stale` deletes
``rtbench-`` namespaces whose owning process (the pid in the name) is gone.

Differences from the userspace relay: the handshake is the real TCP one (one
RTT; ``handshake_rtts`` is ignored and noted), loss is real packet loss, slow
start and MTU effects are real, and netem's jitter can reorder packets (TCP puts
them back in order, at a cost the relay does not model).

Runs use the kernel link per profile: ``auto`` picks it for every profile it
can emulate here (a rate-only profile needs tbf, not netem) and the userspace
relay for the others. The server runs in the server namespace bound to
:data:`SERVER_ADDR` and the load generator in the client namespace; both accept
that address only there (:func:`servers.common.host_allowed`).

Every command goes through an injectable runner (``runner(argv) ->
CommandResult``), so tests can check the set-up and cleanup without root.
"""

from __future__ import annotations

import atexit
import contextlib
import gzip
import os
import secrets
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from loadgen.link.profiles import LinkProfile, resolve_profile

#: Every namespace rtbench creates starts with this; :func:`cleanup_stale` only deletes these.
NS_PREFIX = "rtbench-"
VETH = "rtb0"
CLIENT_ADDR = "10.77.0.1"
SERVER_ADDR = "10.77.0.2"
PREFIX_LEN = 30
#: The veth pair's subnet; servers and load generators accept it only inside these namespaces.
SUBNET = f"10.77.0.0/{PREFIX_LEN}"
#: netem's queue (packets); its default of 1000 would drop at a high bandwidth-delay product.
NETEM_LIMIT = 100_000
COMMAND_TIMEOUT_S = 15.0
KERNEL_CONFIG = "/proc/config.gz"


class KernelLinkError(RuntimeError):
    """A step of setting up the kernel link failed; the message names the command."""


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str = ""
    stderr: str = ""


Runner = Callable[[Sequence[str]], CommandResult]


def run_command(argv: Sequence[str]) -> CommandResult:
    """Run ``argv`` (no shell), capture its output; a missing program is returncode 127."""
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        return CommandResult(127, "", str(exc))
    except subprocess.TimeoutExpired:
        return CommandResult(124, "", f"timed out after {COMMAND_TIMEOUT_S:g} s")
    return CommandResult(done.returncode, done.stdout, done.stderr)


# -- detection ------------------------------------------------------------------------


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


def _owned_name(prefix: str, role: str) -> str:
    return f"{prefix}{os.getpid()}-{secrets.token_hex(3)}-{role}"


def _short(result: CommandResult) -> str:
    text = (result.stderr or result.stdout).strip().replace("\n", " ")
    return text[:300] or f"exit status {result.returncode}"


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
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


def _delete_namespace(runner: Runner, name: str) -> str | None:
    """Delete ``name``; None when it is gone (or never existed), else the error."""
    result = runner(["ip", "netns", "del", name])
    if result.returncode == 0:
        return None
    text = _short(result)
    if "No such file" in text or "not found" in text.lower():
        return None
    return f"ip netns del {name}: {text}"


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
    name = _owned_name(NS_PREFIX, "probe")
    try:
        created = runner(["ip", "netns", "add", name])
        if created.returncode != 0:
            return KernelSupport.from_tuple(
                False, f"cannot create a network namespace (ip netns add): {_short(created)}"
            )
        runner(["ip", "-n", name, "link", "set", "lo", "up"])
        tc = ["ip", "netns", "exec", name, "tc", "qdisc"]
        probe = runner([*tc, "add", "dev", "lo", "root", "netem", "delay", "1ms"])
        netem_ok = probe.returncode == 0
        netem_reason = "tc netem is available"
        if not netem_ok:
            netem_reason = f"tc netem is not available: {_short(probe)}"
            if config == "n":
                netem_reason += " (kernel config: CONFIG_NET_SCH_NETEM is not set)"
            elif config == "m":
                netem_reason += " (kernel config: sch_netem is a module that could not be loaded)"
        else:
            runner([*tc, "del", "dev", "lo", "root"])
        shape = ["tbf", "rate", "8mbit", "burst", "16384", "limit", "131072"]
        tbf = runner([*tc, "add", "dev", "lo", "root", *shape])
        tbf_ok = tbf.returncode == 0
        tbf_reason = "tc tbf is available" if tbf_ok else f"tc tbf is not available: {_short(tbf)}"
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
        with _signals_deferred():
            _delete_namespace(runner, name)


def kernel_support(runner: Runner = run_command) -> tuple[bool, str]:
    """``(usable, reason)``: whether the kernel link can emulate every profile here.

    The all-or-nothing view of :func:`probe_kernel` (namespaces, netem and tbf
    all work); use :meth:`KernelSupport.for_profile` for one profile.
    """
    return probe_kernel(runner).as_tuple()


# -- the link -------------------------------------------------------------------------


def _qdisc_commands(ns: str, profile: LinkProfile) -> list[list[str]]:
    tc = ["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", VETH]
    out: list[list[str]] = []
    netem_needed = needs_netem(profile)
    if netem_needed:
        netem = ["root", "handle", "1:", "netem", "limit", str(NETEM_LIMIT)]
        netem += ["delay", f"{round(profile.delay_ms * 1000)}us"]
        if profile.jitter_ms > 0:
            netem.append(f"{round(profile.jitter_ms * 1000)}us")
        if profile.loss_pct > 0:
            netem += ["loss", f"{profile.loss_pct:g}%"]
        out.append(tc + netem)
    rate, rate_mbit = profile.rate_bytes_per_s, profile.rate_mbit
    if rate is not None and rate_mbit is not None:
        burst = max(16 * 1024, int(rate / 250))  # >= one jiffy at HZ=250, >= a GSO segment
        limit = max(128 * 1024, int(rate * 0.5))  # half a second of queue at the rate
        where = ["parent", "1:1", "handle", "10:"] if netem_needed else ["root", "handle", "1:"]
        out.append(
            tc
            + where
            + ["tbf", "rate", f"{round(rate_mbit * 1000)}kbit"]
            + ["burst", str(burst), "limit", str(limit)]
        )
    return out


class KernelLink:
    """Two namespaces joined by a shaped veth pair, always removed (a context manager)."""

    def __init__(
        self,
        profile: LinkProfile | str | dict[str, Any],
        *,
        runner: Runner = run_command,
        prefix: str = NS_PREFIX,
    ) -> None:
        if not prefix.startswith(NS_PREFIX):
            raise ValueError(f"namespace prefix must start with {NS_PREFIX!r}, not {prefix!r}")
        self.profile = resolve_profile(profile)
        self.runner = runner
        token = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.client_ns = f"{prefix}{token}-c"
        self.server_ns = f"{prefix}{token}-s"
        self.client_addr = CLIENT_ADDR
        self.server_addr = SERVER_ADDR
        #: Namespaces that may exist (recorded before the command that creates them).
        self.created: list[str] = []
        self.notes: list[str] = []
        if self.profile.handshake_rtts != 1:
            self.notes.append(
                f"handshake_rtts = {self.profile.handshake_rtts:g} is ignored: the kernel link "
                "charges the real TCP handshake (1 RTT)"
            )
        self.cleanup_errors: list[str] = []
        self._previous_sigterm: Any = None
        self._sigterm_installed = False
        self._atexit_registered = False

    # what runs

    def setup_commands(self) -> list[list[str]]:
        """Every command :meth:`__enter__` runs, in order."""
        c, s = self.client_ns, self.server_ns
        peer = ("peer", "name", VETH, "netns", s)  # created in the server namespace directly
        cmds = [
            ["ip", "netns", "add", c],
            ["ip", "netns", "add", s],
            ["ip", "-n", c, "link", "add", VETH, "type", "veth", *peer],
            ["ip", "-n", c, "addr", "add", f"{CLIENT_ADDR}/{PREFIX_LEN}", "dev", VETH],
            ["ip", "-n", s, "addr", "add", f"{SERVER_ADDR}/{PREFIX_LEN}", "dev", VETH],
        ]
        for ns in (c, s):
            cmds.append(["ip", "-n", ns, "link", "set", "lo", "up"])
            cmds.append(["ip", "-n", ns, "link", "set", VETH, "up"])
        for ns in (c, s):
            cmds.extend(_qdisc_commands(ns, self.profile))
        return cmds

    def exec_prefix(self, side: Literal["client", "server"]) -> list[str]:
        """``["ip", "netns", "exec", NS]``: prepend to a command to run it on that side."""
        return ["ip", "netns", "exec", self.client_ns if side == "client" else self.server_ns]

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "kernel",
            "client_ns": self.client_ns,
            "server_ns": self.server_ns,
            "client_addr": self.client_addr,
            "server_addr": self.server_addr,
            "profile": self.profile.as_dict(),
            "notes": list(self.notes),
        }

    # set-up and removal

    def __enter__(self) -> KernelLink:
        self._register_cleanup()
        try:
            for argv in self.setup_commands():
                if argv[:3] == ["ip", "netns", "add"]:
                    self.created.append(argv[3])  # before it exists: a Ctrl-C cannot leak it
                result = self.runner(argv)
                if result.returncode != 0:
                    if argv[:3] == ["ip", "netns", "add"] and "File exists" in _short(result):
                        self.created.remove(argv[3])  # someone else's: never delete it
                    raise KernelLinkError(f"{' '.join(argv)} failed: {_short(result)}")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> list[str]:
        """Delete every namespace this link created (idempotent); returns the errors."""
        with _signals_deferred():
            errors = []
            while self.created:
                name = self.created.pop()
                error = _delete_namespace(self.runner, name)
                if error:
                    errors.append(error)
            self._unregister_cleanup()
        self.cleanup_errors.extend(errors)
        return errors

    def _register_cleanup(self) -> None:
        if not self._atexit_registered:
            atexit.register(self.close)
            self._atexit_registered = True
        if threading.current_thread() is threading.main_thread():
            current = signal.getsignal(signal.SIGTERM)
            if current in (signal.SIG_DFL, None):
                self._previous_sigterm = current
                signal.signal(signal.SIGTERM, _sigterm_to_exit)
                self._sigterm_installed = True

    def _unregister_cleanup(self) -> None:
        if self._atexit_registered:
            atexit.unregister(self.close)
            self._atexit_registered = False
        if self._sigterm_installed and threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGTERM) is _sigterm_to_exit:
                signal.signal(signal.SIGTERM, self._previous_sigterm or signal.SIG_DFL)
            self._sigterm_installed = False


def _sigterm_to_exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def pid_in_namespace(pid: int, name: str, netns_dir: str = "/run/netns") -> bool | None:
    """Whether process ``pid`` runs in the named network namespace; None when unknown."""
    try:
        theirs = os.stat(f"/proc/{pid}/ns/net")
        named = os.stat(os.path.join(netns_dir, name))
    except OSError:
        return None
    return (theirs.st_dev, theirs.st_ino) == (named.st_dev, named.st_ino)


# -- crashed runs ---------------------------------------------------------------------


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
        with _signals_deferred():
            error = _delete_namespace(runner, name)
        if error:
            errors.append(error)
        else:
            removed.append(name)
    if errors:
        raise KernelLinkError("; ".join(errors) + f" (removed: {', '.join(removed) or 'none'})")
    return removed
