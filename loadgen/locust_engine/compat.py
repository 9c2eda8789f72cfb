"""What a locust master and its workers must agree on before a run (no gevent here).

::

    problem = check_compat(master_info(), worker_hello)   # None, or a clear error
"""

from __future__ import annotations

import os
import platform
import socket
from importlib import metadata
from typing import Any

#: Bumped when the messages between an rtbench master and its workers change.
PROTOCOL_VERSION = 1


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def node_info(locust_version: str | None = None) -> dict[str, Any]:
    """What this process tells the other side: versions, host and pid."""
    return {
        "locust": locust_version or _version("locust"),
        "protocol": PROTOCOL_VERSION,
        "rtbench": _version("rtbench"),
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


def check_compat(master: dict[str, Any], worker: dict[str, Any]) -> str | None:
    """None when ``worker`` can run the master's users, else what is wrong and how to fix it."""
    where = f"the worker on {worker.get('host', '?')} (pid {worker.get('pid', '?')})"
    if worker.get("locust") != master.get("locust"):
        return (
            f"locust version mismatch: {where} runs locust {worker.get('locust')}, "
            f"the master runs locust {master.get('locust')}; install the same version on "
            f"every machine (pip install 'locust=={master.get('locust')}')"
        )
    if worker.get("protocol") != master.get("protocol"):
        return (
            f"rtbench version mismatch: {where} speaks worker protocol "
            f"{worker.get('protocol')} (rtbench {worker.get('rtbench')}), the master "
            f"{master.get('protocol')} (rtbench {master.get('rtbench')}); run the same rtbench "
            "on every machine"
        )
    return None
