"""Studies built from cohorts unlike the demo: build -> open -> tables -> add-model -> info, missing
parts, refusing to overwrite, cancelling, the real microarray cohort, and the demo as a study."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gtex_models.analysis.benchmark import evaluate_imputer
from gtex_models.common.atomic import OutputPathError
from gtex_models.data.cohort import Cohort
from gtex_models.data.provenance import DonorLeakError, DonorSet
from gtex_models.data.readers import InputError, import_table
from gtex_models.models.checkpoints import load_checkpoint
from gtex_models.studies.build import StudyCancelled, add_checkpoint, add_model, build_study
from gtex_models.studies.experiment import Experiment, default_config, run_experiment
from gtex_models.studies.precompute import stored_default_panel, stored_no_coverage
from gtex_models.studies.report import study_info
from gtex_models.studies.study import Study, StudyError, add_entry, model_entry, new_manifest, write_manifest

DATA = Path(__file__).parent / "data"
GROUPS = ("liver", "kidney", "heart")


def write_probe_cohort(directory: Path, n_samples: int = 60, n_probes: int = 300, seed: int = 0) -> tuple[Path, Path]:
    """A microarray-like cohort: probe IDs, 3 groups, no sex/age/donor, log2 intensities (genes x samples)."""
    rng = np.random.default_rng(seed)
    groups = np.array(GROUPS)[np.arange(n_samples) % 3]
    codes = np.arange(n_samples) % 3
    means = rng.normal(7.0, 1.5, (3, n_probes))
    values = means[codes] + rng.normal(size=(n_samples, 4)) @ rng.normal(0, 0.6, (n_probes, 4)).T
    values = np.maximum(values + rng.normal(0, 0.3, values.shape), 1.0)  # log2 intensities (RMA-like, 1 to 14)
    probes = [f"{1000 + j}_s_at" if j % 3 == 0 else f"{1000 + j}_at" for j in range(n_probes)]
    samples = [f"GSM{100 + i}" for i in range(n_samples)]
    pd.DataFrame(values.T.round(4), index=pd.Index(probes, name="ID_REF"), columns=samples).to_csv(
        directory / "expression.csv")
    pd.DataFrame({"sample_id": samples, "group": groups}).to_csv(directory / "samples.csv", index=False)
    return directory / "expression.csv", directory / "samples.csv"


@pytest.fixture(scope="module")
def probe_cohort(tmp_path_factory) -> Cohort:
    directory = tmp_path_factory.mktemp("probes")
    expression, samples = write_probe_cohort(directory)
    with pytest.warns(UserWarning, match="microarray probes"):
        return import_table(expression, samples, tissue_column="group")


@pytest.fixture(scope="module")
def built(probe_cohort, tmp_path_factory) -> Path:
    """A study of PMI and GAIN-GTEx (2 epochs) plus the mean and KNN baselines on the probe cohort."""
    out = tmp_path_factory.mktemp("studies") / "probes"
    build_study(probe_cohort, out, models=["pmi", "gain"], baselines=["mean", "knn"], max_epochs=2,
                title="Probe cohort")
    return out


def copy_study(built: Path, tmp_path: Path) -> Path:
    shutil.copytree(built, tmp_path / "study")
    return tmp_path / "study"


# ------------------------------------------------------------------------------------ build and open
def test_a_probe_cohort_without_covariates_is_imported_on_its_log_scale(probe_cohort):
    assert probe_cohort.transform.scale == "log"
    assert probe_cohort.meta["scale"]["reason"].startswith("values between")
    assert (probe_cohort.genes["ensembl_gene_id"] == "").all()
    assert probe_cohort.tissues == sorted(GROUPS)
    assert (probe_cohort.samples["sex"] == "unknown").all() and probe_cohort.samples["age"].isna().all()


def test_the_built_study_opens_with_every_part(built, probe_cohort):
    study = Study.open(built)
    assert study.problems == []
    assert study.title == "Probe cohort" and not study.simulated
    assert list(study.models) == ["pmi_all", "gain_all"]
    assert study.cohort_summary == {"n_samples": 60, "n_genes": 300, "n_groups": 3, "n_donors": 60,
                                    "has_sex": False, "has_age": False, "scale": "log",
                                    "value_scale": "log2 intensity", "group_word": "group"}
    cohort = study.cohort()
    np.testing.assert_array_equal(cohort.x, probe_cohort.x)
    assert cohort.genes.equals(probe_cohort.genes)


def test_manifest_entries_come_from_the_checkpoints(built):
    study = Study.open(built)
    for key, entry in study.models.items():
        imputer, metadata = study.load_model(key)
        assert entry.method == metadata["method"] == imputer.method
        assert entry.scenario == metadata["scenario"] == "inductive"
        assert entry.n_genes == len(metadata["genes"]) == 300
        assert entry.n_groups == len(metadata["tissues"]) == 3
        assert entry.evaluation == metadata["evaluation"]
        assert imputer.history["epochs"] == 2  # max_epochs reached the training loop


def test_tables_describe_the_test_donors(built):
    study = Study.open(built)
    tables = study.tables("pmi_all")
    assert set(tables) == {"per_gene", "per_tissue", "across_rates"}
    assert set(tables["per_tissue"]["tissue"]) <= set(GROUPS)
    assert tables["per_gene"]["gene"].str.endswith("_at").all()  # probe IDs, as imported
    assert set(tables["across_rates"]["tissue"]) == {"All tissues", *GROUPS}
    r2 = study.models["pmi_all"].evaluation["r2_mean"]
    # 2 epochs: worse than each group's training mean, the reference that scores 0 (measured -1.86)
    assert np.isfinite(r2) and r2 < 1 and np.isfinite(tables["per_gene"]["r2"]).all()
    assert study.tissue_umap("pmi_all") is None  # 3 groups: no UMAP (below UMAP_MIN_GROUPS)


def test_benchmark_has_one_record_per_method(built):
    records = Study.open(built).benchmark()
    assert [(r["method"], r["scenario"]) for r in records] == [
        ("pmi", "inductive"), ("gain", "inductive"), ("mean", "inductive"), ("knn", "inductive")]
    knn, mean = records[3], records[2]
    assert knn["r2_mean"] > mean["r2_mean"]  # the probes are correlated: neighbours help


def test_deep_models_trained_on_probes_impute_the_probe_cohort(built):
    study = Study.open(built)
    test = study.cohort().split("test")
    imputer, _ = study.load_model("gain_all")
    masked = test.x.copy()
    masked[:, ::2] = np.nan
    filled = imputer.impute(Cohort(masked, test.genes, test.samples, test.transform))
    assert not np.isnan(filled).any()
    np.testing.assert_array_equal(filled[:, 1::2], test.x[:, 1::2])


def test_study_info_lists_every_model_and_what_is_missing(built, tmp_path):
    study_dir = copy_study(built, tmp_path)
    info = study_info(Study.open(study_dir))
    assert info["key"].tolist() == ["pmi_all", "gain_all"]
    assert info["missing"].tolist() == ["-", "-"]
    assert info["groups"].tolist() == [3, 3] and info["genes"].tolist() == [300, 300]
    (study_dir / "tables" / "gain_all_per_tissue.csv.gz").unlink()
    (study_dir / "models" / "pmi_all.safetensors").unlink()
    study = Study.open(study_dir)
    assert list(study.models) == ["gain_all"]
    assert any("pmi_all.safetensors is missing" in p for p in study.problems)
    assert any("per_tissue" in p for p in study.problems)
    assert set(study.tables("gain_all")) == {"per_gene", "across_rates"}
    info = study_info(study)
    assert info.set_index("key")["missing"].to_dict() == {"pmi_all": "checkpoint", "gain_all": "per_tissue table"}


def test_study_info_reports_each_models_own_evaluation(built, tmp_path):
    """Each row's numbers are its own model's: R² recomputed from its checkpoint on the study's test donors
    (as the build scored it), genes and groups from the checkpoint."""
    study = add_model(copy_study(built, tmp_path), "knn")
    info = study_info(study).set_index("key")
    assert info.index.tolist() == ["pmi_all", "gain_all", "knn_all"]
    assert info["test R²"].nunique() > 1  # so a row showing another model's R² would differ from its own
    test, train = study.cohort().split("test"), study.cohort().split("train")
    for key, row in info.iterrows():
        imputer, metadata = study.load_model(key)
        assert row["test R²"] == pytest.approx(evaluate_imputer(imputer, test, train=train)["r2_mean"], abs=5e-4), key
        assert (row["method"], row["scenario"], row["genes"], row["groups"]) == (
            imputer.method, metadata["scenario"], len(metadata["genes"]), len(metadata["tissues"]))
        assert row["calibrated on"] == "-" and metadata["calibration"] is None  # 9 validation samples: too few
    # what the pages read came with the added model: its default panel, and why it has no interval coverage
    assert stored_default_panel(study.path, "knn_all")["size"] > 0 and "calibration" in stored_no_coverage(
        study.path, "knn_all")


def test_the_manifest_records_each_roles_donors_and_the_calibrations(built, small_cohort, tmp_path):
    probes = Study.open(built)  # too few validation samples to calibrate: fit, valid and test only
    cohort = probes.cohort()
    assert probes.models["pmi_all"].donors == {role: DonorSet.of_cohort(cohort.split(split)).summary()
                                               for role, split in (("fit", "train"), ("valid", "valid"), ("test", "test"))}
    folder = tmp_path / "calibrated"
    run_experiment(Experiment("mean"), small_cohort, out=folder / "models" / "mean_all.safetensors")
    entry = model_entry("mean_all", load_checkpoint(folder / "models" / "mean_all.safetensors")[1])
    assert entry.donors == {role: DonorSet.of_cohort(small_cohort.split(split)).summary() for role, split in
                            (("fit", "train"), ("valid", "valid"), ("test", "test"), ("calibration", "valid"))}
    write_manifest(folder, add_entry(new_manifest("Calibrated", small_cohort), entry))
    valid = small_cohort.split("valid").n_donors
    assert study_info(Study.open(folder))["calibrated on"].tolist() == [f"{valid} valid donors"]


def test_a_checkpoint_trained_on_another_split_of_the_cohort_is_refused(built, probe_cohort, tmp_path):
    """Trained elsewhere on the same samples split differently: some of the study's test donors trained it."""
    donors = sorted(probe_cohort.samples["donor_id"])
    split = probe_cohort.samples["donor_id"].map({d: ("train", "test", "train", "valid")[i % 4] for i, d in enumerate(donors)})
    resplit = Cohort(probe_cohort.x, probe_cohort.genes, probe_cohort.samples.assign(split=split),
                     probe_cohort.transform, probe_cohort.meta)
    checkpoint = tmp_path / "mean.safetensors"
    run_experiment(Experiment("mean"), resplit, out=checkpoint)
    study_dir = copy_study(built, tmp_path)
    with pytest.raises(DonorLeakError, match=r"The checkpoint mean.safetensors \(its training donors\) was fitted on"):
        add_checkpoint(study_dir, checkpoint)
    assert list(Study.open(study_dir).models) == ["pmi_all", "gain_all"]


