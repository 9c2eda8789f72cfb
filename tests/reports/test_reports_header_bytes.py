"""The header-bytes table: HTTP/1.1 heads from samples (replies against WebSocket's),
HTTP/2 HEADERS frames from summary.json's http2_headers, WebSocket frame headers from the
pushed frames; polling and push cells only, names escaped in every output."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from reports_fixtures import (
    EMPTY_REPLY,
    HTTP_SEND,
    POLL_REPLY,
    POLL_SENT,
    PUSH_BYTES,
    WS_SEND,
    CellSpec,
    RtCellSpec,
    edit_cell,
    make_parts_run_dir,
    make_realtime_run_dir,
    make_run_dir,
)
from rich.console import Console

import reports
from loadgen.realtime.receive import ws_frame_bytes
from loadgen.schema import SUMMARY_FILE
from reports.header_bytes import (
    HEADER_BYTES_HEADERS,
    HTTP2,
    HTTP3,
    HTTP11,
    WEBSOCKET,
    header_bytes_rows,
    header_bytes_table,
    ws_frame_header,
)
from reports.html import render_report
from reports.markdown import summary_markdown
from reports.table import header_bytes_rich_table, print_summary

SHORT = "http/aiohttp/keep-alive/short-poll"
LONG = "http/aiohttp/keep-alive/long-poll"
WS = "ws-aiohttp/aiohttp/persistent"
EVIL = "http|<b>*x*</b>`"
TITLE = "Header bytes per poll and per delivered item"

#: What the fixture's frames say: a 20-byte WebSocket reply is a 2-byte header and 18 of
#: payload, so the HTTP reply of the same action (100 bytes) has 82 bytes of head.
WS_REPLY_PAYLOAD = WS_SEND[1] - 2
HTTP11_REPLY_HEAD = HTTP_SEND[1] - WS_REPLY_PAYLOAD

#: A real-time HTTP/2 cell's summary.json block.
H2_BLOCK = {
    "requests": 1000,
    "responses": 990,
    "bytes_sent": 30_000,
    "bytes_received": 24_750,
    "bytes_sent_per_request": 30.0,
    "bytes_received_per_response": 25.0,
}


def _rows(folder: Path) -> dict[str, dict]:
    table = header_bytes_table(reports.load(folder))
    return {r["cell"]: r.to_dict() for _, r in table.iterrows()}


@pytest.mark.parametrize("payload", [0, 1, 125, 126, 127, 65535, 65536, 70_000])
def test_a_frame_header_is_read_back_from_the_frame_size(payload: int) -> None:
    expected = ws_frame_bytes(payload, False) - payload
    assert ws_frame_header(ws_frame_bytes(payload, False)) == expected


def test_sizes_no_single_frame_has_give_none() -> None:
    # 128 and 129: too long for a 2-byte header, too short for a 4-byte one.
    assert ws_frame_header(128) is None and ws_frame_header(129) is None
    assert ws_frame_header(1) is None


def test_http11_polls_and_websocket_pushes_are_measured_from_the_files(tmp_path: Path) -> None:
    rows = _rows(make_realtime_run_dir(tmp_path))
    short, ws = rows[SHORT], rows[WS]
    assert short["protocol"] == HTTP11 and ws["protocol"] == WEBSOCKET
    # A poll is a GET: every byte it sent is its request line and headers.
    assert short["request_header_bytes"] == POLL_SENT
    assert short["reply_header_bytes"] == pytest.approx(HTTP11_REPLY_HEAD)
    assert short["header_bytes_per_poll"] == pytest.approx(POLL_SENT + HTTP11_REPLY_HEAD)
    # The fixture polls twice per delivered item (one poll carries it, one comes back empty).
    assert short["polls_per_item"] == pytest.approx(2.0)
    assert short["overhead_bytes_per_item"] == pytest.approx(2 * (POLL_SENT + HTTP11_REPLY_HEAD))
    assert ws["overhead_bytes_per_item"] == ws_frame_header(PUSH_BYTES) == 2
    assert ws["polls"] != ws["polls"]  # NaN: a push cell does not poll
    # Replies carry bodies: the figures are not the wire bytes of a poll.
    assert short["reply_header_bytes"] < min(POLL_REPLY, EMPTY_REPLY)


@pytest.mark.parametrize(("version", "protocol"), [("2", HTTP2), ("3", HTTP3)])
def test_framed_cells_take_their_headers_frames_from_summary_json(
    tmp_path: Path, version: str, protocol: str
) -> None:
    # HTTP/2 and HTTP/3 clients count their HEADERS frames (and QPACK streams) themselves;
    # the bytes of their packets are never read as HTTP/1.1 heads.
    folder = make_realtime_run_dir(tmp_path)
    edit_cell(folder, LONG, http_version=version, http2_headers=H2_BLOCK)
    run = reports.load(folder)
    assert run.cells.set_index("cell").loc[LONG, "http2_headers_requests"] == 1000
    row = _rows(folder)[LONG]
    assert row["protocol"] == protocol
    assert (row["request_header_bytes"], row["reply_header_bytes"]) == (30.0, 25.0)
    assert row["overhead_bytes_per_item"] == pytest.approx(55.0 * row["polls_per_item"])
    display = {r[0]: r for r in header_bytes_rows(run)}
    assert display[LONG][1:7] == [protocol, "long-poll", display[LONG][3], "30", "25", "55"]


def test_an_http2_cell_without_its_block_shows_missing_figures(tmp_path: Path) -> None:
    folder = make_realtime_run_dir(tmp_path)
    edit_cell(folder, LONG, http_version="2")
    row = {r[0]: r for r in header_bytes_rows(reports.load(folder))}[LONG]
    assert row[4:7] == ["–", "–", "–"] and row[-1] == "–"


def test_without_a_websocket_cell_the_http11_reply_head_is_missing(tmp_path: Path) -> None:
    cells = (RtCellSpec("http", "aiohttp", "keep-alive", "short-poll", scale=10),)
    row = _rows(make_realtime_run_dir(tmp_path, cells))[SHORT]
    assert row["request_header_bytes"] == POLL_SENT
    assert row["reply_header_bytes"] != row["reply_header_bytes"]  # NaN


def test_event_streams_and_echo_cells_are_left_out(tmp_path: Path) -> None:
    cells = (
        RtCellSpec("http", "aiohttp", "keep-alive", "sse", scale=2),
        RtCellSpec("ws-aiohttp", "aiohttp", "persistent", "push", scale=1),
    )
    assert list(_rows(make_realtime_run_dir(tmp_path, cells))) == [WS]
    echo = reports.load(make_run_dir(tmp_path, (CellSpec("http", "aiohttp", "keep-alive"),)))
    assert header_bytes_rows(echo) == [] and header_bytes_rich_table(echo) is None
    assert TITLE not in summary_markdown(echo) and TITLE not in render_report(echo)


def test_results_written_before_http2_cells_still_report(tmp_path: Path) -> None:
    folder = make_realtime_run_dir(tmp_path)
    path = folder / SUMMARY_FILE
    doc = json.loads(path.read_text())
    for entry in doc["cells"]:
        entry.pop("http_version", None)
        entry.pop("http2_headers", None)
    path.write_text(json.dumps(doc))
    assert _rows(folder)[SHORT]["protocol"] == HTTP11


def test_each_part_pairs_its_http_cells_with_its_own_websocket_cells(tmp_path: Path) -> None:
    with_ws = make_realtime_run_dir(tmp_path / "a")
    alone = make_realtime_run_dir(
        tmp_path / "b", (RtCellSpec("http", "aiohttp", "keep-alive", "long-poll", scale=3),)
    )
    rows = _rows(make_parts_run_dir(tmp_path, {"chat": with_ws, "solo": alone}))
    assert rows[f"chat:{LONG}"]["reply_header_bytes"] == pytest.approx(HTTP11_REPLY_HEAD)
    assert rows[f"solo:{LONG}"]["reply_header_bytes"] != rows[f"solo:{LONG}"]["reply_header_bytes"]


def test_summary_markdown_escapes_names(tmp_path: Path) -> None:
    folder = make_realtime_run_dir(tmp_path)
    text = summary_markdown(reports.load(folder))
    section = text[text.index(f"### {TITLE}") :].splitlines()
    assert section[4:6] == [
        "| Scenario | " + " | ".join(HEADER_BYTES_HEADERS) + " |",
        "|---|---|---|---|" + "---:|" * (len(HEADER_BYTES_HEADERS) - 3),
    ]
    assert section[6].startswith(f"| messaging-quick | `{SHORT}` | HTTP/1.1 | short-poll | ")
    edit_cell(folder, SHORT, cell=EVIL)
    text = summary_markdown(reports.load(folder))
    section = text[text.index(f"### {TITLE}") :].splitlines()
    # In a code span, with its pipe escaped: the table keeps its columns, nothing renders.
    row = next(line for line in section if "<b>" in line)
    assert row.startswith("| messaging-quick | `` http\\|<b>*x*</b>` `` | HTTP/1.1 | ")
    assert row.replace("\\|", "").count("|") == len(HEADER_BYTES_HEADERS) + 2


def test_html_and_terminal_escape_names(tmp_path: Path) -> None:
    folder = make_realtime_run_dir(tmp_path)
    edit_cell(folder, SHORT, cell="http/[bold]x[/bold]<script>")
    run = reports.load(folder)
    page = render_report(run)
    start = page.index(f"<h3>{TITLE}</h3>")
    table = page[start : page.index("</table>", start)]
    assert "<script>" not in page
    assert '<td class="cell">http/[bold]x[/bold]&lt;script&gt;</td>' in table
    assert table.count("<tr>") == 1 + 4
    buf = io.StringIO()
    print_summary(run, Console(file=buf, width=250, color_system=None), warnings=False)
    out = buf.getvalue()
    assert TITLE in out and "http/[bold]x[/bold]<script>" in out
