"""The Gene panels page under AppTest: design, upload (good and bad lists), the size curve, a microarray-like study."""

from __future__ import annotations

from pathlib import Path

import pytest
from studies import app_on, assert_clean, build_probe_study, clear_caches, open_app, point_app_at, write_study
from test_app_pages import array, charts

from gtex_models.data.simulate import simulate_cohort
from gtex_models.studies.study import Study

PAGE = "pages/panels.py"


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cohort = simulate_cohort(n_donors=30, n_genes=400, seed=1)
    return write_study(tmp_path_factory.mktemp("panels") / "tiny", cohort, {"mean_all": ("mean", None),
                       "knn_all": ("knn", None)}, title="Tiny simulated", simulated=True, umap=False)


@pytest.fixture()
def on_tiny(monkeypatch, tmp_path, tiny_study):
    with app_on(monkeypatch, tmp_path, tiny_study) as study:
        yield study


def upload(at, text: str, name: str = "panel.txt"):
    at.radio(key="panel_source").set_value("Upload a gene list").run()
    at.file_uploader(key="panel_file").set_value((name, text.encode(), "text/plain"))
    return at.run()


def test_design_shows_r2_by_group_and_offers_the_panel(on_tiny) -> None:
    at = open_app(PAGE, model="knn_all")
    assert_clean(at)
    bars = charts(at)[0]["data"][0]
    cohort = on_tiny.cohort()
    assert set(array(bars["x"]).tolist()) <= set(cohort.tissues) and len(bars["x"]) >= 10
    assert at.metric[0].label.startswith("Mean per-gene R² of the 300 genes outside the panel")  # 100 of 400
    assert float(at.metric[0].value) > 0.0  # the group means score 0 by construction; KNN measured 0.077 (simulator v2)
    at.number_input(key="panel_size").set_value(20).run()
    assert at.metric[0].label.startswith("Mean per-gene R² of the 380 genes")
    assert any(button.label.startswith("Download the panel") for button in at.get("download_button"))


def test_the_size_curve_has_three_strategies(on_tiny) -> None:
    at = open_app(PAGE, model="knn_all")
    at.button(key="panel_curve").click().run()
    assert_clean(at)
    curve = charts(at)[-1]["data"]
    assert [trace["name"] for trace in curve] == ["designed", "most-variable", "random"]
    assert array(curve[0]["x"]).tolist() == [50, 100, 200]  # the sizes below the study's 400 genes


def test_the_page_compares_the_models_for_the_panel_and_recommends_the_validation_best(on_tiny) -> None:
    at = open_app(PAGE, model="knn_all")
    at.number_input(key="panel_size").set_value(20).run()
    at.button(key="panel_compare").click().run()
    assert_clean(at)
    table = at.dataframe[-1].value
    # the study's models and the simple method it lacks (its group mean is a model of the study already)
    assert set(table["Model"]) == {"Group mean · all genes", "KNN · all genes", "Gaussian conditional"}
    assert table["Validation R²"].is_monotonic_decreasing
    best = table["Model"].iloc[0]
    assert any(f"Recommended for this panel: **{best}**" in m.value for m in at.markdown)
    if best == "Gaussian conditional":  # not a model of the study: how to add it
        assert any("study add-model --study" in c.value and "--method gauss" in c.value for c in at.caption)
    at.number_input(key="panel_size").set_value(30).run()  # another panel: compared again only on request
    assert not any("Recommended for this panel" in m.value for m in at.markdown)


def test_an_uploaded_list_reports_unmatched_genes(on_tiny) -> None:
    at = upload(open_app(PAGE, model="knn_all"), "TP53\nAPOE\nNOT_A_GENE\n")
    assert not at.exception and not at.error
    assert "1 unmatched: NOT_A_GENE" in at.warning[0].value and "panel of 2 of the 400 genes" in at.warning[0].value
    assert at.metric[0].label.startswith("Mean per-gene R² of the 398 genes")


@pytest.mark.parametrize("text, message", [("# nothing\n", "empty"), ("NOPE\n", "None of the panel"), (None, "covers all")])
def test_bad_lists_are_errors_and_the_page_stays_usable(on_tiny, text, message) -> None:
    if text is None:
        text = "\n".join(on_tiny.cohort().genes["symbol"])
    at = upload(open_app(PAGE, model="knn_all"), text)
    assert not at.exception
    assert message in at.error[0].value and not at.metric
    at.radio(key="panel_source").set_value("Design").run()
    assert_clean(at) and at.metric


def test_a_microarray_study_with_probe_ids_and_three_groups(monkeypatch, tmp_path_factory, tmp_path) -> None:
    study = build_probe_study(tmp_path_factory.mktemp("probe_panels"))
    point_app_at(monkeypatch, study, studies_dir=tmp_path / "no_studies")
    clear_caches()
    at = open_app(PAGE, model="pmi_all")
    assert_clean(at, warnings=False)
    groups = set(Study.open(study).cohort().tissues)
    assert set(array(charts(at)[0]["data"][0]["x"]).tolist()) <= groups
    at.selectbox(key="panel_strategy").set_value("model-scored").run()  # searched with the PMI on validation donors
    assert_clean(at, warnings=False)
    assert at.metric and any(button.label.startswith("Download the panel") for button in at.get("download_button"))
    clear_caches()
