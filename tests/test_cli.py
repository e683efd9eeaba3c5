import json
import re

import numpy as np
import pandas as pd
import pytest

from gtex_models.common.paths import CONFIG_DIR
from gtex_models.data.cohort import Cohort
from gtex_models.interfaces.cli.main import main
from gtex_models.studies.experiment import Experiment


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "cohort"
    assert main(["simulate", "--out", str(out), "--donors", "20", "--genes", "400", "--seed", "2"]) == 0
    return out


def test_simulate_prints_a_one_line_summary(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "c"), "--donors", "6", "--genes", "400"]) == 0
    line = capsys.readouterr().out.strip()
    assert "simulated" in line.lower() and "400 genes" in line and "6 donors" in line
    assert Cohort.load(tmp_path / "c").n_genes == 400


def test_import_a_csv_round_trips_tpm(tmp_path, capsys):
    tpm = pd.DataFrame([[1.0, 10.0, 0.0], [3.0, 0.5, 7.0]], index=["s1", "s2"], columns=["TP53", "APOE", "APP"])
    tpm.index.name = "sample_id"
    tpm.to_csv(tmp_path / "expr.csv")
    assert main(["import", "--expression", str(tmp_path / "expr.csv"), "--out", str(tmp_path / "c")]) == 0
    assert "2 samples x 3 genes" in capsys.readouterr().out
    cohort = Cohort.load(tmp_path / "c")
    np.testing.assert_allclose(cohort.raw(), tpm.to_numpy(), rtol=1e-4, atol=1e-4)


def test_train_evaluate_and_impute(cohort_dir, tmp_path, capsys):
    checkpoint = tmp_path / "mean.safetensors"
    assert main(["train", "--cohort", str(cohort_dir), "--method", "mean", "--out", str(checkpoint)]) == 0
    assert "test R²" in capsys.readouterr().out
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--cohort", str(cohort_dir),
                 "--missing-rate", "0.3", "--json", str(tmp_path / "e.json")]) == 0
    record = json.loads((tmp_path / "e.json").read_text())[0]
    assert record["method"] == "mean" and record["missing_rate"] == 0.3
    assert 390 <= record["n_genes"] <= 400  # a gene whose hidden values are all undetected (0) is not scored

    cohort = Cohort.load(cohort_dir).split("test")
    raw = pd.DataFrame(cohort.raw()[:3], index=cohort.samples["sample_id"][:3], columns=cohort.genes["symbol"])
    raw.index.name = "sample_id"
    raw.iloc[:, ::2] = np.nan
    raw.T.to_csv(tmp_path / "partial.csv")  # genes x samples
    out = tmp_path / "filled.csv"
    tissue = cohort.samples["tissue"].iloc[0]
    assert main(["impute", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "partial.csv"),
                 "--tissue", tissue, "--out", str(out)]) == 0
    filled = pd.read_csv(out, index_col=0)
    assert filled.shape == (400, 3) and not filled.isna().any().any()
    kept = raw.T.notna().to_numpy()
    np.testing.assert_allclose(filled.to_numpy()[kept], raw.T.to_numpy()[kept], rtol=1e-5)


def test_benchmark_writes_json_and_markdown(cohort_dir, tmp_path):
    assert main(["benchmark", "--cohort", str(cohort_dir), "--methods", "mean,oracle", "--scenario", "inplace",
                 "--json", str(tmp_path / "b.json"), "--markdown", str(tmp_path / "b.md")]) == 0
    records = json.loads((tmp_path / "b.json").read_text())
    assert [r["method"] for r in records] == ["mean", "oracle"]
    assert records[1]["r2_mean"] > records[0]["r2_mean"]
    assert (tmp_path / "b.md").read_text().startswith("| Method |")


def test_unknown_method_fails_cleanly(cohort_dir, tmp_path, capsys):
    assert main(["train", "--cohort", str(cohort_dir), "--method", "magic", "--out", str(tmp_path / "m")]) == 2
    assert "argument --method: invalid choice: 'magic'" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIG_DIR)))
