"""Own cohorts of a few dozen samples (issue #27, point 11): a donor split stratified by group that `import` can
set, baselines saved as checkpoints, a per-sample group fallback in `impute`, several missing rates from one fit,
training budgets in epochs, and a calibration refusal that names the real shortfall and a fix that exists."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gtex_models.data.cohort import Cohort, stratified_donor_split
from gtex_models.interfaces.cli.main import main

FLU = Path(__file__).parent / "data" / "flu_gse30550"
ARRAY = Path(__file__).parent / "data" / "biobase_sample"


def test_the_donor_split_is_stratified_by_group():
    """Every group of two donors or more gets training donors, the shares of the whole cohort stay those asked,
    and a donor's samples stay together (here: donors with samples in several groups)."""
    sizes = {"tiny": 2, "small": 3, "mid": 5, "big": 40, "huge": 80}
    groups = [group for group, n in sizes.items() for _ in range(n)]
    donors = [f"d{i}" for i in range(len(groups))]
    for seed in range(5):
        split = pd.Series(stratified_donor_split(donors, groups, (0.6, 0.15, 0.25), seed), index=donors)
        per_group = pd.crosstab(pd.Series(groups, index=donors), split)
        assert (per_group["train"] > 0).all(), per_group
        assert abs(split.value_counts()["valid"] - 0.15 * len(donors)) <= 1
        assert abs(split.value_counts()["train"] - 0.6 * len(donors)) <= 1
    pairs = [f"g{i % 20}" for i in range(40)]  # groups of two donors, a small training share
    split = pd.Series(stratified_donor_split(donors[:40], pairs, (0.3, 0.35, 0.35), seed=0), index=donors[:40])
    assert (pd.crosstab(pd.Series(pairs, index=donors[:40]), split)["train"] == 1).all()
    samples = pd.read_csv(FLU / "samples.csv")
    split = stratified_donor_split(samples["subject"], samples["hours"].astype(str), seed=0)
    assert (pd.Series(split).groupby(samples["subject"]).nunique() == 1).all()


def test_import_stratifies_by_group_and_sets_the_split(tmp_path, capsys):
    """A random donor split of 40 one-sample donors in 20 groups leaves some group without training donors; the
    import's split never does, and `--split` sets the shares."""
    rng = np.random.default_rng(0)
    values = pd.DataFrame(rng.uniform(2, 12, (40, 20)), index=[f"S{i}" for i in range(40)],
                          columns=pd.read_csv(FLU / "expression.csv.gz", index_col=0, nrows=1).columns[:20])
    values.index.name = "sample_id"
    values.to_csv(tmp_path / "x.csv")
    group = [f"g{i % 20}" for i in range(40)]
    pd.DataFrame({"sample_id": values.index, "group": group}).to_csv(tmp_path / "s.csv", index=False)
    for seed in range(3):
        out = tmp_path / f"c{seed}"
        assert main(["import", "--expression", str(tmp_path / "x.csv"), "--samples", str(tmp_path / "s.csv"),
                     "--seed", str(seed), "--out", str(out)]) == 0
        samples = Cohort.load(out).samples
        assert set(samples.loc[samples["split"] == "train", "tissue"]) == set(group)
    out = tmp_path / "wide"
    assert main(["import", "--expression", str(tmp_path / "x.csv"), "--samples", str(tmp_path / "s.csv"),
                 "--split", "0.5,0.3,0.2", "--out", str(out)]) == 0
    cohort = Cohort.load(out)
    assert cohort.samples["split"].value_counts().to_dict() == {"train": 20, "valid": 12, "test": 8}
    assert cohort.meta["split"] == {"fractions": [0.5, 0.3, 0.2], "stratified_by": "group"}
    capsys.readouterr()
    assert main(["import", "--expression", str(tmp_path / "x.csv"), "--split", "0.5,0.5,0.5",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "summing to 1" in capsys.readouterr().err


@pytest.fixture(scope="module")
def flu_study(tmp_path_factory):
    """The flu cohort (2 groups, 17 subjects), a validation split big enough to calibrate, a study of the mean
    model with KNN as a baseline."""
    root = tmp_path_factory.mktemp("flu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["import", "--expression", str(FLU / "expression.csv.gz"), "--samples", str(FLU / "samples.csv"),
                     "--tissue-column", "condition", "--split", "0.5,0.3,0.2", "--out", str(root / "cohort")]) == 0
        assert main(["study", "build", "--cohort", str(root / "cohort"), "--out", str(root / "study"),
                     "--models", "mean", "--baselines", "knn"]) == 0
    return root


def test_study_build_saves_the_baselines_as_checkpoints_that_impute_and_evaluate(flu_study, tmp_path, capsys):
    capsys.readouterr()
    baseline = flu_study / "study" / "baselines" / "knn_inductive.safetensors"
    assert baseline.is_file()
    assert main(["evaluate", "--checkpoint", str(baseline), "--cohort", str(flu_study / "cohort"),
                 "--interval", "0.9", "--json", str(tmp_path / "e.json")]) == 0
    record = json.loads((tmp_path / "e.json").read_text())[0]
    assert record["method"] == "knn" and 0.8 < record["coverage"] < 0.97
    cohort = Cohort.load(flu_study / "cohort").split("test")
    raw = pd.DataFrame(cohort.raw()[:4], index=cohort.samples["sample_id"][:4], columns=cohort.genes["symbol"])
    raw.index.name = "sample_id"
    raw.iloc[:, ::3] = np.nan
    raw.to_csv(tmp_path / "partial.csv")
    assert main(["impute", "--checkpoint", str(baseline), "--input", str(tmp_path / "partial.csv"),
                 "--tissue", "sx", "--interval", "0.9", "--out", str(tmp_path / "filled.csv")]) == 0
    filled = pd.read_csv(tmp_path / "filled.csv", index_col=0)
    assert filled.notna().all().all() and "AKT3_lower" in filled.columns
    capsys.readouterr()
    assert main(["study", "info", "--study", str(flu_study / "study")]) == 0
    info = capsys.readouterr().out
    rows = {line.split()[0]: line for line in info.splitlines() if line.split()[:2] in (["mean", "inductive"],
                                                                                        ["knn", "inductive"])}
    assert "baselines/knn_inductive.safetensors" in rows["knn"] and "models/mean_all.safetensors" in rows["mean"]
    best = "knn" if "*" in rows["knn"] else "mean"
    records = {r["method"]: r for r in json.loads((flu_study / "study" / "benchmark.json").read_text())}
    assert best == max(records, key=lambda m: records[m]["r2_mean"])
    assert f"{records['knn']['r2_mean']:.3f}" in rows["knn"] and f"{records['knn']['fit_seconds']:.1f}" in rows["knn"]


def test_impute_pools_unknown_groups_only_when_asked(flu_study, tmp_path, capsys):
    """A sample of a group the model never saw: refused (naming the option), or with `--unknown-groups pooled`
    the mean of its imputations under each of the model's groups, reported."""
    checkpoint = flu_study / "study" / "models" / "mean_all.safetensors"
    cohort = Cohort.load(flu_study / "cohort").split("test")
    raw = pd.DataFrame(cohort.raw()[:3], index=cohort.samples["sample_id"][:3], columns=cohort.genes["symbol"])
    raw.index.name = "sample_id"
    raw.iloc[:, ::2] = np.nan
    raw.to_csv(tmp_path / "partial.csv")
    argv = ["impute", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "partial.csv")]
    capsys.readouterr()
    assert main([*argv, "--tissue", "recovered", "--out", str(tmp_path / "x.csv")]) == 2
    error = capsys.readouterr().err
    assert "Unknown group 'recovered'" in error and "(CLI: --unknown-groups pooled)" in error
    assert main([*argv, "--tissue", "recovered", "--unknown-groups", "pooled", "--out", str(tmp_path / "p.csv")]) == 0
    assert "3 sample(s) of group(s) the model does not know ('recovered' (3)) imputed as the mean over its 2 groups" \
        in capsys.readouterr().out
    per_group = [main([*argv, "--tissue", group, "--out", str(tmp_path / f"{group}.csv")]) for group in ("asx", "sx")]
    assert per_group == [0, 0]
    pooled = pd.read_csv(tmp_path / "p.csv", index_col=0)
    expected = (pd.read_csv(tmp_path / "asx.csv", index_col=0) + pd.read_csv(tmp_path / "sx.csv", index_col=0)) / 2
    np.testing.assert_allclose(pooled.to_numpy(), expected.to_numpy(), rtol=1e-4)
    observed = raw.notna().to_numpy()
    np.testing.assert_allclose(pooled.to_numpy()[observed], raw.to_numpy()[observed], rtol=1e-4)


