"""The run's progress line fits the console and shows a hostile scenario name as text."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from loadgen.run.progress import progress_label, run_progress

NAME = "[bold]evil\x1b[2J-scenario-with-a-name-much-longer-than-the-label[/bold]"


@pytest.mark.parametrize("width", [60, 80, 200])
def test_progress_line_fits_and_keeps_the_counts(width: int) -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None)
    progress = run_progress(console)
    task = progress.add_task(progress_label(NAME), total=12, status="harness floor (64 B)")
    progress.advance(task, 5)
    console.print(progress.get_renderable())
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1 and len(lines[0]) <= width
    assert "5/12" in lines[0] and "\x1b" not in lines[0]
    assert lines[0].startswith("[bold]evil\\x1b")  # markup shown, control code visible
    if width >= 120:
        assert "harness floor (64 B)" in lines[0]
