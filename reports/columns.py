"""Column names shared by :mod:`reports.load`, :mod:`reports.stats` and the renderers.

The per-cell DataFrame (``Run.cells``) flattens ``summary.json`` with one rule:

- top-level scalars keep their key: ``cell``, ``transport``, ``count``, ``throughput_rps``...
- ``part`` names the ``[[parts]]`` entry of a multi-part scenario the cell belongs to
  (its ``cell`` id then starts with ``PART:``); it is ``None`` in every other run,
  including results folders written before parts existed.
- ``latency_ms.<pct>`` becomes ``<pct>_ms`` and ``latency_uncorrected_ms.<pct>`` becomes
  ``<pct>_uncorrected_ms``, with ``.`` replaced by ``_``: ``p50_ms``, ``p99_9_ms``,
  ``max_ms``, ``p99_uncorrected_ms``. Use :func:`latency_col` rather than spelling them.
- any other nested dict ``outer: {inner: v}`` becomes ``outer_inner``:
  ``cpu_s_per_request_server``, ``cpu_util_client``, ``rss_mb_server``,
  ``bytes_per_request_sent``...; except ``errors_by_code``, kept as one dict column.
- real-time cells (schema 2): ``delivery_latency_ms.<pct>`` becomes ``delivery_<pct>_ms``
  (:func:`delivery_col`: ``delivery_p50_ms``, ``delivery_p99_9_ms``, ``delivery_max_ms``);
  ``delivery_latency_by_type_ms.<type>.<pct>`` becomes ``<type>_<pct>_ms`` with ``-``
  replaced by ``_`` (:func:`delivery_type_col`: ``message_p50_ms``,
  ``presence_online_p99_ms``); ``per_useful_message.<x>`` becomes ``<x>_per_useful_message``
  with CPU split as ``cpu_s_per_useful_message_server``/``_client``; ``deliveries.<count>``,
  ``activity.<x>``, ``per_1000_users.<x>`` and ``stalls.<x>`` follow the general rule
  (``deliveries_lost``, ``activity_mean_abs_diff_ms``, ``per_1000_users_server_rss_mb``,
  ``stalls_server_longest_gc_ms``); so does ``http2_headers.<x>`` of real-time HTTP/2
  cells (:data:`HTTP2_HEADER_COLUMNS`: ``http2_headers_bytes_sent_per_request``), missing
  for every other cell. Echo cells have these columns as missing values, and
  ``delivery`` ``"request"``.
- ``per_repeat`` goes to ``Run.repeats`` (same rules, plus ``repeat``). Keys this module
  does not list (``repeats_ok``, ``hdr_corrected``...) follow the listed columns.

Call ``latency_col("p99.9")`` -> ``"p99_9_ms"``; ``latency_col("p50", corrected=False)``
-> ``"p50_uncorrected_ms"``.
"""

from __future__ import annotations

from loadgen.schema import DELIVERY_COUNTS, REFUSAL_COUNTERS

#: Latency statistics in summary.json, in display order.
LATENCY_LABELS: tuple[str, ...] = ("p50", "p90", "p99", "p99.9", "max")

#: A cell's name and what it runs, as cell and repeat rows give them.
CELL_NAME_COLUMNS: tuple[str, ...] = (
    "run_id",
    "cell",
    "part",
    "transport",
    "client",
    "conn_mode",
    "family",
    "delivery",
    "workload",
)

#: Which cell a row describes.
IDENTITY_COLUMNS: tuple[str, ...] = (
    *CELL_NAME_COLUMNS,
    "load_model",
    "connections",
    "target_rate",
    "status",
    "failures",
    "repeats",
)

#: The ``delivery`` of echo cells; real-time cells have one of ``DELIVERY_MODES``.
REQUEST_DELIVERY = "request"

#: How real-time items reach users (``loadgen.schema.DELIVERY_MODES``): HTTP polls or
#: streams Server-Sent Events, WebSocket pushes.
DELIVERY_MODES: tuple[str, ...] = ("short-poll", "long-poll", "push", "sse")
POLL_MODES: tuple[str, ...] = ("short-poll", "long-poll")

#: The delivery modes of HTTP cells, compared against WebSocket push.
HTTP_DELIVERY_MODES: tuple[str, ...] = (*POLL_MODES, "sse")

#: Delivery counters: ``deliveries_<name>``.
DELIVERY_COUNT_COLUMNS: tuple[str, ...] = tuple(f"deliveries_{name}" for name in DELIVERY_COUNTS)

#: Costs per useful message (a delivery, or an accepted activity event).
PER_USEFUL_COLUMNS: tuple[str, ...] = (
    "bytes_per_useful_message",
    "requests_per_useful_message",
    "cpu_s_per_useful_message_server",
    "cpu_s_per_useful_message_client",
)

