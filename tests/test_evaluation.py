"""R² on missing entries, computed by hand on small cases; extended test set; missing-rate sweeps."""

from __future__ import annotations

import numpy as np
import pytest

from gtex_models.analysis.evaluation import (
    extended_test_indices,
    r2_across_missing_rates,
    r2_per_gene,
    r2_per_tissue,
    summarize,
)
from gtex_models.data.patterns import mask_cohort
from gtex_models.data.simulate import simulate_cohort


def _random_case(seed: int = 0, shape: tuple[int, int] = (60, 5)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape), rng.random(shape) < 0.5


def test_perfect_imputation_scores_one() -> None:
    x, observed = _random_case()
    np.testing.assert_allclose(r2_per_gene(x, x, observed), 1.0)


def test_imputing_the_observed_mean_scores_zero() -> None:
    x, observed = _random_case()
    observed_mean = np.nanmean(np.where(observed, x, np.nan), axis=0)
    imputed = np.where(observed, x, observed_mean)
    np.testing.assert_allclose(r2_per_gene(x, imputed, observed), 0.0, atol=1e-12)


def test_two_gene_example_by_hand() -> None:
    x = np.array([[1, 2], [2, 4], [3, 6], [4, 8]], dtype=float)
    observed = np.array([[1, 1], [1, 0], [0, 1], [0, 0]], dtype=bool)
    imputed = np.array([[1, 2], [2, 5], [3.5, 6], [3.5, 6]])
    # gene 0: reference mean(1, 2) = 1.5; missing 3, 4 imputed 3.5, 3.5
    #   SS_res = 0.25 + 0.25 = 0.5; SS_tot = 1.5² + 2.5² = 8.5; R² = 1 - 0.5 / 8.5
    # gene 1: reference mean(2, 6) = 4; missing 4, 8 imputed 5, 6
    #   SS_res = 1 + 4 = 5; SS_tot = 0 + 16 = 16; R² = 1 - 5 / 16
    np.testing.assert_allclose(r2_per_gene(x, imputed, observed), [1 - 0.5 / 8.5, 1 - 5 / 16])


def test_worse_than_the_observed_mean_scores_below_zero_everywhere() -> None:
    x = np.array([[1, 2], [2, 4], [3, 6], [4, 8]], dtype=float)
    observed = np.array([[1, 1], [1, 0], [0, 1], [0, 0]], dtype=bool)
    imputed = np.array([[1, 2], [2, 14], [10, 6], [10, 0]])
    # gene 0: reference 1.5; missing 3, 4 imputed 10, 10: SS_res = 49 + 36 = 85; SS_tot = 8.5; R² = -9
    # gene 1: reference 4; missing 4, 8 imputed 14, 0: SS_res = 100 + 64 = 164; SS_tot = 16; R² = -9.25
    r2 = r2_per_gene(x, imputed, observed)
    np.testing.assert_allclose(r2, [-9.0, -9.25])
    assert summarize(r2)["r2_mean"] == pytest.approx(-9.125)
    table = r2_per_tissue(x, imputed, observed, ["Lung"] * 4, ["A", "B"])
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


def test_zero_variance_gene_is_excluded_not_propagated() -> None:
    x, observed = _random_case()
    x[:, 2] = 5.0
    r2 = r2_per_gene(x, np.zeros_like(x), observed)
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
    r2 = r2_per_gene(x, imputed, observed)
    assert np.isnan(r2[[1, 2]]).all() and np.isfinite(r2[[0, 3, 4]]).all()


def test_genes_without_missing_or_observed_entries_are_excluded() -> None:
    x, observed = _random_case()
    observed[:, 0], observed[:, 1] = True, False
    r2 = r2_per_gene(x, np.zeros_like(x), observed)
    assert np.isnan(r2[:2]).all() and np.isfinite(r2[2:]).all()


def test_summarize_with_no_defined_gene() -> None:
    assert summarize(np.full(3, np.nan))["n_genes"] == 0


def test_per_tissue_r2_equals_per_gene_r2_on_that_tissues_rows() -> None:
    x, observed = _random_case(seed=1, shape=(90, 4))
    imputed = x + np.random.default_rng(2).normal(scale=0.5, size=x.shape)
    tissues = np.array(["Lung", "Liver", "Brain"])[np.arange(90) % 3]
    table = r2_per_tissue(x, imputed, observed, tissues, ["A", "B", "C", "D"])
    assert list(table.columns) == ["tissue", "gene", "r2"]
    for tissue in ("Lung", "Liver", "Brain"):
        rows = tissues == tissue
        expected = r2_per_gene(x[rows], imputed[rows], observed[rows])
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
