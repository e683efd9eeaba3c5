"""The app as a daily tool, in headless Chromium (issue #27): every page's first screen within the budget on a
fresh server, the study in the address (reload, deep link, unknown names), the example download of an own
study, and a server log without ``missing ScriptRunContext!``.

An own study (a microarray-like matrix: probe IDs, three groups, log scale) is built here with ``build_study``
and put in the studies folder, so that only the address or the picker selects it. Drives Debian's
``/usr/bin/chromium`` with pip ``playwright``. ``$GTEX_PAGE_BUDGET_S`` (default 10) is the first-screen budget.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import pytest
from studies import build_probe_study

from gtex_models.studies.demo import DEMO_DIR
from gtex_models.studies.study import Study
from scripts.screenshots import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PAGES,
    RunningApp,
    choose_option,
    choose_study,
    click_to_download,
    open_page,
    running_app,
    selected_study,
    settle,
    wait_first_screen,
)

pytestmark = pytest.mark.browser
BUDGET_S = float(os.environ.get("GTEX_PAGE_BUDGET_S", "10"))
DEMO, OWN = "Demo cohort (simulated)", "Microarray-like cohort"
NO_CONTEXT = "missing ScriptRunContext"


@pytest.fixture(scope="module")
def own_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The own study, alone in a studies folder (its folder's name, ``study``, is its name in the address)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    return build_probe_study(tmp_path_factory.mktemp("probe"))


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def app(own_study: Path) -> Iterator[RunningApp]:
    """One server for the address and download tests (the own study in its studies folder)."""
    with running_app(env={"GTEX_STUDIES_DIR": str(own_study.parent)}) as url:
        yield url


def new_page(browser, downloads: bool = False):
    return browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=downloads)


def problems(page) -> list[str]:
    """Exceptions and error boxes on the page."""
    return page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').all_inner_texts()


def metrics(page) -> dict[str, str]:
    labels = page.locator('[data-testid="stMetricLabel"]').all_inner_texts()
    values = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
    return {label.strip(): value.strip() for label, value in zip(labels, values)}


def heading(page) -> str:
    return page.locator('[data-testid="stMain"] h1').first.inner_text()


@pytest.mark.parametrize("study", [DEMO, OWN])
def test_every_page_shows_its_first_screen_within_the_budget_on_a_fresh_server(study, own_study, browser):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    folder = DEMO_DIR if study == DEMO else own_study
    name = folder.resolve().name
    seconds = {}
    with running_app(env={"GTEX_STUDIES_DIR": str(own_study.parent)}) as url:
        for page_name, (path, title) in PAGES.items():
            page = new_page(browser)  # a new session: nothing of the page is cached for it
            page.goto(f"{url}/{path}?study={name}")
            try:
                seconds[page_name] = wait_first_screen(page, title, timeout=BUDGET_S * 1000)
            except PlaywrightTimeout:
                pytest.fail(f"{study} · {page_name}: first screen not complete within {BUDGET_S:g} s "
                            f"(the others: {seconds})")
            assert seconds[page_name] <= BUDGET_S, (page_name, seconds)
            assert selected_study(page) == study
            assert not problems(page), (page_name, problems(page))
            page.close()
        assert NO_CONTEXT not in url.log_text()
    print(f"{study}: " + ", ".join(f"{p} {s:.1f} s" for p, s in seconds.items()))
    assert max(seconds.values()) <= BUDGET_S


def test_a_deep_link_opens_the_study_and_the_model(app, browser):
    page = new_page(browser)
    page.goto(f"{app}/tissue_r2?study=study&model=gain_all")
    settle(page, "Tissue R²", timeout=120_000)
    assert selected_study(page) == OWN
    assert page.locator('[data-testid="stSidebar"] input[aria-label="Imputation model"]').input_value() == \
        "GAIN-GTEx · all genes"
    assert heading(page) == "Group R²"  # its groups are not GTEx tissues
    assert not problems(page)
    page.close()


def test_a_reload_keeps_the_study_and_the_picker_still_chooses(app, browser):
    page = new_page(browser)
    page.goto(app)
    settle(page, "Impute", timeout=120_000)
    assert selected_study(page) == DEMO and "study=demo" in page.url
    choose_study(page, OWN)
    open_page(page, app, "benchmark", "Benchmark & model card")
    assert "study=study" in page.url  # the choice is in the address of every page
    page.reload()
    settle(page, "Benchmark & model card", timeout=120_000)
    assert selected_study(page) == OWN  # a new session, the same study
    assert metrics(page)["Samples"] == "60" and metrics(page)["Groups"] == "3"  # its cohort
    open_page(page, app, "", "Impute")
    choose_study(page, DEMO)  # after the link, the picker still decides
    assert selected_study(page) == DEMO and "study=demo" in page.url
    page.close()


def test_an_unknown_study_in_the_address_says_so_and_opens_the_demo(app, browser):
    page = new_page(browser)
    page.goto(f"{app}/benchmark?study=gone")
    settle(page, "Benchmark & model card", timeout=120_000)
    warning = page.locator('[data-testid="stAlertContentWarning"]').all_inner_texts()
    assert any("This server has no study 'gone'" in w and "showing the demo" in w for w in warning)
    assert selected_study(page) == DEMO and "study=demo" in page.url
    page.close()


def test_the_example_of_an_own_study_is_its_own_and_imputes(app, browser, own_study, tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    study = Study.open(own_study)
    cohort = study.cohort()
    try:
        example, imputed = example_round_trip(app, browser, cohort, tmp_path / "first")
    except PlaywrightTimeout:  # a browser step lost under CI load (seen once in a full run): once more, afresh
        example, imputed = example_round_trip(app, browser, cohort, tmp_path / "second")
    assert set(example.index) <= set(cohort.genes["symbol"]) and len(example.index) > 0  # the study's genes
    assert set(example.columns) <= set(cohort.split("test").samples["sample_id"])  # its held-out samples
    assert example.isna().any().any()
    values = imputed[list(example.columns)]
    assert not values.isna().any().any()
    observed = example.notna().to_numpy()
    np.testing.assert_allclose(values.loc[example.index].to_numpy()[observed], example.to_numpy()[observed],
                               rtol=1e-6)  # the observed values come back unchanged
    assert NO_CONTEXT not in app.log_text()  # the download ran for this session's study, without its context


def example_round_trip(app, browser, cohort, folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """In a new session on the own study's Impute page: download the example, upload it, pick its first sample's
    group and download the imputed matrix; (example, imputed), both genes x samples."""
    page = new_page(browser, downloads=True)
    try:
        page.goto(f"{app}/?study=study")
        settle(page, "Impute", timeout=120_000)
        download = click_to_download(page, page.get_by_role("button", name="No file at hand?"))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / download.suggested_filename
        download.save_as(path)
        example = pd.read_csv(path, index_col=0)
        settle(page)
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').first.set_input_files(str(path))
        settle(page, timeout=120_000)
        group = cohort.samples.set_index("sample_id").loc[example.columns[0], "tissue"]
        choose_option(page, "Group", group, '[data-testid="stMain"]')
        button = page.get_by_role("button", name="Download the full imputed matrix (log2 intensity, CSV)")
        button.wait_for(timeout=120_000)
        settle(page, timeout=120_000)
        assert not problems(page)
        imputed = pd.read_csv(io.BytesIO(Path(click_to_download(page, button).path()).read_bytes()), index_col=0)
        return example, imputed
    finally:
        page.close()