def test_a_build_whose_calibration_saw_the_test_donors_is_refused(small_cohort, tmp_path, monkeypatch):
    """Were a study's calibration fitted on its test donors (a bug), the build stops and writes nothing."""
    from gtex_models.models.calibration import calibrate
    from gtex_models.studies import experiment

    monkeypatch.setattr(experiment, "calibrate_scenario", lambda imputer, data, cohort, seed=0:
                        calibrate(imputer, data.test_donors))
    with pytest.raises(DonorLeakError, match="The interval calibration was fitted on .* of the test split"):
        build_study(small_cohort, tmp_path / "s", models=["mean"], baselines=[])
    assert list(tmp_path.iterdir()) == []


def test_a_models_held_out_check_refuses_a_calibration_fitted_on_the_test_donors(small_cohort):
    """The build's own check of each saved model (its donors and its calibration's against the test rows),
    apart from the coverage table that catches the same leak later in a build."""
    from gtex_models.models.calibration import calibrate
    from gtex_models.models.registry import make_imputer
    from gtex_models.studies.build import check_held_out

    test = small_cohort.split("test")
    imputer = make_imputer("mean").fit(small_cohort.split("train"))
    fix = "fit the calibration on the validation donors"
    assert check_held_out("mean", {"calibration": calibrate(imputer, small_cohort.split("valid")),
                                   "scenario": "inductive"}, test, fix) != []  # no donor record: a note
    with pytest.raises(DonorLeakError, match="The interval calibration was fitted on .* the test donors"):
        check_held_out("mean", {"calibration": calibrate(imputer, test), "scenario": "inductive"}, test, fix)
    check_held_out("mean", {"calibration": calibrate(imputer, test), "scenario": "inductive"}, test, fix,
                   calibration=False)  # a model saved without intervals is not checked for them


