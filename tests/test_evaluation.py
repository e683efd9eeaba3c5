"""R² on missing entries, computed by hand on small cases; its reference; extended test set; missing-rate sweeps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gtex_models.analysis.evaluation import (
    OBSERVED,
    coverage_masks,
    extended_test_indices,
    mask_repeats,
    r2_across_missing_rates,
    r2_per_gene,
    r2_per_tissue,
    reference_values,
    summarize,
    training_reference,
)
from gtex_models.data.cohort import Cohort
from gtex_models.data.patterns import mask_cohort
from gtex_models.data.simulate import simulate_cohort
from gtex_models.data.transform import Transform


def _random_case(seed: int = 0, shape: tuple[int, int] = (60, 5)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape), rng.random(shape) < 0.5


def test_perfect_imputation_scores_one() -> None:
    x, observed = _random_case()
    np.testing.assert_allclose(r2_per_gene(x, x, observed), 1.0)


def test_imputing_the_reference_scores_zero() -> None:
    x, observed = _random_case()
    observed_mean = np.nanmean(np.where(observed, x, np.nan), axis=0)
    imputed = np.where(observed, x, observed_mean)
    np.testing.assert_allclose(r2_per_gene(x, imputed, observed, OBSERVED), 0.0, atol=1e-12)
    reference = np.random.default_rng(5).normal(size=x.shape)  # any reference values, one per value
    np.testing.assert_allclose(r2_per_gene(x, np.where(observed, x, reference), observed, reference), 0.0, atol=1e-12)


def test_two_gene_example_by_hand() -> None:
    x = np.array([[1, 2], [2, 4], [3, 6], [4, 8]], dtype=float)
    observed = np.array([[1, 1], [1, 0], [0, 1], [0, 0]], dtype=bool)
    imputed = np.array([[1, 2], [2, 5], [3.5, 6], [3.5, 6]])
    # gene 0: reference mean(1, 2) = 1.5; missing 3, 4 imputed 3.5, 3.5
    #   SS_res = 0.25 + 0.25 = 0.5; SS_tot = 1.5² + 2.5² = 8.5; R² = 1 - 0.5 / 8.5
    # gene 1: reference mean(2, 6) = 4; missing 4, 8 imputed 5, 6
    #   SS_res = 1 + 4 = 5; SS_tot = 0 + 16 = 16; R² = 1 - 5 / 16
    np.testing.assert_allclose(r2_per_gene(x, imputed, observed, OBSERVED), [1 - 0.5 / 8.5, 1 - 5 / 16])
    # reference values 2 (gene 0) and 5 (gene 1), whatever the mask: SS_tot = 1 + 4 = 5 and 1 + 9 = 10
    np.testing.assert_allclose(r2_per_gene(x, imputed, observed, np.array([2.0, 5.0])), [1 - 0.5 / 5, 1 - 5 / 10])


def test_worse_than_the_observed_mean_scores_below_zero_everywhere() -> None:
    x = np.array([[1, 2], [2, 4], [3, 6], [4, 8]], dtype=float)
    observed = np.array([[1, 1], [1, 0], [0, 1], [0, 0]], dtype=bool)
    imputed = np.array([[1, 2], [2, 14], [10, 6], [10, 0]])
    # gene 0: reference 1.5; missing 3, 4 imputed 10, 10: SS_res = 49 + 36 = 85; SS_tot = 8.5; R² = -9
    # gene 1: reference 4; missing 4, 8 imputed 14, 0: SS_res = 100 + 64 = 164; SS_tot = 16; R² = -9.25
    r2 = r2_per_gene(x, imputed, observed, OBSERVED)
    np.testing.assert_allclose(r2, [-9.0, -9.25])
    assert summarize(r2)["r2_mean"] == pytest.approx(-9.125)
    table = r2_per_tissue(x, imputed, observed, ["Lung"] * 4, ["A", "B"], OBSERVED)
    np.testing.assert_allclose(table["r2"], [-9.0, -9.25])
    cohort = simulate_cohort(n_donors=20, n_genes=400).subset_genes(np.arange(50))
    sweep = r2_across_missing_rates(lambda masked: -cohort.x, cohort, rates=(0.5,), seed=0)
    pooled = sweep.loc[sweep["tissue"] == "All tissues", "r2_mean"]
    assert pooled.item() < -1  # the sign-flipped truth: R² about -3
    assert (sweep["r2_mean"].dropna() < 0).all()  # tissues with too few samples have no R² (NaN)


def test_only_the_missing_entries_are_scored() -> None:
    x, observed = _random_case()
    imputed = np.where(observed, x + 100.0, x + 0.1)  # wild where observed, close where missing
    np.testing.assert_allclose(r2_per_gene(x, imputed, observed), r2_per_gene(x, np.where(observed, x, x + 0.1),
                                                                               observed))
    assert (r2_per_gene(x, imputed, observed) > 0.9).all()


@pytest.mark.parametrize("reference", [OBSERVED, np.array([0.0, 0.0, 5.0, 0.0, 0.0])])
def test_zero_variance_gene_is_excluded_not_propagated(reference) -> None:
    """A gene constant at 5 (its reference value, or its observed mean) has no R²."""
    x, observed = _random_case()
    x[:, 2] = 5.0
    r2 = r2_per_gene(x, np.zeros_like(x), observed, reference)
    assert np.isnan(r2[2]) and np.isfinite(np.delete(r2, 2)).all()
    summary = summarize(r2)
    assert summary["n_genes"] == 4
    assert summary["r2_mean"] == pytest.approx(np.delete(r2, 2).mean())


def test_a_gene_whose_hidden_values_barely_vary_is_excluded() -> None:
    """Hidden values all an undetected 0 (float32), or nearly flat (variance 0.001 of model space's 1), while
    observed ones vary: R² would divide by almost nothing, so it is undefined; variance 0.05 is scored."""
    x, observed = _random_case()
    x = x.astype(np.float32)
    hidden = ~observed
    x[:, 1] = np.float32(-0.4367)
    x[np.flatnonzero(observed[:, 1])[:3], 1] = 2.5
    rng = np.random.default_rng(3)
    x[hidden[:, 2], 2] = rng.normal(0.0, 0.001**0.5, hidden[:, 2].sum())
    x[hidden[:, 3], 3] = rng.normal(0.0, 0.05**0.5, hidden[:, 3].sum())
    imputed = np.where(observed, x, x + 0.3)
    r2 = r2_per_gene(x, imputed, observed, OBSERVED)
    assert np.isnan(r2[[1, 2]]).all() and np.isfinite(r2[[0, 3, 4]]).all()
    # against reference values: gene 1's is its undetected value (its training mean), the others' 0
    r2 = r2_per_gene(x, imputed, observed, np.array([0.0, -0.4367, 0.0, 0.0, 0.0]))
    assert np.isnan(r2[[1, 2]]).all() and np.isfinite(r2[[0, 3, 4]]).all()


def test_genes_without_missing_or_observed_entries_are_excluded() -> None:
    """Without observed entries only the observed-mean reference is undefined (a panel's other genes)."""
    x, observed = _random_case()
    observed[:, 0], observed[:, 1] = True, False
    r2 = r2_per_gene(x, np.zeros_like(x), observed, OBSERVED)
    assert np.isnan(r2[:2]).all() and np.isfinite(r2[2:]).all()
    r2 = r2_per_gene(x, np.zeros_like(x), observed, np.zeros(5))
    assert np.isnan(r2[0]) and np.isfinite(r2[1:]).all()


def test_summarize_with_no_defined_gene() -> None:
    assert summarize(np.full(3, np.nan))["n_genes"] == 0


@pytest.mark.parametrize("kind", ["values", OBSERVED])
def test_per_tissue_r2_equals_per_gene_r2_on_that_tissues_rows(kind: str) -> None:
    x, observed = _random_case(seed=1, shape=(90, 4))
    x += np.array([0.0, 3.0, -2.0])[np.arange(90) % 3, None]  # the tissues differ
    imputed = x + np.random.default_rng(2).normal(scale=0.5, size=x.shape)
    tissues = np.array(["Lung", "Liver", "Brain"])[np.arange(90) % 3]
    values = np.array([0.1, 2.9, -2.2])[np.arange(90) % 3, None] * np.ones(4)  # each tissue's reference
    table = r2_per_tissue(x, imputed, observed, tissues, ["A", "B", "C", "D"], values if kind == "values" else kind)
    assert list(table.columns) == ["tissue", "gene", "r2"]
    for tissue in ("Lung", "Liver", "Brain"):
        rows = tissues == tissue
        expected = r2_per_gene(x[rows], imputed[rows], observed[rows], values[rows] if kind == "values" else kind)
        got = table.loc[table["tissue"] == tissue].set_index("gene")["r2"].reindex(["A", "B", "C", "D"])
        np.testing.assert_allclose(got.to_numpy(), expected)


def test_extended_test_set_has_equal_counts_per_tissue() -> None:
    tissues = np.array(["Lung"] * 2 + ["Liver"] * 10 + ["Brain"] * 30)
    rows = extended_test_indices(tissues, n_per_tissue=8, seed=0)
    names, counts = np.unique(tissues[rows], return_counts=True)
    assert names.tolist() == ["Brain", "Liver", "Lung"] and counts.tolist() == [8, 8, 8]
    brain = rows[tissues[rows] == "Brain"]
    assert len(set(brain.tolist())) == 8  # larger tissues are subsampled without replacement
    np.testing.assert_array_equal(rows, extended_test_indices(tissues, n_per_tissue=8, seed=0))


def test_mask_cohort_hides_the_unobserved_entries() -> None:
    cohort = simulate_cohort(n_donors=20, n_genes=400)
    observed = np.random.default_rng(0).random(cohort.x.shape) < 0.7
    masked = mask_cohort(cohort, observed)
    np.testing.assert_array_equal(masked.observed, observed)
    np.testing.assert_array_equal(masked.x[observed], cohort.x[observed])


def test_r2_across_missing_rates_of_a_perfect_imputer() -> None:
    cohort = simulate_cohort(n_donors=20, n_genes=400).subset_genes(np.arange(50))
    table = r2_across_missing_rates(lambda masked: cohort.x, cohort, rates=(0.2, 0.8), seed=0)
    assert list(table.columns) == ["missing_rate", "tissue", "r2_mean", "r2_std", "n_genes", "n_masks"]
    assert set(table["missing_rate"]) == {0.2, 0.8}
    assert (table["tissue"] == "All tissues").sum() == 2
    np.testing.assert_allclose(table["r2_mean"], 1.0)


def test_r2_across_no_missing_rate_is_an_empty_table() -> None:
    cohort = simulate_cohort(n_donors=20, n_genes=400).subset_genes(np.arange(50))
    table = r2_across_missing_rates(lambda masked: cohort.x, cohort, rates=(), seed=0)
    assert table.empty and "tissue" in table.columns


def test_r2_across_missing_rates_hides_each_rates_share() -> None:
    """Each row's masks hide that row's share of the values."""
    cohort = simulate_cohort(n_donors=20, n_genes=400).subset_genes(np.arange(50))
    shares: dict[float, list[float]] = {}

    def recording(masked):
        hidden = np.isnan(masked.x)
        shares.setdefault(round(float(hidden.mean()), 1), []).append(float(hidden.mean()))
        return cohort.x

    table = r2_across_missing_rates(recording, cohort, rates=(0.1, 0.5, 0.9), seed=0)
    assert sorted(shares) == [0.1, 0.5, 0.9]
    for rate, seen in shares.items():
        np.testing.assert_allclose(seen, rate, atol=0.02)
    assert sorted(set(table["missing_rate"])) == [0.1, 0.5, 0.9]


def _hand_cohort(x: list[list[float]], tissues: list[str], splits: list[str]) -> Cohort:
    """A hand-made cohort in model space (identity transform)."""
    x_array = np.asarray(x, dtype=np.float32)
    n = len(tissues)
    genes = pd.DataFrame({"ensembl_gene_id": [f"ENSG{j:011d}" for j in range(x_array.shape[1])],
                          "symbol": [f"G{j}" for j in range(x_array.shape[1])]})
    samples = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "donor_id": [f"d{i}" for i in range(n)],
                            "tissue": tissues, "sex": "female", "age": 50.0, "split": splits})
    identity = Transform(np.zeros(x_array.shape[1]), np.ones(x_array.shape[1]), scale="log")
    return Cohort(x_array, genes, samples, identity)


