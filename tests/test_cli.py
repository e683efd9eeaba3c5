import json

import numpy as np
import pandas as pd
import pytest

from gtex_models.cli import main
from gtex_models.cohort import Cohort
from gtex_models.experiment import CONFIG_DIR, Experiment


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
    assert record["method"] == "mean" and record["missing_rate"] == 0.3 and record["n_genes"] == 400

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


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_builds_its_imputer(path):
    experiment = Experiment.from_yaml(path)
    assert experiment.make_imputer().method == experiment.method
    assert experiment.checkpoint.get("dtype", "float32") in ("float32", "float16")


def test_every_demo_model_has_its_config():
    from gtex_models.demo import BENCHMARK_CONFIGS, DEMO_EXPERIMENTS

    for name in DEMO_EXPERIMENTS.values():
        assert (CONFIG_DIR / name).is_file(), name
    for (method, scenario), name in BENCHMARK_CONFIGS.items():  # each benchmark run has its scenario's config
        experiment = Experiment.from_yaml(CONFIG_DIR / name)
        assert experiment.scenario == scenario and experiment.method == method.removesuffix("-mse"), name


def test_config_with_a_typo_is_refused(tmp_path):
    (tmp_path / "c.yaml").write_text("method: pmi\nscenarion: inductive\n")
    with pytest.raises(ValueError, match=r"c\.yaml: scenarion: is not a known key \(a typo\?\); allowed: method, scenario"):
        Experiment.from_yaml(tmp_path / "c.yaml")