def test_a_cohort_with_a_donor_in_two_splits_is_refused_before_any_training(probe_cohort, tmp_path):
    samples = probe_cohort.samples.copy()
    trained = samples.loc[samples["split"] == "train", "donor_id"].iloc[0]
    samples["donor_id"] = samples["donor_id"].where(samples["split"] != "test", trained)  # test samples: a train donor
    shared = Cohort(probe_cohort.x, probe_cohort.genes, samples, probe_cohort.transform, probe_cohort.meta)
    with pytest.raises(ValueError, match=r"have samples in more than one split .*fix the split column"):
        build_study(shared, tmp_path / "s", models=["pmi"], progress=lambda *_: pytest.fail("training started"))
    assert list(tmp_path.iterdir()) == []


def test_a_study_without_its_cohort_still_opens(built, tmp_path):
    study_dir = copy_study(built, tmp_path)
    shutil.rmtree(study_dir / "cohort")
    study = Study.open(study_dir)
    assert not study.has_cohort and any("cohort is missing" in p for p in study.problems)
    assert set(study.tables("pmi_all")) == {"per_gene", "per_tissue", "across_rates"}


# ------------------------------------------------------------------------------------ adding models
def test_add_model_trains_on_the_study_cohort_and_keeps_the_others(built, tmp_path):
    study_dir = copy_study(built, tmp_path)
    before = (study_dir / "models" / "pmi_all.safetensors").read_bytes()
    study = add_model(study_dir, "pmi", key="pmi_small", label="PMI, 1 epoch", max_epochs=1)
    assert list(study.models) == ["pmi_all", "gain_all", "pmi_small"]
    assert study.models["pmi_small"].label == "PMI, 1 epoch"
    assert load_checkpoint(study.checkpoint_path("pmi_small"))[0].history["epochs"] == 1
    assert set(study.tables("pmi_small")) == {"per_gene", "per_tissue", "across_rates"}
    assert (study_dir / "models" / "pmi_all.safetensors").read_bytes() == before
    with pytest.raises(StudyError, match="already has a model 'pmi_small'"):
        add_model(study_dir, "mean", key="pmi_small")


