"""First-screen time of every page of the app, in headless Chromium, on the demo and on a small own study.

For each study and each page a **fresh server** is started (``streamlit run app.py``; caches empty, nothing
imported yet) and a new browser page opens the page's URL with the study in it (``/tissue_r2?study=ID``).
The time reported runs from the navigation's start until the first screen is complete: the page's title is
shown, the script has finished its run, no spinner or skeleton is left and every chart is drawn
(:func:`first_screen`); the page must then stay so for 0.7 s, a wait that is not counted. The server's start (until ``/_stcore/health`` answers) is reported apart, and so
are the CPU seconds the server used meanwhile (imports, the page's work: less sensitive to a busy machine
than the wall time) and the 1-minute load average.

    python benchmarks/page_times.py                     # the demo and a small own study built here
    python benchmarks/page_times.py --study DIR         # the demo and these studies (repeatable)
    python benchmarks/page_times.py --pages benchmark,panels --repeat 2

Needs pip ``playwright`` and Debian's ``/usr/bin/chromium``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

try:
    from benchmarks._common import ROOT, load_average, markdown_table, write_results
except ImportError:
    from _common import ROOT, load_average, markdown_table, write_results

if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

from scripts.screenshots import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    PAGES,
    RunningApp,
    running_app,
    wait_first_screen,
)

BUDGET_SECONDS = 5.0  # issue #27: every page's first screen on the 2-core machine


def first_screen(browser, url: RunningApp, path: str, title: str, study_id: str,
                 timeout: float = 120.0) -> tuple[float, float]:
    """Seconds from the navigation to ``url/path?study=study_id`` in a new page until its first screen is
    complete, and the server's CPU seconds until the page was seen complete and stable."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        cpu = url.cpu_seconds()
        page.goto(f"{url}/{path}?study={study_id}")
        seconds = wait_first_screen(page, title, timeout=timeout * 1000)
        cpu = url.cpu_seconds() - cpu
        if page.locator('[data-testid="stException"]').count():
            raise RuntimeError(f"{path or 'impute'}: the page shows an exception")
        return seconds, cpu
    finally:
        page.close()


def measure(studies: dict[str, Path], pages: list[str], repeat: int, timeout: float) -> list[dict]:
    """One row per study and page: the server's start and the page's first-screen seconds (median of ``repeat``
    fresh servers; a page not complete within ``timeout`` seconds counts as ``timeout``)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    from gtex_models.studies.demo import DEMO_DIR
    from pages._address import study_id_of

    rows = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        for title, folder in studies.items():
            given = [] if folder.resolve() == DEMO_DIR.resolve() else [folder]
            identifier = study_id_of(folder)
            for name in pages:
                path, heading = PAGES[name]
                starts, seconds, cpus = [], [], []
                for _ in range(repeat):
                    start = time.perf_counter()
                    with running_app(studies=given, env={"GTEX_STUDIES_DIR": tempfile.mkdtemp()}) as url:
                        starts.append(time.perf_counter() - start)
                        try:
                            wall, cpu = first_screen(browser, url, path, heading, identifier, timeout)
                        except PlaywrightTimeout:  # reported as the timeout, flagged
                            wall, cpu = float(timeout), float("nan")
                        seconds.append(wall)
                        cpus.append(cpu)
                row = {"study": title, "page": name, "server_start_s": statistics.median(starts),
                       "first_screen_s": statistics.median(seconds), "max_s": max(seconds),
                       "server_cpu_s": statistics.median(cpus), "load": load_average()[0]}
                row["within_budget"] = "yes" if row["max_s"] <= BUDGET_SECONDS else "**no**"
                print(f"{title} · {name}: {row['first_screen_s']:.1f} s, server CPU {row['server_cpu_s']:.1f} s "
                      f"(server start {row['server_start_s']:.1f} s, load {row['load']:.1f})", flush=True)
                rows.append(row)
        browser.close()
    return rows


def main() -> int:
    from gtex_models.studies.demo import DEMO_DIR
    from gtex_models.studies.study import Study

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, action="append", default=[],
                        help="a study besides the demo (repeatable; default: a small microarray-like study built here)")
    parser.add_argument("--pages", default=",".join(PAGES), help=f"comma-separated, of {', '.join(PAGES)}")
    parser.add_argument("--repeat", type=int, default=1, help="fresh servers per page (the median is reported)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds after which a page counts as that")
    parser.add_argument("--out", default="page_times", help="result name under benchmarks/results/")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        parser.error(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    pages = [p.strip() for p in args.pages.split(",") if p.strip()]
    unknown = sorted(set(pages) - set(PAGES))
    if unknown:
        parser.error(f"unknown page(s) {unknown}; choose from {', '.join(PAGES)}")
    own = args.study
    if not own:
        from studies import build_probe_study

        start = time.perf_counter()
        own = [build_probe_study(Path(tempfile.mkdtemp(prefix="page_times_")))]
        print(f"small own study built in {time.perf_counter() - start:.0f} s: {own[0]}")
    studies = {Study.open(path).title: path for path in [DEMO_DIR, *own]}
    rows = measure(studies, pages, max(args.repeat, 1), args.timeout)
    columns = [("study", "Study", ""), ("page", "Page", ""), ("first_screen_s", "First screen (s)", "{:.1f}"),
               ("max_s", "Slowest (s)", "{:.1f}"), ("server_cpu_s", "Server CPU (s)", "{:.1f}"),
               ("server_start_s", "Server start (s)", "{:.1f}"),
               ("within_budget", f"≤ {BUDGET_SECONDS:g} s", ""), ("load", "Load (1 min)", "{:.2f}")]
    table = markdown_table(rows, columns)
    print(table)
    write_results(args.out, {"rows": rows, "budget_seconds": BUDGET_SECONDS}, table)
    return 0 if all(row["max_s"] <= BUDGET_SECONDS for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