def test_the_reference_is_the_training_mean_of_the_samples_group() -> None:
    """By hand: group a's training values 1 and 3 (gene 0), group b's 10; group c has no training sample, so it
    gets the overall training mean (14 / 3); a missing training value is left out of its mean."""
    train = _hand_cohort([[1, 0], [3, np.nan], [10, 6]], ["a", "a", "b"], ["train"] * 3)
    np.testing.assert_allclose(training_reference(train, ["a", "b", "c"]), [[2, 0], [10, 6], [14 / 3, 3]])
    test = _hand_cohort([[0, 1], [5, 1], [4, 2], [7, 2]], ["b", "a", "c", "a"], ["test"] * 4)
    reference = reference_values(test, train)
    np.testing.assert_allclose(reference, [[10, 6], [2, 0], [14 / 3, 3], [2, 0]])
    np.testing.assert_array_equal(reference_values(test, None), 0.0)  # no training donors: the overall mean, 0
    # gene 0 hidden in every sample, imputed 8, 4, 4, 4: SS_res = 64 + 1 + 0 + 9 = 74;
    # SS_tot = (0 - 10)² + (5 - 2)² + (4 - 14/3)² + (7 - 2)² = 100 + 9 + 4/9 + 25
    observed = np.array([[0, 1]] * 4, dtype=bool)
    imputed = np.array([[8, 1], [4, 1], [4, 2], [4, 2]], dtype=float)
    r2 = r2_per_gene(test.x, imputed, observed, reference)
    assert r2[0] == pytest.approx(1 - 74 / (134 + 4 / 9)) and np.isnan(r2[1])