def test_every_shipped_config_builds_its_imputer(path):
    experiment = Experiment.from_yaml(path)
    assert experiment.make_imputer().method == experiment.method
    assert experiment.checkpoint.get("dtype", "float32") in ("float32", "float16")


def test_every_demo_model_has_its_config():
    from gtex_models.studies.demo import BENCHMARK_CONFIGS, DEMO_EXPERIMENTS

    for name in DEMO_EXPERIMENTS.values():
        assert (CONFIG_DIR / name).is_file(), name
    for (method, scenario), name in BENCHMARK_CONFIGS.items():  # each benchmark run has its scenario's config
        experiment = Experiment.from_yaml(CONFIG_DIR / name)
        assert experiment.scenario == scenario and experiment.method == method.removesuffix("-mse"), name


def test_config_with_a_typo_is_refused(tmp_path):
    (tmp_path / "c.yaml").write_text("method: pmi\nscenarion: inductive\n")
    with pytest.raises(ValueError, match=r"c\.yaml: scenarion: is not a known key \(a typo\?\); allowed: method, scenario"):
        Experiment.from_yaml(tmp_path / "c.yaml")


# ------------------------------------------------------------------------------------- studies and user cohorts
def _probe_cohort(tmp_path, capsys):
    from test_study import write_probe_cohort

    expression, samples = write_probe_cohort(tmp_path)
    assert main(["import", "--expression", str(expression), "--samples", str(samples), "--tissue-column", "group",
                 "--out", str(tmp_path / "cohort")]) == 0
    return tmp_path / "cohort", capsys.readouterr()


def test_import_detects_the_scale_and_says_why(tmp_path, capsys):
    cohort, captured = _probe_cohort(tmp_path, capsys)
    line = captured.out.strip()
    assert line.startswith("Imported cohort: 60 samples x 300 genes, 3 groups, 60 donors (groups from column 'group': "
                           "heart, kidney, liver; scale log: values between")
    assert line.endswith(f"values log2 intensity) -> {cohort}")
    assert "microarray probes?" in captured.err
    assert Cohort.load(cohort).transform.scale == "log"


