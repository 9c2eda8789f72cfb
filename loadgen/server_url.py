"""A cell's ``server_url``: a server speaking docs/protocol.md that is already running on
loopback, which rtbench measures but does not start, pin or stop.

::

    target = parse_server_url("http://localhost:9000")  # ValueError naming server_url
    target.addresses                 # ("127.0.0.1",) or ("::1", "127.0.0.1")
    address = reach(target)          # "127.0.0.1"; ServerUnreachable when nothing listens
    target.url_at(address)           # "http://127.0.0.1:9000", what load generators are given
    found = listening_process(target)  # ListeningProcess(pid=1234, name="node", ...)
    default_server_name(target)      # "node", or None when no process could be found

Only loopback hosts are accepted (127.0.0.0/8, ::1, and ``localhost`` when every address it
resolves to is loopback), and only ``http``: rtbench trusts the CA of servers it starts with
``tls = true`` alone.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import psutil

#: Seconds a server at a server_url has to accept a TCP connection when it is checked.
CONNECT_TIMEOUT_S = 2.0
#: The name results give such a server when no process could be found listening on its port.
UNKNOWN_SERVER_NAME = "url"
#: What a server name may hold (``Cell.server_name``'s pattern), and its longest length.
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_NAME_MAX = 40
#: Addresses a listening socket accepts every local connection on.
_WILDCARDS = frozenset({"0.0.0.0", "::"})


class ServerUnreachable(RuntimeError):
    """Nothing accepts a connection at a server_url; the message names it and what to fix."""


@dataclass(frozen=True)
class ServerTarget:
    """A checked server_url: ``url`` as given (normalised), its host and port, and the
    loopback addresses the host stands for (itself when it is an address)."""

    url: str
    host: str
    port: int
    addresses: tuple[str, ...]

    @property
    def where(self) -> str:
        """``HOST:PORT`` for messages (``[::1]:9000`` for IPv6)."""
        return f"{_bracketed(self.host)}:{self.port}"

    def url_at(self, address: str) -> str:
        """The base URL on one of its ``addresses``: ``http://[::1]:9000``."""
        return f"http://{_bracketed(address)}:{self.port}"


@dataclass(frozen=True)
class ListeningProcess:
    """The process found listening on a server_url's port: ``pid`` and ``name`` (None with
    ``reason`` when none could be found or read), ``other_pids`` listening on it too (a
    server of several processes; only ``pid`` is measured)."""

    pid: int | None
    name: str | None
    reason: str | None = None
    other_pids: tuple[int, ...] = field(default_factory=tuple)


def parse_server_url(url: object) -> ServerTarget:
    """``url`` checked as a server_url: ``http://HOST:PORT`` on a loopback host, without a
    path; ValueError naming ``server_url`` and what to change otherwise."""
    if not isinstance(url, str):
        raise ValueError(f"server_url must be a string such as http://127.0.0.1:9000, got {url!r}")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme == "https":
        raise ValueError(
            "server_url: https needs the server's CA, which rtbench has only for servers it "
            "starts with tls = true; give the plain http:// URL of a server on loopback"
        )
    if scheme in ("ws", "wss"):
        raise ValueError(
            "server_url is the server's http:// base URL; WebSocket cells derive ws:// from it"
        )
    if scheme != "http" or not parts.netloc:
        raise ValueError(f"server_url must be http://HOST:PORT, got {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("server_url must not hold a user name or password")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            f"server_url is a base URL (http://HOST:PORT) without a path or query, got {url!r}: "
            "rtbench adds /rpc, /inbox, /events and /ws itself"
        )
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"server_url has no valid port: {url!r}") from None
    if port is None or port == 0:
        shown = _bracketed(host or "127.0.0.1")
        raise ValueError(f"server_url needs the port the server listens on (http://{shown}:PORT)")
    addresses = loopback_addresses(host, port)
    return ServerTarget(f"http://{_bracketed(host)}:{port}", host, port, addresses)


def loopback_addresses(host: str, port: int) -> tuple[str, ...]:
    """The addresses ``host`` stands for, every one of them loopback; ValueError naming
    ``server_url`` for any other host (rtbench sends load to this machine only)."""
    refused = (
        f"server_url: {host!r} is not a loopback host; rtbench only sends load to "
        "127.0.0.0/8, ::1 or localhost"
    )
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        if not address.is_loopback:
            raise ValueError(refused)
        return (str(address),)
    if host.lower() != "localhost":
        raise ValueError(refused)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ValueError(f"server_url: cannot resolve {host!r}: {exc}") from None
    found = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not found or any(not ipaddress.ip_address(a.split("%")[0]).is_loopback for a in found):
        raise ValueError(
            f"server_url: {host!r} resolves to {', '.join(found) or 'nothing'} here, not "
            "only to loopback addresses; give 127.0.0.1 or ::1"
        )
    return tuple(found)


