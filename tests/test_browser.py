"""The real app in headless Chromium: upload a partial profile, impute, download, check the file.

Runs ``streamlit run app.py`` on a free port (against tiny demo artefacts when data/demo is not
built) and drives Debian's ``/usr/bin/chromium`` with pip ``playwright``.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pytest

from gtex_models import demo
from gtex_models.cohort import Cohort
from gtex_models.inference import example_upload
from scripts.screenshots import CHROMIUM, CHROMIUM_ARGS, PAGES, choose_option, running_app, settle
from test_app_pages import TINY_SIMULATION, UPLOAD_TISSUE, build_tiny_demo, real_demo_exists

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parent.parent
WRAPPER = """\
import runpy, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from gtex_models import demo
from gtex_models.simulate import SimulationConfig
demo.DEMO_DIR = Path({directory!r})
demo.CACHE_DIR = demo.DEMO_DIR / "cache"
demo.DEMO_SIMULATION = SimulationConfig(**{simulation!r})
runpy.run_path({app!r}, run_name="__main__")
"""


@pytest.fixture(scope="module")
def app_script(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(script to run, demo directory)``: app.py itself, or a wrapper pointing at tiny artefacts."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    if real_demo_exists():
        return REPO / "app.py", demo.DEMO_DIR
    directory = tmp_path_factory.mktemp("demo")
    build_tiny_demo(directory)
    wrapper = directory / "app_with_tiny_demo.py"
    wrapper.write_text(WRAPPER.format(repo=str(REPO), directory=str(directory), app=str(REPO / "app.py"),
                                      simulation=TINY_SIMULATION.__dict__))
    return wrapper, directory


@pytest.fixture(scope="module")
def partial_csv(app_script: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Genes x samples TPM of demo whole-blood test samples, 30% blanked, the last 10% of genes absent."""
    script, directory = app_script
    cohort = demo.load_demo_cohort() if script.name == "app.py" else Cohort.load(directory / "cache" / "demo_cohort")
    path = tmp_path_factory.mktemp("upload") / "partial_blood.csv"
    example_upload(cohort, UPLOAD_TISSUE, n_samples=4, seed=1).T.rename_axis("gene").to_csv(path)
    return path


@pytest.fixture(scope="module")
def browser_page(app_script: tuple[Path, Path]) -> Iterator[tuple[object, str, float]]:
    """A Chromium page, the app's URL and the seconds until its first page was usable."""
    from playwright.sync_api import sync_playwright

    start = time.perf_counter()
    with running_app(app_script[0]) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.goto(url)
        settle(page, "Impute", timeout=120_000)
        yield page, url, time.perf_counter() - start
        browser.close()


def test_upload_impute_download_in_chromium(browser_page, partial_csv: Path):
    page, _, first_usable = browser_page
    print(f"first page usable {first_usable:.1f} s after `streamlit run`")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(partial_csv))
    choose_option(page, "Tissue (GTEx name)", UPLOAD_TISSUE)
    button = page.get_by_role("button", name="Download the full imputed matrix (TPM, CSV)")
    button.wait_for(timeout=120_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    with page.expect_download() as info:
        button.click()
    downloaded = pd.read_csv(io.BytesIO(Path(info.value.path()).read_bytes()), index_col=0)

    upload = pd.read_csv(partial_csv, index_col=0)
    assert info.value.suggested_filename == "imputed_expression.csv"
    assert list(downloaded.columns) == list(upload.columns)  # genes x samples, as uploaded
    assert list(downloaded.index[: len(upload)]) == list(upload.index)
    assert len(downloaded) > len(upload)  # the model's genes the upload lacked are appended
    assert not downloaded.isna().any().any()
    observed = upload.notna().to_numpy()
    np.testing.assert_array_equal(downloaded.iloc[: len(upload)].to_numpy(np.float32)[observed],
                                  upload.to_numpy(np.float32)[observed])


def test_example_file_downloads_and_imputes(browser_page, tmp_path: Path):
    page, url, _ = browser_page
    page.goto(url)
    settle(page, "Impute")
    with page.expect_download() as info:
        page.get_by_role("button", name="No file at hand?").click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    example = pd.read_csv(path, index_col=0)
    assert path.suffix == ".csv" and example.shape[1] == 5 and example.isna().any().any()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(path))
    choose_option(page, "Tissue (GTEx name)", UPLOAD_TISSUE)
    page.get_by_role("button", name="Download the full imputed matrix (TPM, CSV)").wait_for(timeout=120_000)
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0


def test_every_page_opens_without_error(browser_page):
    page, url, _ = browser_page
    for name, (path, title) in PAGES.items():
        link = page.locator(f'[data-testid="stSidebarNav"] a[href="{url}/{path}"]')
        start = time.perf_counter()
        link.click()
        settle(page, title)
        print(f"{name}: usable {time.perf_counter() - start:.1f} s after the click")
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.locator('[data-testid="stPlotlyChart"]').count() >= 1