def test_add_model_of_a_new_method_joins_the_benchmark(built, tmp_path):
    study_dir = copy_study(built, tmp_path)
    study = add_model(study_dir, Experiment("mice", model={"max_iter": 1, "n_nearest_features": 5}))
    assert "mice_all" in study.models
    assert [r["method"] for r in study.benchmark()] == ["pmi", "gain", "mean", "knn", "mice"]


def test_add_checkpoint_computes_tables_on_the_study_cohort(built, probe_cohort, tmp_path):
    study_dir = copy_study(built, tmp_path)
    checkpoint = tmp_path / "knn.safetensors"
    _, record = run_experiment(Experiment("knn"), probe_cohort, out=checkpoint)
    study = add_checkpoint(study_dir, checkpoint, label="KNN trained elsewhere")
    assert study.models["knn_all"].label == "KNN trained elsewhere"
    assert study.models["knn_all"].evaluation["r2_mean"] == pytest.approx(record["r2_mean"])
    assert len(study.tables("knn_all")["per_gene"]) > 0


def test_add_checkpoint_of_another_gene_set_is_refused(built, tmp_path, small_cohort):
    study_dir = copy_study(built, tmp_path)
    checkpoint = tmp_path / "mean.safetensors"
    run_experiment(Experiment("mean"), small_cohort, out=checkpoint)
    with pytest.raises(ValueError, match="The cohort lacks 400 of the model's genes"):
        add_checkpoint(study_dir, checkpoint)
    assert list(Study.open(study_dir).models) == ["pmi_all", "gain_all"]


