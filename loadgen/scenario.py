"""Scenario files: what to compare, under which load, for how long.

::

    scenario = load_scenario(Path("scenarios/quick.toml"))   # raises ScenarioError
    for cell in scenario.cells: ...

A scenario file is TOML::

    [scenario]
    name = "quick"
    repeats = 3          # cells run interleaved: A B C A B C ...
    duration_s = 4       # measured time per cell and repeat
    warmup_s = 1         # excluded from statistics, kept flagged in the raw data
    payload_bytes = 64
    placement = "split"  # split: server and load generator on different CPUs

    [load]
    model = "closed"     # or "open" with rate = total requests/s
    connections = 4

    [[cells]]
    transport = "http"   # http | ws-aiohttp | ws-websockets
    client = "lean"      # lean | httpx | aiohttp | websockets
    conn_mode = "keep-alive"

    [slo]                # optional absolute limits, checked by ``rtbench run`` (reports.gate.slo)
    p99_ms = 50
    errors = 0

One run can hold several workloads: instead of ``[[cells]]`` give ``[[parts]]``,
each with its own ``name``, ``workload``, ``[parts.load]``, ``[parts.realtime]``
and ``[[parts.cells]]``; ``[scenario]``, ``[server]``, ``[network]`` and ``[slo]``
apply to every part (a part's own ``[parts.network]`` replaces ``[network]`` for its
cells, e.g. a part on loopback and wan beside a part on loopback only). Cells of a
part are named ``PART:CELL`` and run interleaved with every other part's::

    [[parts]]
    name = "messaging"
    workload = "messaging"
    [parts.realtime]
    users = 24
    message_rate = 1.0
    [[parts.cells]]
    transport = "ws-aiohttp"
    client = "aiohttp"

Everything is checked before anything runs: an unknown key, a wrong type or
an impossible value raises :class:`ScenarioError` naming the file, the key
and the problem. The tables themselves are :mod:`loadgen.scenario_tables`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from loadgen.realtime.params import RealtimeParams
from loadgen.scenario_tables import (
    REALTIME_SLO_KEYS,
    Cell,
    LoadSettings,
    NetworkSettings,
    Part,
    RunSettings,
    ServerSettings,
    SloSettings,
    Strict,
)
from loadgen.schema import WS_TRANSPORTS
from loadgen.users_sweep import check_users, split_users, users_id
from servers import protocol

#: The [realtime] setting that makes each real-time workload do something.
WORKLOAD_KEYS: dict[str, tuple[str, ...]] = {
    "messaging": ("message_rate",),
    "presence": ("churn_fraction",),
    "notifications": ("notification_rate",),
    "activity": ("activity_rate",),
}
#: A mix needs any of them.
MIX_KEYS = ("message_rate", "churn_fraction", "notification_rate", "activity_rate")
#: ``[server]`` settings that change results, by the server option that sets them: refused
#: for a server rtbench did not start (a cell's server_url), which cannot be given them.
RUNNING_SERVER_OPTIONS = {
    "delay_ms": "--delay-ms",
    "max_users": "--max-users",
    "keepalive_timeout_s": "--keepalive-timeout",
    "ws_ping_interval_s": "--ws-ping-interval",
}


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message says where and why."""


@dataclass(frozen=True, slots=True)
class RunCell:
    """One cell as run: the declared cell, its rate, its link profile, its id, its sweep group.

    ``settings`` is the single-workload scenario the cell runs under: the scenario
    itself, or for a ``[[parts]]`` scenario the part merged with the shared tables.
    """

    cell: Cell
    rate: float | None
    id: str
    sweep_group: str | None
    profile: Any = None
    settings: Any = None
    part: str | None = None


