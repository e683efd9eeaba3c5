"""Every malformed upload through the app's Impute page (Streamlit AppTest).

Each bad file gets a specific ``st.error`` naming the file as uploaded (never a temp path), the page
stays usable (the next good upload imputes), and nothing is written outside a temporary directory.
The model is a group-mean imputer in a small study written here (seconds), selected in the app.
"""

from __future__ import annotations

import re
import shutil
import tomllib

import bad_inputs as corpus
import pytest
from streamlit.testing.v1 import AppTest
from studies import APP, REPO, clear_caches, point_app_at, write_study

from gtex_models.data.readers.errors import MAX_INPUT_MB, InputError
from gtex_models.data.simulate import simulate_cohort
from gtex_models.interfaces import upload as pipeline
from gtex_models.studies.study import MODELS_DIR

TISSUE = "Whole Blood"
KEY = "mean_all"


@pytest.fixture(scope="module")
def app_model(tmp_path_factory):
    """``(cohort, study folder)``: a small study holding one model (a group-mean imputer), selected at start."""
    cohort = simulate_cohort(n_donors=20, n_genes=400, seed=1)
    directory = write_study(tmp_path_factory.mktemp("study") / "study", cohort, {KEY: ("mean", None)},
                            title="Bad inputs", benchmark=False)
    clear_caches()
    with pytest.MonkeyPatch.context() as monkeypatch:
        point_app_at(monkeypatch, directory, studies_dir=tmp_path_factory.mktemp("no_studies"))
        yield cohort, directory
    clear_caches()


def open_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def upload(at: AppTest, case: corpus.Case) -> AppTest:
    at.file_uploader(key="expression_file").set_value((case.name, case.path.read_bytes(), "text/csv"))
    return at.run()


def assert_error(at: AppTest, pattern: str, case: corpus.Case) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1, [e.value for e in at.error]
    message = at.error[0].value
    assert re.search(pattern, message, re.S), message
    assert str(case.path.parent) not in message and "gtex-upload-" not in message  # the name, not a path
    assert at.file_uploader(key="expression_file")  # the page is still there


def assert_imputes(at: AppTest) -> AppTest:
    """Choose the tissue if asked, then expect a finished imputation and its table."""
    if at.selectbox(key="upload_tissue").value is None:
        at.selectbox(key="upload_tissue").set_value(TISSUE)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.success and "Imputed" in at.success[0].value
    assert at.dataframe
    return at


def test_every_bad_upload_gets_its_error_and_the_page_stays_usable(app_model, tmp_path, monkeypatch):
    cohort, _ = app_model
    at = open_page()
    for name, builder in corpus.EXPRESSION_ERRORS.items():
        directory = tmp_path / name
        directory.mkdir()
        case = builder(directory, cohort.genes)
        with monkeypatch.context() as patch:
            for key, value in case.env:
                patch.setenv(key, value)
            upload(at, case)
        assert_error(at, case.expected_error("impute"), case)
    good = corpus.case_bom_crlf(tmp_path, cohort.genes)
    assert_imputes(upload(at, good))


@pytest.mark.parametrize("name", ["no_model_gene"])
def test_upload_without_a_model_gene(name, app_model, tmp_path):
    case = corpus.MODEL_CASES[name](tmp_path, app_model[0].genes)
    at = upload(open_page(), case)
    assert_error(at, case.error, case)
    assert_imputes(upload(at, corpus.case_mixed_ids(tmp_path, app_model[0].genes)))


def test_low_coverage_warns_and_still_imputes(app_model, tmp_path):
    case = corpus.case_low_coverage(tmp_path, app_model[0].genes)
    at = assert_imputes(upload(open_page(), case))
    assert any(re.search(case.warning, w.value) for w in at.warning), [w.value for w in at.warning]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Model genes in upload"] == "4 / 400"
    assert "4 samples x 400 genes (396 genes added from the model)" in at.success[0].value
    assert at.dataframe[0].value.shape == (4, 60)  # the preview's first columns; the download has all 400


