"""The kernel link: two network namespaces joined by a veth pair, shaped by netem and tbf.

::

    ok, reason = kernel_support()          # (False, "tc netem is not available: ...") here
    support = probe_kernel()               # namespaces, netem and tbf (loadgen.link.probe)
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
SIGKILL or a power cut cannot be caught: :func:`~loadgen.link.namespaces.cleanup_stale` deletes
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
CommandResult``, :mod:`loadgen.link.iproute`), so tests can check the set-up
and cleanup without root.
"""

from __future__ import annotations

import atexit
import os
import secrets
import signal
import threading
from typing import Any, Literal

from loadgen.link.iproute import Runner, run_command, short_output
from loadgen.link.namespaces import (
    NS_PREFIX,
    KernelLinkError,
    delete_namespace,
    signals_deferred,
)
from loadgen.link.probe import needs_netem
from loadgen.link.profiles import LinkProfile, resolve_profile

VETH = "rtb0"
CLIENT_ADDR = "10.77.0.1"
SERVER_ADDR = "10.77.0.2"
PREFIX_LEN = 30
#: The veth pair's subnet; servers and load generators accept it only inside these namespaces.
SUBNET = f"10.77.0.0/{PREFIX_LEN}"
#: netem's queue (packets); its default of 1000 would drop at a high bandwidth-delay product.
NETEM_LIMIT = 100_000


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
                    if argv[:3] == ["ip", "netns", "add"] and "File exists" in short_output(result):
                        self.created.remove(argv[3])  # someone else's: never delete it
                    raise KernelLinkError(f"{' '.join(argv)} failed: {short_output(result)}")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> list[str]:
        """Delete every namespace this link created (idempotent); returns the errors."""
        with signals_deferred():
            errors = []
            while self.created:
                name = self.created.pop()
                error = delete_namespace(self.runner, name)
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
