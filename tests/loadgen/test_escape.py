"""Hostile names (cell names from a scenario file) stay inert in every output.

A cell named with ``$...$`` used to crash matplotlib's mathtext and with it the whole
report; a backtick closed summary.md's code span and let raw HTML through; a name starting
with ``=`` became a spreadsheet formula in verdict.csv.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from matplotlib.text import Text
from reports_fixtures import CellSpec, make_run_dir
from rich.console import Console
from typer.testing import CliRunner

import reports
from loadgen import cli
from loadgen.escape import chart_text, csv_cell, csv_frame, csv_writer, md_code, md_text, term_text
from reports import charts
from reports.cli_report import report
from reports.markdown import MATRIX_CSV, SUMMARY_FILE, VERDICT_CSV

MATH = r"cost $\undefined{x}$ and $^$"
HTML = "`</code><img src=x onerror=alert(1)>`<script>alert(2)</script>"
FORMULA = '=HYPERLINK("http://evil.example","click")'
RICH = "[/] [bold]x"

HOSTILE_CELLS = (
    CellSpec("http", "aiohttp", "keep-alive", scale=4, label=f"{FORMULA} {MATH}"),
    CellSpec("ws-aiohttp", "aiohttp", "persistent", scale=1, label=f"{HTML} {RICH} | x"),
)


# --- each escaper ---------------------------------------------------------------------------


def test_chart_text_renders_dollars_literally() -> None:
    from matplotlib.figure import Figure

    fig = Figure()
    text = fig.text(0, 0, chart_text(MATH))
    fig.savefig(io.BytesIO(), format="png")  # raises ValueError for the raw name
    assert not text._preprocess_math(text.get_text())[1]  # not mathtext
    assert text._preprocess_math(text.get_text())[0] == MATH


def test_chart_text_shows_control_characters_and_keeps_line_breaks() -> None:
    import warnings

    from matplotlib.figure import Figure

    label = chart_text("cell\x1b[2J\tname\nsecond line")
    assert label == "cell\\x1b[2J\\x09name\nsecond line"
    fig = Figure()
    fig.text(0, 0, label)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a glyph missing from the font warns
        fig.savefig(io.BytesIO(), format="png")


def test_the_raw_name_would_crash_matplotlib() -> None:
    """What the escaping prevents: the name as is fails to render."""
    from matplotlib.figure import Figure

    fig = Figure()
    fig.text(0, 0, MATH)
    with pytest.raises(ValueError):
        fig.savefig(io.BytesIO(), format="png")


def _html_of(markdown: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(markdown)


@pytest.mark.parametrize("name", [HTML, MATH, "a*b*_c_ [l](http://x) ~~s~~ &amp; \\` end"])
def test_markdown_text_and_code_show_the_name_and_nothing_else(name: str) -> None:
    for inline in (md_text(name), md_code(name)):
        html = _html_of(f"x {inline} y")
        assert "<img" not in html and "<script" not in html
        assert "<a " not in html and "<em>" not in html and "<strong>" not in html
        assert "&lt;img" in html or "<img" not in name


def test_md_code_keeps_the_name_whole() -> None:
    html = _html_of(md_code(HTML))
    assert html.count("<code>") == 1
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"])
def test_csv_cell_defuses_formulas(value: str) -> None:
    assert csv_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["http/aiohttp", "", 3, -1.5, None])
def test_csv_cell_leaves_other_values(value: object) -> None:
    assert csv_cell(value) == value


def test_csv_writer_defuses_every_row() -> None:
    buf = io.StringIO()
    writer = csv_writer(buf)
    writer.writerow(["Name", "=cmd", 1])
    writer.writerows([["-2+3", -2]])
    assert list(csv.reader(io.StringIO(buf.getvalue()))) == [
        ["Name", "'=cmd", "1"],
        ["'-2+3", "-2"],
    ]


def test_term_text_is_not_rich_markup() -> None:
    console = Console(file=io.StringIO(), width=200)
    console.print(f"[red]cell[/] {term_text(RICH)}")
    assert RICH in console.file.getvalue()  # type: ignore[attr-defined]


# --- the outputs of a run with hostile cell names -------------------------------------------


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = make_run_dir(tmp_path_factory.mktemp("hostile"), HOSTILE_CELLS, n=400)
    report([folder], console=Console(file=io.StringIO()))
    return folder


def test_report_with_hostile_names_is_written(hostile_report: Path) -> None:
    for name in ("report.html", SUMMARY_FILE, VERDICT_CSV):
        assert (hostile_report / name).is_file(), name


def test_every_chart_renders_hostile_names_literally(tmp_path: Path) -> None:
    run = reports.load(make_run_dir(tmp_path, HOSTILE_CELLS, n=200))
    figs = [
        charts.percentile_spectrum(run.samples),
        charts.cdf(run.samples),
        charts.latency_over_time(run.samples),
        charts.verdict_chart(reports.verdict_table(run)),
        charts.cpu_chart(reports.cost_table(run.cells, {run.run_id: run.meta})),
    ]
    shown: list[str] = []
    for fig in figs:
        png = charts.fig_to_png(fig)
        assert png.startswith(b"\x89PNG")
        shown += [t._preprocess_math(t.get_text())[0] for t in fig.findobj(Text)]
    assert any(MATH in s for s in shown), "the name is drawn, dollars and all"


def test_summary_md_has_no_markup_from_names(hostile_report: Path) -> None:
    text = (hostile_report / SUMMARY_FILE).read_text(encoding="utf-8")
    html = _html_of(text)
    assert "<img" not in html and "<script" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    # every table row still has as many cells as its header
    rows = [line for line in text.splitlines() if line.startswith("|")]
    tables: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("|"):
            tables[-1].append(line) if tables and tables[-1] else tables.append([line])
        elif tables and tables[-1]:
            tables.append([])
    for table in (t for t in tables if t):
        widths = {len(_cells(line)) for line in table}
        assert len(widths) == 1, table
    assert rows


def _cells(line: str) -> list[str]:
    """A Markdown table row's cells (``\\|`` is not a separator)."""
    return line.replace("\\|", "").strip("|").split("|")


