"""notebooks/analysis.ipynb runs, with nbclient, on the tiny real runs of the reports tests.

The results folders are injected papermill-style: a cell tagged ``injected-parameters`` is
inserted after the one tagged ``parameters``. The kernel is this interpreter: a ``python3``
kernelspec pointing at ``sys.executable`` is written to a temporary folder put first on
``JUPYTER_PATH``, so the test needs nothing installed beyond ``pip install -e .[dev]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

try:
    from tests.reports_fixtures import REPO_ROOT, RealRuns
except ImportError:  # tests/ is not a package: pytest puts tests/ itself on sys.path
    from reports_fixtures import REPO_ROOT, RealRuns

NOTEBOOK = REPO_ROOT / "notebooks" / "analysis.ipynb"

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def python3_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``python3`` kernelspec for this interpreter, found before any other."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Python 3 (rtbench tests)", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return "python3"


def _inject(nb: nbformat.NotebookNode, **params: object) -> nbformat.NotebookNode:
    """Insert an ``injected-parameters`` cell after the ``parameters`` cell (papermill's way)."""
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{name} = {value!r}" for name, value in params.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(index + 1, cell)
    return nb


def test_notebook_is_clean_and_parametrised() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and params[0].source == 'results_dir = "results/latest"'
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_notebook_runs_on_a_real_run(real_runs: RealRuns, python3_kernel: str) -> None:
    nb = _inject(
        nbformat.read(NOTEBOOK, as_version=4),
        results_dir=[str(real_runs.echo), str(real_runs.realtime)],
    )
    client = NotebookClient(
        nb,
        kernel_name=python3_kernel,
        timeout=120,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError with the traceback if a cell fails
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # the verdict chart and both latency spectra
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "http/aiohttp/keep-alive" in html and "ws-aiohttp/aiohttp/persistent" in html
    assert "p50 latency" in html and any(v in html for v in ("holds", "refuted", "inconclusive"))
    assert "tiny-echo" in html or "tiny-echo" in str(outputs)
