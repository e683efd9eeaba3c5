"""The Tissue R² page's second cohort (Viñas et al. 2021, Fig. 4), driven with Streamlit's AppTest: on the
simulated demo a shifted copy of its test donors, on a user's one-group microarray-like study an uploaded
cohort; what is shown must be what :func:`~gtex_models.analysis.other_cohort.compare_cohorts` gives on the same inputs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from studies import app_on, assert_clean, open_app, probe_matrix, write_study
from test_app_pages import array, charts

from gtex_models.analysis.benchmark import DEFAULT_RATES
from gtex_models.analysis.other_cohort import compare_cohorts, shifted_test_donors
from gtex_models.data.readers import import_table
from gtex_models.interfaces.upload import import_uploads
from gtex_models.models.model_space import ModelSpace
from gtex_models.studies.demo import CACHE_DIR

PAGE = "pages/tissue_r2.py"
SHIFTED = "Shifted copy of the test donors (simulated platform shift)"
RATES = [f"{r:g}" for r in DEFAULT_RATES]


@pytest.fixture(scope="module")
def one_group_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's study unlike GTEx: probe IDs, one group, no sex or age, not simulated; PMI (tiny)."""
    directory = tmp_path_factory.mktemp("one_group")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # probe IDs: "neither gene symbols nor Ensembl IDs"
        cohort = import_table(*probe_matrix(directory / "files"), tissue_column="condition")
    cohort.samples["tissue"] = "All samples"
    return write_study(directory / "study", cohort, {"pmi_all": ("pmi", None)}, title="One group", benchmark=False,
                       umap=False)


@pytest.fixture(scope="module")
def other_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """Another microarray-like cohort on the same probes (other effects): expression and sample table bytes."""
    expression, samples = probe_matrix(tmp_path_factory.mktemp("other"), n_samples=24, seed=7)
    return expression.read_bytes(), samples.read_bytes()


def shown_table(at: AppTest) -> pd.DataFrame:
    return at.dataframe[-1].value


def compare(at: AppTest) -> AppTest:
    at.button(key="compare_cohorts").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_shifted_demo_cohort_is_drawn_beside_the_own_test_donors(monkeypatch, tmp_path):
    with app_on(monkeypatch, tmp_path) as demo:
        at = open_app(PAGE)
        assert at.radio(key="second_cohort").value == "None" and not at.button  # by default the page as before
        at.radio(key="second_cohort").set_value(SHIFTED).run()
        assert at.multiselect(key="shift_tissues").value == ["Whole Blood"]  # the first tissue chosen above
        before = len(at.dataframe)
        at = compare(at)
        assert_clean(at)
        cohort = demo.cohort(CACHE_DIR)
        imputer, metadata = demo.load_model("pmi_all")
        expected = compare_cohorts(imputer, ModelSpace.from_metadata(metadata),
                                   shifted_test_donors(cohort, ["Whole Blood"]), metadata, ("own",), DEFAULT_RATES,
                                   own=cohort)
        shown = shown_table(at)
        assert len(at.dataframe) == before + 1
        assert list(shown["cohort"]) == ["own test donors", "other cohort"]
        np.testing.assert_allclose(shown[RATES].to_numpy(float), expected.table[RATES].to_numpy(float), rtol=1e-6)
        lines = [t for t in charts(at)[-1]["data"] if t["mode"] == "lines+markers"]
        assert [t["name"] for t in lines] == ["own test donors", "other cohort (own)"]
        assert "1,800 of the model's 2,000" in at.markdown[-1].value  # the alignment report
        assert any(b.label.startswith("Download R² across rates of both") for b in at.get("download_button"))


@pytest.fixture()
def on_one_group(monkeypatch, tmp_path, one_group_study):
    with app_on(monkeypatch, tmp_path, one_group_study) as study:
        yield study


def upload(at: AppTest, key: str, data: bytes, name: str) -> AppTest:
    at.file_uploader(key=key).set_value((name, data, "text/csv"))
    return at.run()


