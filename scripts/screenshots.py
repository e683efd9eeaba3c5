"""Take a PNG screenshot of every page of the app, for every study, in headless Chromium.

Usage::

    python scripts/screenshots.py --out screenshots/                      # the demo study
    python scripts/screenshots.py --study data/studies/mine --out shots/  # the demo and another study
    python scripts/screenshots.py --url http://localhost:8501             # a running app, its studies

Each study is picked in the sidebar's study picker, then every page is opened from the navigation
(``{study}_{page}.png``). The Impute page is also shot after uploading held-out samples of the study
with gaps (``{study}_impute_result.png``) and in "try it" mode (``{study}_impute_try.png``). Needs pip
``playwright`` and Debian's ``/usr/bin/chromium``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator, Mapping, Sequence

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as `python scripts/screenshots.py`: make gtex_models importable
    sys.path.insert(0, str(REPO))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# screenshot name -> (URL path, page title)
PAGES = {"impute": ("", "Impute"), "tissue_r2": ("tissue_r2", "Tissue R²"), "donors": ("donors", "Donors"),
         "embeddings": ("embeddings", "Tissue embeddings"), "pathway": ("pathway", "Pathway genes"),
         "panels": ("panels", "Gene panels"), "benchmark": ("benchmark", "Benchmark & model card"), "new_study": ("new_study", "New study")}
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


class RunningApp(str):
    """The URL of an app started by :func:`running_app`, with its server's process id and log file."""

    pid: int
    log: Path

    def log_text(self) -> str:
        """What the server has written to its log so far."""
        return self.log.read_text(errors="replace")

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the server process has used so far (Linux ``/proc``)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def running_app(script: Path = REPO / "app.py", studies: Sequence[Path] = (),
                env: Mapping[str, str] | None = None) -> Iterator[RunningApp]:
    """Start ``streamlit run script -- --study DIR ...`` on a free port (``env`` added to the environment);
    yields its URL (a :class:`RunningApp`) and stops it afterwards."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="streamlit-", suffix=".log", delete=False)
    study_args = [arg for study in studies for arg in ("--study", str(study))]
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
         "--server.port", str(port), "--browser.gatherUsageStats", "false", *(["--", *study_args] if studies else [])],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        url = RunningApp(f"http://localhost:{port}")
        url.pid, url.log = process.pid, Path(log.name)
        wait_healthy(url)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def title_pattern(title: str) -> re.Pattern:
    """A page title as :data:`PAGES` gives it (the demo's), matching the title on any study: "Tissue R²" is
    "Group R²" on a study whose groups are not GTEx tissues."""
    words = re.escape(title)
    return re.compile("^(Tissue|Group) " + words[len("Tissue\\ "):] if title.startswith("Tissue ") else words)


STABLE_MS = 700
"""How long a page must stay done before it counts as done (a rerun may follow a first run)."""


def _wait_done(page, title: str | None, busy: str, timeout: float) -> float:
    """Wait until the page (titled ``title``) finished its run, every chart is drawn and nothing matches ``busy``,
    and it stays so for :data:`STABLE_MS`; the seconds from the navigation's start to the moment it was done."""
    heading = page.locator('[data-testid="stMain"] h1')
    (heading.filter(has_text=title_pattern(title)) if title else heading).first.wait_for(timeout=timeout)
    done_at = page.wait_for_function(
        f"""() => {{
            const charts = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')];
            const app = document.querySelector('[data-testid="stApp"]');
            const done = app && app.dataset.testScriptState === "notRunning"
                && !document.querySelector({busy!r})
                && charts.every(chart => chart.querySelector('.main-svg'));
            if (!done) {{ window.__doneSince = undefined; return false; }}
            window.__doneSince = window.__doneSince || performance.now();
            return performance.now() - window.__doneSince > {STABLE_MS} && window.__doneSince;
        }}""",
        timeout=timeout, polling=100)
    return float(done_at.json_value()) / 1000.0


def settle(page, title: str | None = None, timeout: float = 60_000) -> None:
    """Wait until the page (titled ``title``) finished its run and every element, charts included, is drawn."""
    _wait_done(page, title, '[data-testid="stSkeleton"]', timeout)


BUSY = '[data-testid="stSpinner"], [data-testid="stExpanderIconSpinner"], [data-testid="stSkeleton"]'
"""What a page still working shows: a spinner, a running ``st.status`` or a skeleton."""


def click_to_download(page, button, tries: int = 2, timeout_ms: int = 45_000):
    """The download a click on ``button`` starts; the click is repeated (after the page settles) when no download
    came: a click that lands while the script reruns replaces the button and is lost (seen once in a full run)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # playwright: only where a browser runs

    for attempt in range(tries):
        try:
            with page.expect_download(timeout=timeout_ms) as info:
                button.click()
            return info.value
        except PlaywrightTimeout:
            if attempt == tries - 1:
                raise
            settle(page, timeout=120_000)


def wait_first_screen(page, title: str, timeout: float = 60_000) -> float:
    """Wait until the page titled ``title`` shows its first screen complete (its run finished, every chart
    drawn, no spinner, running status or skeleton left) and stays so for :data:`STABLE_MS`; returns the
    seconds from the navigation's start to the moment it became complete (the wait for stability excluded)."""
    return _wait_done(page, title, BUSY, timeout)


def full_height(page) -> None:
    """Grow the viewport to the page's content so that one screenshot shows it all."""
    height = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMain\"]') || document.body;"
        " return Math.max(m.scrollHeight, document.body.scrollHeight); }")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(height) + 40, 9000)})
    page.wait_for_timeout(800)


