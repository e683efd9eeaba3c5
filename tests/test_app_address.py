"""The selected study and model live in the page's address (``?study=NAME&model=KEY``), under AppTest: a link
opens them, the pickers write them, an unknown name says so and falls back to the demo."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from studies import APP, TIMEOUT, assert_clean, clear_caches, point_app_at, write_study

from gtex_models.data.simulate import simulate_cohort
from gtex_models.studies.demo import DEMO_DIR
from gtex_models.studies.study import Study
from pages._address import study_ids
from pages._shared import SELECTED_MODEL, SELECTED_STUDY

MODELS = {"mean_all": ("mean", None), "knn_all": ("knn", None)}


@pytest.fixture(scope="module")
def own_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cohort = simulate_cohort(n_donors=12, n_genes=400, seed=3)
    return write_study(tmp_path_factory.mktemp("studies") / "my-cohort", cohort, MODELS, title="My cohort",
                       umap=False)


@pytest.fixture()
def app(monkeypatch, tmp_path, own_study):
    """The app offering the demo and ``own_study`` (in the studies folder, so nothing selects it at start)."""
    point_app_at(monkeypatch, studies_dir=own_study.parent)
    clear_caches()
    yield
    clear_caches()


def visit(address: dict[str, str] | None = None, page: str | None = None) -> AppTest:
    """A new session (a reload, a bookmark, a shared link) with ``address``'s parameters."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for name, value in (address or {}).items():
        at.query_params[name] = value
    at.run()
    if page is not None:
        at.switch_page(page).run()
    return at


def test_a_link_opens_its_study_and_model(app, own_study):
    at = visit({"study": "my-cohort", "model": "knn_all"})
    assert_clean(at)
    assert at.session_state[SELECTED_STUDY] == str(own_study.resolve())
    assert at.session_state[SELECTED_MODEL] == "knn_all" and at.selectbox(key="model_key").value == "knn_all"
    assert dict(at.query_params) == {"study": "my-cohort", "model": "knn_all"}
    assert any("of study **My cohort**" in c.value for c in at.caption)  # the page shows it


def test_the_selection_is_written_to_the_address_and_a_new_session_keeps_it(app, own_study):
    at = visit()
    assert dict(at.query_params) == {"study": "demo", "model": "pmi_all"}  # the default, in the address
    # a study picked in the sidebar (under AppTest only a session's first run draws the pickers)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state[SELECTED_STUDY] = str(own_study.resolve())
    at.session_state[SELECTED_MODEL] = "knn_all"
    at.run()
    assert dict(at.query_params) == {"study": "my-cohort", "model": "knn_all"}
    reloaded = visit(dict(at.query_params), page="pages/benchmark.py")
    assert reloaded.session_state[SELECTED_STUDY] == str(own_study.resolve())
    assert reloaded.session_state[SELECTED_MODEL] == "knn_all"
    assert [t.value for t in reloaded.title] == ["Benchmark & model card"]
    assert {m.label: m.value for m in reloaded.metric}["Samples"] == f"{Study.open(own_study).cohort().n_samples:,}"


def test_a_link_is_answered_once(app, own_study):
    at = visit({"study": "my-cohort", "model": "knn_all"})
    at.session_state[SELECTED_MODEL] = "mean_all"  # then the model picker changes it
    at.run()
    assert at.session_state[SELECTED_MODEL] == "mean_all" and dict(at.query_params)["model"] == "mean_all"


@pytest.mark.parametrize("name", ["no-such-study", "/etc", "../data/demo", str(DEMO_DIR)])
def test_an_unknown_study_in_the_address_says_so_and_opens_the_demo(app, name):
    at = visit({"study": name})
    assert not at.exception and not at.error
    assert [w.value for w in at.warning] == [
        f"This server has no study {name!r} (the address names it): showing the demo instead. Pick a study in the "
        "sidebar."]
    assert at.session_state[SELECTED_STUDY] == str(DEMO_DIR.resolve())
    assert dict(at.query_params)["study"] == "demo"
    at.run()
    assert not at.warning  # said once


def test_an_unknown_model_in_the_address_says_so(app, own_study):
    at = visit({"study": "my-cohort", "model": "pmi_all"})
    assert [w.value for w in at.warning] == ["Study 'My cohort' has no model 'pmi_all' (the address names it): "
                                             "showing another; pick one in the sidebar."]
    assert at.session_state[SELECTED_MODEL] == "mean_all" and dict(at.query_params)["model"] == "mean_all"


def test_studies_sharing_a_folder_name_get_distinct_names():
    ids = study_ids(["/a/study", "/b/study", "/c/other"])
    assert ids["/c/other"] == "other"
    assert ids["/a/study"] != ids["/b/study"] and all(ids[p].startswith("study-") for p in ("/a/study", "/b/study"))
    assert study_ids(["/b/study", "/a/study"]) == {p: ids[p] for p in ("/a/study", "/b/study")}  # stable
