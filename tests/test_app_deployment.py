"""The New study page on a shared server (gtex_models.interfaces.deployment), under AppTest: the cohort-folder
source confined to its root or off, the cap on concurrent builds and on the studies folder, read-only."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from studies import assert_clean, clear_caches, open_app, point_app_at

from gtex_models.data.cohort import Cohort
from gtex_models.data.simulate import simulate_cohort
from gtex_models.studies.jobs import start_job
from pages._shared import job_board

PAGE = "pages/new_study.py"
FOLDER = "A cohort folder on this machine"


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``root/inside`` (a cohort), ``outside`` (a cohort next to the root) and ``root/link`` (a link to it)."""
    base = tmp_path_factory.mktemp("cohorts")
    cohort = simulate_cohort(n_donors=6, n_genes=400, seed=5)
    cohort.save(base / "root" / "inside")
    cohort.save(base / "outside")
    (base / "root" / "link").symlink_to(base / "outside")
    return base


@pytest.fixture()
def server(monkeypatch, tmp_path):
    """A server with an empty studies folder; the test sets the deployment's variables."""
    point_app_at(monkeypatch, studies_dir=tmp_path / "studies")
    clear_caches()
    yield monkeypatch
    for job in list(job_board().values()):
        job.cancel()
        job.wait(60)
    job_board().clear()
    clear_caches()


def folder_page(typed: str) -> AppTest:
    at = open_app(PAGE)
    at.radio(key="new_source").set_value(FOLDER).run()
    return at.text_input(key="new_folder").set_value(typed).run()


def test_a_cohort_folder_inside_the_root_is_read(server, cohorts):
    server.setenv("GTEX_COHORT_ROOT", str(cohorts / "root"))
    at = folder_page("inside")  # relative to the root
    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Samples"] == f"{Cohort.load(cohorts / 'outside').n_samples:,}"
    assert str(cohorts / "root") in at.text_input(key="new_folder").help


@pytest.mark.parametrize("typed", ["../outside", "link", "{base}/outside", "inside/../../outside"])
def test_no_cohort_folder_outside_the_root_is_read(server, cohorts, typed):
    server.setenv("GTEX_COHORT_ROOT", str(cohorts / "root"))
    at = folder_page(typed.format(base=cohorts))
    assert not at.exception and len(at.error) == 1
    assert "is outside the folder this server reads cohorts from" in at.error[0].value
    assert not at.metric and not [b for b in at.button if b.key == "build_study"]  # nothing was read


def test_cohort_folders_can_be_turned_off(server):
    server.setenv("GTEX_COHORT_ROOT", "off")
    at = open_app(PAGE)
    assert at.radio(key="new_source").options == ["Upload files"]


def test_a_local_run_reads_any_folder(server, cohorts):
    at = folder_page(str(cohorts / "outside"))
    assert_clean(at)
    assert at.radio(key="new_source").options == ["Upload files", FOLDER]


def test_no_build_starts_beyond_the_cap_on_concurrent_builds(server, cohorts):
    release = threading.Event()
    job_board()["other"] = start_job("someone else's study", lambda progress, should_stop: release.wait(60))
    try:
        at = folder_page(str(cohorts / "outside"))
        button = next(b for b in at.button if b.key == "build_study")
        assert button.disabled and "the most it builds at once" in button.help
        server.setenv("GTEX_MAX_BUILDS", "2")
        at = folder_page(str(cohorts / "outside"))
        assert not next(b for b in at.button if b.key == "build_study").disabled
    finally:
        release.set()


def test_no_build_starts_when_the_studies_folder_is_full(server, cohorts, tmp_path):
    (tmp_path / "studies" / "old").mkdir(parents=True)
    (tmp_path / "studies" / "old" / "blob").write_bytes(b"x" * 2**20)
    server.setenv("GTEX_STUDIES_MAX_MB", "1")
    at = folder_page(str(cohorts / "outside"))
    assert any("The studies folder holds 1.0 MB" in w.value and "beyond the 1 MB" in w.value for w in at.warning)
    assert next(b for b in at.button if b.key == "build_study").disabled


def test_a_read_only_server_has_no_new_study_page(server):
    assert open_app(PAGE).title[0].value == "New study"
    server.setenv("GTEX_READ_ONLY", "1")
    at = open_app()
    with pytest.raises(ValueError, match="Could not find a navigation page for '.*new_study.py'"):
        at.switch_page(PAGE)  # not in the navigation: no address leads to it


def test_a_setting_the_app_cannot_use_stops_it_with_a_message(server):
    server.setenv("GTEX_MAX_BUILDS", "many")
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py")).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["The app cannot start with this environment: $GTEX_MAX_BUILDS is 'many': "
                                           "give a whole number of builds above 0, or leave it unset."]
