"""Pages name a study's groups and values as what they are (issue #27, point 6): a real microarray cohort
(Bioconductor's sample.ExpressionSet: probe IDs, MAS5 signal, Case/Control) is never "tissues" in
"log2(TPM + 1)"; the GTEx-shaped demo keeps its tissues."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from studies import app_on, assert_clean, open_app, write_study

from gtex_models.data.readers import import_table
from gtex_models.interfaces.naming import Words
from pages._shared import _words

DATA = Path(__file__).resolve().parent / "data" / "biobase_sample"


@pytest.fixture(scope="module")
def biobase_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # probe IDs, 327 negative values set to 0: expected
        cohort = import_table(DATA / "expression.csv", DATA / "samples.csv", tissue_column="group", negatives="clip")
    return write_study(tmp_path_factory.mktemp("biobase") / "biobase", cohort, {"knn_all": ("knn", None)},
                       title="Biobase sample", umap=False)


def test_a_real_microarray_study_is_named_as_one(monkeypatch, tmp_path, biobase_study):
    with app_on(monkeypatch, tmp_path, biobase_study) as study:
        assert _words(str(study.path.resolve()), (study.path / "study.json").stat().st_mtime_ns) == \
            Words("group", "log2(signal + 1)", "signal")
        at = open_app("pages/tissue_r2.py", study=biobase_study)
        assert_clean(at, warnings=False)
        assert [t.value for t in at.title] == ["Group R²"]
        shown = " ".join(e.value for kind in ("caption", "markdown", "subheader", "info") for e in getattr(at, kind))
        assert "tissue" not in shown.lower() and "TPM" not in shown
        assert "All groups" in [at.multiselect[0].format_func(o) for o in at.multiselect[0].options]
        at = open_app("pages/benchmark.py", at=at)
        assert "Groups" in {m.label for m in at.metric} and "Tissues" not in {m.label for m in at.metric}
        assert any("Values modelled as log2(signal + 1)" in c.value for c in at.caption)


def test_the_demo_keeps_its_tissues(monkeypatch, tmp_path):
    with app_on(monkeypatch, tmp_path):
        at = open_app("pages/tissue_r2.py")
        assert [t.value for t in at.title] == ["Tissue R²"]
        assert "All tissues" in [at.multiselect[0].format_func(o) for o in at.multiselect[0].options]
        at = open_app("pages/benchmark.py", at=at)
        assert {m.label: m.value for m in at.metric}["Tissues"] == "49"
        assert any("Values modelled as log2(TPM + 1)" in c.value for c in at.caption)
