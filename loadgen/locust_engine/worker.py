"""``python -m loadgen.locust_engine.worker``: the locust engine's command (see :mod:`.runner`).

locust is imported first: it applies gevent's monkey patching, which must
happen before anything else opens sockets or starts threads in this process.
"""

from __future__ import annotations

import locust  # noqa: F401  (gevent's monkey patching, first)

from loadgen.locust_engine.runner import main

if __name__ == "__main__":
    raise SystemExit(main())
