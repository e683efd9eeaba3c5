"""The real app in headless Chromium: switch studies in the picker, upload a partial profile, impute,
download, check the file; every page of every study opens.

Runs ``streamlit run app.py -- --study STUDY`` on a free port, with a study built here from a
microarray-like matrix (probe IDs, three groups, no sex or age) next to the committed demo, and drives
Debian's ``/usr/bin/chromium`` with pip ``playwright``.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pytest
from studies import build_probe_study

from gtex_models.interfaces.try_it import example_upload
from gtex_models.studies.demo import CACHE_DIR, DEMO_DIR
from gtex_models.studies.study import Study
from scripts.screenshots import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PAGES,
    choose_option,
    choose_study,
    click_to_download,
    open_page,
    running_app,
    selected_study,
    settle,
)

pytestmark = pytest.mark.browser
DEMO, PROBES = "Demo cohort (simulated)", "Microarray-like cohort"
UPLOAD_TISSUE = "Whole Blood"
# pages without a chart when opened, per study (Impute draws its charts once a file is uploaded: see the upload test)
NO_CHARTS = {DEMO: {"impute", "new_study"}, PROBES: {"impute", "new_study", "pathway", "donors"}}


@pytest.fixture(scope="module")
def probe_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    return build_probe_study(tmp_path_factory.mktemp("probe"))


@pytest.fixture(scope="module")
def partial_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Genes x samples TPM of demo whole-blood test samples, 30% blanked, the last 10% of genes absent."""
    path = tmp_path_factory.mktemp("upload") / "partial_blood.csv"
    cohort = Study.open(DEMO_DIR).cohort(CACHE_DIR)
    example_upload(cohort, UPLOAD_TISSUE, n_samples=4, seed=1).T.rename_axis("gene").to_csv(path)
    return path


@pytest.fixture(scope="module")
def browser_page(probe_study: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, str, float]]:
    """A Chromium page, the app's URL and the seconds until its first page was usable."""
    from playwright.sync_api import sync_playwright

    studies_dir = tmp_path_factory.mktemp("no_studies")
    start = time.perf_counter()
    with running_app(studies=[probe_study], env={"GTEX_STUDIES_DIR": str(studies_dir)}) as url, \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.goto(url)
        settle(page, "Impute", timeout=120_000)
        yield page, url, time.perf_counter() - start
        browser.close()


def metrics(page) -> dict[str, str]:
    labels = page.locator('[data-testid="stMetricLabel"]').all_inner_texts()
    values = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
    return {label.strip(): value.strip() for label, value in zip(labels, values)}


def fresh_session(page, url: str, study: str) -> None:
    """A new session (no upload or widget state left by another test) on the Impute page of ``study``."""
    page.goto(url)
    settle(page, "Impute")
    if selected_study(page) != study:
        choose_study(page, study)


def errors(page) -> list[str]:
    return page.locator('[data-testid="stAlertContentError"]').all_inner_texts()


def sidebar_text(page) -> str:
    return page.locator('[data-testid="stSidebar"]').inner_text()


def test_the_study_picker_switches_every_page(browser_page):
    page, url, first_usable = browser_page
    print(f"first page usable {first_usable:.1f} s after `streamlit run`")
    page.goto(url)
    settle(page, "Impute")
    assert selected_study(page) == PROBES  # the study given with --study is selected at start
    assert "SIMULATED" not in sidebar_text(page)
    open_page(page, url, "benchmark", "Benchmark & model card")
    assert metrics(page)["Samples"] == "60" and metrics(page)["Groups"] == "3"
    open_page(page, url, "", "Impute")
    choose_study(page, DEMO)
    assert "SIMULATED" in sidebar_text(page)
    for path, title in (("benchmark", "Benchmark & model card"), ("tissue_r2", "Tissue R²")):
        open_page(page, url, path, title)
        assert selected_study(page) == DEMO  # the choice holds across pages
    assert page.get_by_text("every tissue equally represented").count() == 1
    open_page(page, url, "benchmark", "Benchmark & model card")
    assert metrics(page)["Samples"] == "6,018" and metrics(page)["Tissues"] == "49"
    open_page(page, url, "", "Impute")
    choose_study(page, PROBES)
    open_page(page, url, "tissue_r2", "Tissue R²")
    assert page.get_by_text("every group equally represented").count() == 1
    assert page.locator('[data-testid="stException"]').count() == 0