def test_an_uploaded_cohort_on_a_one_group_user_study(on_one_group, other_files):
    expression, samples = other_files
    at = open_app(PAGE)
    assert SHIFTED not in at.radio(key="second_cohort").options  # not a simulated study
    at.radio(key="second_cohort").set_value("Upload a cohort").run()
    at = upload(at, "other_expression", expression, "other.csv")
    assert at.selectbox(key="other_target").value == "All samples"  # one group, the model's only group
    at = compare(at)
    assert_clean(at, warnings=False)
    imputer, metadata = on_one_group.load_model("pmi_all")
    other = import_uploads((expression, "other.csv"))
    expected = compare_cohorts(imputer, ModelSpace.from_metadata(metadata), other, metadata, ("own",), DEFAULT_RATES,
                               {"Unknown": "All samples"}, own=on_one_group.cohort())
    shown = shown_table(at)
    assert list(shown["cohort"]) == ["own test donors", "other cohort"]
    np.testing.assert_allclose(shown[RATES].to_numpy(float), expected.table[RATES].to_numpy(float), rtol=1e-6)
    # a sample table and a group map: one of its three groups mapped, the others left out with a warning
    at = upload(at, "other_samples", samples, "samples.csv")
    assert at.selectbox(key="other_group_column").value == "condition"
    at = upload(at, "other_group_map", b"group,tissue\ntumour,All samples\n", "map.csv")
    at.multiselect(key="harmonisations").set_value(["own", "quantile"]).run()
    at = compare(at)
    assert not at.error and "tumour -> All samples" in at.markdown[-1].value
    assert len(at.warning) == 1 and "left out" in at.warning[0].value
    assert list(shown_table(at)["harmonisation"]) == ["training", "own", "quantile"]


@pytest.mark.parametrize("case, message", [
    ("garbage", "other.csv"),
    ("no genes in common", "None of the model's"),
    ("too few samples", "at least 3 are needed"),
    ("unknown tissue in the map", "tissues the model does not know"),
])
def test_bad_second_cohorts_are_errors_not_crashes(on_one_group, other_files, case, message):
    expression, _ = other_files
    frame = pd.read_csv(pd.io.common.BytesIO(expression), index_col=0)
    data = {"garbage": b"\x00\x01binary\xff\xfe",
            "no genes in common": frame.set_axis([f"ENSG{i:011d}" for i in range(len(frame))]).to_csv().encode(),
            "too few samples": frame.iloc[:, :2].to_csv().encode()}.get(case, expression)
    at = open_app(PAGE)
    at.radio(key="second_cohort").set_value("Upload a cohort").run()
    at = upload(at, "other_expression", data, "other.csv")
    if case == "unknown tissue in the map":
        at = upload(at, "other_group_map", b"Unknown,Liver\n", "map.csv")
    if not at.error:
        at = compare(at)
    assert not at.exception and len(at.error) == 1 and message in at.error[0].value, [e.value for e in at.error]


def test_curves_of_one_tissue_when_several_are_shifted(monkeypatch, tmp_path):
    """With two shifted tissues the chart starts pooled; "Curves of" a tissue draws that tissue's curves."""
    with app_on(monkeypatch, tmp_path):
        at = open_app(PAGE)
        at.radio(key="second_cohort").set_value(SHIFTED).run()
        at.multiselect(key="shift_tissues").set_value(["Lung", "Whole Blood"]).run()
        at = compare(at)
        assert_clean(at)

        def curves() -> dict[str, list[float]]:
            return {t["name"]: array(t["y"]) for t in charts(at)[-1]["data"] if t["mode"] == "lines+markers"}

        pooled = curves()
        assert at.selectbox(key="compare_tissue").options == ["All tissues pooled", "Lung", "Whole Blood"]
        at.selectbox(key="compare_tissue").set_value("Lung").run()
        lung = curves()
        assert set(lung) == set(pooled) == {"own test donors", "other cohort (own)"}
        assert not np.allclose(lung["other cohort (own)"], pooled["other cohort (own)"])