def test_accepted_uploads_impute(app_model, tmp_path):
    """BOM + CRLF, NA tokens, mixed and versioned IDs, empty samples/genes, square genes x samples."""
    at = open_page()
    for name, builder in corpus.ACCEPTED.items():
        directory = tmp_path / name
        directory.mkdir()
        case = builder(directory, app_model[0].genes)
        assert_imputes(upload(at, case))
        warning = case.expected_warning("impute")
        if warning:
            assert any(re.search(warning, w.value) for w in at.warning), [w.value for w in at.warning]
        assert not any(str(directory) in w.value or "gtex-upload-" in w.value for w in at.warning)


def test_unknown_tissue_in_the_sample_table_suggests_names(app_model, tmp_path):
    case = corpus.case_bom_crlf(tmp_path, app_model[0].genes)
    at = upload(open_page(), case)
    at.radio[0].set_value("Per sample, from a sample table").run()
    sheet = "sample_id,tissue\nS1,Lung\nS2,Lung\nS3,Brain - Cortx\nS4,Lung\n"
    at.file_uploader(key="sample_table").set_value(("samples.csv", sheet.encode(), "text/csv"))
    at.run()
    assert_error(at, r"Unknown tissue 'Brain - Cortx' \(did you mean 'Brain - Cortex'", case)
    fixed = sheet.replace("Brain - Cortx", "Brain - Cortex")
    at.file_uploader(key="sample_table").set_value(("samples.csv", fixed.encode(), "text/csv"))
    at.run()
    assert not at.error and at.success


@pytest.mark.parametrize("kind", ["foreign", "pickle", "truncated"])
def test_a_broken_checkpoint_is_reported_not_raised(kind, app_model, tmp_path, monkeypatch):
    _, directory = app_model
    good = directory / MODELS_DIR / f"{KEY}.safetensors"
    broken = tmp_path / "broken"
    shutil.copytree(directory, broken)
    case = {"foreign": corpus.checkpoint_foreign, "pickle": corpus.checkpoint_pickle}.get(
        kind, lambda d: corpus.checkpoint_truncated(d, good))(tmp_path)
    (broken / MODELS_DIR / f"{KEY}.safetensors").write_bytes(case.path.read_bytes())
    point_app_at(monkeypatch, broken, studies_dir=tmp_path / "no_studies")
    clear_caches()
    try:
        at = open_page()
        assert at.error, "a broken checkpoint must be reported"
        assert re.search(r"not a GTEx Imputation Studio checkpoint|is truncated", at.error[0].value)
        assert "study add-model" in at.error[0].value  # how to fix it
    finally:
        clear_caches()


# ------------------------------------------------------------------------------------- limits and safety
def test_upload_limit_is_configured_and_enforced_in_code(monkeypatch):
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == MAX_INPUT_MB
    monkeypatch.delenv("GTEX_MAX_INPUT_MB", raising=False)
    data = b"x" * (MAX_INPUT_MB * 2**20 + 1)
    with pytest.raises(InputError, match=rf"big\.csv is 200\.0 MB, above the upload limit of {MAX_INPUT_MB} MB"):
        pipeline.read_upload(data, "big.csv")


def test_uploads_are_parsed_in_a_temp_dir_and_never_written_elsewhere(app_model, tmp_path, monkeypatch):
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.chdir(tmp_path)
    good = corpus.case_bom_crlf(tmp_path, app_model[0].genes).path.read_bytes()
    table = pipeline.read_upload(good, "../../escape.csv")  # a hostile name: only its last part is used
    assert table.sample_ids == ["S1", "S2", "S3", "S4"]
    with pytest.raises(InputError, match=r"^escape\.csv: the header line parses into a single column"):
        pipeline.read_upload(b"a b c\n1 2 3\n", "../../escape.csv")
    assert not list(scratch.iterdir())  # the temp dir is gone
    assert not (tmp_path.parent / "escape.csv").exists() and not (tmp_path / "escape.csv").exists()
