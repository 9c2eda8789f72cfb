"""Column names shared by :mod:`reports.load`, :mod:`reports.stats` and the renderers.

The per-cell DataFrame (``Run.cells``) flattens ``summary.json`` with one rule:

- top-level scalars keep their key: ``cell``, ``transport``, ``count``, ``throughput_rps``...
- ``latency_ms.<pct>`` becomes ``<pct>_ms`` and ``latency_uncorrected_ms.<pct>`` becomes
  ``<pct>_uncorrected_ms``, with ``.`` replaced by ``_``: ``p50_ms``, ``p99_9_ms``,
  ``max_ms``, ``p99_uncorrected_ms``. Use :func:`latency_col` rather than spelling them.
- any other nested dict ``outer: {inner: v}`` becomes ``outer_inner``:
  ``cpu_s_per_request_server``, ``cpu_util_client``, ``rss_mb_server``,
  ``bytes_per_request_sent``...; except ``errors_by_code``, kept as one dict column.
- ``per_repeat`` goes to ``Run.repeats`` (same rules, plus ``repeat``). Keys this module
  does not list (``repeats_ok``, ``hdr_corrected``...) follow the listed columns.

Call ``latency_col("p99.9")`` -> ``"p99_9_ms"``; ``latency_col("p50", corrected=False)``
-> ``"p50_uncorrected_ms"``.
"""

from __future__ import annotations

#: Latency statistics in summary.json, in display order.
LATENCY_LABELS: tuple[str, ...] = ("p50", "p90", "p99", "p99.9", "max")

#: Which cell a row describes.
IDENTITY_COLUMNS: tuple[str, ...] = (
    "run_id",
    "cell",
    "transport",
    "client",
    "conn_mode",
    "family",
    "load_model",
    "connections",
    "target_rate",
    "status",
    "failures",
    "repeats",
)

#: Integer-valued columns (nullable ``Int64`` in the DataFrame).
INT_COLUMNS: tuple[str, ...] = ("connections", "repeats", "repeat", "count", "errors")

#: Volume columns.
VOLUME_COLUMNS: tuple[str, ...] = ("count", "errors", "duration_s", "throughput_rps")

#: Resource columns: ``<outer>_<inner>`` for each nested dict in summary.json.
RESOURCE_COLUMNS: tuple[str, ...] = (
    "cpu_s_per_request_server",
    "cpu_s_per_request_client",
    "cpu_util_server",
    "cpu_util_client",
    "rss_mb_server",
    "rss_mb_client",
    "bytes_per_request_sent",
    "bytes_per_request_received",
)

#: summary.json keys whose value is a dict of latency statistics in milliseconds.
LATENCY_KEYS: dict[str, bool] = {"latency_ms": True, "latency_uncorrected_ms": False}


def latency_col(label: str, *, corrected: bool = True) -> str:
    """Column name for a latency statistic: ``latency_col("p99.9") == "p99_9_ms"``.

    ``corrected=False`` names the uncorrected (actual send time) latency column.
    """
    stem = label.replace(".", "_")
    return f"{stem}_ms" if corrected else f"{stem}_uncorrected_ms"


def latency_columns(*, corrected: bool = True) -> tuple[str, ...]:
    """All latency columns, in :data:`LATENCY_LABELS` order."""
    return tuple(latency_col(label, corrected=corrected) for label in LATENCY_LABELS)


#: Every column ``Run.cells`` is guaranteed to have, in order (extras follow).
CELL_COLUMNS: tuple[str, ...] = (
    *IDENTITY_COLUMNS,
    *VOLUME_COLUMNS,
    *latency_columns(corrected=True),
    *latency_columns(corrected=False),
    *RESOURCE_COLUMNS,
)

#: Every column ``Run.repeats`` is guaranteed to have, in order (extras follow).
REPEAT_COLUMNS: tuple[str, ...] = (
    "run_id",
    "cell",
    "transport",
    "client",
    "conn_mode",
    "family",
    "repeat",
    *VOLUME_COLUMNS,
    *latency_columns(corrected=True),
    *latency_columns(corrected=False),
    *RESOURCE_COLUMNS,
)
