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
apply to every part. Cells of a part are named ``PART:CELL`` and run
interleaved with every other part's::

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
and the problem.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from loadgen.clients.kinds import WS_CONN_MODE, check_combination
from loadgen.link.profiles import LinkProfileError, resolve_profile
from loadgen.realtime.params import RealtimeParams
from loadgen.schema import HTTP_TRANSPORTS, WS_TRANSPORTS
from servers import protocol
from servers.common import DEFAULT_WS_PING_INTERVAL_S

Transport = Literal["http", "ws-aiohttp", "ws-websockets"]
ClientName = Literal["httpx", "aiohttp", "websockets", "lean"]
ConnMode = Literal["keep-alive", "new-connection", "persistent"]
Workload = Literal["echo", "messaging", "presence", "notifications", "activity", "mix"]
DeliveryMode = Literal["short-poll", "long-poll", "push", "sse"]


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class RunSettings(_Strict):
    """The ``[scenario]`` table."""

    name: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9._-]+$")
    description: str = ""
    workload: Workload = "echo"
    repeats: int = Field(default=3, ge=1, le=100)
    duration_s: float = Field(default=5.0, gt=0, le=3600)
    warmup_s: float = Field(default=1.0, ge=0, le=600)
    payload_bytes: int = Field(default=64, ge=0, le=16 * 1024 * 1024)
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    max_requests: int = Field(default=2_000_000, ge=1, le=50_000_000)
    placement: Literal["split", "same", "none"] = "split"
    client_loop: Literal["uvloop", "asyncio"] = "uvloop"
    #: Highest TLS version for cells with tls = true.
    tls_version: Literal["1.2", "1.3"] = "1.3"
    #: Load-generator processes per cell, each pinned to its own CPU where there is one;
    #: echo connections and rate, or real-time groups, are shared out between them.
    client_processes: int = Field(default=1, ge=1, le=256)


class LoadSettings(_Strict):
    """The ``[load]`` table."""

    model: Literal["closed", "open"] = "closed"
    connections: int = Field(default=4, ge=1, le=10_000)
    rate: float | None = Field(default=None, gt=0, le=1_000_000)
    #: A rate sweep: every cell runs at each of these open-loop rates (req/s).
    rates: list[float] | None = Field(default=None, min_length=1, max_length=50)
    #: The sweep's latency objective: the report names each transport's highest
    #: rate whose p99 stays under it.
    sweep_slo_p99_ms: float | None = Field(default=None, gt=0, le=60_000)
    think_time_ms: float = Field(default=0.0, ge=0, le=60_000)

    @model_validator(mode="after")
    def _rate_matches_model(self) -> LoadSettings:
        if self.rates is not None:
            if self.model != "open":
                raise ValueError("a rate sweep ('rates') needs model = \"open\"")
            if self.rate is not None:
                raise ValueError("give either 'rate' or 'rates' (a sweep), not both")
            if any(not 0 < r <= 1_000_000 for r in self.rates):
                raise ValueError("every sweep rate must be > 0 and <= 1000000 req/s")
            if len(set(self.rates)) != len(self.rates):
                raise ValueError("sweep rates must be distinct")
            return self
        if self.sweep_slo_p99_ms is not None:
            raise ValueError("'sweep_slo_p99_ms' applies to a rate sweep ('rates') only")
        if self.model == "open" and self.rate is None:
            raise ValueError("an open-loop load needs 'rate' (total requests per second)")
        if self.model == "closed" and self.rate is not None:
            raise ValueError("'rate' only applies to model = \"open\"; remove it or switch model")
        if self.model == "open" and self.think_time_ms:
            raise ValueError("'think_time_ms' only applies to model = \"closed\"")
        return self


class ServerSettings(_Strict):
    """The ``[server]`` table."""

    max_message_bytes: int = Field(default=1 << 20, ge=64, le=64 * 1024 * 1024)
    #: Test-only slowdown: every echo request sleeps this long in the hub (validates a gate).
    delay_ms: float = Field(default=0.0, ge=0, le=10_000)
    #: WebSocket liveness pings (seconds between them; a client that does not answer is
    #: disconnected). 0 turns them off, for cells whose scenario wants no ping frames.
    ws_ping_interval_s: float = Field(default=DEFAULT_WS_PING_INTERVAL_S, ge=0, le=3600)

    @model_validator(mode="after")
    def _check_ping(self) -> ServerSettings:
        if 0 < self.ws_ping_interval_s < 1:
            raise ValueError(
                "'ws_ping_interval_s' must be 0 (no pings) or at least 1 s, "
                f"got {self.ws_ping_interval_s}"
            )
        return self


