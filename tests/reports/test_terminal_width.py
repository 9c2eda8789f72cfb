"""The terminal report at 80 columns (CI logs) and narrower: no line wider than the console,
every key figure whole, hostile names shown as text."""

from __future__ import annotations

from pathlib import Path

import pytest
from reports_fixtures import DEFAULT_CELLS, CellSpec, make_realtime_run_dir, make_run_dir
from reports_reading import cell_row, console_buffer
from rich.table import Table
from rich.text import Text

import reports
from reports.cli_report import report
from reports.fmt import fmt_compact, fmt_ms, fmt_us_compact
from reports.stacked import stacked
from reports.termfit import fits, needed_width, print_fitting

#: Markup, an escape sequence (it would recolour the terminal) and a tab, in a long name.
HOSTILE = "[bold]evil\x1b[31m\tname-that-goes-on-and-on-well-past-any-column[/bold]"
SHOWN = r"[bold]evil\x1b[31m\x09name-that-goes-on-and-on-well-past-any-column[/bold]"


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    hostile = CellSpec("http", "aiohttp", "keep-alive", scale=4, label=HOSTILE, client_cpu_factor=3)
    cells = (*DEFAULT_CELLS, hostile)  # the client CPU factor puts the name in a warning
    return make_run_dir(tmp_path_factory.mktemp("wide"), cells, n=400)


@pytest.fixture(scope="module")
def live_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_realtime_run_dir(tmp_path_factory.mktemp("live"), n=200)


def _report(folders: list[Path], width: int, tmp_path: Path) -> str:
    console, buf = console_buffer(width)
    report(folders, out=tmp_path / "out", console=console)
    return buf.getvalue()


def _unfolded(out: str) -> str:
    """The output with line ends and table padding removed, so a name folded over lines
    reads whole again."""
    return "".join(line.strip() for line in out.splitlines())


def _assert_within(out: str, width: int) -> None:
    wide = [line for line in out.splitlines() if len(line) > width]
    assert not wide, f"{len(wide)} lines over {width}: {wide[:3]}"


@pytest.mark.parametrize("width", [40, 60, 80, 200])
def test_echo_report_fits_and_keeps_every_figure(
    hostile_dir: Path, tmp_path: Path, width: int
) -> None:
    out = _report([hostile_dir], width, tmp_path)
    _assert_within(out, width)
    assert "…" not in out
    run = reports.load(hostile_dir)
    for name in run.cells["cell"]:
        row = cell_row(run, name)
        for col in ("p50_ms", "p99_ms", "p99_9_ms", "max_ms"):
            assert fmt_ms(row[col]) in out, (name, col)
        assert fmt_us_compact(row["cpu_s_per_request_server"]) in out
    assert "6.00×" in out and "holds" in out  # the verdict's ratios and words
    assert "bytes" in out and "CPU" in out  # every verdict metric is shown


@pytest.mark.parametrize("width", [40, 80])
def test_hostile_names_are_text_at_any_width(hostile_dir: Path, tmp_path: Path, width: int) -> None:
    out = _report([hostile_dir], width, tmp_path)
    assert "\x1b" not in out and "\t" not in out
    # markup kept literally, control characters visible; a name column is 16 or wider
    assert SHOWN[:16] in out and "[bold]" in out
    if width < 60:  # one block per cell: the name heads its block, folded but whole
        assert SHOWN in _unfolded(out)


@pytest.mark.parametrize("width", [60, 80])
def test_realtime_report_fits_and_keeps_every_figure(
    live_dir: Path, tmp_path: Path, width: int
) -> None:
    out = _report([live_dir], width, tmp_path)
    _assert_within(out, width)
    run = reports.load(live_dir)
    for name in run.cells["cell"]:
        row = cell_row(run, name)
        for col in ("delivery_p50_ms", "delivery_p99_ms", "delivery_max_ms"):
            assert fmt_ms(row[col]) in out, (name, col)
        # a name folds after its slashes: every part is shown whole
        assert all(f"{part}/" in out for part in name.split("/")[:-1]), name
        assert name.split("/")[-1] in out


