"""What a study stores so that its pages open at once (gtex_models.studies.precompute), and the Benchmark &
model card page: the stored coverage at once, else scored in the background with its progress while the
rest of the page is ready."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from studies import APP, TIMEOUT, clear_caches, point_app_at, probe_matrix
from test_app_pages import charts

from gtex_models.analysis.embeddings import tissue_embeddings
from gtex_models.analysis.panels import default_panel
from gtex_models.data.readers import import_table
from gtex_models.data.simulate import simulate_cohort
from gtex_models.interfaces.cli.main import main
from gtex_models.models.model_space import ModelSpace, cohort_for_model
from gtex_models.models.registry import DEEP_METHODS
from gtex_models.studies.build import build_study
from gtex_models.studies.demo import DEMO_DIR
from gtex_models.studies.precompute import (
    COVERAGE_TABLE,
    coverage_path,
    embeddings_path,
    interval_coverage,
    panel_path,
    precompute_study,
    stored_default_panel,
    stored_embeddings,
    stored_no_coverage,
)
from gtex_models.studies.study import Study
from pages._shared import SELECTED_MODEL, SELECTED_STUDY, _background_board

PAGE = "pages/benchmark.py"


@pytest.fixture(autouse=True)
def no_job_left_running():
    """Every test ends with the app's background jobs finished and its caches empty, even when it fails (a job
    still running when the process exits aborts it)."""
    yield
    clear_caches()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study built as the CLI and the New study page build one: two calibrated models, their coverage stored."""
    cohort = simulate_cohort(n_donors=30, n_genes=400, seed=4)
    return build_study(cohort, tmp_path_factory.mktemp("built") / "study", models=["mean", "knn"], baselines=(),
                       title="Built here").path


def test_a_built_study_stores_each_models_coverage(built):
    study = Study.open(built)
    for key in ("mean_all", "knn_all"):
        imputer, metadata = study.load_model(key)
        assert metadata["calibration"] is not None
        expected = interval_coverage(imputer, metadata["calibration"], ModelSpace.from_metadata(metadata),
                                     study.cohort())
        pd.testing.assert_frame_equal(study.optional_table(key, COVERAGE_TABLE), expected, check_dtype=False)
    assert not study.problems


def test_precompute_adds_what_a_study_lacks_and_only_that(built, tmp_path, capsys):
    study = shutil.copytree(built, tmp_path / "older")
    stored = pd.read_csv(coverage_path(study, "knn_all"))
    coverage_path(study, "knn_all").unlink()  # as a study built before coverage was stored
    assert precompute_study(study) == ["knn_all: interval_coverage"]
    pd.testing.assert_frame_equal(pd.read_csv(coverage_path(study, "knn_all")), stored)
    assert precompute_study(study) == []
    assert main(["study", "precompute", "--study", str(study), "--models", "mean_all", "--overwrite"]) == 0
    assert f"Stored in {study}: mean_all: interval_coverage" in capsys.readouterr().out
    assert main(["study", "precompute", "--study", str(study), "--models", "pmi_all"]) == 2
    assert "has no model pmi_all; it has mean_all, knn_all" in capsys.readouterr().err


def test_the_committed_demo_stores_the_coverage_embeddings_and_default_panel_of_every_model():
    study = Study.open(DEMO_DIR)
    wanted = {key: (coverage_path, panel_path) + ((embeddings_path,) if entry.method in DEEP_METHODS else ())
              for key, entry in study.models.items()}  # a tissue embedding is learnt by the deep models only
    missing = [path(DEMO_DIR, key).name for key, paths in wanted.items() for path in paths
               if not path(DEMO_DIR, key).is_file()]
    assert not missing, f"run `python -m gtex_models study precompute --study data/demo` ({missing})"


def test_the_demos_stored_embeddings_and_default_panel_are_what_its_model_gives_now():
    study = Study.open(DEMO_DIR)
    imputer, metadata = study.load_model("pmi_p53")
    pd.testing.assert_frame_equal(stored_embeddings(DEMO_DIR, "pmi_p53"), tissue_embeddings(imputer),
                                  check_dtype=False, atol=1e-6)
    live = default_panel(imputer, cohort_for_model(study.cohort(), ModelSpace.from_metadata(metadata)))
    stored = stored_default_panel(DEMO_DIR, "pmi_p53")
    assert {k: stored[k] for k in ("strategy", "size", "columns")} == {k: live[k] for k in ("strategy", "size", "columns")}
    for part in ("per_group", "per_gene"):
        pd.testing.assert_frame_equal(pd.DataFrame(stored[part]), pd.DataFrame(live[part]), atol=1e-5)