#: ``[slo]`` keys that only real-time workloads can meet.
REALTIME_SLO_KEYS = ("delivery_p50_ms", "delivery_p99_ms", "lost")


class SloSettings(_Strict):
    """The optional ``[slo]`` table: absolute limits every cell must meet (see reports.gate.slo)."""

    p50_ms: float | None = Field(default=None, gt=0)
    p90_ms: float | None = Field(default=None, gt=0)
    p99_ms: float | None = Field(default=None, gt=0)
    p99_9_ms: float | None = Field(default=None, gt=0)
    max_ms: float | None = Field(default=None, gt=0)
    delivery_p50_ms: float | None = Field(default=None, gt=0)
    delivery_p99_ms: float | None = Field(default=None, gt=0)
    lost: int | None = Field(default=None, ge=0)
    errors: int | None = Field(default=None, ge=0)
    min_throughput_rps: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _not_empty(self) -> SloSettings:
        if not self.limits():
            raise ValueError("an empty [slo] table checks nothing; give a limit or remove it")
        return self

    def limits(self) -> dict[str, float]:
        """The limits that were given, by key."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Cell(_Strict):
    """One ``[[cells]]`` entry: a transport driven by a client in a connection mode."""

    transport: Transport
    client: ClientName
    conn_mode: ConnMode | None = None
    delivery: DeliveryMode | None = None
    #: https/wss with a throwaway CA; the handshake is part of new connections' latency.
    tls: bool = False
    name: str | None = Field(default=None, min_length=1, max_length=80)

    @model_validator(mode="after")
    def _fill_and_check(self) -> Cell:
        ws = self.transport in WS_TRANSPORTS
        if self.conn_mode is None:
            object.__setattr__(self, "conn_mode", WS_CONN_MODE if ws else "keep-alive")
        problem = check_combination(self.transport, self.client, self.conn_mode or "")
        if problem:
            raise ValueError(problem)
        if self.delivery is not None:
            if ws and self.delivery != "push":
                raise ValueError("a WebSocket cell delivers by 'push'")
            if not ws and self.delivery == "push":
                raise ValueError("an HTTP cell delivers by 'short-poll', 'long-poll' or 'sse'")
            if not ws and self.client not in ("aiohttp", "lean"):
                raise ValueError("real-time HTTP users run on the aiohttp or lean client")
        return self

    @property
    def id(self) -> str:
        """The cell's name in results, e.g. ``http/aiohttp/keep-alive[/long-poll]``."""
        base = f"{self.transport}/{self.client}/{self.conn_mode}"
        if self.delivery is not None and self.delivery != "push":
            base += f"/{self.delivery}"
        if self.tls:
            base += "+tls"
        return self.name or base

    @property
    def delivery_mode(self) -> str:
        """``request`` for echo cells, else how items reach users."""
        return self.delivery or "request"

    @property
    def family(self) -> str:
        return "http" if self.transport in HTTP_TRANSPORTS else "ws"


class NetworkSettings(_Strict):
    """The ``[network]`` table: emulated links between client and server.

    Every cell runs over each profile (a preset name, or a table of
    ``delay_ms``/``rtt_ms``, ``jitter_ms``, ``rate_mbit``, ``handshake_rtts``
    with a ``name``). ``link`` picks the emulator: ``auto`` uses the kernel
    link (netns + netem/tbf) for each profile it can emulate here and the
    userspace relay for the others.
    """

    profiles: list[str | dict[str, Any]] = Field(min_length=1, max_length=20)
    link: Literal["auto", "kernel", "userspace"] = "auto"

    @model_validator(mode="after")
    def _profiles_resolve(self) -> NetworkSettings:
        names: set[str] = set()
        for spec in self.profiles:
            try:
                profile = resolve_profile(spec)
            except LinkProfileError as exc:
                raise ValueError(str(exc)) from None
            if profile.name in names:
                raise ValueError(f"two link profiles are both named {profile.name!r}")
            names.add(profile.name)
        return self

    def resolved(self) -> list[Any]:
        """The profiles as :class:`loadgen.link.profiles.LinkProfile` objects."""
        return [resolve_profile(spec) for spec in self.profiles]


