"""The declared schemas: one malformed field at a time, in YAML configs and in checkpoint metadata.

Each case breaks one field of a valid document and expects a ``SchemaError`` / ``CheckpointError``
naming the file and the field (its dotted path), and nothing else breaking first.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

from gtex_models.common.schema import SchemaError
from gtex_models.models.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from gtex_models.models.oracle import OracleImputer
from gtex_models.models.registry import make_imputer
from gtex_models.models.schemas import settings_schema
from gtex_models.studies.experiment import Experiment

VALID_CONFIG = "method: pmi\nmodel: {hidden_sizes: [8]}\ntraining: {max_epochs: 1}\n"
# (config text, regex after "<file>: ") -- one field of the wrong type or out of range per case
CONFIG_ERRORS = {
    "method_int": ("method: 3\n", r"method: Input should be 'pmi', 'gain'.*\(got 3\)"),
    "method_list": ("method: [pmi]\n", r"method: Input should be 'pmi'.*\(got \['pmi'\]\)"),
    "method_unknown": ("method: magic\n", r"method: Input should be 'pmi'.*\(got 'magic'\)"),
    "method_missing": ("scenario: inductive\n", r"method: is required but missing"),
    "scenario": ("method: pmi\nscenario: inplaec\n", r"scenario: Input should be 'inductive' or 'inplace'"),
    "pathway": ("method: pmi\npathway: 7\n", r"pathway: Input should be 'alzheimer' or 'p53' \(got 7\)"),
    "missing_rate_list": ("method: pmi\nmissing_rate: [0.5]\n", r"missing_rate: Input should be a valid number \(got \[0\.5\]\)"),
    "missing_rate_text": ("method: pmi\nmissing_rate: half\n", r"missing_rate: Input should be a valid number"),
    "missing_rate_zero": ("method: pmi\nmissing_rate: 0\n", r"missing_rate: Input should be greater than 0"),
    "missing_rate_one": ("method: pmi\nmissing_rate: 1\n", r"missing_rate: Input should be less than 1"),
    "model_scalar": ("method: pmi\nmodel: 3\n", r"model: should be a mapping of key: value entries \(got 3\)"),
    "model_list": ("method: pmi\nmodel: [512]\n", r"model: should be a mapping"),
    "hidden_sizes_int": ("method: pmi\nmodel: {hidden_sizes: 16}\n", r"model\.hidden_sizes: should be a list \(got 16\)"),
    "hidden_sizes_text": ("method: pmi\nmodel: {hidden_sizes: [large]}\n",
                          r"model\.hidden_sizes\.0: Input should be a valid integer.*\(got 'large'\)"),
    "hidden_sizes_zero": ("method: pmi\nmodel: {hidden_sizes: [0]}\n", r"model\.hidden_sizes\.0: Input should be greater than or equal to 1"),
    "dropout_range": ("method: pmi\nmodel: {dropout: 1.5}\n", r"model\.dropout: Input should be less than 1 \(got 1\.5\)"),
    "m_low_list": ("method: pmi\nmodel: {m_low: [0.5]}\n", r"model\.m_low: Input should be a valid number"),
    "m_low_above_m_high": ("method: pmi\nmodel: {m_low: 0.9, m_high: 0.1}\n", r"model: m_low \(0\.9\) must not exceed m_high \(0\.1\)"),
    "model_typo": ("method: pmi\nmodel: {hiden_sizes: [8]}\n",
                   r"model\.hiden_sizes: is not a known key \(a typo\?\); allowed: hidden_sizes, dropout, m_low, m_high"),
    "gain_adversarial": ("method: gain\nmodel: {adversarial: maybe}\n", r"model\.adversarial: Input should be a valid boolean"),
    "knn_k_text": ("method: knn\nmodel: {k: many}\n", r"model\.k: Input should be a valid integer.*\(got 'many'\)"),
    "knn_k_zero": ("method: knn\nmodel: {k: 0}\n", r"model\.k: Input should be greater than or equal to 1"),
    "mice_neighbours": ("method: mice\nmodel: {n_nearest_features: -1}\n", r"model\.n_nearest_features: .*greater than or equal to 1"),
    "training_scalar": ("method: pmi\ntraining: fast\n", r"training: should be a mapping"),
    "lr_list": ("method: pmi\ntraining: {lr: [1.0e-3]}\n", r"training\.lr: Input should be a valid number \(got \[0\.001\]\)"),
    "lr_negative": ("method: pmi\ntraining: {lr: -1}\n", r"training\.lr: Input should be greater than 0"),
    "batch_size_one": ("method: pmi\ntraining: {batch_size: 1}\n", r"training\.batch_size: Input should be greater than or equal to 2"),
    "batch_size_fraction": ("method: pmi\ntraining: {batch_size: 3.5}\n", r"training\.batch_size: Input should be a valid integer"),
    "max_epochs_zero": ("method: pmi\ntraining: {max_epochs: 0}\n", r"training\.max_epochs: Input should be greater than or equal to 1"),
    "patience_text": ("method: pmi\ntraining: {patience: never}\n", r"training\.patience: Input should be a valid integer"),
    "max_seconds_negative": ("method: pmi\ntraining: {max_seconds: -5}\n", r"training\.max_seconds: Input should be greater than or equal to 0"),
    "precision": ("method: pmi\ntraining: {precision: fp8}\n", r"training\.precision: Input should be 'fp32', 'bf16' or 'auto' \(got 'fp8'\)"),
    "device": ("method: pmi\ntraining: {device: tpu}\n", r"training\.device: Input should be 'auto', 'cpu' or 'cuda'"),
    "seed_text": ("method: pmi\ntraining: {seed: lucky}\n", r"training\.seed: Input should be a valid integer"),
    "training_typo": ("method: pmi\ntraining: {learning_rate: 0.1}\n",
                      r"training\.learning_rate: is not a known key \(a typo\?\); allowed: batch_size, lr"),
    "training_for_a_baseline": ("method: mean\ntraining: {lr: 0.1}\n", r"training: the mean method has no training settings"),
    "checkpoint_scalar": ("method: pmi\ncheckpoint: float16\n", r"checkpoint: should be a mapping of key: value entries \(got 'float16'\)"),
    "checkpoint_dtype": ("method: pmi\ncheckpoint: {dtype: int8}\n", r"checkpoint\.dtype: Input should be 'float32' or 'float16'"),
    "checkpoint_typo": ("method: pmi\ncheckpoint: {dtpye: float16}\n", r"checkpoint\.dtpye: is not a known key \(a typo\?\); allowed: dtype"),
    "top_level_typo": ("method: pmi\nscenarion: inplace\n", r"scenarion: is not a known key \(a typo\?\); allowed: method, scenario"),
    "not_a_mapping": ("- method: pmi\n", r"\(the whole document\): should be a mapping"),
    "empty": ("", r"\(the whole document\): should be a mapping .*\(got None\)"),
    "not_yaml": ("method: pmi\n  model: [\n", r"is not valid YAML at line 2, column \d+"),
}


def write(tmp_path: Path, text: str | bytes, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_the_valid_config_the_cases_break_is_valid(tmp_path):
    experiment = Experiment.from_yaml(write(tmp_path, VALID_CONFIG))
    assert experiment.make_imputer().params["hidden_sizes"] == [8]


@pytest.mark.parametrize("case", list(CONFIG_ERRORS))
def test_each_config_field_error_names_the_file_and_the_key(case, tmp_path):
    text, pattern = CONFIG_ERRORS[case]
    path = write(tmp_path, text)
    with pytest.raises(SchemaError) as error:
        Experiment.from_yaml(path)
    assert str(error.value).startswith(str(path)), error.value
    assert re.search(pattern, str(error.value)), error.value


def test_a_binary_file_is_not_read_as_a_config(tmp_path):
    path = write(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00", "picture.yaml")
    with pytest.raises(SchemaError, match=r"picture\.yaml is not a UTF-8 text file"):
        Experiment.from_yaml(path)


def test_an_experiment_built_in_code_is_checked_too():
    with pytest.raises(SchemaError, match=r"The experiment: training\.lr: Input should be a valid number"):
        Experiment(method="pmi", training={"lr": [1e-3]})


def test_settings_schemas_come_from_the_constructors():
    assert list(settings_schema("knn").model_fields) == ["k"]
    assert settings_schema("gain").model_fields["noise"].default == make_imputer("gain").params["noise"]


# ------------------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, small_cohort) -> dict[str, Path]:
    """Valid checkpoints of three state layouts: a baseline, a deep model and the oracle."""
    directory = tmp_path_factory.mktemp("checkpoints")
    train = small_cohort.split("train")
    meta = {"genes": small_cohort.genes, "transform": small_cohort.transform, "tissues": small_cohort.tissues}
    imputers = {"mean": make_imputer("mean").fit(train),
                "pmi": make_imputer("pmi", hidden_sizes=[8], max_epochs=1, batch_size=64).fit(train),
                "oracle": OracleImputer().fit(small_cohort)}
    return {name: save_checkpoint(imputer, directory / f"{name}.safetensors", meta) for name, imputer in imputers.items()}


def rewrite(source: Path, target: Path, change) -> Path:
    """A copy of checkpoint ``source`` whose JSON metadata went through ``change(header) -> header``."""
    data = source.read_bytes()
    size = int.from_bytes(data[:8], "little")
    metadata = json.loads(data[8:8 + size])["__metadata__"]
    header = json.loads(metadata["gtex_imputation"])
    changed = change(header)
    metadata["gtex_imputation"] = changed if isinstance(changed, str) else json.dumps(changed)
    target.write_bytes(safetensors.numpy.save(safetensors.numpy.load(data), metadata=metadata))
    return target


def setting(path: list, value):
    """A change setting ``header[path...] = value``."""
    def change(header):
        node = header
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return header
    return change


def dropping(path: list):
    def change(header):
        node = header
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
        return header
    return change


# (checkpoint, change, regex after "<file>, metadata: ")
CHECKPOINT_ERRORS = {
    "whole_list": ("mean", lambda h: [1, 2], r"\(the whole document\): should be a mapping"),
    "format_version_text": ("mean", setting(["format_version"], "1"), r"format_version: Input should be a valid integer \(got '1'\)"),
    "method_int": ("mean", setting(["method"], 5), r"method: Input should be 'pmi'.*\(got 5\)"),
    "dtype": ("mean", setting(["dtype"], "int8"), r"dtype: Input should be 'float32' or 'float16'"),
    "config_scalar": ("mean", setting(["config"], 3), r"config: should be a mapping"),
    "genes_list": ("mean", setting(["genes"], [1, 2]), r"genes: should be a mapping"),
    "genes_without_ids": ("mean", dropping(["genes", "ensembl_gene_id"]), r"genes\.ensembl_gene_id: is required but missing"),
    "genes_ragged": ("mean", lambda h: setting(["genes", "symbol"], h["genes"]["symbol"][:3])(h),
                     r"genes: ensembl_gene_id has 400 entries but symbol 3"),
    "tissues_text": ("mean", setting(["tissues"], "Lung"), r"tissues: should be a list \(got 'Lung'\)"),
    "tissues_numbers": ("mean", setting(["tissues"], [1, 2]), r"tissues\.0: Input should be a valid string"),
    "transform_without_mean": ("mean", dropping(["transform", "mean"]), r"transform\.mean: is required but missing"),
    "transform_mean_text": ("mean", setting(["transform", "mean"], "x"), r"transform\.mean: should be a list \(got 'x'\)"),
    "transform_scale": ("mean", setting(["transform", "scale"], "ln"), r"transform\.scale: Input should be 'tpm' or 'log'"),
    "transform_zero_std": ("mean", lambda h: setting(["transform", "std"], [0.0] * len(h["transform"]["std"]))(h),
                           r"transform\.std\.0: Input should be greater than 0"),
    "transform_other_genes": ("mean", lambda h: setting(["transform"], {**h["transform"], "mean": h["transform"]["mean"][:5],
                                                                         "std": h["transform"]["std"][:5]})(h),
                              r"the transform has 5 genes but the gene table 400"),
    "history_list": ("mean", setting(["history"], [1]), r"history: should be a mapping"),
    "evaluation_text": ("mean", setting(["evaluation"], "good"), r"evaluation: should be a mapping"),
    "metadata_list": ("mean", setting(["metadata"], [1]), r"metadata: should be a mapping of key: value entries \(got \[1\]\)"),
    "mean_state_without_tissues": ("mean", setting(["config"], {}), r"config\.tissues: is required but missing"),
    "pmi_hidden_sizes_text": ("pmi", setting(["config", "params", "hidden_sizes"], ["large"]),
                              r"config\.params\.hidden_sizes\.0: Input should be a valid integer.*\(got 'large'\)"),
    "pmi_hidden_sizes_negative": ("pmi", setting(["config", "params", "hidden_sizes"], [-3]),
                                  r"config\.params\.hidden_sizes\.0: Input should be greater than or equal to 1"),
    "pmi_precision": ("pmi", setting(["config", "params", "precision"], "fp8"), r"config\.params\.precision: Input should be 'fp32', 'bf16' or 'auto'"),
    "pmi_lr_list": ("pmi", setting(["config", "params", "lr"], [0.1]), r"config\.params\.lr: Input should be a valid number"),
    "pmi_unknown_param": ("pmi", setting(["config", "params", "width"], 3), r"config\.params\.width: is not a known key"),
    "pmi_covariate_tissues": ("pmi", setting(["config", "covariates", "tissues"], "Lung"), r"config\.covariates\.tissues: should be a list"),
    "pmi_age_text": ("pmi", setting(["config", "covariates", "age_mean"], "old"), r"config\.covariates\.age_mean: Input should be a valid number"),
    "pmi_genes_empty": ("pmi", setting(["config", "genes"], {}), r"config\.genes\.ensembl_gene_id: is required but missing"),
    "oracle_simulation": ("oracle", setting(["config", "simulation", "n_genes"], "many"),
                          r"config\.simulation\.n_genes: Input should be a valid integer"),
}


@pytest.mark.parametrize("name", ["mean", "pmi", "oracle"])
def test_the_checkpoints_the_cases_break_load(name, checkpoints):
    imputer, metadata = load_checkpoint(checkpoints[name])
    assert imputer.method == metadata["method"] == name


@pytest.mark.parametrize("case", list(CHECKPOINT_ERRORS))
def test_each_checkpoint_field_error_names_the_file_and_the_field(case, checkpoints, tmp_path):
    source, change, pattern = CHECKPOINT_ERRORS[case]
    path = rewrite(checkpoints[source], tmp_path / f"{case}.safetensors", change)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert message.startswith(f"{path}, metadata: "), message
    assert re.search(pattern, message), message
    assert message.endswith("train the model again.")


def test_checkpoint_metadata_that_is_not_json(checkpoints, tmp_path):
    path = rewrite(checkpoints["mean"], tmp_path / "text.safetensors", lambda h: "{method: mean")
    with pytest.raises(CheckpointError, match=r"text\.safetensors: its metadata is not valid JSON"):
        load_checkpoint(path)


def test_a_newer_checkpoint_format_says_so(checkpoints, tmp_path):
    path = rewrite(checkpoints["mean"], tmp_path / "new.safetensors", setting(["format_version"], 9))
    with pytest.raises(CheckpointError, match=r"new\.safetensors uses checkpoint format 9; this version reads up to 1"):
        load_checkpoint(path)


def test_arrays_that_do_not_fit_the_settings(checkpoints, tmp_path):
    """Valid metadata, but one tissue fewer than the embedding table has rows: torch's multi-line error, on one line."""
    def fewer_tissues(header):
        header["config"]["covariates"]["tissues"] = header["config"]["covariates"]["tissues"][:-1]
        return header

    path = rewrite(checkpoints["pmi"], tmp_path / "shapes.safetensors", fewer_tissues)
    with pytest.raises(CheckpointError, match=r"shapes\.safetensors: the stored pmi model cannot be rebuilt: its arrays "
                                              r"do not fit its settings \(.*size mismatch") as error:
        load_checkpoint(path)
    assert "\n" not in str(error.value)


