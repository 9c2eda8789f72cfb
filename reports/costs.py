"""What a useful message costs: wire bytes split by direction, CPU and memory per cell.

::

    from reports.costs import bytes_per_useful_split, cost_table
    bytes_per_useful_split(run.samples, run.deliveries)   # request/reply/push bytes
    cost_table(run.cells, {run.run_id: run.meta})         # bytes, CPU, memory per message
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports.fmt import float_or_nan
from reports.groups import cell_totals
from reports.load import cell_scenario
from reports.stats import CELL_KEYS, realtime_mask

#: ``via`` values of deliveries the server pushed on an open stream (WebSocket, SSE).
PUSH_VIAS: tuple[str, ...] = ("push", "sse")

#: Sample kinds of echo cells (every other kind is a real-time operation).
ECHO_KINDS: tuple[str, ...] = ("request", "connect")

#: Columns of :func:`bytes_per_useful_split` after the cell keys.
BYTES_SPLIT_COLUMNS: tuple[str, ...] = (
    "useful_messages",
    "request_bytes",
    "reply_bytes",
    "push_bytes",
    "total_bytes",
)


def bytes_per_useful_split(samples: pd.DataFrame, deliveries: pd.DataFrame) -> pd.DataFrame:
    """Wire bytes per useful message per real-time cell, split by direction.

    Derived from raw rows the way the load generator totals ``bytes_per_useful_message``:
    over measured (non-warmup) rows, ``request_bytes`` is what the client sent in requests
    (samples ``bytes_sent``: polls, sends...), ``reply_bytes`` what came back in replies
    (``bytes_received``, poll replies included), ``push_bytes`` the WebSocket frames pushed
    to users (deliveries ``bytes`` with ``via`` ``push``, or ``sse`` for Server-Sent Events
    with their chunk framing); each divided by the useful
    messages (non-warmup, non-duplicate deliveries plus accepted activity events).
    ``total_bytes`` is their sum. One row per real-time cell: a cell with deliveries or
    with samples other than echo requests and connects (the activity workload delivers
    nothing; its useful messages are activity events). Columns: ``run_id`` (if present),
    ``cell``, ``transport``, ``client``, ``conn_mode``, ``delivery`` (from the deliveries;
    missing without them), then :data:`BYTES_SPLIT_COLUMNS` (per message, NaN without
    useful ones).
    """
    keys = [k for k in ("run_id", *CELL_KEYS) if k in deliveries.columns and k in samples.columns]
    out_cols = [*keys, "delivery", *BYTES_SPLIT_COLUMNS]
    live_d = ~deliveries["warmup"].eq(True)
    sent = ~samples["warmup"].eq(True)

    def total(frame: pd.DataFrame, rows: pd.Series, column: str | None) -> dict[tuple, float]:
        return cell_totals(frame, keys, rows=rows, column=column)

    modes = {key[:-1]: key[-1] for key in cell_totals(deliveries, [*keys, "delivery"])}
    live_samples = total(samples, ~samples["kind"].isin(ECHO_KINDS), None)
    cells = list(modes) + [k for k in live_samples if k not in modes]
    useful = total(deliveries, live_d & ~deliveries["duplicate"].eq(True), None)
    events = total(samples, sent & samples["kind"].eq("activity") & samples["ok"].eq(True), None)
    request = total(samples, sent, "bytes_sent")
    reply = total(samples, sent, "bytes_received")
    push = total(deliveries, live_d & deliveries["via"].isin(PUSH_VIAS), "bytes")
    rows = []
    for key in cells:
        n = useful.get(key, 0.0) + events.get(key, 0.0)
        parts = {
            "request_bytes": request.get(key, 0.0),
            "reply_bytes": reply.get(key, 0.0),
            "push_bytes": push.get(key, 0.0),
        }
        parts["total_bytes"] = sum(parts.values())
        row = dict(zip(keys, key, strict=True))
        row["delivery"] = modes.get(key)
        row["useful_messages"] = int(n)
        row.update({k: v / n if n > 0 else np.nan for k, v in parts.items()})
        rows.append(row)
    return pd.DataFrame(rows, columns=out_cols)


#: Columns of :func:`cost_table`.
COST_COLUMNS: tuple[str, ...] = (
    "run_id",
    "cell",
    "transport",
    "client",
    "conn_mode",
    "delivery",
    "workload",
    "per",
    "bytes_sent",
    "bytes_received",
    "payload_bytes",
    "bytes_total",
    "cpu_us_server",
    "cpu_us_client",
    "rss_mb_server",
    "connections",
    "rss_mb_per_connection",
)


def cost_table(cells: pd.DataFrame, metas: dict[str, dict] | None = None) -> pd.DataFrame:
    """What each useful message cost, one row per cell.

    ``cost_table(run.cells, {p.run_id: p.meta for p in run.runs})``. ``per`` is
    ``"request"`` for echo cells (one useful message per echo) and ``"message"`` for
    real-time cells (a delivery or an accepted activity event). Echo cells: ``bytes_sent``
    and ``bytes_received`` per request (``bytes_per_request_*``) and ``payload_bytes``,
    the echoed payload each way (from the cell, else meta.json's scenario); real-time
    cells: only ``bytes_total`` (``bytes_per_useful_message``; see
    :func:`bytes_per_useful_split` for its parts). ``cpu_us_server``/``_client``: CPU µs per
    useful message. ``rss_mb_server``: the server's peak RSS; ``connections``: the echo
    cell's connections, or a real-time cell's ``users`` (else meta.json ``realtime.users``, of
    the cell's part in a multi-part run: :func:`reports.load.cell_scenario`);
    ``rss_mb_per_connection`` their quotient (it includes the server's fixed baseline).
    """
    metas = metas or {}
    live = realtime_mask(cells)
    rows = []
    for i, c in cells.iterrows():
        scenario = cell_scenario(metas.get(str(c.get("run_id")), {}), c.get("part"))
        is_live = bool(live[i])
        row = {k: c.get(k) for k in COST_COLUMNS[:7]}
        row["per"] = "message" if is_live else "request"
        if is_live:
            sent = received = payload = np.nan
            total = float_or_nan(c.get("bytes_per_useful_message"))
            server = float_or_nan(c.get("cpu_s_per_useful_message_server"))
            client = float_or_nan(c.get("cpu_s_per_useful_message_client"))
            rt = scenario.get("realtime") if isinstance(scenario.get("realtime"), dict) else {}
            # The cell's own count: a users sweep's meta.json lists all of them.
            conns = float_or_nan(c.get("users"))
            if not np.isfinite(conns):
                conns = float_or_nan(rt.get("users"))
        else:
            sent = float_or_nan(c.get("bytes_per_request_sent"))
            received = float_or_nan(c.get("bytes_per_request_received"))
            total = sent + received
            payload = float_or_nan(c.get("payload_bytes"))
            if not np.isfinite(payload):
                settings = scenario.get("scenario")
                settings = settings if isinstance(settings, dict) else scenario
                payload = float_or_nan(settings.get("payload_bytes"))
            server = float_or_nan(c.get("cpu_s_per_request_server"))
            client = float_or_nan(c.get("cpu_s_per_request_client"))
            conns = float_or_nan(c.get("connections"))
        rss = float_or_nan(c.get("rss_mb_server"))
        row.update(
            bytes_sent=sent,
            bytes_received=received,
            payload_bytes=payload,
            bytes_total=total,
            cpu_us_server=server * 1e6,
            cpu_us_client=client * 1e6,
            rss_mb_server=rss,
            connections=conns,
            rss_mb_per_connection=rss / conns if conns > 0 else np.nan,
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=list(COST_COLUMNS))
