"""The Donors page (cross-tissue imputation per donor) in AppTest: a small simulated study with cross-tissue results,
a study with donors but no results yet, a study without donors, and an upload of one donor's samples.

Every page, this one included, also renders on the demo and the other studies of ``test_app_pages.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from studies import app_on, assert_clean, build_probe_study, open_app, write_study

from gtex_models.data.simulate import simulate_cohort
from gtex_models.studies.donors import DONORS_DIR, add_donors
from gtex_models.studies.study import Study

PAGE = "pages/donors.py"
FAST = {"donor-gauss": {"rank": 1, "shrinkage": 0.2, "group_shrinkage": 5.0, "covariates": True, "em_iterations": 5}}


@pytest.fixture(scope="module")
def donor_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated study with the group mean as its model, and cross-tissue results (mean, blood surrogate,
    donor Gaussian) in ``donors/``."""
    cohort = simulate_cohort(n_donors=40, n_genes=400, seed=1)
    path = write_study(tmp_path_factory.mktemp("donors") / "study", cohort, {"mean_all": ("mean", None)},
                       title="Small with donors", simulated=True, umap=False)
    add_donors(Study.open(path), ["mean", "blood", "donor-gauss"], FAST)
    return path


@pytest.fixture()
def on_donors(monkeypatch, tmp_path, donor_study):
    with app_on(monkeypatch, tmp_path, donor_study) as study:
        yield study


def charts(at) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def test_the_page_shows_every_method_and_a_hidden_tissue_against_its_measurement(on_donors):
    at = open_app(PAGE)
    assert_clean(at)
    records = json.loads((on_donors.path / DONORS_DIR / "benchmark.json").read_text())["records"]
    table = at.dataframe[0].value
    assert len(table) == len(records) == 3
    boxes = {t["name"] for t in charts(at)[0]["data"] if t["type"] == "box"}
    assert boxes == {"Group mean", "Blood surrogate", "Donor Gaussian"}
    donor = at.selectbox(key="donor_pick").value
    test = Study.open(on_donors.path).cohort().split("test")
    given = test.samples.loc[test.samples["donor_id"] == donor, "tissue"].tolist()
    at.selectbox(key="donor_target").set_value(given[0]).run()  # a tissue the donor gave: hidden, then compared
    assert_clean(at)
    assert [m.label for m in at.metric] == ["R² of this profile against the tissue mean"]
    assert float(at.metric[0].value) < 0.9  # predicted from the donor's other samples, not from itself
    assert "inside their 90% interval" in " ".join(c.value for c in at.caption)
    profile = at.dataframe[1].value
    assert list(profile.columns) == ["predicted", "lower", "upper", "group_mean", "truth"]
    assert (profile["lower"] <= profile["predicted"]).all() and (profile["predicted"] <= profile["upper"]).all()
    absent = next(t for t in Study.open(on_donors.path).cohort().tissues if t not in given)
    at.selectbox(key="donor_target").set_value(absent).run()  # one the donor did not give: predicted, no truth
    assert_clean(at)
    assert not at.metric and "truth" not in at.dataframe[1].value.columns


def test_a_study_with_donors_but_no_results_gives_the_command(monkeypatch, tmp_path):
    cohort = simulate_cohort(n_donors=12, n_genes=400, seed=2)
    path = write_study(tmp_path / "plain", cohort, {"mean_all": ("mean", None)}, title="No results", umap=False)
    with app_on(monkeypatch, tmp_path, path):
        at = open_app(PAGE)
        assert_clean(at)
        assert any(f"study add-donors --study {path}" in i.value for i in at.info)


def test_a_study_without_donors_says_why_it_has_nothing_to_show(monkeypatch, tmp_path):
    path = build_probe_study(tmp_path / "probes")  # a microarray-like matrix: no donor column
    with app_on(monkeypatch, tmp_path, path):
        at = open_app(PAGE)
        assert_clean(at)
        message = " ".join(i.value for i in at.info)
        assert "nothing to show" in message and "donor column" in message
        assert not charts(at)


def test_an_uploaded_donor_gets_the_chosen_tissue_predicted(on_donors, tmp_path):
    cohort = Study.open(on_donors.path).cohort()
    test = cohort.split("test")
    donor = test.samples["donor_id"].value_counts().index[0]
    rows = np.flatnonzero(test.samples["donor_id"] == donor)
    raw = pd.DataFrame(test.raw()[rows], index=test.samples["sample_id"].iloc[rows], columns=test.genes["symbol"])
    samples = test.samples.iloc[rows][["sample_id", "tissue"]]
    absent = next(t for t in cohort.tissues if t not in set(samples["tissue"]))
    at = open_app(PAGE)
    at.radio(key="donor_mode").set_value("Upload a donor's samples").run()
    at.selectbox(key="donor_upload_target").set_value(absent)
    at.file_uploader(key="donor_expr").set_value(("donor.csv", raw.to_csv().encode(), "text/csv"))
    at.file_uploader(key="donor_samples").set_value(("samples.csv", samples.to_csv(index=False).encode(), "text/csv"))
    at.run()
    assert_clean(at)
    result = at.dataframe[-1].value
    assert list(result.columns) == [f"uploaded donor | {absent}"] and len(result) == 3 * cohort.n_genes
    at.file_uploader(key="donor_samples").set_value(("samples.csv", b"sample_id,tissue\nnope,Lung\n", "text/csv")).run()
    assert not at.exception and "no row for" in " ".join(e.value for e in at.error)
