"""What the run needs and runs with: the peers' files, what is missing, and the
versions of the peers and of rtbench's client libraries.

::

    missing = missing_peers()            # [] when wrk, h2load, node and ws are installed
    versions = peer_versions()           # {"wrk": ..., "h2load": ..., "node": ..., "ws": ...}
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from loadgen.clients.base import make_client
from loadgen.clients.kinds import WS_CONN_MODE
from loadgen.environment import package_versions

from .groups import H2LOAD, WRK, Group

PEERS_DIR = Path(__file__).resolve().parent.parent / "peers"
NODE_SCRIPT = PEERS_DIR / "ws_echo.mjs"
WS_PACKAGE = PEERS_DIR / "node_modules" / "ws" / "package.json"


def client_refusal(group: Group, client: str) -> str | None:
    """Why rtbench's make_client refuses ``client`` for ``group``'s server, or None."""
    mode = "keep-alive" if group.http else WS_CONN_MODE
    try:
        make_client(
            group.server, client, mode, "http://127.0.0.1:1", http_version=group.http_version
        )
    except ValueError as exc:
        return f"not measured: {exc}"
    return None


def peer_versions() -> dict[str, str | None]:
    """wrk's and h2load's version lines, node's version and the installed ws version."""

    def first_line(argv: list[str]) -> str | None:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        text = (done.stdout or done.stderr).strip().splitlines()
        return text[0].strip() if text else None

    try:
        ws = json.loads(WS_PACKAGE.read_text())["version"]
    except (OSError, ValueError, KeyError):
        ws = None
    return {
        "wrk": first_line([WRK, "--version"]),
        "h2load": first_line([H2LOAD, "--version"]),
        "node": first_line(["node", "--version"]),
        "ws": ws,
    }


#: The libraries under rtbench's clients and the engine's loop.
CLIENT_PACKAGES = ("aiohttp", "httpx", "websockets", "httptools", "h2", "uvloop", "orjson")


def client_versions() -> dict[str, str | None]:
    """Installed versions of :data:`CLIENT_PACKAGES` (None when absent)."""
    return package_versions(CLIENT_PACKAGES)


def missing_peers() -> list[str]:
    """What is missing to run the peers, each with how to install it."""
    missing = []
    if shutil.which(WRK) is None:
        missing.append("wrk is not installed (Debian: apt-get install wrk)")
    if shutil.which(H2LOAD) is None:
        missing.append("h2load is not installed (Debian: apt-get install nghttp2-client)")
    if shutil.which("node") is None:
        missing.append("node is not installed (Debian: apt-get install nodejs npm)")
    if not WS_PACKAGE.exists():
        missing.append(f"node's ws is not installed (run: cd {PEERS_DIR} && npm ci)")
    return missing
