"""Provenance of fits and intervals: calibrations and checkpoints record their donors, and every place that
scores a model or its intervals on donors refuses donors they were fitted on (or says it cannot check)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from gtex_models.analysis import benchmark
from gtex_models.analysis.benchmark import calibrate_scenario, evaluate_imputer, run_benchmark, scenario_data
from gtex_models.data.cohort import Cohort
from gtex_models.data.provenance import DonorLeakError, DonorSet
from gtex_models.interfaces.cli.main import main
from gtex_models.interfaces.try_it import hide_and_impute
from gtex_models.models.calibration import Calibration, calibrate, coverage_table
from gtex_models.models.checkpoints import attach_calibration, load_checkpoint, save_checkpoint
from gtex_models.models.registry import make_imputer
from gtex_models.studies.experiment import Experiment, run_experiment


@pytest.fixture(scope="module")
def mean_model(small_cohort: Cohort):
    return make_imputer("mean").fit(small_cohort.split("train"))


@pytest.fixture(scope="module")
def calibrations(mean_model, small_cohort: Cohort) -> dict[str, Calibration]:
    """The mean imputer calibrated as the protocol does (validation donors), and on the test donors (a leak)."""
    data = scenario_data(small_cohort)
    return {"valid": calibrate_scenario(mean_model, data, small_cohort), "test": calibrate(mean_model, data.test)}


def _without_donor_record(calibration: Calibration) -> Calibration:
    """The calibration as stored before calibrations recorded their donors."""
    arrays, header = calibration.to_state()
    return Calibration.from_state(arrays, {**header, "info": {k: v for k, v in header["info"].items() if k != "donors"}})


# ------------------------------------------------------------------------------------------- records
def test_a_donor_record_is_order_free_and_counts_the_donors_it_holds():
    record = DonorSet.of(["D2", "D1", "D1", "D3"], "valid")
    assert record.count == 3 and record.split == "valid"
    assert record.digest == DonorSet.of(["D3", "D2", "D1"], "valid").digest != DonorSet.of(["D1", "D2"], "valid").digest
    assert record.seen(["D3", "D4", "D1", "D3"]) == ["D1", "D3"] and record.seen(["D4"]) == []
    assert DonorSet.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    assert "hashes" not in record.summary() and DonorSet.from_dict(None) is None
    with pytest.raises(ValueError, match="only the digest"):
        DonorSet.from_dict(record.summary()).seen(["D1"])


def test_the_protocols_calibration_records_its_validation_donors(calibrations, small_cohort):
    donors = calibrations["valid"].donors
    valid = small_cohort.split("valid")
    assert donors.split == "valid" and donors.count == valid.n_donors == calibrations["valid"].info["n_donors"]
    assert donors.digest == DonorSet.of(valid.samples["donor_id"], "valid").digest
    assert donors.seen(small_cohort.samples["donor_id"]) == sorted(set(valid.samples["donor_id"]))
    assert calibrations["test"].donors.split == "test"


def test_an_in_place_calibration_records_the_pools_training_donors(mean_model, small_cohort):
    data = scenario_data(small_cohort, "inplace", 0.5)
    imputer = make_imputer("mean").fit(data.fit)
    donors = calibrate_scenario(imputer, data, small_cohort).donors
    train = small_cohort.split("train")
    assert donors.split == "train" and donors.digest == DonorSet.of_cohort(train).digest
    assert donors.seen(data.test_donors.samples["donor_id"]) == []


def test_a_checkpoint_keeps_the_donor_record_and_an_old_one_has_none(mean_model, calibrations, tmp_path):
    path = save_checkpoint(mean_model, tmp_path / "mean.safetensors", calibration=calibrations["valid"])
    assert load_checkpoint(path)[1]["calibration"].donors == calibrations["valid"].donors
    assert _without_donor_record(calibrations["valid"]).donors is None


# ------------------------------------------------------------------------------------------- refusals
def test_evaluate_refuses_intervals_calibrated_on_the_test_donors(mean_model, calibrations, small_cohort):
    test = small_cohort.split("test")
    with pytest.raises(DonorLeakError, match=r"fitted on \d+ of the test donors scored"):
        evaluate_imputer(mean_model, test, calibration=calibrations["test"], interval=0.9, train=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        record = evaluate_imputer(mean_model, test, calibration=calibrations["valid"], interval=0.9, train=None)
    assert 0.8 < record["coverage"] < 1
    with pytest.warns(UserWarning, match="stored before donors were recorded"):
        evaluate_imputer(mean_model, test, calibration=_without_donor_record(calibrations["valid"]), interval=0.9,
                         train=None)


def test_one_test_donor_seen_by_the_calibration_is_enough_to_refuse(mean_model, calibrations, small_cohort):
    valid_donor = small_cohort.split("valid").samples["donor_id"].iloc[0]
    scored = small_cohort.subset_samples(np.flatnonzero(small_cohort.samples["split"].isin(["test"]).to_numpy()
                                                        | (small_cohort.samples["donor_id"] == valid_donor).to_numpy()))
    with pytest.raises(DonorLeakError, match=f"fitted on 1 of the test donors \\('{valid_donor}'"):
        coverage_table(mean_model, calibrations["valid"], scored, (0.5,), (0.9,))


@pytest.mark.parametrize("scenario", ["inductive", "inplace"])
def test_a_benchmark_calibrated_on_its_test_donors_is_refused(small_cohort, monkeypatch, scenario):
    """The protocol calibrates on donors it does not score; were it to calibrate on the scored ones (a bug),
    the benchmark stops instead of reporting the optimistic coverage."""
    records = run_benchmark(small_cohort, ["mean"], scenario, interval=0.9)
    assert 0.8 < records[0]["coverage"] < 1

    def on_test_donors(imputer, data, cohort, seed=0):
        return calibrate(imputer, data.test_donors) if data.scenario == "inductive" else \
            benchmark.calibrate_in_place(imputer, data.fit, data.test, np.flatnonzero(data.is_test), seed)

    monkeypatch.setattr(benchmark, "calibrate_scenario", on_test_donors)
    with pytest.raises(DonorLeakError, match="fitted on"):
        run_benchmark(small_cohort, ["mean"], scenario, interval=0.9)


def test_try_it_refuses_the_coverage_of_donors_the_calibration_saw(mean_model, calibrations, small_cohort):
    rows = np.flatnonzero(small_cohort.samples["split"] == "test")[:10]
    leaked = hide_and_impute(mean_model, small_cohort, rows, 0.5, calibration=calibrations["test"])
    assert leaked.coverage is None and leaked.lower is None and "fitted on" in leaked.interval_note
    assert np.isfinite(leaked.r2_pooled)  # the imputation itself is still scored
    fair = hide_and_impute(mean_model, small_cohort, rows, 0.5, calibration=calibrations["valid"])
    assert fair.coverage is not None and fair.interval_note is None
    old = hide_and_impute(mean_model, small_cohort, rows, 0.5, calibration=_without_donor_record(calibrations["valid"]))
    assert old.coverage == fair.coverage and "cannot be checked" in old.interval_note


def test_a_cohort_with_a_donor_in_two_splits_is_refused(small_cohort):
    samples = small_cohort.samples.copy()
    donor = samples.loc[samples["split"] == "train", "donor_id"].iloc[0]
    first = np.flatnonzero(samples["donor_id"] == donor)[0]
    samples.loc[first, "split"] = "test"
    straddling = Cohort(small_cohort.x, small_cohort.genes, samples, small_cohort.transform, small_cohort.meta)
    with pytest.raises(ValueError, match=f"1 donor\\(s\\) have samples in more than one split \\(e.g. {donor}\\)"):
        scenario_data(straddling)


# ------------------------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def saved(small_cohort, tmp_path_factory):
    """The small cohort on disk and a mean-imputer checkpoint trained on it (calibrated on its validation donors)."""
    folder = tmp_path_factory.mktemp("provenance")
    small_cohort.save(folder / "cohort")
    run_experiment(Experiment("mean"), small_cohort, out=folder / "mean.safetensors")
    return folder


def test_a_checkpoint_records_the_donors_of_each_role(saved, small_cohort):
    donors = load_checkpoint(saved / "mean.safetensors")[1]["donors"]
    for role, split in (("fit", "train"), ("valid", "valid"), ("test", "test")):
        assert DonorSet.from_dict(donors[role]) == DonorSet.of_cohort(small_cohort.split(split))


def test_cli_evaluate_refuses_a_calibration_fitted_on_the_test_donors(saved, small_cohort, tmp_path, capsys):
    checkpoint = tmp_path / "leaky.safetensors"
    checkpoint.write_bytes((saved / "mean.safetensors").read_bytes())
    command = ["evaluate", "--checkpoint", str(checkpoint), "--cohort", str(saved / "cohort"), "--interval", "0.9",
               "--json", str(tmp_path / "e.json")]
    assert main(command) == 0
    capsys.readouterr()
    imputer = load_checkpoint(checkpoint)[0]
    attach_calibration(checkpoint, calibrate(imputer, small_cohort.split("test")))
    assert main([*command[:-1], str(tmp_path / "leak.json")]) == 2
    error = capsys.readouterr().err
    assert "error: The interval calibration was fitted on" in error and "of the test split" in error
    assert not (tmp_path / "leak.json").exists()


def test_cli_evaluate_refuses_test_donors_the_model_was_trained_on(saved, small_cohort, tmp_path, capsys):
    """The cohort folder was split again after training: some of its test donors trained the model."""
    donors = sorted(small_cohort.samples["donor_id"].unique())
    split = small_cohort.samples["donor_id"].map({d: ("test", "train", "valid", "train")[i % 4] for i, d in enumerate(donors)})
    resplit = Cohort(small_cohort.x, small_cohort.genes, small_cohort.samples.assign(split=split),
                     small_cohort.transform, small_cohort.meta)
    resplit.save(tmp_path / "resplit")
    assert main(["evaluate", "--checkpoint", str(saved / "mean.safetensors"), "--cohort", str(tmp_path / "resplit")]) == 2
    assert "(its training donors) was fitted on" in capsys.readouterr().err
    imputer, metadata = load_checkpoint(saved / "mean.safetensors")
    old = save_checkpoint(imputer, tmp_path / "old.safetensors", {k: metadata[k] for k in ("genes", "tissues", "transform")})
    assert main(["evaluate", "--checkpoint", str(old), "--cohort", str(saved / "cohort")]) == 0
    assert "warning: The checkpoint old.safetensors was stored before donors were recorded" in capsys.readouterr().err