# ------------------------------------------------------------------------------------ safety
def test_an_existing_study_is_replaced_only_with_overwrite(built, probe_cohort, tmp_path):
    study_dir = copy_study(built, tmp_path)
    manifest = (study_dir / "study.json").read_text()
    with pytest.raises(OutputPathError, match="already holds a study. Replace it with --overwrite"):
        build_study(probe_cohort, study_dir, models=["mean"], baselines=[])
    assert (study_dir / "study.json").read_text() == manifest
    study = build_study(probe_cohort, study_dir, models=["mean"], baselines=[], overwrite=True)
    assert list(study.models) == ["mean_all"] and not (study_dir / "models" / "pmi_all.safetensors").exists()


def test_a_folder_that_is_not_a_study_or_a_file_is_never_replaced(probe_cohort, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"x")
    for overwrite in (False, True):
        with pytest.raises(OutputPathError, match=r"files this project did not write \(it has no study.json\)"):
            build_study(probe_cohort, folder, models=["mean"], baselines=[], overwrite=overwrite)
    assert (folder / "holiday.jpg").read_bytes() == b"x"
    file = tmp_path / "notes.txt"
    file.write_text("keep")
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        build_study(probe_cohort, file, models=["mean"], baselines=[], overwrite=True)
    assert file.read_text() == "keep"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert list(build_study(probe_cohort, empty, models=["mean"], baselines=[]).models) == ["mean_all"]


def test_cancel_between_epochs_leaves_nothing_behind(probe_cohort, tmp_path):
    messages = []

    def progress(fraction, message):
        messages.append(message)

    def should_stop():
        return any("epoch 2/" in m for m in messages)

    out = tmp_path / "cancelled"
    with pytest.raises(StudyCancelled):
        build_study(probe_cohort, out, models=["pmi"], baselines=["mean"], max_epochs=5, progress=progress,
                    should_stop=should_stop)
    assert any("epoch 2/5" in m for m in messages) and not any("epoch 3/5" in m for m in messages)
    assert list(tmp_path.iterdir()) == []  # neither the study nor a temporary folder


def test_cancelled_add_model_leaves_the_study_as_it_was(built, tmp_path):
    study_dir = copy_study(built, tmp_path)
    files = sorted(p.relative_to(study_dir) for p in study_dir.rglob("*"))
    with pytest.raises(StudyCancelled):
        add_model(study_dir, "pmi", key="pmi_more", max_epochs=3, should_stop=lambda: True)
    assert sorted(p.relative_to(study_dir) for p in study_dir.rglob("*")) == files
    assert [p.name for p in tmp_path.iterdir()] == ["study"]


def test_unknown_methods_and_repeated_keys_fail_before_training(probe_cohort, tmp_path):
    with pytest.raises(StudyError, match="Unknown method 'magic'"):
        build_study(probe_cohort, tmp_path / "s", models=["magic"])
    with pytest.raises(StudyError, match=r"Several models would be saved as \['pmi_all'\]"):
        build_study(probe_cohort, tmp_path / "s", models=["pmi", default_config("pmi", 60, 300)])
    assert not (tmp_path / "s").exists()