def test_a_gpu_checkpoint_loads_on_a_cpu_only_machine(checkpoints, tmp_path, small_cohort):
    path = rewrite(checkpoints["pmi"], tmp_path / "gpu.safetensors", setting(["config", "params", "device"], "cuda"))
    imputer, _ = load_checkpoint(path)
    assert np.isfinite(imputer.impute(small_cohort.split("test"))).all()


def test_a_study_manifest_entry_of_the_wrong_type_names_the_key(tmp_path):
    from gtex_models.studies.study import MANIFEST, Study, StudyError

    manifest = json.loads((Path(__file__).resolve().parent.parent / "data" / "demo" / MANIFEST).read_text())
    manifest["models"][0]["n_genes"] = "large"
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(StudyError, match=rf"{re.escape(str(tmp_path / MANIFEST))}, a model entry: n_genes: Input should be "
                                         r"a valid integer.*\(got 'large'\); rebuild or re-add the model"):
        Study.open(tmp_path)


# ----------------------------------------------------------------------------- what the project writes
REPO = Path(__file__).resolve().parent.parent
MANIFEST_ERRORS = {  # one field of data/demo/study.json broken -> the dotted path named
    "title": (["title"], 3, r"title: Input should be a valid string \(got 3\)"),
    "simulated": (["simulated"], "perhaps", r"simulated: Input should be a valid boolean"),
    "sources": (["sources"], "simulate", r"sources: should be a list \(got 'simulate'\)"),
    "cohort": (["cohort"], "runs/x", r"cohort: should be a mapping of key: value entries"),
    "summary": (["cohort", "summary"], [1, 2], r"cohort\.summary: should be a mapping"),
    "n_samples": (["cohort", "summary", "n_samples"], -1, r"cohort\.summary\.n_samples: Input should be greater"),
    "scale": (["cohort", "summary", "scale"], "linear", r"cohort\.summary\.scale: Input should be 'tpm' or 'log'"),
    "simulation": (["cohort", "simulation", "n_donors"], "many", r"cohort\.simulation\.n_donors: Input should be a valid integer"),
    "models": (["models"], {"pmi_all": {}}, r"models: should be a list"),
    "benchmark": (["benchmark"], ["benchmark.json"], r"benchmark: Input should be a valid string"),
    "typo": (["titel"], "x", r"titel: is not a known key \(a typo\?\); allowed: format, format_version, title"),
}