class Scenario(Strict):
    """A whole scenario file."""

    scenario: RunSettings
    load: LoadSettings = LoadSettings()
    server: ServerSettings = ServerSettings()
    realtime: RealtimeParams | None = None
    network: NetworkSettings | None = None
    cells: list[Cell] = Field(default_factory=list)
    parts: list[Part] | None = Field(default=None, min_length=1, max_length=20)
    slo: SloSettings | None = None
    #: A users sweep's counts, from a ``[realtime] users`` list (:mod:`loadgen.users_sweep`).
    users_sweep: list[int] | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _users_list(cls, data: Any) -> Any:
        return split_users(data)

    @model_validator(mode="after")
    def _unique_cells(self) -> Scenario:
        if self.parts is not None:
            return self._check_parts()
        if not self.cells:
            raise ValueError("give at least one [[cells]] entry (or [[parts]] with cells)")
        if self.scenario.workload == "echo":
            if self.realtime is not None:
                raise ValueError('a [realtime] table needs workload other than "echo"')
            if any(c.delivery is not None for c in self.cells):
                raise ValueError("'delivery' applies to real-time workloads only")
            if self.slo is not None and (keys := set(self.slo.limits()) & set(REALTIME_SLO_KEYS)):
                raise ValueError(
                    f"[slo] {', '.join(sorted(keys))}: only real-time workloads deliver"
                )
        else:
            if self.realtime is None:
                raise ValueError(f"workload {self.scenario.workload!r} needs a [realtime] table")
            if self.load.rates:
                raise ValueError("rate sweeps apply to the echo workload only")
            for cell in self.cells:
                if cell.transport in WS_TRANSPORTS and cell.http_version != "1.1":
                    raise ValueError(
                        f"cell {cell.id!r}: http_version = {cell.http_version!r} with workload "
                        f"{self.scenario.workload!r}: real-time WebSocket users open their "
                        "WebSockets over HTTP/1.1; WebSocket over HTTP/2 is offered to echo "
                        "cells only; remove http_version"
                    )
                if cell.delivery is None:
                    default = "push" if cell.transport in WS_TRANSPORTS else None
                    if default is None:
                        raise ValueError(
                            f"cell {cell.id!r}: HTTP cells of a real-time workload need "
                            'delivery = "short-poll", "long-poll" or "sse"'
                        )
                    object.__setattr__(cell, "delivery", default)
        if self.users_sweep is not None:
            assert self.realtime is not None
            check_users(self.users_sweep, self.realtime, self.scenario.client_processes)
        self._check_client_processes()
        self._check_activity()
        sweeps = self.load.rates or self.users_sweep
        if self.load.sweep_slo_p99_ms is not None and not sweeps:
            raise ValueError(
                "'sweep_slo_p99_ms' applies to a sweep only "
                "([load] rates or [realtime] users = [...])"
            )
        seen: set[str] = set()
        for cell in self.cells:
            if cell.id in seen:
                raise ValueError(f"two cells are both named {cell.id!r}; give one a 'name'")
            seen.add(cell.id)
        self._check_rates()
        self._check_payload()
        self._check_server_urls()
        self._check_quic()
        self._check_granian()
        return self

    def _check_granian(self) -> None:
        """Refuse what granian (``http-granian``, ``ws-granian``) cannot serve: it sends
        no WebSocket pings, and over TLS it offers up to TLS 1.3 whatever the cap."""
        cells = [c for c in self.cells if c.server == "granian" and c.server_command is None]
        ws = [c for c in cells if c.transport in WS_TRANSPORTS]
        if ws and self.server.ws_ping_interval_s:
            raise ValueError(
                f"cell {ws[0].id!r}: granian sends no WebSocket pings, so [server] "
                f"ws_ping_interval_s = {self.server.ws_ping_interval_s:g} cannot hold on it; "
                "set ws_ping_interval_s = 0 (for every cell) or run it in a scenario of its own"
            )
        tls = [c for c in cells if c.tls]
        if tls and self.scenario.tls_version != "1.3":
            raise ValueError(
                f"cell {tls[0].id!r}: granian cannot cap TLS below 1.3; [scenario] "
                f'tls_version = "{self.scenario.tls_version}" would not hold on it; remove '
                "tls_version or run those cells in a scenario of their own"
            )

    def _check_quic(self) -> None:
        """QUIC is TLS 1.3 only: HTTP/3 cells cannot run under ``tls_version = "1.2"``."""
        quic = [c for c in self.cells if c.http_version == "3"]
        if quic and self.scenario.tls_version != "1.3":
            raise ValueError(
                f"cell {quic[0].id!r}: http_version = '3' runs over QUIC, which is TLS 1.3 "
                f'only; [scenario] tls_version = "{self.scenario.tls_version}" would refuse '
                "it; remove tls_version or run those cells in a scenario of their own"
            )

    def _check_rates(self) -> None:
        """Refuse an open-loop rate that sends nothing in the measured window: its
        schedule (1 / rate seconds apart) would overflow the pacer's nanosecond clock."""
        duration = self.scenario.duration_s
        for key, rates in (("rate", [self.load.rate]), ("rates", self.load.rates or [])):
            for rate in rates:
                if rate is not None and rate * duration < 1:
                    raise ValueError(
                        f"[load] {key}: {rate:g} req/s sends no request in duration_s = "
                        f"{duration:g} s; give at least {1 / duration:.3g} req/s"
                    )

    def _check_payload(self) -> None:
        """Refuse an echo payload whose request the server would refuse (HTTP 413)."""
        if self.scenario.workload != "echo":
            return
        size = echo_request_bytes(self.scenario.payload_bytes)
        limit = self.server.max_message_bytes
        if size > limit:
            raise ValueError(
                f"payload_bytes = {self.scenario.payload_bytes} makes {size}-byte echo "
                f"requests, above [server] max_message_bytes = {limit}: the server would "
                "refuse every request (413); lower payload_bytes or raise max_message_bytes"
            )

    def _check_server_urls(self) -> None:
        """Refuse what cannot reach a server rtbench did not start (a cell's server_url):
        ``[server]`` options that change results, and the kernel link, whose server runs
        inside a network namespace rtbench makes."""
        running = [c for c in self.cells if c.server_url is not None]
        if not running:
            return
        defaults = ServerSettings()
        for key, option in RUNNING_SERVER_OPTIONS.items():
            value = getattr(self.server, key)
            if value != getattr(defaults, key):
                raise ValueError(
                    f"[server] {key} = {value} cannot be passed to a server rtbench did not "
                    f"start (cell {running[0].id!r} has a server_url): start that server with "
                    f"{option} {value} and remove {key}, or run those cells in a scenario of "
                    "their own"
                )
        network = self.network
        emulated = network is not None and any(not p.is_zero for p in network.resolved())
        if network is not None and emulated and network.link != "userspace":
            raise ValueError(
                f"[network] link = {network.link!r}: cells with a server_url (such as "
                f"{running[0].id!r}) run over the userspace relay only, as rtbench cannot "
                'move a running server into its network namespace; set link = "userspace"'
            )

    def _check_activity(self) -> None:
        """Refuse a real-time workload whose [realtime] settings make nothing happen."""
        if self.scenario.workload == "echo" or self.realtime is None:
            return
        workload = self.scenario.workload
        needs = WORKLOAD_KEYS.get(workload, MIX_KEYS)
        if not any(getattr(self.realtime, key) for key in needs):
            keys = " or ".join(f"[realtime] {key}" for key in needs)
            raise ValueError(f"workload {workload!r} does nothing without {keys} > 0")

    def _check_client_processes(self) -> None:
        """Every process needs a share: a connection (echo) or a whole group (real time)."""
        n = self.scenario.client_processes
        if n == 1:
            return
        if self.scenario.workload == "echo":
            if self.load.connections < n:
                raise ValueError(
                    f"client_processes = {n} needs at least {n} [load] connections "
                    f"(one per process), not {self.load.connections}"
                )
            return
        assert self.realtime is not None
        groups = -(-self.realtime.users // self.realtime.group_size)
        if groups < n:
            raise ValueError(
                f"client_processes = {n} needs at least {n} groups of users (each process "
                f"runs whole groups), but users = {self.realtime.users} in groups of "
                f"{self.realtime.group_size} make {groups}"
            )

    def _check_parts(self) -> Scenario:
        if self.cells:
            raise ValueError("give either [[cells]] or [[parts]], not both")
        if self.realtime is not None:
            raise ValueError("with [[parts]], put [realtime] in each part ([parts.realtime])")
        if "workload" in self.scenario.model_fields_set:
            raise ValueError("with [[parts]], give 'workload' in each part, not in [scenario]")
        names = [p.name for p in self.parts or ()]
        if dup := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"two parts are both named {dup[0]!r}")
        for part in self.parts or ():
            try:
                self._part_scenario(part)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(x) for x in e['loc']) or 'part'}: {e['msg']}"
                    for e in exc.errors()
                )
                raise ValueError(f"part {part.name!r}: {problems}") from None
        self._check_part_networks()
        return self

    def _check_part_networks(self) -> None:
        """One link emulator for the whole run, and one meaning per profile name."""
        nets = [(p.name, p.network) for p in self.parts or () if p.network is not None]
        if not nets:
            return
        if self.network is not None:
            nets.insert(0, ("[network]", self.network))
        links = {net.link for _, net in nets}
        if len(links) > 1:
            raise ValueError(
                "parts' [parts.network] tables give different 'link' values "
                f"({', '.join(sorted(links))}): one run uses one link emulator, so give the "
                "same 'link' in each (or only in [network])"
            )
        seen: dict[str, tuple[str, Any]] = {}
        for owner, net in nets:
            for profile in net.resolved():
                first = seen.setdefault(profile.name, (owner, profile))
                if first[1] != profile:
                    raise ValueError(
                        f"link profile {profile.name!r} means one link in {first[0]} and "
                        f"another in part {owner!r}: give the second a name of its own"
                    )

    def _part_scenario(self, part: Part) -> Scenario:
        """The part as a single-workload scenario (shared tables plus the part's own)."""
        settings = self.scenario.model_dump()
        settings["workload"] = part.workload
        if part.payload_bytes is not None:
            settings["payload_bytes"] = part.payload_bytes
        if part.description:
            settings["description"] = part.description
        return Scenario.model_validate(
            {
                "scenario": settings,
                "load": (part.load or self.load).model_dump(),
                "server": self.server.model_dump(),
                "realtime": part.realtime.model_dump() if part.realtime else None,
                "network": net.model_dump() if (net := part.network or self.network) else None,
                "cells": [c.model_dump(exclude_none=True) for c in part.cells],
                "slo": self.slo.model_dump(exclude_none=True) if self.slo else None,
            },
            strict=False,
        )

    def part_scenarios(self) -> dict[str, Scenario]:
        """Each part's single-workload scenario by part name; ``{}`` without ``[[parts]]``."""
        return {p.name: self._part_scenario(p) for p in self.parts or ()}

    def run_network(self) -> NetworkSettings | None:
        """The links the whole run needs: ``[network]``, or for a ``[[parts]]`` scenario
        every profile of any part's links in order of first use (None: loopback only)."""
        if self.parts is None:
            return self.network
        nets = [sub.network for sub in self.part_scenarios().values()]
        used = [n for n in nets if n is not None]
        if not used:
            return None
        by_name: dict[str, Any] = {}
        for net in used:
            for spec, profile in zip(net.profiles, net.resolved(), strict=True):
                by_name.setdefault(profile.name, spec)
        return NetworkSettings(profiles=list(by_name.values()), link=used[0].link)

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def workloads(self) -> list[str]:
        """The workloads this scenario runs, in order of first appearance."""
        if self.parts is None:
            return [self.scenario.workload]
        return list(dict.fromkeys(p.workload for p in self.parts))

    def run_cells(self) -> list[RunCell]:
        """What actually runs: each cell, at each rate or user count of a sweep (ascending),
        over each link profile of ``[network]``; ids get ``@RATErps`` or ``@USERSu`` and
        ``~PROFILE`` suffixes, and cells of a ``[[parts]]`` scenario a ``PART:`` prefix.
        Parts interleave by profile. A users sweep's cells run under the scenario with
        ``[realtime] users`` set to their count."""
        if self.parts is not None:
            subs = self.part_scenarios()
            by_part = {
                name: [
                    RunCell(
                        rc.cell,
                        rc.rate,
                        f"{name}:{rc.id}",
                        f"{name}:{rc.sweep_group}" if rc.sweep_group else None,
                        rc.profile,
                        sub,
                        name,
                    )
                    for rc in sub.run_cells()
                ]
                for name, sub in subs.items()
            }
            # Profile by profile, so every part's cells on one link run close in time;
            # parts without links (when another part has some) run first, on loopback.
            network = self.run_network()
            profiles: list[str | None] = [p.name for p in network.resolved()] if network else []
            if not network or any(sub.network is None for sub in subs.values()):
                profiles.insert(0, None)
            out: list[RunCell] = []
            for prof in profiles:
                for cells in by_part.values():
                    out.extend(c for c in cells if (c.profile.name if c.profile else None) == prof)
            return out
        rates: list[float | None] = sorted(self.load.rates) if self.load.rates else [self.load.rate]
        users: list[int | None] = list(self.users_sweep or [None])
        profiles = self.network.resolved() if self.network else [None]
        out: list[RunCell] = []
        for profile in profiles:
            for rate in rates:
                for n in users:
                    settings = self if n is None else self.at_users(n)
                    for c in self.cells:
                        cid = c.id
                        if self.load.rates:
                            cid += f"@{rate:g}rps"
                        if n is not None:
                            cid = users_id(cid, n)
                        if profile is not None:
                            cid += f"~{profile.name}"
                        group = c.id if self.load.rates or n is not None else None
                        if group is not None and profile is not None:
                            group += f"~{profile.name}"
                        out.append(RunCell(c, rate, cid, group, profile, settings))
        return out

    def at_users(self, users: int) -> Scenario:
        """This scenario with ``[realtime] users = users`` and no users sweep (one step of it)."""
        assert self.realtime is not None
        realtime = self.realtime.model_copy(update={"users": users})
        return self.model_copy(update={"realtime": realtime, "users_sweep": None})

    def estimated_seconds(self) -> float:
        """Lower bound on the run's wall time (warm-up, measurement and real-time drain)."""
        total = 0.0
        for rc in self.run_cells():
            sub = rc.settings
            drain = sub.realtime.drain_s if sub.realtime is not None else 0.0
            total += sub.scenario.duration_s + sub.scenario.warmup_s + drain
        return total * self.scenario.repeats

    def as_dict(self) -> dict[str, Any]:
        """The scenario as run, for meta.json; a users sweep keeps its list of counts."""
        out = self.model_dump(mode="json")
        if self.users_sweep is not None:
            out["realtime"]["users"] = list(self.users_sweep)
        return out


def echo_request_bytes(payload_bytes: int) -> int:
    """The size of the largest echo request (highest id and timestamp) with this payload."""
    top = (1 << 63) - 1
    return len(protocol.encode_request(protocol.Request("echo", top, top, "x" * payload_bytes)))


def _format_errors(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: invalid scenario ({exc.error_count()} problem(s)):"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see scenarios/quick.toml for the keys)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"  - {loc}: {msg}")
    return "\n".join(lines)


def parse_scenario(data: dict[str, Any], path: Path | str = "<scenario>") -> Scenario:
    """Validate an already-parsed TOML document."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_format_errors(Path(path), exc)) from None


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario TOML file."""
    return parse_scenario(read_scenario_dict(path), path)


def read_scenario_dict(path: Path | str) -> dict[str, Any]:
    """Read a scenario TOML file into a dict, unvalidated; raises ScenarioError."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ScenarioError(f"{path}: scenario file not found") from None
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    return data
