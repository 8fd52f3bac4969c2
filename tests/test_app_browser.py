"""End to end: the app served by ``streamlit run`` on 127.0.0.1, opened in headless Chromium.

Screenshots land in ``test-artifacts/`` (git-ignored). Skipped only where Chromium is not
installed (``make test`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cli.app import streamlit_command

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Chromium not installed at /usr/bin/chromium (apt-get install chromium; `make test` does)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"streamlit did not answer on {url} within {timeout_s:g} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from test_app import demo_store

    store = demo_store(tmp_path_factory)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path_factory.getbasetemp() / f"streamlit-{port}.log").open("wb")
    env = dict(os.environ, STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    proc = subprocess.Popen(
        streamlit_command(store, port), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page(viewport={"width": 1400, "height": 2400})
            yield pg
        finally:
            browser.close()


def _no_exception(pg) -> None:
    assert pg.locator("[data-testid='stException']").count() == 0, pg.locator(
        "[data-testid='stException']"
    ).first.inner_text()


def test_compare_page_in_browser(server: str, page) -> None:
    page.goto(server + "/compare")
    page.get_by_role("heading", name="Compare cells").wait_for(timeout=30_000)
    page.get_by_text("Latency CDF").wait_for()
    page.locator(".vega-embed canvas, .vega-embed svg").first.wait_for(timeout=30_000)
    page.locator("td", has_text="measured").first.wait_for(state="attached", timeout=15_000)
    _no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "app-compare.png"), full_page=True)
    page.get_by_role("tab", name="Energy & cost").click()
    page.get_by_role("tabpanel", name="Energy & cost").locator(".vega-embed").first.wait_for(timeout=15_000)
    # data grids draw on a canvas; their cells are mirrored in an accessible table
    page.locator("td", has_text="estimated:tdp-model").first.wait_for(state="attached", timeout=15_000)
    page.screenshot(path=str(ARTIFACTS / "app-compare-energy.png"), full_page=True)


def test_recommend_page_in_browser(server: str, page) -> None:
    page.goto(server + "/recommend")
    page.get_by_role("heading", name="Recommend hardware").wait_for(timeout=30_000)
    page.get_by_role("button", name="Recommend").click()
    page.get_by_text("Ranked:").wait_for(timeout=30_000)
    page.get_by_text("Cost vs latency (Pareto front)").wait_for()
    page.locator(".vega-embed canvas, .vega-embed svg").first.wait_for(timeout=30_000)
    page.get_by_role("button", name="Download CSV").wait_for()
    _no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "app-recommend.png"), full_page=True)


def test_regressions_page_in_browser(server: str, page) -> None:
    page.goto(server + "/regressions")
    page.get_by_role("heading", name="Regressions").wait_for(timeout=30_000)
    page.get_by_text("Gate verdicts").wait_for(timeout=30_000)
    page.locator(".vega-embed canvas, .vega-embed svg").first.wait_for(timeout=30_000)
    _no_exception(page)
    page.screenshot(path=str(ARTIFACTS / "app-regressions.png"), full_page=True)