def header_of(path: Path) -> dict:
    """The raw JSON metadata of a checkpoint, as written."""
    with safetensors.safe_open(str(path), "np") as handle:
        return json.loads(handle.metadata()["gtex_imputation"])


def assert_written_by_us_is_valid(study_dir: Path) -> None:
    """study.json, every checkpoint's metadata and (when copied) cohort.json match their schemas exactly."""
    from gtex_models.common.schema import validate
    from gtex_models.data.cohort_format import CohortInfo
    from gtex_models.models.schemas import check_checkpoint_header
    from gtex_models.studies.schemas import StudyManifest
    from gtex_models.studies.study import MANIFEST

    manifest = json.loads((study_dir / MANIFEST).read_text())
    validate(StudyManifest, manifest, str(study_dir / MANIFEST))
    for entry in manifest["models"]:
        path = study_dir / "models" / f"{entry['key']}.safetensors"
        check_checkpoint_header(header_of(path), str(path))
    if (study_dir / "cohort" / "cohort.json").is_file():
        validate(CohortInfo, json.loads((study_dir / "cohort" / "cohort.json").read_text()), "cohort.json")


def test_the_committed_demo_study_and_checkpoints_match_the_schemas():
    demo = REPO / "data" / "demo"
    assert_written_by_us_is_valid(demo)
    checkpoints = sorted(demo.rglob("*.safetensors"))
    # PMI and GAIN-GTEx on all genes, the Alzheimer's genes and the p53 genes, the Gaussian conditional on all
    # genes; the cross-tissue donor model
    assert [p.relative_to(demo).as_posix() for p in checkpoints] == ["donors/model.safetensors"] + sorted(
        [f"models/{m}_{g}.safetensors" for m in ("gain", "pmi") for g in ("all", "alzheimer", "p53")]
        + ["models/gauss_all.safetensors"])
    for path in checkpoints:
        load_checkpoint(path)