# ------------------------------------------------------------------------------------ model space
def test_a_model_meets_a_cohort_standardised_differently(probe_cohort):
    """cohort_for_model re-expresses values in the model's transform (one log space)."""
    from gtex_models.data.transform import Transform
    from gtex_models.models.model_space import ModelSpace, cohort_for_model

    shifted = Transform(probe_cohort.transform.mean + 1.0, probe_cohort.transform.std * 2.0, "log")
    space = ModelSpace(probe_cohort.genes.iloc[::-1], tuple(probe_cohort.tissues), shifted.subset(np.arange(300)[::-1]))
    moved = cohort_for_model(probe_cohort, space)
    assert moved.genes["symbol"].tolist() == probe_cohort.genes["symbol"].tolist()[::-1]
    np.testing.assert_array_equal(moved.transform.mean, space.transform.mean)  # the model's standardisation
    np.testing.assert_allclose(moved.x, (probe_cohort.x[:, ::-1] - 1.0 / probe_cohort.transform.std[::-1]) / 2.0,
                               atol=1e-5)
    np.testing.assert_allclose(moved.raw(), probe_cohort.raw()[:, ::-1], atol=1e-4)  # the same values


def test_genes_are_matched_by_ensembl_id_else_by_symbol():
    from gtex_models.models.model_space import IncompatibleCohortError, gene_indexer

    cohort = pd.DataFrame({"ensembl_gene_id": ["ENSG1", "", "", "ENSG4"], "symbol": ["TP53", "1007_s_at", "X", "X2"]})
    model = pd.DataFrame({"ensembl_gene_id": ["ENSG4", "", "ENSG9", "ENSG1"], "symbol": ["other", "1007_s_at", "X", "Y"]})
    assert gene_indexer(cohort, model).tolist() == [3, 1, 2, 0]  # ENSG9/X: the cohort's X has no ID
    duplicated = pd.DataFrame({"ensembl_gene_id": ["", ""], "symbol": ["1007_s_at", "1007_s_at"]})
    with pytest.raises(IncompatibleCohortError, match=r"1007_s_at \(2x\)"):
        gene_indexer(duplicated, model)


# ------------------------------------------------------------------------------------ real microarray data
def test_the_real_microarray_cohort_is_refused_without_a_treatment_of_its_negative_values():
    with pytest.raises(InputError, match=r"negative values \(first at sample '\w', gene '[^']+'.*--negatives clip"):
        import_table(DATA / "biobase_sample" / "expression.csv", DATA / "biobase_sample" / "samples.csv",
                     tissue_column="group")


def test_a_study_of_the_real_microarray_cohort(tmp_path):
    with pytest.warns(UserWarning, match="327 negative value"):
        cohort = import_table(DATA / "biobase_sample" / "expression.csv", DATA / "biobase_sample" / "samples.csv",
                              tissue_column="group", negatives="clip")
    assert cohort.meta["scale"]["scale"] == "tpm" and cohort.meta["negatives_clipped"] == 327
    assert cohort.tissues == ["Case", "Control"] and cohort.n_samples == 26
    study = build_study(cohort, tmp_path / "biobase", models=["pmi", "gain"], baselines=["mean", "knn", "mice"],
                        max_epochs=2)
    assert study.problems == []
    assert [r["method"] for r in study.benchmark()] == ["pmi", "gain", "mean", "knn", "mice"]
    assert all(np.isfinite(r["r2_mean"]) for r in study.benchmark())
    assert study.cohort_summary["has_sex"] and not study.cohort_summary["has_age"]


# ------------------------------------------------------------------------------------ the demo study
def test_the_demo_is_a_study_with_its_models():
    from gtex_models.studies import demo

    study = demo.demo_study()
    assert study.simulated and study.problems == []
    assert {key: entry.label for key, entry in study.models.items()} == demo.DEMO_MODELS
    assert demo.load_tables("pmi_all").keys() == study.tables("pmi_all").keys()
    assert demo.load_benchmark() == study.benchmark()


