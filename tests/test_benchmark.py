"""The benchmark protocol: records, the inductive and in-place scenarios, evaluation tables."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gtex_models.analysis import benchmark
from gtex_models.analysis.benchmark import (
    RECORD_KEYS,
    evaluate_imputer,
    evaluation_tables,
    run_benchmark,
    to_markdown,
)
from gtex_models.common.progress import ProgressCallback
from gtex_models.data.cohort import Cohort
from gtex_models.data.masks import mcar_mask
from gtex_models.data.reference import pathway_genes
from gtex_models.data.simulate import simulate_cohort
from gtex_models.models.base import Imputer


@pytest.fixture(scope="module")
def tiny() -> Cohort:
    """20 donors; only tissues that training donors gave (the protocol leaves the others out, with a warning)."""
    cohort = simulate_cohort(n_donors=20, n_genes=400)
    return cohort.subset_samples(cohort.samples["tissue"].isin(cohort.split("train").tissues).to_numpy())


class SpyImputer(Imputer):
    """Records what it is given; predicts zeros."""

    method = "spy"

    def __init__(self) -> None:
        self.fitted_on: Cohort | None = None
        self.valid: Cohort | None = None
        self.imputed: list[Cohort] = []

    def fit(
        self, cohort: Cohort, valid: Cohort | None = None, progress: ProgressCallback | None = None
    ) -> "SpyImputer":
        self.fitted_on, self.valid = cohort, valid
        return self

    def _predict(self, cohort: Cohort) -> np.ndarray:
        self.imputed.append(cohort)
        return np.zeros_like(cohort.x)

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> "SpyImputer":
        return cls()


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> SpyImputer:
    imputer = SpyImputer()
    monkeypatch.setattr(benchmark, "make_imputer", lambda method, **config: imputer)
    return imputer


@pytest.mark.parametrize("scenario", ["inductive", "inplace"])
def test_records_have_exactly_the_protocol_keys(tiny: Cohort, scenario: str) -> None:
    records = run_benchmark(tiny, ["mean", "oracle"], scenario=scenario, missing_rate=0.3, seed=1)
    assert [list(record) for record in records] == [list(RECORD_KEYS)] * 2
    assert [record["method"] for record in records] == ["mean", "oracle"]
    assert {record["scenario"] for record in records} == {scenario}
    n_test = int((tiny.samples["split"] == "test").sum())
    assert all(r["n_test_samples"] == n_test and r["missing_rate"] == 0.3 for r in records)
    assert all(r["fit_seconds"] >= 0 and r["impute_seconds"] >= 0 for r in records)


@pytest.mark.parametrize("scenario", ["inductive", "inplace"])
def test_oracle_beats_mean_at_half_missing(tiny: Cohort, scenario: str) -> None:
    mean, oracle = run_benchmark(tiny, ["mean", "oracle"], scenario=scenario, missing_rate=0.5)
    assert oracle["r2_mean"] > mean["r2_mean"] + 0.1


def test_inductive_fits_on_complete_train_and_imputes_masked_test(tiny: Cohort, spy: SpyImputer) -> None:
    run_benchmark(tiny, ["spy"], scenario="inductive", missing_rate=0.5, seed=3)
    test = tiny.split("test")
    assert spy.fitted_on.n_samples == tiny.split("train").n_samples and spy.fitted_on.observed.all()
    assert spy.valid.n_samples == tiny.split("valid").n_samples
    (query,) = spy.imputed
    np.testing.assert_array_equal(query.observed, mcar_mask(test.x.shape, 0.5, 0.5, seed=3))


def test_inplace_never_shows_the_hidden_values(tiny: Cohort, spy: SpyImputer) -> None:
    (record,) = run_benchmark(tiny, ["spy"], scenario="inplace", missing_rate=0.5, seed=3)
    split = tiny.samples["split"].to_numpy()
    fitted = spy.fitted_on
    assert fitted.n_samples == int((split != "valid").sum())
    assert fitted.samples["split"].isin(["train", "test"]).all()
    missing_share = 1.0 - fitted.observed.mean()
    assert missing_share == pytest.approx(0.5, abs=0.02)           # train rows are masked too
    assert not spy.valid.observed.all()                            # and so is the valid split
    is_test = (fitted.samples["split"] == "test").to_numpy()
    test = tiny.split("test")
    # the same test entries as the inductive protocol are hidden, from fitting and from imputing
    np.testing.assert_array_equal(fitted.observed[is_test], mcar_mask(test.x.shape, 0.5, 0.5, seed=3))
    (query,) = spy.imputed
    np.testing.assert_array_equal(query.observed, fitted.observed)
    assert record["n_test_samples"] == int(is_test.sum())


def test_pathway_restricts_the_genes(tiny: Cohort) -> None:
    (record,) = run_benchmark(tiny, ["mean"], missing_rate=0.5, pathway="p53")
    assert 0 < record["n_genes"] <= len(set(pathway_genes("p53")))


def test_progress_ends_at_one(tiny: Cohort) -> None:
    calls: list[tuple[float, str]] = []
    run_benchmark(tiny, ["mean", "oracle"], progress=lambda f, m: calls.append((f, m)))
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(message.startswith("oracle: ") for _, message in calls)


def test_bad_arguments_fail_before_any_fitting(tiny: Cohort) -> None:
    with pytest.raises(ValueError, match="scenario"):
        run_benchmark(tiny, ["mean"], scenario="transductive")
    with pytest.raises(ValueError, match="Unknown imputation method"):
        run_benchmark(tiny, ["mean", "magic"])
    holey = tiny.subset_samples(np.arange(tiny.n_samples))
    holey.x[0, 0] = np.nan
    with pytest.raises(ValueError, match="complete cohort"):
        run_benchmark(holey, ["mean"])


def test_evaluate_imputer_record(tiny: Cohort) -> None:
    imputer = benchmark.make_imputer("mean").fit(tiny.split("train"))
    record = evaluate_imputer(imputer, tiny.split("test"), missing_rate=0.5, seed=0, train=tiny.split("train"))
    assert list(record) == [key for key in RECORD_KEYS if key != "fit_seconds"]
    assert record["method"] == "mean" and record["n_genes"] == tiny.n_genes
    # R²'s reference is each value's group mean over the training donors: the group-mean imputer scores 0
    assert record["r2_mean"] == pytest.approx(0.0, abs=1e-4) and record["r2_std"] < 1e-4


def test_the_group_mean_imputer_scores_zero_in_every_table(tiny: Cohort) -> None:
    """Every table the app shows uses the training reference; in place too (the mean imputer fitted on the
    masked pool is near 0, measured -0.04; a reference shared by all groups would credit it with their
    differences, +0.19 here)."""
    train = tiny.split("train")
    imputer = benchmark.make_imputer("mean").fit(train)
    tables = evaluation_tables(imputer, tiny.split("test"), rates=(0.2, 0.8), n_per_tissue=6, seed=0, train=train)
    np.testing.assert_allclose(tables["per_gene"]["r2"], 0.0, atol=1e-4)
    np.testing.assert_allclose(tables["per_tissue"]["r2"], 0.0, atol=1e-4)
    np.testing.assert_allclose(tables["across_rates"]["r2_mean"], 0.0, atol=1e-4)
    (inplace,) = run_benchmark(tiny, ["mean"], scenario="inplace")
    assert abs(inplace["r2_mean"]) < 0.1


def test_evaluation_tables(tiny: Cohort) -> None:
    test = tiny.split("test")
    imputer = benchmark.make_imputer("oracle").fit(tiny.split("train"))
    tables = evaluation_tables(imputer, test, rates=(0.5, 0.95), n_per_tissue=6, seed=0, train=tiny.split("train"))
    assert list(tables["per_gene"].columns) == ["gene", "r2"]
    assert set(tables["per_gene"]["gene"]) <= set(test.genes["symbol"])
    assert list(tables["per_tissue"].columns) == ["tissue", "gene", "r2"]
    assert set(tables["per_tissue"]["tissue"]) <= set(test.tissues)
    across = tables["across_rates"]
    assert {"missing_rate", "tissue", "r2_mean", "r2_std"} <= set(across.columns)
    assert sorted(set(across["missing_rate"])) == [0.5, 0.95]
    pooled = across.loc[across["tissue"] == "All tissues"].set_index("missing_rate")["r2_mean"]
    assert pooled[0.5] > pooled[0.95]  # fewer observed values, worse oracle (at 0.2 vs 0.8 too, but the
    # per-gene R² over the few hidden entries of 20 % is too noisy on this tiny cohort to show it)


def test_the_per_tissue_table_is_scored_on_the_extended_test_set(tiny: Cohort) -> None:
    """Every tissue is imputed and scored on the same number of samples (the paper's balanced test set)."""
    test = tiny.split("test")
    imputer = benchmark.make_imputer("mean").fit(tiny.split("train"))
    seen, impute = [], imputer.impute
    imputer.impute = lambda cohort: seen.append(cohort.samples["tissue"].value_counts()) or impute(cohort)
    evaluation_tables(imputer, test, rates=(), n_per_tissue=6, seed=0, train=tiny.split("train"))
    assert (test.samples["tissue"].value_counts() != 6).any()  # the raw test set is not balanced
    per_gene_call, per_tissue_call = seen
    assert per_gene_call.sum() == test.n_samples
    assert set(per_tissue_call.index) == set(test.tissues) and (per_tissue_call == 6).all()


def test_to_markdown(tiny: Cohort) -> None:
    records = run_benchmark(tiny, ["mean", "oracle"], missing_rate=0.5)
    lines = to_markdown(records).splitlines()
    assert len(lines) == 4 and lines[1] == "|" + "---|" * len(RECORD_KEYS)
    assert lines[0].startswith("| Method | Scenario | Pattern | Missing rate | R² mean")
    assert lines[3].startswith("| oracle | inductive | mcar | 0.50 | ")


def test_known_groups_only_warns_about_the_others_and_refuses_when_none_is_known(small_cohort):
    test = small_cohort.split("test")
    known = test.tissues[:2]
    with pytest.warns(UserWarning, match=r"sample\(s\) of \d+ group\(s\) that are unknown to the model are left out"):
        kept = benchmark.known_groups_only(test, known)
    assert set(kept.tissues) == set(known) and kept.n_samples == int(test.samples["tissue"].isin(known).sum())
    with pytest.raises(ValueError, match=rf"None of the {test.n_samples} sample\(s\) can be scored: their groups are "
                                         r"unknown to the model \(.*\); 1 group\(s\) are known"):
        benchmark.known_groups_only(test, ["Brian - Cortex"])