def choose_option(page, label: str, option: str, scope: str = "") -> None:
    """Pick ``option`` in the selectbox labelled ``label`` (within the CSS selector ``scope``, if given)."""
    box = page.locator(f'{scope} [data-testid="stSelectbox"]'.strip()).filter(has_text=label).locator("input")
    box.click()
    box.fill(option)
    page.keyboard.press("Enter")


STUDY_PICKER = '[data-testid="stSidebar"] input[aria-label="Study"]'


def selected_study(page) -> str:
    """The title shown by the sidebar's study picker."""
    return page.locator(STUDY_PICKER).input_value()


def choose_study(page, title: str) -> None:
    """Select the study titled ``title`` in the sidebar's study picker, on the Impute page, and wait until the
    page shows it (its caption names the study)."""
    box = page.locator(STUDY_PICKER)
    box.click()
    box.fill(title)
    page.keyboard.press("Enter")
    page.locator('[data-testid="stMain"] [data-testid="stCaptionContainer"]').filter(
        has_text=f"of study {title} (").first.wait_for(timeout=120_000)
    settle(page)


def open_page(page, url: str, path: str, title: str) -> None:
    """Open a page from the sidebar's navigation (the session, hence the chosen study, is kept)."""
    page.locator(f'[data-testid="stSidebarNav"] a[href="{url}/{path}"]').click()
    settle(page, title)


def upload_csv(study_path: Path, path: Path) -> tuple[Path, str]:
    """A genes x samples CSV of the study's held-out samples of one group with gaps, and that group."""
    from gtex_models.interfaces.try_it import example_upload
    from gtex_models.studies.demo import CACHE_DIR
    from gtex_models.studies.study import Study

    cohort = Study.open(study_path).cohort(CACHE_DIR)
    groups = cohort.samples.loc[cohort.samples["split"] == "test", "tissue"]
    group = "Whole Blood" if "Whole Blood" in set(groups) else groups.value_counts().index[0]
    example_upload(cohort, group, n_samples=6, missing_rate=0.4).T.rename_axis("gene").to_csv(path)
    return path, group


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")


def shoot(url: str, out: Path, studies: Mapping[str, Path]) -> list[Path]:
    """Screenshot every page of every study (title -> folder) into ``out``."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    shots = []

    def snap(page, name: str) -> None:
        full_height(page)
        shots.append(out / f"{name}.png")
        page.screenshot(path=shots[-1])
        page.set_viewport_size(VIEWPORT)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(url)
        settle(page, "Impute", timeout=120_000)
        for title, folder in studies.items():
            prefix = slug(title)
            open_page(page, url, "", "Impute")
            choose_study(page, title)
            for name, (path, heading) in PAGES.items():
                start = time.perf_counter()
                open_page(page, url, path, heading)
                print(f"{title} · {name}: usable after {time.perf_counter() - start:.1f} s")
                snap(page, f"{prefix}_{name}")
            open_page(page, url, "", "Impute")
            csv, group = upload_csv(folder, Path(tempfile.mkdtemp()) / "partial.csv")
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(csv))
            choose_option(page, "Tissue (GTEx name)" if group == "Whole Blood" else "Group", group, '[data-testid="stMain"]')
            page.get_by_text("Download the full imputed matrix").wait_for(timeout=120_000)
            settle(page)
            snap(page, f"{prefix}_impute_result")
            page.get_by_text("Try it on held-out samples").click()
            page.get_by_text("Mean per-gene R²").wait_for(timeout=120_000)
            settle(page)
            snap(page, f"{prefix}_impute_try")
            page.get_by_text("Upload your samples").click()
            settle(page)
        browser.close()
    return shots


def main() -> int:
    from gtex_models.studies.demo import DEMO_DIR
    from gtex_models.studies.study import Study

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "screenshots")
    parser.add_argument("--study", type=Path, action="append", default=[],
                        help="a study folder to shoot besides the demo (repeatable)")
    parser.add_argument("--url", help="URL of a running app (default: start one)")
    args = parser.parse_args()
    studies = {Study.open(path).title: path for path in [DEMO_DIR, *args.study]}
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(running_app(studies=args.study))
        for shot in shoot(url, args.out, studies):
            print(shot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
