"""The "Header bytes" table: what HTTP headers cost each poll and each delivered item,
HTTP/1.1 against HTTP/2, beside the framing of a WebSocket push::

    from reports.header_bytes import header_bytes_display, header_bytes_rows, header_bytes_table
    table = header_bytes_table(run)   # one row per polling HTTP cell and push cell
    header_bytes_display(table)       # its rows as display strings, HEADER_BYTES_HEADERS order
    header_bytes_rows(run)            # the same in one call

It is the measured answer to "871 bytes of HTTP headers against 2 bytes of WebSocket
framing". Every figure comes from the results files (:data:`HEADER_BYTES_NOTE` says how
each is measured): HTTP/2 cells' HEADERS frames from summary.json's ``http2_headers``,
HTTP/1.1 cells' request heads from their polls in samples.parquet and their reply heads
derived from their action replies against the same replies over WebSocket, and
WebSocket frame headers from the pushed frames' sizes in deliveries.parquet. Server-Sent
Events cells pay their headers once per stream, not per item, and echo cells deliver
nothing: both are left out. The strings are not escaped: the HTML template autoescapes,
:mod:`reports.markdown` escapes them for Markdown and
:func:`reports.table.header_bytes_rich_table` for the terminal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from loadgen.realtime.receive import ws_frame_bytes
from reports.columns import POLL_MODES
from reports.fmt import as_float, fmt_bytes, fmt_int, fmt_real, fmt_text
from reports.stats import realtime_cells

if TYPE_CHECKING:
    from reports.load import Run

HTTP11 = "HTTP/1.1"
HTTP2 = "HTTP/2"
HTTP3 = "HTTP/3"
#: The versions whose clients count their HEADERS frames (summary.json's http2_headers).
FRAMED = {"2": HTTP2, "3": HTTP3}
WEBSOCKET = "WebSocket"

#: Sample kinds not used to compare HTTP/1.1 replies with WebSocket ones: polls have no
#: WebSocket twin, and a ``stats`` reply describes its own server, so its body differs.
_NOT_TWINNED = frozenset({"poll", "stats", "connect"})

#: Header sizes RFC 6455 section 5.2 allows a server's (unmasked) frame.
_WS_HEADERS = (2, 4, 10)

#: Columns of :func:`header_bytes_table`.
HEADER_BYTES_COLUMNS: tuple[str, ...] = (
    "run_id",
    "part",
    "cell",
    "protocol",
    "delivery",
    "polls",
    "items",
    "request_header_bytes",
    "reply_header_bytes",
    "header_bytes_per_poll",
    "polls_per_item",
    "overhead_bytes_per_item",
)

#: Column headers of :func:`header_bytes_rows`.
HEADER_BYTES_HEADERS: tuple[str, ...] = (
    "Cell",
    "Protocol",
    "Delivery",
    "Polls",
    "Request headers B/poll",
    "Reply headers B/poll",
    "Headers B/poll",
    "Delivered items",
    "Polls per item",
    "Headers or framing B per item",
)

#: What the table's figures are, for the note under its title.
HEADER_BYTES_NOTE = (
    "Bytes of HTTP headers per poll and per delivered item against the WebSocket frame "
    "header of a pushed item, over the measured window (polls and delivered items, "
    "duplicates left out). HTTP/1.1 request headers: a poll is a GET without a body, so "
    "its bytes sent are its request line and headers. HTTP/1.1 reply headers: the median "
    "bytes received for the cell's own actions (sends, publishes) minus the median payload "
    "of the same actions' replies on the run's WebSocket cells (on rtbench's servers, or on "
    "the same other server; their bytes received less the frame header RFC 6455 gives a "
    "frame of that size): "
    "both carry the same reply envelope, so the difference is the status line and headers, "
    "the same fields a poll's reply carries (its Content-Length may have a digit more); "
    "– when the run has no such WebSocket cell. HTTP/2: HEADERS and CONTINUATION frames, "
    "9-byte frame headers included, per request sent and per response received over every "
    "request of the cell's users (polls, actions, sign-in; set-up and warm-up included; "
    "summary.json's http2_headers). HTTP/3: the same for its HEADERS frames (QPACK field "
    "sections, frame type and length included) plus the bytes of the QPACK encoder and "
    "decoder streams. Per item: headers per poll times polls per delivered "
    "item for HTTP; for WebSocket, the mean frame header of the pushed frames. Server-Sent "
    "Events cells pay their headers once per stream and are left out."
)


def ws_frame_header(frame_bytes: int) -> int | None:
    """The header bytes of a server's unmasked WebSocket frame of ``frame_bytes`` bytes
    on the wire (RFC 6455 section 5.2), or None for a size no single frame has:
    ``ws_frame_header(189) == 4``."""
    for header in _WS_HEADERS:
        if frame_bytes >= header and ws_frame_bytes(frame_bytes - header, False) == frame_bytes:
            return header
    return None


def header_bytes_table(run: Run) -> pd.DataFrame:
    """One row per real-time cell of ``run`` that polls over HTTP or pushes over WebSocket,
    with :data:`HEADER_BYTES_COLUMNS` (raw figures, NaN where the run did not record one)."""
    live = realtime_cells(run.cells)
    live = live[live["delivery"].isin((*POLL_MODES, "push"))]
    samples = run.samples
    measured = samples[~samples["warmup"].eq(True) & samples["ok"].eq(True)]
    rows = []
    for _, c in live.iterrows():
        protocol = _protocol(c)
        key = (str(c["run_id"]), str(c["cell"]))
        polls = as_float(c.get("polls"))
        items = as_float(c.get("useful_messages"))
        request = reply = per_item = np.nan
        if protocol == WEBSOCKET:
            polls = None
            per_item = _push_framing(run.deliveries, key)
        else:
            if protocol in FRAMED.values():
                request = _num(c.get("http2_headers_bytes_sent_per_request"))
                reply = _num(c.get("http2_headers_bytes_received_per_response"))
            else:
                request = _mean_sent_per_poll(measured, key)
                reply = _http11_reply_head(measured, live, c)
            if polls is not None and items:
                per_item = (request + reply) * polls / items
        rows.append(
            {
                "run_id": key[0],
                "part": c.get("part"),
                "cell": key[1],
                "protocol": protocol,
                "delivery": c["delivery"],
                "polls": polls,
                "items": items,
                "request_header_bytes": request,
                "reply_header_bytes": reply,
                "header_bytes_per_poll": request + reply,
                "polls_per_item": polls / items if polls is not None and items else np.nan,
                "overhead_bytes_per_item": per_item,
            }
        )
    return pd.DataFrame(rows, columns=list(HEADER_BYTES_COLUMNS))


def header_bytes_rows(run: Run) -> list[list[str]]:
    """:func:`header_bytes_table` as display strings, one list per cell in
    :data:`HEADER_BYTES_HEADERS` order; ``[]`` without polling or push cells."""
    return header_bytes_display(header_bytes_table(run))


def header_bytes_display(table: pd.DataFrame) -> list[list[str]]:
    """The rows of a :func:`header_bytes_table` frame as display strings, in
    :data:`HEADER_BYTES_HEADERS` order."""
    return [
        [
            fmt_text(r["cell"]),
            r["protocol"],
            fmt_text(r["delivery"]),
            fmt_int(r["polls"]),
            fmt_bytes(r["request_header_bytes"]),
            fmt_bytes(r["reply_header_bytes"]),
            fmt_bytes(r["header_bytes_per_poll"]),
            fmt_int(r["items"]),
            fmt_real(r["polls_per_item"]),
            fmt_real(r["overhead_bytes_per_item"]),
        ]
        for _, r in table.iterrows()
    ]


def _protocol(cell: pd.Series) -> str:
    if cell.get("family") == "ws":
        return WEBSOCKET
    # Results written before HTTP/2 cells existed have no http_version: HTTP/1.1.
    return FRAMED.get(str(cell.get("http_version")), HTTP11)


def _num(value: object) -> float:
    number = as_float(value)
    return np.nan if number is None else number


def _of(frame: pd.DataFrame, key: tuple[str, str]) -> pd.DataFrame:
    """The rows of ``frame`` for the cell ``key`` (run id, cell name)."""
    return frame[frame["run_id"].eq(key[0]) & frame["cell"].eq(key[1])]


def _mean_sent_per_poll(measured: pd.DataFrame, key: tuple[str, str]) -> float:
    polls = _of(measured, key)
    polls = polls[polls["kind"].eq("poll")]
    return float(polls["bytes_sent"].mean()) if len(polls) else np.nan


def _http11_reply_head(measured: pd.DataFrame, live: pd.DataFrame, cell: pd.Series) -> float:
    """The HTTP/1.1 status line and headers of one reply: the cell's action replies less
    the same actions' reply payloads over WebSocket (see :data:`HEADER_BYTES_NOTE`)."""
    twins = live[
        live["family"].eq("ws")
        & live["run_id"].astype(str).eq(str(cell["run_id"]))
        & _same(live, "part", cell.get("part"))
        & _same(live, "server", cell.get("server"))
    ]
    mine = _of(measured, (str(cell["run_id"]), str(cell["cell"])))
    if mine.empty or twins.empty:
        return np.nan
    ws = pd.concat([_of(measured, (str(t["run_id"]), str(t["cell"]))) for _, t in twins.iterrows()])
    heads, weights = [], []
    for kind, replies in mine.groupby("kind", observed=True):
        theirs = ws[ws["kind"].eq(kind)]["bytes_received"]
        if kind in _NOT_TWINNED or theirs.empty:
            continue
        payload = (theirs - _frame_headers(theirs)).dropna()
        if payload.empty:
            continue
        # Medians: a push that reached a WebSocket during a call counts into its bytes.
        heads.append(float(replies["bytes_received"].median()) - float(payload.median()))
        weights.append(len(replies))
    return float(np.average(heads, weights=weights)) if heads else np.nan


def _same(cells: pd.DataFrame, column: str, value: object) -> pd.Series:
    """Cells whose ``column`` is ``value`` (missing matching missing)."""
    if column not in cells.columns:
        return pd.Series(True, index=cells.index)
    missing = value is None or (as_float(value) is None and not isinstance(value, str))
    if missing:
        return cells[column].isna()
    return cells[column].astype(object).eq(value)


def _push_framing(deliveries: pd.DataFrame, key: tuple[str, str]) -> float:
    """The mean frame header of a cell's measured pushed frames (duplicates left out)."""
    if "bytes" not in deliveries.columns:
        return np.nan
    rows = _of(deliveries, key)
    rows = rows[rows["via"].eq("push") & ~rows["warmup"].eq(True) & ~rows["duplicate"].eq(True)]
    headers = _frame_headers(rows["bytes"].dropna()).dropna()
    return float(headers.mean()) if len(headers) else np.nan


def _frame_headers(sizes: pd.Series) -> pd.Series:
    """:func:`ws_frame_header` of every frame size (NaN where none fits), each distinct
    size worked out once."""
    known = {int(n): ws_frame_header(int(n)) for n in sizes.unique()}
    return sizes.map(lambda n: known[int(n)]).astype("float64")
