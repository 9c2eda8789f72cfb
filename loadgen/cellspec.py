"""What one repeat of one cell needs to run: the spec the orchestrator hands a load generator.

::

    spec = CellRun(cell="http/lean/keep-alive", transport="http", client="lean",
                   conn_mode="keep-alive", base_url="http://127.0.0.1:8080")
    CellRun.from_dict(spec.to_dict()) == spec      # JSON round trip (SPEC.json)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class CellRun:
    """Everything one repeat of one cell needs; JSON-serialisable via :meth:`to_dict`."""

    cell: str
    transport: str
    client: str
    conn_mode: str
    base_url: str
    repeat: int = 0
    model: str = "closed"
    connections: int = 1
    rate: float | None = None
    think_time_s: float = 0.0
    duration_s: float = 5.0
    warmup_s: float = 1.0
    payload_bytes: int = 64
    max_requests: int = 1_000_000
    timeout_s: float = 5.0
    op: str = "echo"
    workload: str = "echo"
    delivery: str = "request"
    realtime: dict[str, object] | None = None
    #: TLS version ("1.2"/"1.3") when the target is https/wss, and the CA to trust.
    tls: str | None = None
    ca_file: str | None = None
    #: "1.1", "2" (h2c prior knowledge, or ALPN h2 over TLS) for HTTP cells.
    http_version: str = "1.1"
    #: This process's share of the cell when it runs over several processes (loadgen.shares).
    processes: int = 1
    process_index: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> CellRun:
        return cls(**data)  # type: ignore[arg-type]
