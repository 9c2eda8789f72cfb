"""Where a load generator may send traffic: loopback, or the kernel link's server address.

::

    refusal = check_target("http://127.0.0.1:8080")   # None: allowed
    refusal = check_target("http://10.0.0.5:80")      # why not, in words
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from servers.common import host_allowed, host_refusal_note


def check_target(base_url: str, in_link_namespace: Callable[[], bool] | None = None) -> str | None:
    """None when the load generator may dial ``base_url``, else why not.

    Loopback only, or the kernel link's server address when this process runs in
    one of rtbench's network namespaces (:func:`servers.common.host_allowed`).
    """
    try:
        host = urlsplit(base_url).hostname or ""
    except ValueError:
        host = ""
    if host and host_allowed(host, in_link_namespace):
        return None
    return (
        f"refusing non-loopback target {base_url!r}: the load generator only dials "
        "127.0.0.0/8, ::1 or localhost" + host_refusal_note(host)
    )
