"""Child processes that exit when the process that started them dies.

::

    proc = subprocess.Popen(argv, preexec_fn=child_setup(cpus), start_new_session=True)

Children of a run (server, load generator, link relay, locust workers) run in their own
session so that Ctrl-C reaches the orchestrator only; that also means nothing stops them
if the orchestrator is killed with SIGKILL. :func:`child_setup` makes the kernel send the
child SIGKILL when its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``, kept across the
``exec`` of the child's program, ``ip netns exec`` included). The signal follows the
*thread* that started the child, so start children from a thread that lives as long as
they do (the orchestrator's main thread). Elsewhere :func:`child_setup` only pins.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

#: ``prctl`` option: the signal the calling process gets when its parent dies.
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def supported() -> bool:
    """True where children can be tied to their parent (Linux)."""
    return _libc is not None


def die_with_parent(parent_pid: int) -> None:
    """In a child, before it executes its program: be killed when ``parent_pid`` dies.

    If the parent died already (between ``fork`` and this call) the child exits at once.
    """
    if _libc is None:
        return
    if _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        os._exit(127)  # an untied child could outlive the run: better not start it
    if os.getppid() != parent_pid:
        os._exit(1)


def child_setup(cpus: list[int] | None = None) -> Callable[[], None]:
    """A ``preexec_fn`` that ties the child to this process and pins it to ``cpus``."""
    parent = os.getpid()

    def setup() -> None:
        die_with_parent(parent)
        if cpus:
            os.sched_setaffinity(0, cpus)

    return setup
