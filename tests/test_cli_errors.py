"""The CLI's answers to bad options, cohorts too small to use, and its own bugs.

Bad input: ``error: <what, where, how to fix>`` on stderr, exit status 2, nothing written. An
unexpected internal error: a short message and exit status 1 (the traceback only with GTEX_DEBUG=1).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gtex_models.data import simulate
from gtex_models.data.cohort import Cohort
from gtex_models.interfaces.cli.main import main


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("cli_errors")
    cohort_dir, checkpoint = directory / "cohort", directory / "mean.safetensors"
    assert main(["simulate", "--out", str(cohort_dir), "--donors", "12", "--genes", "400", "--seed", "4"]) == 0
    assert main(["train", "--cohort", str(cohort_dir), "--method", "mean", "--out", str(checkpoint)]) == 0
    cohort = Cohort.load(cohort_dir)
    test = cohort.split("test")
    upload = directory / "upload.csv"
    pd.DataFrame(test.raw()[:2], index=pd.Index(test.samples["sample_id"][:2], name="sample_id"),
                 columns=test.genes["symbol"]).to_csv(upload)
    return {"cohort": cohort_dir, "checkpoint": checkpoint, "upload": upload, "dir": directory}


def run(capsys, argv) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out = capsys.readouterr()
    return status, out.out, out.err


# (argv after the files are filled in, regex of the message); each names the option
BAD_OPTIONS = {
    "evaluate_rate_zero": (["evaluate", "--checkpoint", "{checkpoint}", "--cohort", "{cohort}", "--missing-rate", "0"],
                           r"argument --missing-rate: must be strictly between 0 and 1 .*got 0"),
    "evaluate_rate_text": (["evaluate", "--checkpoint", "{checkpoint}", "--cohort", "{cohort}", "--missing-rate", "half"],
                           r"argument --missing-rate: 'half' is not a number"),
    "evaluate_rate_nan": (["evaluate", "--checkpoint", "{checkpoint}", "--cohort", "{cohort}", "--missing-rate", "nan"],
                          r"argument --missing-rate: must be a finite number"),
    "benchmark_rate_one": (["benchmark", "--cohort", "{cohort}", "--methods", "mean", "--missing-rate", "1"],
                           r"argument --missing-rate: must be strictly between 0 and 1"),
    "benchmark_unknown_method": (["benchmark", "--cohort", "{cohort}", "--methods", "mean,magic"],
                                 r"argument --methods: 'magic' given; choose among pmi, gain"),
    "benchmark_no_method": (["benchmark", "--cohort", "{cohort}", "--methods", " , "], r"argument --methods: no method given"),
    "benchmark_twice": (["benchmark", "--cohort", "{cohort}", "--methods", "mean,mean"], r"argument --methods: a method is listed twice"),
    "benchmark_same_outputs": (["benchmark", "--cohort", "{cohort}", "--methods", "mean", "--json", "{dir}/r",
                                "--markdown", "{dir}/r"], r"--json and --markdown are the same file"),
    "simulate_no_donor": (["simulate", "--out", "{dir}/s", "--donors", "0"], r"argument --donors: must be at least 1, got 0"),
    "simulate_few_genes": (["simulate", "--out", "{dir}/s", "--genes", "10"],
                           r"number of genes \(--genes, n_genes\) must be between 339 .* got 10"),
    "simulate_too_many_genes": (["simulate", "--out", "{dir}/s", "--genes", "100000"],
                                r"number of genes \(--genes, n_genes\) must be between 339 .*and [\d,]+ .*got 100000"),
    "simulate_negative_seed": (["simulate", "--out", "{dir}/s", "--seed", "-1"], r"argument --seed: must be at least 0"),
    "impute_negative_draws": (["impute", "--checkpoint", "{checkpoint}", "--input", "{upload}", "--out", "{dir}/o.csv",
                               "--tissue", "Lung", "--draws", "-1"], r"argument --draws: must be at least 0"),
    "impute_age": (["impute", "--checkpoint", "{checkpoint}", "--input", "{upload}", "--out", "{dir}/o.csv",
                    "--tissue", "Lung", "--age", "-5"], r"argument --age: must be an age in years between 0 and 150"),
    "impute_sex": (["impute", "--checkpoint", "{checkpoint}", "--input", "{upload}", "--out", "{dir}/o.csv",
                    "--tissue", "Lung", "--sex", "xyz"], r"argument --sex: 'xyz' is not a sex; use female, male or unknown"),
    "gtex_negative_minimum": (["prepare-gtex", "--gct", "{upload}", "--samples", "{upload}", "--subjects", "{upload}",
                               "--out", "{dir}/g", "--min-samples-per-tissue", "-1"],
                              r"argument --min-samples-per-tissue: must be at least 0"),
    "train_unknown_method": (["train", "--cohort", "{cohort}", "--method", "magic", "--out", "{dir}/m"],
                             r"argument --method: invalid choice: 'magic'"),
    "train_nothing_to_train": (["train", "--cohort", "{cohort}", "--out", "{dir}/m"],
                               r"Say what to train: --method NAME .* or --config FILE"),
    "train_max_epochs_zero": (["train", "--cohort", "{cohort}", "--method", "pmi", "--max-epochs", "0", "--out", "{dir}/m"],
                              r"argument --max-epochs: must be at least 1, got 0"),
    "train_max_epochs_text": (["train", "--cohort", "{cohort}", "--method", "pmi", "--max-epochs", "ten", "--out", "{dir}/m"],
                              r"argument --max-epochs: 'ten' is not a whole number"),
    "train_missing_config": (["train", "--cohort", "{cohort}", "--config", "{dir}/none.yaml", "--out", "{dir}/m"],
                             r"none\.yaml: no such file"),
    # study build / add-model / info
    "study_unknown_model": (["study", "build", "--cohort", "{cohort}", "--out", "{dir}/st", "--models", "pmi,magic"],
                            r"argument --models: 'magic' given; choose among pmi"),
    "study_no_model": (["study", "build", "--cohort", "{cohort}", "--out", "{dir}/st"],
                       r"Give at least one model: --models pmi,gain and/or --config FILE"),
    "study_baseline_twice": (["study", "build", "--cohort", "{cohort}", "--out", "{dir}/st", "--models", "mean",
                              "--baselines", "knn,knn"], r"argument --baselines: a method is listed twice"),
    "study_max_epochs": (["study", "build", "--cohort", "{cohort}", "--out", "{dir}/st", "--models", "pmi",
                          "--max-epochs", "-3"], r"argument --max-epochs: must be at least 1, got -3"),
    "study_scenario": (["study", "build", "--cohort", "{cohort}", "--out", "{dir}/st", "--models", "pmi",
                        "--scenario", "sideways"], r"argument --scenario: invalid choice: 'sideways'"),
    "study_missing_config": (["study", "build", "--cohort", "{cohort}", "--out", "{dir}/st", "--config", "{dir}/c.yaml"],
                             r"c\.yaml: no such file"),
    "study_missing_cohort": (["study", "build", "--cohort", "{dir}/nowhere", "--out", "{dir}/st", "--models", "mean"],
                             r"nowhere is not a cohort directory \(no cohort.json\)"),
    "add_unknown_method": (["study", "add-model", "--study", "{dir}", "--method", "magic"],
                           r"argument --method: invalid choice: 'magic'"),
    "add_max_epochs": (["study", "add-model", "--study", "{dir}", "--method", "pmi", "--max-epochs", "0"],
                       r"argument --max-epochs: must be at least 1, got 0"),
    "add_two_sources": (["study", "add-model", "--study", "{dir}", "--method", "pmi", "--checkpoint", "{checkpoint}"],
                        r"Give exactly one of --method, --config and --checkpoint"),
    "add_not_a_study": (["study", "add-model", "--study", "{dir}", "--method", "pmi"], r"is not a study folder \(no study.json\)"),
    "info_not_a_study": (["study", "info", "--study", "{dir}"], r"is not a study folder \(no study.json\)"),
    "study_without_verb": (["study"], r"the following arguments are required: study_command"),
    # import: scale, duplicates, negatives, gene map, ARCHS4
    "import_scale": (["import", "--expression", "{upload}", "--scale", "linear", "--out", "{dir}/i"],
                     r"argument --scale: invalid choice: 'linear' \(choose from 'auto', 'tpm', 'log'\)"),
    "import_duplicates": (["import", "--expression", "{upload}", "--duplicates", "keep", "--out", "{dir}/i"],
                          r"argument --duplicates: invalid choice: 'keep'"),
    "import_negatives": (["import", "--expression", "{upload}", "--negatives", "zero", "--out", "{dir}/i"],
                         r"argument --negatives: invalid choice: 'zero'"),
    "import_gene_map_missing": (["import", "--expression", "{upload}", "--gene-map", "{dir}/map.csv", "--out", "{dir}/i"],
                                r"map\.csv: no such file"),
    "import_two_sources": (["import", "--expression", "{upload}", "--archs4", "{upload}", "--out", "{dir}/i"],
                           r"argument --archs4: not allowed with argument --expression"),
    "import_query_without_archs4": (["import", "--expression", "{upload}", "--samples-query", "liver", "--out", "{dir}/i"],
                                    r"--samples-query and --sample-list choose samples of an ARCHS4 file; use them with --archs4"),
    "import_archs4_not_hdf5": (["import", "--archs4", "{upload}", "--out", "{dir}/i"], r"upload\.csv is not an HDF5 file"),
    "import_archs4_sample_list": (["import", "--archs4", "{upload}", "--sample-list", "{dir}/gsm.txt", "--out", "{dir}/i"],
                                  r"gsm\.txt: no such file"),
    "import_seed": (["import", "--expression", "{upload}", "--seed", "x", "--out", "{dir}/i"],
                    r"argument --seed: 'x' is not a whole number"),
    "impute_duplicates": (["impute", "--checkpoint", "{checkpoint}", "--input", "{upload}", "--out", "{dir}/o.csv",
                           "--duplicates", "sum"], r"argument --duplicates: invalid choice: 'sum'"),
    "impute_gene_map_missing": (["impute", "--checkpoint", "{checkpoint}", "--input", "{upload}", "--out", "{dir}/o.csv",
                                 "--tissue", "Lung", "--gene-map", "{dir}/map.csv"], r"map\.csv: no such file"),
    "build_demo_file_parent": (["build-demo", "--out", "{upload}/demo"], r"upload\.csv is a file, not a folder"),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_a_bad_option_is_named_and_nothing_is_written(case, files, capsys):
    argv, pattern = BAD_OPTIONS[case]
    argv = [a.format(**files) for a in argv]
    before = sorted(p.name for p in files["dir"].iterdir())
    status, stdout, stderr = run(capsys, argv)
    assert status == 2, stderr
    assert stderr.startswith("error: ") and "Traceback" not in stderr and not stdout, stderr
    assert re.search(pattern, stderr), stderr
    assert sorted(p.name for p in files["dir"].iterdir()) == before


def test_draws_with_a_model_without_intervals_warns(files, tmp_path, capsys):
    status, _, stderr = run(capsys, ["impute", "--checkpoint", files["checkpoint"], "--input", files["upload"],
                                     "--out", tmp_path / "o.csv", "--tissue", "Lung", "--draws", "5"])
    assert status == 0 and "warning: --draws 5 is ignored: only GAIN-GTEx models" in stderr


# ------------------------------------------------------------------------------------- unexpected errors
def broken_simulation(error: BaseException):
    def simulate_cohort(**kwargs):
        raise error
    return simulate_cohort


def test_an_internal_error_is_a_short_message_not_a_traceback(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("GTEX_DEBUG", raising=False)
    monkeypatch.setattr(simulate, "simulate_cohort", broken_simulation(KeyError("boom")))
    status, stdout, stderr = run(capsys, ["simulate", "--out", tmp_path / "c"])
    assert status == 1 and not stdout
    assert stderr.startswith("error: internal error in `simulate` (KeyError: 'boom'). This is a bug")
    assert "GTEX_DEBUG=1" in stderr and "Traceback" not in stderr
    assert not list(tmp_path.iterdir())


def test_gtex_debug_shows_the_traceback(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("GTEX_DEBUG", "1")
    monkeypatch.setattr(simulate, "simulate_cohort", broken_simulation(KeyError("boom")))
    status, _, stderr = run(capsys, ["simulate", "--out", tmp_path / "c"])
    assert status == 1
    assert "Traceback (most recent call last)" in stderr and "KeyError: 'boom'" in stderr


@pytest.mark.parametrize("error, status, message", [
    (KeyboardInterrupt(), 130, "error: interrupted; no partial output was left"),
    (MemoryError(), 1, "error: `simulate` ran out of memory. Use fewer samples or genes"),
])
def test_interrupts_and_memory_errors(error, status, message, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(simulate, "simulate_cohort", broken_simulation(error))
    code, stdout, stderr = run(capsys, ["simulate", "--out", tmp_path / "c"])
    assert code == status and not stdout
    assert stderr.startswith(message) and "Traceback" not in stderr
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------- cohort sizes
def test_a_one_sample_cohort_imports_with_a_warning_and_is_refused_for_training(files, tmp_path, capsys):
    one = pd.read_csv(files["upload"], index_col=0).iloc[:1]
    one.to_csv(tmp_path / "one.csv")
    status, _, stderr = run(capsys, ["import", "--expression", tmp_path / "one.csv", "--out", tmp_path / "c"])
    assert status == 0
    assert "warning: This cohort is too small to train or evaluate a model on" in stderr
    status, _, stderr = run(capsys, ["train", "--cohort", tmp_path / "c", "--method", "mean", "--out", tmp_path / "m"])
    assert status == 2
    assert re.search(r"error: The cohort \(1 samples x 400 genes, 1 group, 1 donors\) is too small to train and "
                     r"evaluate a model: no donor in the valid and test split\(s\).*at least 4 donors.*Add samples from "
                     r"more donors", stderr), stderr
    assert not (tmp_path / "m").exists()
    status, _, stderr = run(capsys, ["benchmark", "--cohort", tmp_path / "c", "--methods", "mean"])
    assert status == 2 and "is too small to train and evaluate" in stderr


def test_an_evaluation_without_any_scorable_gene_is_an_error(files, tmp_path, capsys):
    cohort = Cohort.load(files["cohort"])
    split, tissue = cohort.samples["split"].to_numpy(), cohort.samples["tissue"].to_numpy()
    row = next(i for i in np.flatnonzero(split == "test") if (tissue[split == "train"] == tissue[i]).any())
    peers = (split == "train") & (tissue == tissue[row])
    cohort.x[row] = cohort.x[peers].mean(axis=0)  # every value of the one test sample at its R² reference
    cohort = cohort.subset_samples(np.concatenate([np.flatnonzero(split != "test"), [row]]))
    cohort.save(tmp_path / "c")
    status, stdout, stderr = run(capsys, ["evaluate", "--checkpoint", files["checkpoint"], "--cohort", tmp_path / "c",
                                          "--missing-rate", "0.5", "--json", tmp_path / "r.json"])
    assert status == 2 and not stdout
    assert "R² could not be computed for any gene" in stderr and "1 test sample(s)" in stderr
    assert not (tmp_path / "r.json").exists()


def test_test_samples_of_a_tissue_the_model_never_saw_are_left_out_of_the_score(tmp_path, capsys):
    """A deep model cannot impute an unseen tissue: before, training ended in an error after all the work."""
    cohort = simulate.simulate_cohort(n_donors=20, n_genes=400, seed=1)
    trained = set(cohort.split("train").tissues)
    unseen = sorted(set(cohort.tissues) - trained)
    assert set(cohort.split("test").tissues) - trained  # the case this test is about
    cohort.save(tmp_path / "c")
    (tmp_path / "pmi.yaml").write_text("method: pmi\nmodel: {hidden_sizes: [8]}\ntraining: {max_epochs: 1, batch_size: 64}\n")
    status, _, stderr = run(capsys, ["train", "--cohort", tmp_path / "c", "--config", tmp_path / "pmi.yaml",
                                     "--out", tmp_path / "m"])
    assert status == 0, stderr
    n_left_out = int((~cohort.samples["tissue"].isin(trained)).sum())
    assert (f"warning: {n_left_out} sample(s) of {len(unseen)} group(s) that have no training donors are left out "
            "of the evaluation") in stderr
    assert f"{unseen[0]!r}" in stderr
    status, stdout, stderr = run(capsys, ["evaluate", "--checkpoint", tmp_path / "m", "--cohort", tmp_path / "c"])
    assert status == 0, stderr
    n_left_out = int((~cohort.split("test").samples["tissue"].isin(trained)).sum())
    assert f"{cohort.split('test').n_samples - n_left_out} test samples" in stdout
