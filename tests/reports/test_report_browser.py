"""report.html in a real browser: headless Chromium loads every chart and shows the verdict first.

The page is driven over the Chrome DevTools protocol (the ``websockets`` client rtbench
already depends on): Chromium starts on ``about:blank`` with ``--remote-debugging-port=0``,
the test opens the report's ``file://`` URL, waits for the load, asks the page whether
every ``<img>`` decoded (``naturalWidth > 0``) and where the verdict table is, and takes
a screenshot (``screenshot.png`` in the test's tmp folder, to look at by eye).

Chromium is Debian's ``chromium`` package; ``.ci/run`` installs it. Without it the test is
skipped, saying so.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from websockets.sync.client import ClientConnection, connect

from reports.cli_report import report

try:
    from tests.reports_fixtures import RealRuns, real_runs
except ImportError:  # tests/ is not a package: pytest puts tests/ itself on sys.path
    from reports_fixtures import RealRuns, real_runs

pytestmark = pytest.mark.timeout(240)

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)

#: What the page reports about itself once loaded.
PROBE = """JSON.stringify({
  images: Array.from(document.images).map(i => ({
    alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight})),
  verdictTable: !!document.querySelector('table.verdict tbody tr td.metric'),
  verdictTop: document.querySelector('#verdict-table').getBoundingClientRect().top,
  firstSection: document.querySelector('section.scenario').getBoundingClientRect().top,
  firstHeading: document.querySelector('h2').textContent,
  warnings: !!document.querySelector('#warnings'),
  badges: Array.from(document.querySelectorAll('table.verdict .badge')).map(b => b.textContent),
  scripts: document.scripts.length,
})"""


def _browser() -> str | None:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


class DevTools:
    """A minimal Chrome DevTools protocol client over one browser WebSocket (flat sessions)."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._next = 0

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> Any:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._ws.send(json.dumps(message))
        while True:
            reply = json.loads(self._ws.recv(timeout=30))
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    binary = _browser()
    if binary is None:
        pytest.skip(
            "chromium is not installed (.ci/run installs Debian's chromium package: "
            "apt-get install -y chromium)"
        )
    profile = tmp_path / "chromium-profile"
    proc = subprocess.Popen(
        [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.is_file() and len(port_file.read_text().split()) == 2):
            if proc.poll() is not None:
                pytest.fail(f"chromium exited at start-up with status {proc.returncode}")
            if time.monotonic() > deadline:
                pytest.fail("chromium did not open its DevTools port within 30 s")
            time.sleep(0.05)
        port, path = port_file.read_text().split()
        with connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=10) as ws:
            tools = DevTools(ws)
            yield tools
            with contextlib.suppress(Exception):  # it may close the socket before replying
                tools.call("Browser.close")
    finally:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _open(tools: DevTools, page: Path, width: int = 1280, height: int = 1800) -> str:
    """Open ``page`` in a new tab of ``width`` x ``height``; return its session id once loaded."""
    target = tools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = tools.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
        "sessionId"
    ]
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
    tools.call("Emulation.setDeviceMetricsOverride", metrics, session)
    tools.call("Page.navigate", {"url": page.as_uri()}, session)
    deadline = time.monotonic() + 30
    while _eval(tools, session, "document.readyState") != "complete":
        assert time.monotonic() < deadline, "the report did not finish loading in 30 s"
        time.sleep(0.05)
    return session


def _eval(tools: DevTools, session: str, expression: str) -> Any:
    result = tools.call(
        "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session
    )
    return result["result"].get("value")


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs: RealRuns = real_runs(tmp_path_factory.getbasetemp())
    out = tmp_path_factory.mktemp("browser-report") / "report.html"
    console = Console(file=io.StringIO(), width=120)
    return report([runs.echo, runs.realtime], out=out, console=console)


def test_report_opens_in_chromium(browser: DevTools, report_html: Path, tmp_path: Path) -> None:
    session = _open(browser, report_html)
    page = json.loads(_eval(browser, session, PROBE))
    images = page["images"]
    assert len(images) == 14  # the verdict chart, 6 echo charts, 7 delivery charts
    broken = [i["alt"] for i in images if not (i["complete"] and i["width"] > 0)]
    assert broken == [], f"images that did not load: {broken}"
    small = [
        (i["alt"], i["width"], i["height"]) for i in images if i["width"] < 800 or i["height"] < 250
    ]
    assert small == [], f"charts too small to read: {small}"
    assert page["verdictTable"] and page["warnings"]
    assert page["firstHeading"].startswith("Verdict")
    assert page["verdictTop"] < page["firstSection"]
    assert page["verdictTop"] < 600  # the verdict table is on the first screen
    assert set(page["badges"]) <= {"holds", "refuted", "inconclusive", "n/a"}
    assert len(page["badges"]) == 2 * 4  # two pairs, four metrics
    assert page["scripts"] == 0
    shot = browser.call("Page.captureScreenshot", {"format": "png"}, session)["data"]
    png = tmp_path / "screenshot.png"
    png.write_bytes(base64.b64decode(shot))
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 10_000
