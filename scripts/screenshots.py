"""Take a PNG screenshot of every page of the app in headless Chromium.

Usage::

    python scripts/screenshots.py --out screenshots/            # starts `streamlit run app.py`
    python scripts/screenshots.py --url http://localhost:8501   # uses a running app

The Impute page is shot three times: as it opens, after uploading a partial profile of demo samples
(``impute_result.png``), and in "try it" mode (``impute_try.png``). Needs pip ``playwright`` and Debian's ``/usr/bin/chromium``.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as `python scripts/screenshots.py`: make gtex_models importable
    sys.path.insert(0, str(REPO))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# screenshot name -> (URL path, page title)
PAGES = {"impute": ("", "Impute"), "tissue_r2": ("tissue_r2", "Tissue R²"),
         "embeddings": ("embeddings", "Tissue embeddings"), "alzheimer": ("alzheimer", "Alzheimer's disease pathway"),
         "benchmark": ("benchmark", "Benchmark & model card")}
VIEWPORT = {"width": 1500, "height": 1000}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, timeout: float = 120.0) -> float:
    """Wait until ``url``/_stcore/health answers ``ok``; returns the seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().decode().strip() == "ok":
                    return time.perf_counter() - start
        time.sleep(0.3)
    raise TimeoutError(f"The app at {url} did not become healthy in {timeout:.0f} s.")


@contextlib.contextmanager
def running_app(script: Path = REPO / "app.py") -> Iterator[str]:
    """Start ``streamlit run script`` on a free port; yields its URL and stops it afterwards."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="streamlit-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
         "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://localhost:{port}"
        wait_healthy(url)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def settle(page, title: str | None = None, timeout: float = 60_000) -> None:
    """Wait until the page (titled ``title``) finished its run and every element, charts included, is drawn."""
    heading = page.locator('[data-testid="stMain"] h1')
    (heading.filter(has_text=title) if title else heading).first.wait_for(timeout=timeout)
    page.wait_for_function(
        """() => {
            const charts = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')];
            const app = document.querySelector('[data-testid="stApp"]');
            const idle = app && app.dataset.testScriptState === "notRunning"
                && !document.querySelector('[data-testid="stSkeleton"]')
                && charts.every(chart => chart.querySelector('.main-svg'));
            if (!idle) { window.__idleSince = undefined; return false; }
            window.__idleSince = window.__idleSince || performance.now();
            return performance.now() - window.__idleSince > 700;
        }""",
        timeout=timeout, polling=100)


def full_height(page) -> None:
    """Grow the viewport to the page's content so that one screenshot shows it all."""
    height = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMain\"]') || document.body;"
        " return Math.max(m.scrollHeight, document.body.scrollHeight); }")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(height) + 40, 9000)})
    page.wait_for_timeout(800)


def demo_upload_csv(path: Path) -> Path:
    """Write a genes x samples TPM CSV of demo whole-blood samples with gaps (see ``example_upload``)."""
    from gtex_models.demo import load_demo_cohort
    from gtex_models.inference import example_upload

    example_upload(load_demo_cohort(), n_samples=6, missing_rate=0.4).T.rename_axis("gene").to_csv(path)
    return path


def choose_option(page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label``."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).locator("input")
    box.click()
    box.fill(option)
    page.keyboard.press("Enter")


def shoot(url: str, out: Path) -> list[Path]:
    """Screenshot every page (and the Impute page with a result) into ``out``."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport=VIEWPORT)
        for name, (path, title) in PAGES.items():
            page.set_viewport_size(VIEWPORT)
            start = time.perf_counter()
            page.goto(f"{url}/{path}")
            settle(page, title)
            print(f"{name}: usable after {time.perf_counter() - start:.1f} s")
            full_height(page)
            shots.append(out / f"{name}.png")
            page.screenshot(path=shots[-1])

        page.set_viewport_size(VIEWPORT)
        page.goto(url)
        settle(page, "Impute")
        csv = demo_upload_csv(Path(tempfile.mkdtemp()) / "partial_whole_blood.csv")
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(csv))
        choose_option(page, "Tissue (GTEx name)", "Whole Blood")
        page.get_by_text("Download the full imputed matrix").wait_for(timeout=60_000)
        settle(page)
        full_height(page)
        shots.append(out / "impute_result.png")
        page.screenshot(path=shots[-1])

        page.set_viewport_size(VIEWPORT)
        page.get_by_text("Try it on demo samples").click()
        page.get_by_text("R², all hidden values").wait_for(timeout=60_000)
        settle(page)
        full_height(page)
        shots.append(out / "impute_try.png")
        page.screenshot(path=shots[-1])
        browser.close()
    return shots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "screenshots")
    parser.add_argument("--url", help="URL of a running app (default: start one)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(running_app())
        for shot in shoot(url, args.out):
            print(shot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
