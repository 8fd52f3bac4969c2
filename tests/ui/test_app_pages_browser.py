"""Every page of the app in headless Chromium on a results store that mixes CPU runs with GPU
records: a tiny CPU suite run here, plus the run records measured on an NVIDIA H200
(``fixtures/h200/``, copies of ``shared/reference/measured/``; their raw Parquet files were not
kept). Streamlit is served on 127.0.0.1 and stopped afterwards; each page is screenshotted into
``test-artifacts/``. Checked on every page: no exception box, the accelerator's name shown,
and no request leaves the machine (the page icon and fonts come from the app itself).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode, urlparse

import pytest
from mixed_store import mixed_store

from harness.cli.app import streamlit_command

CHROMIUM = Path("/usr/bin/chromium")
HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE.parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="Chromium not installed at /usr/bin/chromium (apt-get install chromium; `make test` does)",
    ),
]


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
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    base = tmp_path_factory.mktemp("mixed")
    t0 = time.monotonic()
    store, keys = mixed_store(base / "results")
    print(f"store made in {time.monotonic() - t0:.1f} s")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (base / "streamlit.log").open("wb")
    env = dict(os.environ, STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    proc = subprocess.Popen(
        streamlit_command(store, port), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    try:
        t0 = time.monotonic()
        _wait_healthy(url, proc)
        print(f"streamlit up in {time.monotonic() - t0:.1f} s")
        yield url, keys
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def _settle(pg) -> None:
    """Wait until the page has drawn: the accelerator's name is on it (in text, or in a data
    grid's accessible mirror table) and no element is still a loading skeleton."""
    name = re.compile("H200")  # case-sensitive: run ids spell h200 in lower case
    pg.locator("td", has_text=name).or_(pg.get_by_text(name)).first.wait_for(state="attached", timeout=60_000)
    deadline = time.monotonic() + 30
    while pg.locator("[data-testid='stSkeleton']").count() and time.monotonic() < deadline:
        pg.wait_for_timeout(200)


def test_every_page_shows_the_accelerator_without_errors_or_outside_requests(served) -> None:
    from playwright.sync_api import sync_playwright

    url, keys = served
    ARTIFACTS.mkdir(exist_ok=True)
    pages = [
        ("runs", "/", "Runs"),
        ("compare", "/compare?" + urlencode({"cells": f"{keys['cpu']},{keys['gpu']}"}), "Compare cells"),
        ("diff", "/diff?" + urlencode({"mode": "cells", "a": keys["cpu"], "b": keys["gpu"]}), "Diff"),
        ("regressions", "/regressions?" + urlencode({"cell": keys["gpu_cell"]}), "Regressions"),
        ("upload", "/upload", "Upload results"),
        ("recommend", "/recommend?" + urlencode({"model": "bert", "size": "standard"}), "Recommend hardware"),
    ]
    outside: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page(viewport={"width": 1400, "height": 2400})
            pg.on(
                "request",
                lambda r: (
                    outside.append(r.url)
                    if urlparse(r.url).hostname not in ("127.0.0.1",) and not r.url.startswith(("data:", "blob:"))
                    else None
                ),
            )
            for name, path, title in pages:
                t0 = time.monotonic()
                pg.goto(url + path)
                pg.get_by_role("heading", name=title).first.wait_for(timeout=45_000)
                if name == "recommend":
                    pg.get_by_role("button", name="Recommend").click()
                    pg.get_by_text("Ranked:").wait_for(timeout=90_000)
                _settle(pg)
                if name in ("compare", "diff"):
                    pg.locator(".vega-embed canvas, .vega-embed svg").first.wait_for(timeout=30_000)
                boxes = pg.locator("[data-testid='stException']")
                assert boxes.count() == 0, f"{name}: {boxes.first.inner_text()}"
                pg.screenshot(path=str(ARTIFACTS / f"app-mixed-{name}.png"), full_page=True)
                # data grids draw on a canvas and mirror their cells in an accessible table
                text = pg.locator("body").inner_text() + " ".join(pg.locator("td").all_inner_texts())
                assert "H200" in text, f"{name}: the accelerator's name is not shown"
                if name in ("compare", "diff"):
                    assert "tabular_mlp-tiny null@CPU" in text, f"{name}: the CPU cell is not named"
                print(f"{name}: {time.monotonic() - t0:.1f} s")
        finally:
            browser.close()
    assert not outside, f"requests left the machine: {sorted(set(outside))[:5]}"