def _gaussian_cohort(n_groups: int, n_train: int, n_test: int, n_genes: int, seed: int) -> tuple[Cohort, np.ndarray]:
    """Groups with their own gene means (N(0, 1)) and unit within-group variance; the cohort and each test
    sample's true group means."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, (n_groups, n_genes))
    group = np.repeat(np.arange(n_groups), n_train + n_test)
    split = np.tile(["train"] * n_train + ["test"] * n_test, n_groups)
    x = centres[group] + rng.normal(0.0, 1.0, (len(group), n_genes))
    cohort = _hand_cohort(x.tolist(), [f"group {g}" for g in group], split.tolist())
    return cohort, centres[group[split == "test"]]


def test_a_fixed_predictor_scores_the_same_at_every_missing_rate() -> None:
    """A predictor that does not look at the mask (true R² 0.30: half of each value's deviation from its group
    mean, plus noise of variance 0.45) must score the same at 10 % and 90 % missing. Against the training
    reference it does (measured: groups' mean 0.290 / 0.289, pooled 0.314 / 0.314); against the observed mean,
    estimated from 3 of a group's 30 test samples at 90 %, it rises (groups' mean 0.249 -> 0.347)."""
    cohort, centres = _gaussian_cohort(n_groups=4, n_train=60, n_test=30, n_genes=400, seed=0)
    test, train = cohort.split("test"), cohort.split("train")
    noise = np.random.default_rng(1).normal(0.0, 0.45**0.5, test.x.shape)
    fixed = (centres + 0.5 * (test.x - centres) + noise).astype(np.float32)
    curves = {}
    for name, reference in (("training", reference_values(test, train)), ("observed", OBSERVED)):
        table = r2_across_missing_rates(lambda masked: fixed, test, (0.1, 0.9), seed=0, reference=reference)
        groups = table[table["tissue"] != "All tissues"].groupby("missing_rate")["r2_mean"].mean()
        pooled = table[table["tissue"] == "All tissues"].set_index("missing_rate")["r2_mean"]
        curves[name] = (groups, pooled)
    groups, pooled = curves["training"]
    assert abs(groups[0.9] - groups[0.1]) < 0.02 and abs(pooled[0.9] - pooled[0.1]) < 0.02
    assert 0.25 < groups[0.1] < 0.32  # the true 0.30, less the ratio's small-sample bias
    groups, _ = curves["observed"]
    assert groups[0.9] - groups[0.1] > 0.06


def test_coverage_masks_hide_every_value_equally_often() -> None:
    """Each mask hides about ``rate`` of the values; together each value ``floor`` or ``ceil(repeats · rate)``
    times, so the masks of a rate cover every sample."""
    rng = np.random.default_rng(0)
    for rate in (0.1, 0.3, 0.9):
        repeats = mask_repeats(rate, 50)
        masks = list(coverage_masks((200, 300), rate, repeats, rng))
        assert len(masks) == repeats == {0.1: 10, 0.3: 4, 0.9: 2}[rate]
        for observed in masks:
            assert (~observed).mean() == pytest.approx(rate, abs=0.01)
        hidden = sum((~observed).astype(int) for observed in masks)
        assert hidden.min() >= np.floor(repeats * rate) >= 1 and hidden.max() <= np.ceil(repeats * rate)
    assert mask_repeats(0.5, 5) == 8 and mask_repeats(0.1, 5) == 10  # small groups: 20 hidden values, at most 10 masks