def test_the_demo_build_runs_every_method_under_both_scenarios():
    from gtex_models.common.choices import SCENARIOS
    from gtex_models.studies import demo
    from gtex_models.studies.build import _baseline_runs, _model_runs

    cohort = demo.load_demo_cohort().subset_samples(np.arange(200))
    models, baselines = demo.demo_runs()
    runs = _model_runs(models, cohort, "inductive", None)
    assert [r.key for r in runs] == list(demo.DEMO_MODELS)
    runs += _baseline_runs(baselines, cohort, SCENARIOS, None, runs)
    all_genes = {(r.experiment.method, r.experiment.scenario) for r in runs if not r.experiment.pathway}
    assert all_genes == {(m, s) for m in demo.BENCHMARK_METHODS for s in SCENARIOS}
    for run in runs:  # each deep benchmark run has its scenario's config
        config = demo.BENCHMARK_CONFIGS.get((run.experiment.method, run.experiment.scenario))
        if config and not run.experiment.pathway:
            expected = Experiment.from_yaml(Path(__file__).parents[1] / "configs" / config)
            assert run.experiment.model == expected.model and run.experiment.training == expected.training


def test_groups_without_training_donors_are_left_out_of_the_evaluation(tmp_path):
    """A small cohort whose test donors have tissues no training donor has: deep models cannot know them."""
    from gtex_models.analysis.benchmark import scenario_data
    from gtex_models.data.simulate import simulate_cohort

    cohort = simulate_cohort(n_donors=8, n_genes=400, seed=2)
    unseen = set(cohort.split("test").tissues) - set(cohort.split("train").tissues)
    assert unseen  # the case under test
    with pytest.warns(UserWarning, match="that have no training donors are left out of the evaluation"):
        data = scenario_data(cohort)
    assert not set(data.test.tissues) & unseen
    with pytest.warns(UserWarning, match="no training donors"):
        study = build_study(cohort, tmp_path / "s", models=["pmi"], baselines=["mean"], max_epochs=1)
    assert np.isfinite(study.models["pmi_all"].evaluation["r2_mean"])
    assert not set(study.tables("pmi_all")["per_tissue"]["tissue"]) & unseen


def test_the_simulated_demo_stores_its_simulation_not_its_matrix(tmp_path):
    from gtex_models.data.simulate import simulate_cohort

    cohort = simulate_cohort(n_donors=20, n_genes=400, seed=1)
    study = build_study(cohort, tmp_path / "sim", models=["mean"], baselines=["oracle"])
    assert study.simulated and not (tmp_path / "sim" / "cohort").exists()
    manifest = json.loads((tmp_path / "sim" / "study.json").read_text())
    assert manifest["cohort"]["simulation"] == cohort.meta["simulation"]
    np.testing.assert_array_equal(study.cohort().x, cohort.x)


def test_a_cohort_with_missing_values_is_refused_before_any_training(probe_cohort, tmp_path):
    x = probe_cohort.x.copy()
    x[3, 7] = np.nan
    gappy = Cohort(x, probe_cohort.genes, probe_cohort.samples, probe_cohort.transform, probe_cohort.meta)
    with pytest.raises(ValueError, match=r"1 values are already missing, in 1 gene\(s\) such as 1007_at"):
        build_study(gappy, tmp_path / "s", models=["pmi"])
    assert list(tmp_path.iterdir()) == []


def test_a_study_recommends_the_method_best_on_the_validation_donors(tmp_path):
    """The recommendation is chosen on validation donors (never the test ones) among models and baselines."""
    from gtex_models.data.simulate import simulate_cohort
    from gtex_models.studies.build import build_study
    from gtex_models.studies.report import benchmark_table

    cohort = simulate_cohort(n_donors=14, n_genes=400, seed=2)
    study = build_study(cohort, tmp_path / "s", models=[], baselines=["mean", "gauss"], title="t")
    records = study.benchmark()
    assert all(np.isfinite(r["valid_r2_mean"]) for r in records)
    best = max(records, key=lambda r: r["valid_r2_mean"])
    assert study.manifest["recommended"]["method"] == best["method"] == "gauss"  # gauss beats the group means
    table = benchmark_table(study)
    assert table.loc[table["recommended"] == "yes", "method"].tolist() == ["gauss"]
