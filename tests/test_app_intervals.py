"""The app's calibrated intervals: the Impute page's interval columns, "Try it"'s coverage, the model page's
calibration view, on the demo and on a one-group probe study."""

from __future__ import annotations

import numpy as np
import pytest
from studies import app_on, assert_clean, clear_caches, open_app, point_app_at, write_study
from test_app_pages import array, charts
from test_calibration import probe_cohort

from gtex_models.interfaces.try_it import example_upload
from gtex_models.studies.demo import CACHE_DIR, DEMO_DIR
from gtex_models.studies.study import Study
from pages._shared import _background_board

UPLOAD_TISSUE = "Whole Blood"


@pytest.fixture()
def on_demo(monkeypatch, tmp_path):
    with app_on(monkeypatch, tmp_path) as study:
        yield study


def test_impute_page_shows_calibrated_interval_columns_for_pmi(on_demo):
    upload = example_upload(Study.open(DEMO_DIR).cohort(CACHE_DIR), UPLOAD_TISSUE)
    at = open_app(study=DEMO_DIR, model="pmi_all")
    at.file_uploader(key="expression_file").set_value(("partial.csv", upload.to_csv().encode(), "text/csv")).run()
    at.selectbox(key="upload_tissue").set_value(UPLOAD_TISSUE).run()
    assert_clean(at)
    assert at.toggle(key="interval_columns").value
    shown = at.dataframe[0].value
    gene = upload.columns[0]
    assert list(shown.columns[:3]) == [gene, f"{gene}_lower", f"{gene}_upper"]
    hidden = upload[gene].isna().to_numpy()
    assert hidden.any() and (~hidden).any()
    values, lower, upper = (shown[c].to_numpy() for c in (gene, f"{gene}_lower", f"{gene}_upper"))
    assert (lower[hidden] < values[hidden]).all() and (values[hidden] < upper[hidden]).all()
    np.testing.assert_allclose(lower[~hidden], values[~hidden]) and np.testing.assert_allclose(upper[~hidden], values[~hidden])
    assert any("Calibrated 90% intervals" in c.value for c in at.caption)
    chart = charts(at)[-1]
    assert chart["layout"]["yaxis"]["title"]["text"] == "Imputed expression (log2(TPM + 1))"
    assert "calibrated 90% interval" in chart["data"][0]["name"]
    at.toggle(key="interval_columns").set_value(False).run()
    assert f"{gene}_lower" not in at.dataframe[0].value.columns


def test_try_it_reports_the_coverage_of_the_hidden_values(on_demo):
    at = open_app(study=DEMO_DIR, model="pmi_all")
    at.segmented_control(key="impute_mode").set_value("Try it on held-out samples").run()
    assert_clean(at)
    metrics = {m.label: m.value for m in at.metric}
    coverage = float(metrics["Inside their 90% interval"].rstrip("%")) / 100
    assert 0.8 < coverage < 0.98


def test_the_model_page_shows_coverage_per_rate_and_group(on_demo):
    at = open_app("pages/benchmark.py", study=DEMO_DIR, model="pmi_all")
    assert_clean(at)
    curves = next(c for c in charts(at) if c["layout"]["xaxis"]["title"]["text"] == "Nominal level")
    assert len(curves["data"]) == 6  # the diagonal and 5 missing rates
    for trace in curves["data"][1:]:
        np.testing.assert_allclose(array(trace["y"]), array(trace["x"]), atol=0.04)  # close to the diagonal


def test_a_one_group_probe_study_gets_intervals_too(monkeypatch, tmp_path):
    study = write_study(tmp_path / "probes", probe_cohort(), {"knn_all": ("knn", None)}, title="Probes",
                        benchmark=False, umap=False)
    point_app_at(monkeypatch, study, studies_dir=tmp_path / "none")
    clear_caches()
    at = open_app(study=study, model="knn_all")
    at.segmented_control(key="impute_mode").set_value("Try it on held-out samples").run()
    assert_clean(at)
    assert "Inside their 90% interval" in {m.label for m in at.metric}
    at = open_app("pages/benchmark.py", study=study, model="knn_all")
    assert_clean(at)
    clear_caches()


def finish_coverage(at):
    """The model page once its background jobs (the coverage on the test donors) have ended."""
    for job in list(_background_board()[1].values()):
        assert job.wait(300) and job.state == "done", job.error
    return at.run()


def test_intervals_calibrated_on_the_test_donors_are_refused_on_the_model_page_and_in_try_it(monkeypatch, tmp_path):
    """A checkpoint whose stored calibration saw the study's test donors (made elsewhere, on another split): the
    model page refuses their coverage and Try it flags it instead of showing an optimistic coverage. One stored
    before calibrations recorded their donors is shown, saying that this cannot be checked."""
    from gtex_models.models.calibration import Calibration, calibrate
    from gtex_models.models.checkpoints import attach_calibration, load_checkpoint

    cohort = probe_cohort()
    study = write_study(tmp_path / "probes", cohort, {"mean_all": ("mean", None)}, title="Probes", benchmark=False,
                        umap=False)
    point_app_at(monkeypatch, study, studies_dir=tmp_path / "none")
    clear_caches()
    at = finish_coverage(open_app("pages/benchmark.py", study=study, model="mean_all"))  # calibrated there
    assert_clean(at)
    assert any("valid donors (digest" in c.value for c in at.caption)
    checkpoint = study / "models" / "mean_all.safetensors"
    imputer = load_checkpoint(checkpoint)[0]
    arrays, header = calibrate(imputer, cohort.split("valid")).to_state()
    header["info"].pop("donors")
    attach_calibration(checkpoint, Calibration.from_state(arrays, header))
    clear_caches()
    at = finish_coverage(open_app("pages/benchmark.py", study=study, model="mean_all"))
    assert_clean(at)
    assert any("cannot be checked" in c.value for c in at.caption)
    assert any(c["layout"]["xaxis"]["title"]["text"] == "Nominal level" for c in charts(at))
    attach_calibration(checkpoint, calibrate(imputer, cohort.split("test")))
    clear_caches()
    at = open_app("pages/benchmark.py", study=study, model="mean_all")
    assert any("The interval calibration was fitted on" in e.value for e in at.error)
    assert not any(c["layout"]["xaxis"]["title"]["text"] == "Nominal level" for c in charts(at))
    at = open_app(study=study, model="mean_all")
    at.segmented_control(key="impute_mode").set_value("Try it on held-out samples").run()
    assert not at.exception and not at.error
    assert any("The interval calibration was fitted on" in w.value for w in at.warning)
    assert "Inside their 90% interval" not in {m.label for m in at.metric}
    clear_caches()