@pytest.mark.parametrize(("page", "shown"), [("pages/panels.py", "metric"), ("pages/embeddings.py", "chart")])
def test_the_panels_and_embeddings_pages_open_from_the_stored_results_without_loading_the_model(
        monkeypatch, tmp_path, page, shown):
    def no_model(path):
        raise AssertionError(f"the first screen loaded the model {path}")

    monkeypatch.setattr("pages._shared.load_checkpoint", no_model)
    point_app_at(monkeypatch, DEMO_DIR, studies_dir=tmp_path / "none")
    clear_caches()
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state[SELECTED_STUDY] = str(DEMO_DIR.resolve())
    at.session_state[SELECTED_MODEL] = "pmi_alzheimer"
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    if shown == "metric":
        stored = stored_default_panel(DEMO_DIR, "pmi_alzheimer")
        assert at.metric[0].value == f"{pd.Series(stored['per_gene']['r2']).mean():.3f}"
    else:
        assert charts(at)
    clear_caches()


def open_page(study: Path, model: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state[SELECTED_STUDY] = str(study.resolve())
    at.session_state[SELECTED_MODEL] = model
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def coverage_chart(at: AppTest) -> dict | None:
    return next((c for c in charts(at) if c["layout"]["xaxis"]["title"]["text"] == "Nominal level"), None)


def test_the_page_shows_stored_coverage_at_once(monkeypatch, tmp_path, built):
    point_app_at(monkeypatch, built, studies_dir=tmp_path / "none")
    clear_caches()
    at = open_page(built, "knn_all")
    assert coverage_chart(at) is not None and not at.get("progress")
    assert not _background_board()[1]  # nothing computed
    clear_caches()


@pytest.mark.parametrize("read_only", [False, True])
def test_without_stored_coverage_the_page_scores_it_in_the_background(monkeypatch, tmp_path, built, read_only):
    study = shutil.copytree(built, tmp_path / "older")
    coverage_path(study, "knn_all").unlink()
    point_app_at(monkeypatch, study, studies_dir=tmp_path / "none")
    monkeypatch.setenv("GTEX_READ_ONLY", "1" if read_only else "0")
    clear_caches()
    at = open_page(study, "knn_all")
    assert at.get("progress") and coverage_chart(at) is None  # the progress, where the chart will be
    assert any("being scored in the background" in i.value for i in at.info)  # said at the top
    assert {m.label: m.value for m in at.metric}["Samples"] == f"{Study.open(study).cohort().n_samples:,}"
    (job,) = _background_board()[1].values()
    assert job.wait(300) and job.state == "done", job.error
    at.run()
    assert coverage_chart(at) is not None and not at.get("progress")
    assert coverage_path(study, "knn_all").is_file() != read_only  # kept for the next server, unless read-only
    if not read_only:
        pd.testing.assert_frame_equal(pd.read_csv(coverage_path(study, "knn_all")),
                                      pd.read_csv(coverage_path(built, "knn_all")))
    clear_caches()


def test_a_refused_calibration_is_stored_with_its_reason_and_the_page_says_it_without_a_job(monkeypatch, tmp_path):
    """A 60-array microarray-like cohort: too few validation samples to calibrate, so the build stores why, and the
    Benchmark & model card page shows that at once (no background job that would be refused again)."""
    expression, samples = probe_matrix(tmp_path / "files")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # probe IDs, no calibration: expected here
        cohort = import_table(expression, samples, tissue_column="condition")
        study = build_study(cohort, tmp_path / "study", models=["mean"], baselines=(), title="Arrays").path
    why = stored_no_coverage(study, "mean_all")
    assert why and "calibration samples" in why and not coverage_path(study, "mean_all").is_file()
    assert precompute_study(study) == []  # what it stores counts as stored
    point_app_at(monkeypatch, study, studies_dir=tmp_path / "none")
    clear_caches()
    at = open_page(study, "mean_all")
    assert any(why in box.value for box in at.info) and not at.get("progress")
    assert not _background_board()[1]  # nothing computed
    clear_caches()