def test_upload_impute_download_in_chromium(browser_page, partial_csv: Path):
    page, url, _ = browser_page
    fresh_session(page, url, DEMO)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(partial_csv))
    settle(page)
    choose_option(page, "Tissue (GTEx name)", UPLOAD_TISSUE)
    button = page.get_by_role("button", name="Download the full imputed matrix (TPM, CSV)")
    button.wait_for(timeout=120_000)
    settle(page, timeout=120_000)  # a click while the page still runs can be lost in the rerun
    assert page.locator('[data-testid="stException"]').count() == 0
    download = click_to_download(page, button)
    with_intervals = pd.read_csv(io.BytesIO(Path(download.path()).read_bytes()), index_col=0)

    upload = pd.read_csv(partial_csv, index_col=0)
    assert download.suggested_filename == "imputed_expression.csv"
    # genes x samples, as uploaded; each sample followed by its calibrated interval's bounds (on by default)
    assert list(with_intervals.columns) == [f"{c}{s}" for c in upload.columns for s in ("", "_lower", "_upper")]
    downloaded = with_intervals[list(upload.columns)]
    lower = with_intervals[[f"{c}_lower" for c in upload.columns]].to_numpy()
    upper = with_intervals[[f"{c}_upper" for c in upload.columns]].to_numpy()
    assert (lower <= downloaded.to_numpy() + 1e-6).all() and (downloaded.to_numpy() <= upper + 1e-6).all()
    assert list(downloaded.index[: len(upload)]) == list(upload.index)
    assert len(downloaded) > len(upload)  # the model's genes the upload lacked are appended
    assert not downloaded.isna().any().any()
    observed = upload.notna().to_numpy()
    np.testing.assert_array_equal(downloaded.iloc[: len(upload)].to_numpy(np.float32)[observed],
                                  upload.to_numpy(np.float32)[observed])
    settle(page)  # the first download reran the page
    cells = page.get_by_role("button", name="Download which cells were imputed (CSV, 1 = imputed)")
    mask = pd.read_csv(io.BytesIO(Path(click_to_download(page, cells).path()).read_bytes()), index_col=0)
    np.testing.assert_array_equal(mask.iloc[: len(upload)].to_numpy() == 1, ~observed)
    assert (mask.iloc[len(upload):] == 1).all().all()  # the added genes: all imputed


@pytest.mark.xfail(reason="after uploading the downloaded example, Chromium does not show the 'Tissue (GTEx name)' "
                          "box within 30 s although AppTest renders it for the same bytes: under investigation "
                          "(see the closing note of 2026-11-25)", strict=False)
def test_example_file_downloads_and_imputes(browser_page, tmp_path: Path):
    page, url, _ = browser_page
    fresh_session(page, url, DEMO)
    with page.expect_download() as info:
        page.get_by_role("button", name="No file at hand?").click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    example = pd.read_csv(path, index_col=0)
    assert path.suffix == ".csv" and example.shape[1] == 5 and example.isna().any().any()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(path))
    settle(page)
    choose_option(page, "Tissue (GTEx name)", UPLOAD_TISSUE)
    page.get_by_role("button", name="Download the full imputed matrix (TPM, CSV)").wait_for(timeout=120_000)
    assert not errors(page)


@pytest.mark.parametrize("study", [DEMO, PROBES])
def test_every_page_opens_without_error(browser_page, study):
    page, url, _ = browser_page
    fresh_session(page, url, study)
    for name, (path, title) in PAGES.items():
        start = time.perf_counter()
        open_page(page, url, path, title)
        print(f"{study} · {name}: usable {time.perf_counter() - start:.1f} s after the click")
        assert page.locator('[data-testid="stException"]').count() == 0
        assert not errors(page), (name, errors(page))
        charts = page.locator('[data-testid="stPlotlyChart"]').count()
        assert (charts == 0) if name in NO_CHARTS[study] else (charts >= 1), name


def test_tissue_r2_draws_a_shifted_demo_cohort_beside_the_own_donors(browser_page):
    page, url, _ = browser_page
    fresh_session(page, url, DEMO)
    open_page(page, url, "tissue_r2", "Tissue R²")
    charts = page.locator('[data-testid="stPlotlyChart"]').count()
    page.get_by_text("Shifted copy of the test donors").click()
    settle(page)
    start = time.perf_counter()
    page.get_by_role("button", name="Compare").click()
    button = page.get_by_role("button", name="Download R² across rates of both cohorts, every group (CSV)")
    button.wait_for(timeout=120_000)
    settle(page)
    print(f"shifted demo cohort compared and drawn in {time.perf_counter() - start:.1f} s")
    assert page.locator('[data-testid="stException"]').count() == 0 and not errors(page)
    assert page.locator('[data-testid="stPlotlyChart"]').count() == charts + 1
    assert page.get_by_text("1,800 of the model's 2,000 in the cohort").count() == 1  # the alignment report
    assert page.locator('[data-testid="stDataFrame"]').last.is_visible()
