"""The app's model picker opens on the model the study recommends (issue #26, point 4), and says which one it is,
also when the recommendation is a benchmark baseline that is not one of the study's models; on a real
microarray cohort (Bioconductor's sample.ExpressionSet: probe IDs, Case/Control)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from studies import app_on, assert_clean, open_app, write_study

from gtex_models.data.readers import import_table
from gtex_models.studies.study import MANIFEST, Study
from pages._shared import MODEL_KEY

DATA = Path(__file__).resolve().parent / "data" / "biobase_sample"


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # probe IDs, negative values set to 0: expected
        cohort = import_table(DATA / "expression.csv", DATA / "samples.csv", tissue_column="group", negatives="clip")
    return write_study(tmp_path_factory.mktemp("recommended") / "study", cohort,
                       {"mean_all": ("mean", None), "knn_all": ("knn", None)}, title="Biobase sample", umap=False)


def recommend(study: Path, checkpoint: str | None, method: str = "knn") -> None:
    """Write ``study build``'s recommendation into the manifest (None: a study built without one)."""
    manifest = json.loads((study / MANIFEST).read_text())
    manifest.pop("recommended", None)
    if checkpoint is not None:
        manifest["recommended"] = {"method": method, "checkpoint": checkpoint, "valid_r2_mean": 0.4321,
                                   "test_r2_mean": 0.4, "rates": [0.2, 0.5, 0.8]}
    (study / MANIFEST).write_text(json.dumps(manifest))


def sidebar_text(at) -> str:
    return " ".join(c.value for c in at.sidebar.caption)


def test_the_picker_opens_on_the_recommended_model(monkeypatch, tmp_path, study_dir):
    recommend(study_dir, "models/knn_all.safetensors")
    with app_on(monkeypatch, tmp_path, study_dir) as study:
        assert study.recommended_key == "knn_all"
        at = open_app(study=study_dir)
        assert_clean(at, warnings=False)
        assert at.session_state[MODEL_KEY] == "knn_all"  # not the first model
        picker = at.sidebar.selectbox(key=MODEL_KEY)
        assert picker.format_func("knn_all").endswith("· recommended") and "recommended" not in picker.format_func("mean_all")
        assert "Recommended for new samples: **KNN** (validation R² 0.432 at 20%, 50%, 80% missing)" in sidebar_text(at)
        at = open_app("pages/benchmark.py", at=at)
        assert any("Recommended for new samples: **KNN**" in m.value for m in at.markdown)


def test_a_recommended_baseline_is_named_with_how_to_use_it(monkeypatch, tmp_path, study_dir):
    recommend(study_dir, "baselines/gauss_inductive.safetensors", method="gauss")
    with app_on(monkeypatch, tmp_path, study_dir) as study:
        assert study.recommended_key is None
        at = open_app(study=study_dir)
        assert_clean(at, warnings=False)
        assert at.session_state[MODEL_KEY] == "mean_all"
        text = sidebar_text(at)
        assert "**Gaussian conditional**" in text and "a baseline of the benchmark" in text
        assert f"{study_dir}/baselines/gauss_inductive.safetensors" in text


def test_a_study_without_a_recommendation_says_so(monkeypatch, tmp_path, study_dir):
    recommend(study_dir, None)
    with app_on(monkeypatch, tmp_path, study_dir) as study:
        assert study.recommendation is None and study.recommended_key is None
        at = open_app(study=study_dir)
        assert at.session_state[MODEL_KEY] == "mean_all"
        assert "recommends no model" in sidebar_text(at)
        assert Study.open(study_dir).recommendation is None
