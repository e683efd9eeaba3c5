"""Deep links on a freshly started server, in headless Chromium (Debian's /usr/bin/chromium, pip playwright).

Until some session has run ``st.navigation``, Streamlit treats the ``pages/`` folder beside
``app.py`` as a legacy page list: ``/tissue_r2`` would run ``pages/tissue_r2.py`` alone, under a
sidebar listing the files (``app``, ``shared``, ...) and without the model picker. Each page is opened
by its own URL on a new server, so every one of them is the first visit. Runs ``app.py`` itself
(the bug needs ``pages/`` beside the entry point), on the demo artefacts as committed.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from scripts.screenshots import CHROMIUM, CHROMIUM_ARGS, PAGES, running_app

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parent.parent
NAVIGATION_TITLES = [title for _, title in PAGES.values()]  # app.py's navigation, in order


@pytest.mark.parametrize("name", [name for name, (path, _) in PAGES.items() if path])
def test_each_page_opens_by_its_own_url_on_a_fresh_server(name):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    path, title = PAGES[name]
    with running_app(REPO / "app.py") as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/{path}")
        page.locator('[data-testid="stMain"] h1').filter(has_text=title).first.wait_for(timeout=180_000)
        links = page.locator('[data-testid="stSidebarNav"] a')
        links.first.wait_for(timeout=60_000)
        assert [text.split("\n")[-1] for text in links.all_inner_texts()] == NAVIGATION_TITLES
        assert page.locator('[data-testid="stSidebar"]').get_by_text("GTEx Imputation Studio").count() == 1
        address = urlsplit(page.url)
        assert address.path.rstrip("/").endswith(f"/{path}")
        assert parse_qs(address.query)["study"] == ["demo"]  # the selected study joins the address
        assert page.locator('[data-testid="stException"]').count() == 0
        browser.close()