def test_wide_terminal_keeps_the_full_headers(hostile_dir: Path, tmp_path: Path) -> None:
    out = _report([hostile_dir], 240, tmp_path)
    assert "Throughput" in out and "Bytes/req" in out and "server CPU" in out
    assert "Reqs: Requests" not in out  # no legend when nothing is abbreviated


def test_narrow_tables_explain_their_short_headers(hostile_dir: Path, tmp_path: Path) -> None:
    out = _report([hostile_dir], 80, tmp_path)
    assert "Reqs: Requests" in out and "Srv CPU µs/req: Server CPU µs/req" in out


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "–"),
        (float("nan"), "–"),
        (0.585, "0.585"),
        (80.0, "80"),
        (400, "400"),
        (999.4, "999"),
        (999.6, "1k"),
        (1500, "1.5k"),
        (12_345, "12.3k"),
        (1_234_567, "1.23M"),
        (-2500, "-2.5k"),
        (float("inf"), "∞"),
    ],
)
def test_fmt_compact(value: object, text: str) -> None:
    assert fmt_compact(value) == text


def test_fmt_us_compact() -> None:
    assert fmt_us_compact(0.000148) == "148"
    assert fmt_us_compact(0.00135) == "1.35k"


def _table(names: list[str]) -> Table:
    table = Table(title="t")
    table.add_column("Cell", overflow="fold")
    for h in ("alpha", "beta", "gamma"):
        table.add_column(h, no_wrap=True, justify="right")
    for i, name in enumerate(names):
        table.add_row(Text(name), f"{i}.111111", f"{i}.222222", f"{i}.333333")
    return table


def test_needed_width_lets_names_fold_but_not_figures() -> None:
    console, _ = console_buffer(80)
    narrow = needed_width(console, _table(["x" * 200]))
    assert narrow == needed_width(console, _table(["x" * 30]))  # the name folds
    assert narrow < 80 and fits(console, _table(["x" * 200]))
    console, _ = console_buffer(30)
    assert not fits(console, _table(["a"]))


def test_print_fitting_takes_the_first_layout_that_fits_else_stacks() -> None:
    console, buf = console_buffer(80)
    print_fitting(console, [lambda: [_table(["wide"])], lambda: [_table(["never"])]])
    assert "wide" in buf.getvalue() and "never" not in buf.getvalue()
    console, buf = console_buffer(24)
    print_fitting(console, [lambda: [_table(["cell-a", "cell-b"])]])
    out = buf.getvalue()
    _assert_within(out, 24)
    for figure in ("0.111111", "1.333333", "cell-a", "cell-b", "alpha", "gamma"):
        assert figure in out


def test_stacked_puts_each_row_under_its_name() -> None:
    console, buf = console_buffer(60)
    console.print(stacked(_table(["first", "second"]), 60))
    lines = buf.getvalue().splitlines()
    first, second = lines.index("first"), lines.index("second")
    assert "0.111111" in "".join(lines[first:second])
    assert "1.111111" in "".join(lines[second:])


def test_names_break_after_a_slash_when_their_column_is_narrow() -> None:
    from reports.termname import Name

    console, buf = console_buffer(14)
    console.print(Name("ws-websockets/websockets/persistent"))
    console.print(Name("echo: http/a-part-longer-than-the-column"))
    lines = [line.rstrip() for line in buf.getvalue().splitlines()]
    assert lines[:3] == ["ws-websockets/", "websockets/", "persistent"]
    assert lines[3:] == ["echo: http/", "a-part-longer-", "than-the-", "column"]
    console, buf = console_buffer(5)
    console.print(Name("abcdefghij-k"))
    assert [line.rstrip() for line in buf.getvalue().splitlines()] == ["abcde", "fghij", "-k"]