class Part(_Strict):
    """One ``[[parts]]`` entry: a workload with its own load, real-time settings and cells."""

    name: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
    description: str = ""
    workload: Workload = "echo"
    payload_bytes: int | None = Field(default=None, ge=0, le=16 * 1024 * 1024)
    load: LoadSettings | None = None
    realtime: RealtimeParams | None = None
    cells: list[Cell] = Field(min_length=1)


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


class Scenario(_Strict):
    """A whole scenario file."""

    scenario: RunSettings
    load: LoadSettings = LoadSettings()
    server: ServerSettings = ServerSettings()
    realtime: RealtimeParams | None = None
    network: NetworkSettings | None = None
    cells: list[Cell] = Field(default_factory=list)
    parts: list[Part] | None = Field(default=None, min_length=1, max_length=20)
    slo: SloSettings | None = None

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
                if cell.delivery is None:
                    default = "push" if cell.transport in WS_TRANSPORTS else None
                    if default is None:
                        raise ValueError(
                            f"cell {cell.id!r}: HTTP cells of a real-time workload need "
                            'delivery = "short-poll", "long-poll" or "sse"'
                        )
                    object.__setattr__(cell, "delivery", default)
        self._check_client_processes()
        seen: set[str] = set()
        for cell in self.cells:
            if cell.id in seen:
                raise ValueError(f"two cells are both named {cell.id!r}; give one a 'name'")
            seen.add(cell.id)
        self._check_rates()
        self._check_payload()
        return self

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
        return self

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
                "network": self.network.model_dump() if self.network else None,
                "cells": [c.model_dump(exclude_none=True) for c in part.cells],
                "slo": self.slo.model_dump(exclude_none=True) if self.slo else None,
            },
            strict=False,
        )

    def part_scenarios(self) -> dict[str, Scenario]:
        """Each part's single-workload scenario by part name; ``{}`` without ``[[parts]]``."""
        return {p.name: self._part_scenario(p) for p in self.parts or ()}

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
        """What actually runs: each cell, at each rate of a sweep (ascending), over each
        link profile of ``[network]``; ids get ``@RATErps`` and ``~PROFILE`` suffixes, and
        cells of a ``[[parts]]`` scenario a ``PART:`` prefix. Parts interleave by profile."""
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
            # Profile by profile, so every part's cells on one link run close in time.
            profiles = [p.name for p in self.network.resolved()] if self.network else [None]
            out: list[RunCell] = []
            for prof in profiles:
                for cells in by_part.values():
                    out.extend(c for c in cells if (c.profile.name if c.profile else None) == prof)
            return out
        rates: list[float | None] = sorted(self.load.rates) if self.load.rates else [self.load.rate]
        profiles = self.network.resolved() if self.network else [None]
        out: list[RunCell] = []
        for profile in profiles:
            for rate in rates:
                for c in self.cells:
                    cid = c.id
                    if self.load.rates:
                        cid += f"@{rate:g}rps"
                    if profile is not None:
                        cid += f"~{profile.name}"
                    group = c.id if self.load.rates else None
                    if group is not None and profile is not None:
                        group += f"~{profile.name}"
                    out.append(RunCell(c, rate, cid, group, profile, self))
        return out

    def estimated_seconds(self) -> float:
        """Lower bound on the run's wall time (warm-up, measurement and real-time drain)."""
        total = 0.0
        for rc in self.run_cells():
            sub = rc.settings
            drain = sub.realtime.drain_s if sub.realtime is not None else 0.0
            total += sub.scenario.duration_s + sub.scenario.warmup_s + drain
        return total * self.scenario.repeats

    def as_dict(self) -> dict[str, Any]:
        """The scenario as run, for meta.json."""
        return self.model_dump(mode="json")


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