def test_verdict_csv_has_no_formulas(hostile_report: Path) -> None:
    files = [hostile_report / VERDICT_CSV]
    if (hostile_report / MATRIX_CSV).exists():
        files.append(hostile_report / MATRIX_CSV)
    for file in files:
        with file.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        cells = [c for row in rows for c in row]
        assert not [c for c in cells if c[:1] in ("=", "+", "@")], file.name
        assert any(c.startswith("'=HYPERLINK") for c in cells), file.name


def test_csv_frame_keeps_numbers_numbers() -> None:
    import pandas as pd

    frame = pd.DataFrame({"cell": ["=x", "ok"], "ratio": [-1.5, 2.0]})
    out = csv_frame(frame)
    assert out["cell"].tolist() == ["'=x", "ok"]
    assert out["ratio"].tolist() == [-1.5, 2.0]


def test_report_html_escapes_names(hostile_report: Path) -> None:
    html = (hostile_report / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html


# --- rtbench run: [slo] is checked even when the report fails --------------------------------

SLO_SCENARIO = """\
[scenario]
name = "slo-after-report"
repeats = 1
duration_s = 0.5
warmup_s = 0.1
placement = "none"

[load]
model = "closed"
connections = 1

[[cells]]
transport = "http"
client = "aiohttp"
name = "{name}"

[slo]
errors = 0
"""


def test_run_checks_slo_when_the_report_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_a: object, **_k: object) -> Path:
        raise ValueError("the chart library failed")

    monkeypatch.setattr("reports.cli_report.report", broken)
    path = tmp_path / "s.toml"
    path.write_text(SLO_SCENARIO.format(name="plain"))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli.app, ["run", str(path), "--out", str(out), "--no-progress"])
    text = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert "the report could not be written: the chart library failed" in text
    assert (out / "slo.json").is_file()
    assert "SLO met" in text


def test_run_with_a_mathtext_cell_name_writes_report_and_checks_slo(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(SLO_SCENARIO.format(name=r"cost $\\undefined{x}$ [/]"))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli.app, ["run", str(path), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file()
    assert (out / "slo.json").is_file()


def test_validate_prints_a_name_with_rich_markup_as_is(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    cell = '[[cells]]\ntransport = "http"\nclient = "aiohttp"\nname = "a[/]b"\n'
    path.write_text('[scenario]\nname = "s"\n' + cell + cell)
    result = CliRunner().invoke(cli.app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "two cells are both named 'a[/]b'" in " ".join(result.output.split())


def test_validate_shows_a_hostile_file_name_as_text(tmp_path: Path) -> None:
    path = tmp_path / "[bold]s\x1b[2J.toml"
    cell = '[[cells]]\ntransport = "http"\nclient = "aiohttp"\n'
    path.write_text('[scenario]\nname = "s"\n' + cell)
    result = CliRunner().invoke(cli.app, ["validate", str(path)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    assert "[bold]s\\x1b[2J.toml" in "".join(result.output.split())


def test_run_output_fits_80_columns_with_hostile_names(tmp_path: Path) -> None:
    """What ``rtbench run`` prints (SLO table, report tables, paths) as CI logs show it."""
    path = tmp_path / "s.toml"
    name = "[bold]cell\\u001b[2J/with/a/name/long/enough/to/fold/in/every/table[/bold]"
    path.write_text(SLO_SCENARIO.format(name=name))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli.app, ["run", str(path), "--out", str(out), "--no-progress"], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert "\x1b" not in result.output
    assert "[bold]cell\\x1b[2J/" in result.output and "SLO met" in result.output