#: What each connected user costs (``per_1000_users``): server memory above its
#: before-users baseline, server CPU ms per second and wire KB per minute per 1,000 users,
#: the users, and the two RSS readings behind the memory figure.
PER_1000_USERS_COLUMNS: tuple[str, ...] = (
    "per_1000_users_users",
    "per_1000_users_server_rss_mb",
    "per_1000_users_server_cpu_ms_per_s",
    "per_1000_users_wire_kb_per_min",
    "per_1000_users_server_rss_before_users_mb",
    "per_1000_users_server_rss_with_users_mb",
)

#: Time-on-site check of the activity workload (missing for other workloads).
ACTIVITY_COLUMNS: tuple[str, ...] = (
    "activity_users",
    "activity_server_ms",
    "activity_client_ms",
    "activity_mean_abs_diff_ms",
    "activity_max_abs_diff_ms",
)

#: Stalls inside the window (``stalls``): per process, the longest collection and loop
#: stall in ms, how many loop stalls lasted 50 ms or more and their total ms.
STALL_CELL_COLUMNS: tuple[str, ...] = tuple(
    f"stalls_{process}_{figure}"
    for process in ("server", "load_generator")
    for figure in ("longest_gc_ms", "longest_loop_ms", "long_loop_stalls", "long_loop_stalled_ms")
)

#: Real-time HTTP/2 cells' HEADERS (+CONTINUATION) frame bytes over whole repeats
#: (``http2_headers``): requests and responses, bytes each way, and per request/response.
HTTP2_HEADER_COLUMNS: tuple[str, ...] = (
    "http2_headers_requests",
    "http2_headers_responses",
    "http2_headers_bytes_sent",
    "http2_headers_bytes_received",
    "http2_headers_bytes_sent_per_request",
    "http2_headers_bytes_received_per_response",
)

#: Other real-time counters.
REALTIME_COUNT_COLUMNS: tuple[str, ...] = (
    "useful_messages",
    "polls",
    "empty_polls",
    "reconnects",
    "auth_closes",
    "slow_consumer_closes",
    "late_steps",
)

#: Integer-valued columns (nullable ``Int64`` in the DataFrame).
INT_COLUMNS: tuple[str, ...] = (
    "connections",
    "repeats",
    "repeat",
    "count",
    "errors",
    *DELIVERY_COUNT_COLUMNS,
    *REALTIME_COUNT_COLUMNS,
    "activity_users",
    "per_1000_users_users",
    *HTTP2_HEADER_COLUMNS[:4],
    "stalls_server_long_loop_stalls",
    "stalls_load_generator_long_loop_stalls",
    *REFUSAL_COUNTERS,
)

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


def delivery_col(label: str) -> str:
    """Column of a delivery latency statistic: ``delivery_col("p99.9") == "delivery_p99_9_ms"``."""
    return f"delivery_{label.replace('.', '_')}_ms"


def delivery_type_col(item_type: str, label: str) -> str:
    """Delivery latency of one item type: ``delivery_type_col("presence-online", "p50")`` ->
    ``"presence_online_p50_ms"``."""
    return f"{item_type.replace('-', '_').replace('.', '_')}_{label.replace('.', '_')}_ms"


#: Delivery latency columns, in :data:`LATENCY_LABELS` order.
DELIVERY_LATENCY_COLUMNS: tuple[str, ...] = tuple(delivery_col(lb) for lb in LATENCY_LABELS)

#: Every real-time column ``Run.cells`` is guaranteed to have (missing for echo cells).
REALTIME_COLUMNS: tuple[str, ...] = (
    *DELIVERY_COUNT_COLUMNS,
    *DELIVERY_LATENCY_COLUMNS,
    *PER_USEFUL_COLUMNS,
    *PER_1000_USERS_COLUMNS,
    *REALTIME_COUNT_COLUMNS,
    "empty_poll_ratio",
    "max_late_ms",
    *ACTIVITY_COLUMNS,
    *STALL_CELL_COLUMNS,
    *HTTP2_HEADER_COLUMNS,
)

#: Real-time columns also given per repeat.
REPEAT_REALTIME_COLUMNS: tuple[str, ...] = (
    *DELIVERY_COUNT_COLUMNS,
    *DELIVERY_LATENCY_COLUMNS,
    "useful_messages",
    *PER_USEFUL_COLUMNS,
    *PER_1000_USERS_COLUMNS,
)


#: Every column ``Run.cells`` is guaranteed to have, in order (extras follow).
CELL_COLUMNS: tuple[str, ...] = (
    *IDENTITY_COLUMNS,
    *VOLUME_COLUMNS,
    *latency_columns(corrected=True),
    *latency_columns(corrected=False),
    *RESOURCE_COLUMNS,
    # What the server refused (its own counters; missing where it did not report them).
    *REFUSAL_COUNTERS,
    *REALTIME_COLUMNS,
)

#: Every column ``Run.repeats`` is guaranteed to have, in order (extras follow).
REPEAT_COLUMNS: tuple[str, ...] = (
    *CELL_NAME_COLUMNS,
    "repeat",
    *VOLUME_COLUMNS,
    *latency_columns(corrected=True),
    *latency_columns(corrected=False),
    *RESOURCE_COLUMNS,
    *REFUSAL_COUNTERS,
    *REPEAT_REALTIME_COLUMNS,
)
