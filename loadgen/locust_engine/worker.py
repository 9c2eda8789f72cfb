"""``python -m loadgen.locust_engine.worker``: the locust engine's command (see :mod:`.runner`).

locust is imported first: it applies gevent's monkey patching, which must
happen before anything else opens sockets or starts threads in this process.
"""

from __future__ import annotations

import os
import sys

import locust  # noqa: F401  (gevent's monkey patching, first)

from loadgen.locust_engine.runner import main


def exit_now(code: int) -> None:
    """Leave without finalizing the interpreter, once every file is written.

    A greenlet still blocked at the end (a long poll the server holds) can make
    greenlet's teardown abort the process (SIGABRT, "terminate called without an
    active exception") after the results are complete; the orchestrator would
    then count the repeat as failed.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