def test_study_build_info_and_add_model_on_a_probe_cohort(tmp_path, capsys):
    cohort, _ = _probe_cohort(tmp_path, capsys)
    study = tmp_path / "study"
    assert main(["study", "build", "--cohort", str(cohort), "--out", str(study), "--models", "pmi,gain",
                 "--baselines", "mean,knn", "--max-epochs", "2", "--title", "Probes"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("\n") == 1
    assert captured.out.startswith("Study 'Probes': 60 samples x 300 genes, 3 groups, values log2 intensity; "
                                   "models pmi_all (test R² ")
    assert "4 benchmark records" in captured.out and "study build" in captured.err  # the progress bar
    assert main(["study", "add-model", "--study", str(study), "--method", "mean", "--label", "Group means"]) == 0
    assert "mean_all (test R² " in capsys.readouterr().out
    assert main(["study", "info", "--study", str(study)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["key", "label", "method", "scenario", "gene", "set", "genes", "groups", "test", "R²",
                                "calibrated", "on", "missing"]
    assert [line.split()[0] for line in lines[2:5]] == ["pmi_all", "gain_all", "mean_all"]
    assert "Group means" in lines[4]
    assert lines[6].startswith("Benchmark on the test donors (models and baselines")


def test_train_evaluate_and_benchmark_deep_models_on_a_probe_cohort(tmp_path, capsys):
    """Used to crash: the deep models indexed genes by their (empty) Ensembl IDs."""
    cohort, _ = _probe_cohort(tmp_path, capsys)
    checkpoint = tmp_path / "pmi.safetensors"
    assert main(["train", "--cohort", str(cohort), "--method", "pmi", "--max-epochs", "2", "--out", str(checkpoint)]) == 0
    assert "Trained pmi (inductive): test R²" in capsys.readouterr().out
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--cohort", str(cohort)]) == 0
    assert re.search(r"over \d+ genes, \d+ test samples", capsys.readouterr().out)
    assert main(["benchmark", "--cohort", str(cohort), "--methods", "gain,mean"]) == 0
    table = capsys.readouterr().out
    assert "| gain | inductive |" in table and "| mean | inductive |" in table
    assert main(["study", "add-model", "--study", str(tmp_path / "missing"), "--checkpoint", str(checkpoint)]) == 2


def test_a_checkpoint_joins_a_study(tmp_path, capsys):
    cohort, _ = _probe_cohort(tmp_path, capsys)
    checkpoint = tmp_path / "knn.safetensors"
    assert main(["train", "--cohort", str(cohort), "--method", "knn", "--out", str(checkpoint)]) == 0
    study = tmp_path / "study"
    assert main(["study", "build", "--cohort", str(cohort), "--out", str(study), "--models", "mean",
                 "--baselines", ""]) == 0
    assert main(["study", "add-model", "--study", str(study), "--checkpoint", str(checkpoint), "--key", "knn_mine"]) == 0
    assert "knn_mine (test R² " in capsys.readouterr().out.splitlines()[-1]


def test_study_build_on_a_prepared_gtex_cohort(tmp_path, capsys):
    from test_paper_configs import small_gtex_files

    gct, attributes, subjects = small_gtex_files(tmp_path)
    assert main(["prepare-gtex", "--gct", str(gct), "--samples", str(attributes), "--subjects", str(subjects),
                 "--min-samples-per-tissue", "10", "--out", str(tmp_path / "cohort")]) == 0
    cohort = Cohort.load(tmp_path / "cohort")
    assert main(["study", "build", "--cohort", str(tmp_path / "cohort"), "--out", str(tmp_path / "study"),
                 "--models", "pmi,gain", "--max-epochs", "2"]) == 0
    out = capsys.readouterr().out.splitlines()[-1]
    assert out.startswith(f"Study 'cohort': {cohort.n_samples} samples x {cohort.n_genes} genes, 3 tissues, "
                          "values log2(TPM + 1); models pmi_all") and "5 benchmark" in out
    from gtex_models.studies.study import Study

    study = Study.open(tmp_path / "study")
    assert study.problems == [] and not study.simulated
    assert study.cohort().genes["symbol"].tolist() == cohort.genes["symbol"].tolist()


def test_study_build_refuses_a_prepared_gtex_cohort_too_small_to_score(tmp_path, capsys):
    """6 samples, one of them a test sample: refused before any training (no study with R² nan)."""
    from test_io_gtex import write_gtex

    gct, attributes, subjects = write_gtex(tmp_path)
    assert main(["prepare-gtex", "--gct", str(gct), "--samples", str(attributes), "--subjects", str(subjects),
                 "--min-samples-per-tissue", "3", "--out", str(tmp_path / "cohort")]) == 0
    assert "too small to train or evaluate" in capsys.readouterr().err
    assert main(["study", "build", "--cohort", str(tmp_path / "cohort"), "--out", str(tmp_path / "study"),
                 "--models", "pmi,gain", "--max-epochs", "2"]) == 2
    captured = capsys.readouterr()
    assert "error: The cohort (6 samples x 4 genes" in captured.err and "1 test sample(s), at least 2" in captured.err
    assert "epoch" not in captured.err and not (tmp_path / "study").exists()


def test_duplicated_identifiers_are_kept_first_or_averaged(tmp_path, capsys):
    frame = pd.DataFrame([[1.0, 2.0, 4.0, 8.0], [3.0, np.nan, 6.0, 1.0]], index=["s1", "s2"],
                         columns=["TP53", "APP", "TP53", "ENSG00000142192.20"])  # the last: APP's Ensembl ID
    frame.index.name = "sample_id"
    frame.to_csv(tmp_path / "dup.csv")
    assert main(["import", "--expression", str(tmp_path / "dup.csv"), "--out", str(tmp_path / "c")]) == 2
    assert "duplicated gene id(s) in the header row: 'TP53' (2x)" in capsys.readouterr().err
    assert main(["import", "--expression", str(tmp_path / "dup.csv"), "--out", str(tmp_path / "mean"),
                 "--duplicates", "mean", "--scale", "log"]) == 0
    out = capsys.readouterr().out
    assert "4 -> 3 features (duplicated gene id(s): mean); 3 -> 2 features (features naming the same gene: mean)" in out
    mean = Cohort.load(tmp_path / "mean")
    assert mean.genes["symbol"].tolist() == ["TP53", "APP"]
    np.testing.assert_allclose(mean.raw(), [[2.5, 5.0], [4.5, 1.0]], rtol=1e-5)  # APP: NaN skipped in s2
    assert main(["import", "--expression", str(tmp_path / "dup.csv"), "--out", str(tmp_path / "first"),
                 "--duplicates", "first", "--scale", "log"]) == 0
    np.testing.assert_allclose(Cohort.load(tmp_path / "first").raw(), [[1.0, 2.0], [3.0, np.nan]], rtol=1e-5)


def test_a_gene_map_lets_a_probe_upload_meet_a_gene_model(cohort_dir, tmp_path, capsys):
    checkpoint = tmp_path / "mean.safetensors"
    assert main(["train", "--cohort", str(cohort_dir), "--method", "mean", "--out", str(checkpoint)]) == 0
    cohort = Cohort.load(cohort_dir).split("test")
    symbols = cohort.genes["symbol"].tolist()[:20]
    raw = cohort.raw()[:3, :20]
    probes = [f"{2000 + j}_at" for j in range(20)] + ["2100_s_at"]  # the last: a second probe of gene 0
    values = np.column_stack([raw, raw[:, 0] * 3])
    upload = pd.DataFrame(values, index=pd.Index(cohort.samples["sample_id"][:3], name="sample_id"), columns=probes)
    upload.to_csv(tmp_path / "probes.csv")
    tissue = cohort.samples["tissue"].iloc[0]
    argv = ["impute", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "probes.csv"), "--tissue", tissue,
            "--out", str(tmp_path / "filled.csv")]
    capsys.readouterr()
    assert main(argv) == 2
    assert "look like microarray probe IDs: give a probe-to-gene map" in capsys.readouterr().err
    mapping = pd.DataFrame({"probe": probes + ["9999_at"], "symbol": symbols + [symbols[0], "NOT_A_GENE"]})
    mapping.to_csv(tmp_path / "map.csv", index=False)
    assert main([*argv, "--gene-map", str(tmp_path / "map.csv")]) == 0
    captured = capsys.readouterr()
    assert "(20/400 model genes in the input" in captured.out
    assert "map.csv: 21 probe(s) -> 20 gene(s)" in captured.err
    filled = pd.read_csv(tmp_path / "filled.csv", index_col=0)
    assert filled.shape == (3, 400) and not filled.isna().any().any()
    np.testing.assert_allclose(filled[symbols[0]], raw[:, 0] * 2, rtol=1e-4)  # the two probes averaged
    np.testing.assert_allclose(filled[symbols[1:]].to_numpy(), raw[:, 1:], rtol=1e-4)
    assert main(["import", "--expression", str(tmp_path / "probes.csv"), "--gene-map", str(tmp_path / "map.csv"),
                 "--out", str(tmp_path / "mapped")]) == 0
    assert "map.csv: 21 probe(s) -> 20 gene(s)" in capsys.readouterr().out
    assert Cohort.load(tmp_path / "mapped").genes["ensembl_gene_id"].tolist() == cohort.genes["ensembl_gene_id"][:20].tolist()


def test_build_demo_is_a_shortcut_to_study_build(monkeypatch, tmp_path, capsys):
    from gtex_models.studies import demo

    small = demo.SimulationConfig(n_donors=12, n_genes=400, seed=3)
    monkeypatch.setattr(demo, "DEMO_SIMULATION", small)
    monkeypatch.setattr(demo, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(demo, "demo_runs", lambda: ([Experiment("mean")], [Experiment("knn", "inplace")]))
    assert main(["build-demo", "--out", str(tmp_path / "demo")]) == 0
    assert capsys.readouterr().out.startswith("Demo study: 'Demo cohort (simulated)'")
    from gtex_models.studies.study import Study

    study = Study.open(tmp_path / "demo")
    assert study.simulated and study.manifest["cohort"]["simulation"]["n_donors"] == 12
    assert [(r["method"], r["scenario"]) for r in study.benchmark()] == [("mean", "inductive"), ("knn", "inplace")]