def test_a_freshly_built_study_and_store_match_the_schemas(tmp_path):
    """Everything the writers put in a study (deep models, a model added later, the copied cohort; the
    simulated demo's manifest is checked above) and a store's cohort.json."""
    from studies import build_probe_study

    from gtex_models.common.schema import validate
    from gtex_models.data.cohort import Cohort
    from gtex_models.data.cohort_format import CohortInfo
    from gtex_models.data.store import save_store
    from gtex_models.studies.build import add_model

    study = build_probe_study(tmp_path)
    add_model(study, "mean")
    assert_written_by_us_is_valid(study)
    cohort = Cohort.load(study / "cohort")
    save_store(cohort, tmp_path / "store")
    info = validate(CohortInfo, json.loads((tmp_path / "store" / "cohort.json").read_text()), "store")
    assert info.store is not None and Cohort.load(tmp_path / "store").stored


@pytest.mark.parametrize("case", list(MANIFEST_ERRORS))
def test_each_study_manifest_field_error_names_the_file_and_the_field(case, tmp_path):
    from gtex_models.studies.study import MANIFEST, Study, StudyError

    keys, value, pattern = MANIFEST_ERRORS[case]
    manifest = json.loads((REPO / "data" / "demo" / MANIFEST).read_text())
    place = manifest
    for key in keys[:-1]:
        place = place[key]
    place[keys[-1]] = value
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(StudyError) as error:
        Study.open(tmp_path)
    assert str(error.value).startswith(f"{tmp_path / MANIFEST}: "), error.value
    assert re.search(pattern, str(error.value)), error.value