def test_benchmark_fits_each_model_once_and_scores_every_missing_rate(flu_study, monkeypatch, capsys):
    from gtex_models.models.baselines import KNNImputer

    fits = []
    original = KNNImputer.fit
    monkeypatch.setattr(KNNImputer, "fit", lambda self, *args, **kwargs: fits.append(1) or original(self, *args,
                                                                                                      **kwargs))
    assert main(["benchmark", "--cohort", str(flu_study / "cohort"), "--methods", "knn",
                 "--missing-rate", "0.2,0.5,0.8"]) == 0
    table = capsys.readouterr().out
    assert len(fits) == 1
    assert [line.split("|")[4].strip() for line in table.splitlines()[2:]] == ["0.20", "0.50", "0.80"]


def test_a_calibration_refusal_names_the_real_shortfall_the_level_and_a_fix(tmp_path, capsys):
    """The array cohort's 26 samples leave 4 validation samples: too few samples (not too few hidden values), for
    the level asked, and `import --split` exists."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["import", "--expression", str(ARRAY / "expression.csv"), "--samples", str(ARRAY / "samples.csv"),
                     "--negatives", "clip", "--out", str(tmp_path / "cohort")]) == 0
        assert main(["train", "--cohort", str(tmp_path / "cohort"), "--method", "mean",
                     "--out", str(tmp_path / "mean.safetensors")]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "mean.safetensors"), "--cohort", str(tmp_path / "cohort"),
                 "--interval", "0.8"]) == 2
    error = capsys.readouterr().err
    assert "No 80 % intervals: Calibrated intervals need the hidden values of at least 15 calibration samples, and " \
           "there are only 4 (the validation donors' samples)" in error
    assert "hidden values would be enough" in error and "import --split" in error and "99 %" not in error


def test_deep_budgets_are_epochs_and_hitting_the_time_limit_is_reported(capsys):
    from gtex_models.data.simulate import simulate_cohort
    from gtex_models.models.registry import SAFETY_SECONDS, default_settings, make_imputer

    settings = default_settings("pmi", 128, 1000)
    assert settings["max_epochs"] == 300 and settings["max_seconds"] == SAFETY_SECONDS >= 3600
    cohort = simulate_cohort(n_donors=8, n_genes=400)
    imputer = make_imputer("pmi", hidden_sizes=[32], max_epochs=50, max_seconds=1e-6, batch_size=16)
    with pytest.warns(UserWarning, match=r"wall-clock safety limit of 1e-06 s after 1 of 50 epochs"):
        imputer.fit(cohort.split("train"), valid=cohort.split("valid"))
    assert imputer.history["stop_reason"].startswith("time budget")
