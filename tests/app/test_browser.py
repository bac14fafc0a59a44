"""The explorer in a real browser: ``kt explore`` (streamlit run) on a free loopback port, each
page opened in headless Chromium, waiting for its title and a rendered chart."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                       reason="chromium not installed (run make system-deps)"),
]

VEGA = ".vega-embed canvas, .vega-embed svg"
GRAPHVIZ = "[data-testid='stGraphVizChart'] svg"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"kt explore exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"the explorer did not come up at {url}:\n{log.read_text()}")


@pytest.fixture(scope="module")
def explorer(kt_home, tmp_path_factory):
    home, facts = kt_home
    port = _free_port()
    log = tmp_path_factory.mktemp("explorer_log") / "streamlit.log"
    env = {**os.environ, "KT_HOME": str(home), "MLFLOW_DISABLE_TELEMETRY": "true"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "kt.cli", "explore", "--port", str(port), "--headless"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield url, home, facts, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="kt-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--user-data-dir={profile}", "--window-size=1400,4000"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_every_page_renders_in_chromium(explorer, browser, tmp_path_factory):
    import pandas as pd
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    url, home, facts, log = explorer
    ev = pd.read_parquet(home / "data" / "world" / "events", columns=["user_id"])
    user = str(ev["user_id"].value_counts().sort_index().idxmax())
    pages = [("", "Overview", VEGA), ("user?user=" + user, "User", VEGA), ("topics", "Topics", GRAPHVIZ),
             ("experiments", "Experiments", VEGA), ("planner_eval", "Planner evaluation", VEGA)]
    shots = tmp_path_factory.mktemp("explorer-screenshots")  # pytest keeps the last few runs' screenshots
    for path, title, chart in pages:
        browser.get(f"{url}/{path}")
        wait = WebDriverWait(browser, 120)
        wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), title))
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, chart)))
        if title == "User":  # the heat map and the what-if chart come after the path is planned
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, VEGA)) >= 3)
            wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "body"), "What if the user finished a bundle?"))
        errors = browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException']")
        assert not errors, f"{title}: {errors[0].text}"
        if title == "Overview":
            assert f"{facts['n_users']}" in browser.find_element(By.TAG_NAME, "body").text
        browser.save_screenshot(str(shots / f"{path.split('?')[0] or 'overview'}.png"))
    print(f"\nexplorer screenshots: {shots}")
    assert len(list(shots.glob("*.png"))) == len(pages)