def reach(target: ServerTarget, timeout_s: float = CONNECT_TIMEOUT_S) -> str:
    """The first of ``target``'s addresses that accepts a TCP connection (``127.0.0.1``),
    the one load generators are sent to; ServerUnreachable when none does."""
    problems: list[str] = []
    refused = True
    for address in target.addresses:
        try:
            with socket.create_connection((address, target.port), timeout=timeout_s):
                return address
        except ConnectionRefusedError:
            problems.append(address)
        except TimeoutError:
            refused = False
            problems.append(f"{address}: no answer within {timeout_s:g} s")
        except OSError as exc:
            refused = False
            problems.append(f"{address}: {exc.strerror or exc}")
    tried = "" if target.addresses == (target.host,) else f" (tried {', '.join(problems)})"
    if refused:
        raise ServerUnreachable(
            f"nothing listening on {target.where}{tried}: start your server or fix server_url"
        )
    raise ServerUnreachable(
        f"cannot connect to {target.where} ({'; '.join(problems)}): check the server "
        "at server_url is running and accepting connections"
    )


def listening_process(target: ServerTarget) -> ListeningProcess:
    """The process listening on ``target``'s port (on one of its addresses or on every
    address); never raises: when none can be found or read, ``pid`` is None with the
    ``reason``."""
    try:
        sockets: Iterable[Any] = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        # Where listing every socket needs privileges (macOS), ask each process instead.
        sockets = _each_process_sockets()
    listening = [
        s
        for s in sockets
        if s.status == psutil.CONN_LISTEN
        and s.laddr
        and s.laddr.port == target.port
        and _accepts(str(s.laddr.ip), target.addresses)
    ]
    if not listening:
        return ListeningProcess(None, None, f"no process found listening on {target.where}")
    pids = sorted({s.pid for s in listening if s.pid is not None})
    if not pids:
        return ListeningProcess(
            None,
            None,
            f"a socket listens on {target.where} but its process cannot be read here "
            "(run rtbench as the server's user or as root to measure it)",
        )
    pid = _first_ancestor(pids)
    try:
        name = psutil.Process(pid).name()
    except psutil.Error as exc:
        return ListeningProcess(pid, None, f"process {pid} cannot be read: {exc}")
    return ListeningProcess(pid, name, None, tuple(p for p in pids if p != pid))


def default_server_name(target: ServerTarget) -> str | None:
    """How results name the server at ``target`` when the cell gives no server_name: its
    process's name as a server name (``node``), or None when no process could be found."""
    name = listening_process(target).name
    cleaned = _NAME_CHARS.sub("-", name or "").strip("-")[:_NAME_MAX]
    return cleaned or None


def _accepts(ip: str, addresses: tuple[str, ...]) -> bool:
    """Whether a socket listening on ``ip`` takes connections made to ``addresses``."""
    ip = ip.split("%")[0]
    if ip in _WILDCARDS:
        return True
    return any(ip in (a, f"::ffff:{a}") for a in addresses)


def _each_process_sockets() -> list[Any]:
    """Every TCP socket of every process that can be read, as psutil.net_connections gives
    them (with ``pid``)."""
    found: list[Any] = []
    for proc in psutil.process_iter():
        try:
            conns = proc.net_connections(kind="tcp")
        except (psutil.Error, OSError):
            continue
        found.extend(_WithPid(c, proc.pid) for c in conns)
    return found


@dataclass(frozen=True)
class _WithPid:
    """A process's socket (which psutil gives without a pid) with that process's pid."""

    conn: Any
    pid: int

    @property
    def status(self) -> str:
        return str(self.conn.status)

    @property
    def laddr(self) -> Any:
        return self.conn.laddr


def _first_ancestor(pids: list[int]) -> int:
    """Of processes sharing one listening socket (a server's main process and its workers),
    the one the others descend from; else the lowest pid."""
    chosen = set(pids)
    for pid in pids:
        try:
            ancestors = {p.pid for p in psutil.Process(pid).parents()}
        except psutil.Error:
            continue
        if not ancestors & chosen:
            return pid
    return pids[0]


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
