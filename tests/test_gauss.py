"""gauss: the Gaussian conditional mean with a low-rank-plus-diagonal covariance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gtex_models.data.cohort import Cohort
from gtex_models.data.masks import mcar_mask
from gtex_models.data.patterns import mask_cohort
from gtex_models.data.transform import Transform
from gtex_models.models.checkpoints import load_checkpoint, save_checkpoint
from gtex_models.models import gauss
from gtex_models.models.gauss import Factors, GaussImputer, conditional_mean, conditional_sd
from gtex_models.models.registry import make_imputer


def _cohort(x: np.ndarray, groups=None, split: str = "train", prefix: str = "s") -> Cohort:
    n, p = x.shape
    samples = pd.DataFrame({
        "sample_id": [f"{prefix}{i}" for i in range(n)], "donor_id": [f"{prefix}d{i}" for i in range(n)],
        "tissue": groups if groups is not None else ["arrays"] * n, "sex": ["unknown"] * n, "age": [np.nan] * n,
        "split": [split] * n,
    })
    genes = pd.DataFrame({"ensembl_gene_id": [f"ENSG{i:011d}" for i in range(p)], "symbol": [f"G{i}" for i in range(p)]})
    return Cohort(x.astype(np.float32), genes, samples, Transform(np.zeros(p), np.ones(p), scale="log"))


def _known_gaussian(p: int = 12, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    loadings = rng.normal(size=(p, k))
    noise = rng.uniform(0.2, 0.6, size=p)
    return loadings, noise, loadings @ loadings.T + np.diag(noise)


def _exact(x: np.ndarray, mean: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: Σ_mo Σ_oo⁻¹ (x_o - μ_o) and the Schur complement's diagonal, sample by sample."""
    out, sd = x.copy(), np.zeros_like(x)
    for i, row in enumerate(x):
        o, m = ~np.isnan(row), np.isnan(row)
        solve = np.linalg.solve(sigma[np.ix_(o, o)], np.c_[row[o] - mean[o], sigma[np.ix_(o, m)]])
        out[i, m] = mean[m] + sigma[np.ix_(m, o)] @ solve[:, 0]
        sd[i, m] = np.sqrt(np.diag(sigma[np.ix_(m, m)] - sigma[np.ix_(m, o)] @ solve[:, 1:]))
    return out, sd


def test_conditional_mean_and_sd_equal_the_exact_gaussian_ones():
    loadings, noise, sigma = _known_gaussian()
    rng = np.random.default_rng(1)
    x = rng.multivariate_normal(np.zeros(12), sigma, size=40)
    x[rng.random(x.shape) < 0.4] = np.nan
    x[:5, 3:] = np.nan  # five samples share one observed set (a panel): they share the solve
    factors = Factors(loadings.astype(np.float32), noise.astype(np.float32))
    mean, sd = _exact(x, np.zeros(12), sigma)
    np.testing.assert_allclose(conditional_mean(x, np.zeros_like(x), factors)[np.isnan(x)], mean[np.isnan(x)],
                               atol=2e-4)
    np.testing.assert_allclose(conditional_sd(~np.isnan(x), factors), sd, atol=2e-4)


@pytest.mark.parametrize("pattern", ["mcar", "low values lost"])
def test_the_iterative_solve_equals_the_exact_one(pattern, monkeypatch):
    """Many samples, each with its own observed genes, at a high rank: the batched conjugate gradients give the
    exact Gaussian conditional mean (brute force) also when the observed genes are not a random draw, and
    converge without the exact fallback."""
    monkeypatch.setattr(gauss, "_posterior", lambda *_: pytest.fail("an iterative solve fell back to the exact one"))
    p, k, n = 120, 48, 60
    loadings, noise, sigma = _known_gaussian(p, k, seed=3)
    rng = np.random.default_rng(4)
    x = rng.multivariate_normal(np.zeros(p), sigma, size=n)
    if pattern == "mcar":
        hidden = rng.random(x.shape) < rng.uniform(0.1, 0.9, size=(n, 1))
    else:
        hidden = x < np.quantile(x, 0.5, axis=1, keepdims=True)
    x[hidden] = np.nan
    factors = Factors(loadings.astype(np.float32), noise.astype(np.float32))
    exact, _ = _exact(x, np.zeros(p), sigma)
    iterative = conditional_mean(x, np.zeros_like(x), factors, iterative=True)
    scale = np.abs(exact[hidden]).max()
    np.testing.assert_allclose(iterative[hidden], exact[hidden], atol=1e-4 * scale)


def test_full_rank_fit_is_the_conditional_mean_under_the_shrunk_sample_covariance():
    """Rank = the sample covariance's rank: the low-rank form is exactly (1 - α) S + α diag(S)."""
    rng = np.random.default_rng(2)
    train = rng.normal(size=(30, 8)) @ rng.normal(size=(8, 8)) + rng.normal(size=8)
    alpha = 0.3
    imputer = GaussImputer(rank=8, shrinkage=alpha, group_shrinkage=0.0, covariates=False).fit(_cohort(train))
    mu = train.mean(axis=0)
    s = np.cov(train, rowvar=False)
    sigma = (1 - alpha) * s + alpha * np.diag(np.diag(s))
    test = rng.normal(size=(10, 8)) @ rng.normal(size=(8, 8))
    test[rng.random(test.shape) < 0.5] = np.nan
    expected, _ = _exact(test, mu, sigma)
    np.testing.assert_allclose(imputer.impute(_cohort(test, prefix="t")), expected, atol=2e-3)


def test_em_recovers_a_known_covariance_from_data_with_gaps():
    loadings, noise, sigma = _known_gaussian(p=10, k=2, seed=3)
    rng = np.random.default_rng(4)
    x = rng.multivariate_normal(np.zeros(10), sigma, size=3000)
    x[rng.random(x.shape) < 0.35] = np.nan
    fitted = GaussImputer(rank=2, shrinkage=0.0, group_shrinkage=0.0, covariates=False).fit(_cohort(x))
    estimate = fitted._factors.loadings @ fitted._factors.loadings.T + np.diag(fitted._factors.noise)
    no_em = GaussImputer(rank=2, shrinkage=0.0, group_shrinkage=0.0, covariates=False, em_iterations=1).fit(_cohort(x))
    start = no_em._factors.loadings @ no_em._factors.loadings.T + np.diag(no_em._factors.noise)
    error, start_error = np.abs(estimate - sigma).max(), np.abs(start - sigma).max()
    assert error < 0.15 * np.abs(sigma).max()
    assert error < 0.5 * start_error  # mean-filling alone shrinks the covariances: EM undoes it


def test_low_rank_and_full_forms_agree_when_the_rank_covers_the_signal():
    loadings, noise, sigma = _known_gaussian(p=40, k=3, seed=5)
    rng = np.random.default_rng(6)
    train = rng.multivariate_normal(np.zeros(40), sigma, size=400)
    test = rng.multivariate_normal(np.zeros(40), sigma, size=50)
    test[rng.random(test.shape) < 0.5] = np.nan
    settings = {"shrinkage": 0.0, "group_shrinkage": 0.0, "covariates": False}
    low = GaussImputer(rank=3, **settings).fit(_cohort(train)).impute(_cohort(test, prefix="t"))
    full = GaussImputer(rank=39, shrinkage=0.05, group_shrinkage=0.0, covariates=False).fit(_cohort(train))
    exact, _ = _exact(test, np.zeros(40), sigma)
    hidden = np.isnan(test)
    low_error = np.mean((low - exact)[hidden] ** 2)
    full_error = np.mean((full.impute(_cohort(test, prefix="t")) - exact)[hidden] ** 2)
    assert low_error < 0.02 and full_error < 0.05  # both close to the oracle's conditional mean


def _low_rank_cohort(seed: int, n_groups: int = 3, n: int = 150, p: int = 200) -> tuple[Cohort, np.ndarray]:
    """Microarray-like: a rank-4 signal, group offsets, no sex or age; returns the cohort and its splits."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(n_groups, size=n)
    offsets = rng.normal(scale=0.7, size=(n_groups, p))
    x = rng.normal(size=(n, 4)) @ rng.normal(size=(4, p)) * 0.6 + offsets[groups] + rng.normal(scale=0.5, size=(n, p))
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    cohort = _cohort(x, [f"condition {g}" for g in groups])
    split = np.array(["train"] * 90 + ["valid"] * 20 + ["test"] * 40)
    cohort.samples["split"] = split
    return cohort, split


def test_gauss_beats_mean_and_knn_on_a_low_rank_cohort_at_every_rate():
    cohort, _ = _low_rank_cohort(7)
    train, valid, test = cohort.split("train"), cohort.split("valid"), cohort.split("test")
    gauss = GaussImputer().fit(train, valid)
    mean = make_imputer("mean").fit(train)
    knn = make_imputer("knn").fit(train)
    for rate in (0.2, 0.5, 0.8):
        observed = mcar_mask(test.x.shape, rate, rate, seed=1)
        masked = mask_cohort(test, observed)
        errors = {name: float(np.mean((imputer.impute(masked) - test.x)[~observed] ** 2))
                  for name, imputer in (("gauss", gauss), ("mean", mean), ("knn", knn))}
        assert errors["gauss"] < 0.8 * errors["knn"] and errors["gauss"] < 0.6 * errors["mean"], (rate, errors)


def test_settings_are_chosen_on_the_validation_donors():
    cohort, _ = _low_rank_cohort(8)
    imputer = GaussImputer().fit(cohort.split("train"), cohort.split("valid"))
    assert imputer.selection and imputer.rank_ >= 4  # the rank-4 signal is kept
    chosen = min(imputer.selection, key=lambda row: row["valid_mse"])
    assert (chosen["rank"], chosen["shrinkage"]) == (imputer.rank_, imputer.shrinkage_)
    fixed = GaussImputer(rank=1, shrinkage=0.7).fit(cohort.split("train"), cohort.split("valid"))
    test = cohort.split("test")
    observed = mcar_mask(test.x.shape, 0.5, 0.5, seed=2)
    masked = mask_cohort(test, observed)
    error = {name: float(np.mean((model.impute(masked) - test.x)[~observed] ** 2))
             for name, model in (("chosen", imputer), ("fixed", fixed))}
    assert error["chosen"] < 0.9 * error["fixed"]


def test_a_checkpoint_round_trip_imputes_the_same(tmp_path):
    cohort, _ = _low_rank_cohort(9)
    imputer = GaussImputer().fit(cohort.split("train"), cohort.split("valid"))
    path = save_checkpoint(imputer, tmp_path / "gauss.safetensors", {"genes": cohort.genes, "tissues": sorted(
        set(cohort.samples["tissue"])), "transform": cohort.transform})
    loaded, _ = load_checkpoint(path)
    test = cohort.split("test")
    masked = mask_cohort(test, mcar_mask(test.x.shape, 0.5, 0.5, seed=3))
    np.testing.assert_array_equal(loaded.impute(masked), imputer.impute(masked))
    np.testing.assert_array_equal(loaded.conditional_sd(masked), imputer.conditional_sd(masked))


def test_unknown_group_gets_the_overall_expectation():
    cohort, _ = _low_rank_cohort(10)
    imputer = GaussImputer(group_shrinkage=0.0).fit(cohort.split("train"))
    test = cohort.split("test")
    test.samples["tissue"] = "a group never seen"
    filled = imputer.impute(mask_cohort(test, mcar_mask(test.x.shape, 0.5, 0.5, seed=4)))
    assert np.isfinite(filled).all()


@pytest.mark.parametrize("rate", [0.5])
def test_in_place_fit_on_gaps_imputes_better_than_the_means(rate):
    cohort, _ = _low_rank_cohort(11)
    pool = cohort.subset_samples(np.flatnonzero(cohort.samples["split"] != "valid"))
    observed = mcar_mask(pool.x.shape, rate, rate, seed=5)
    masked = mask_cohort(pool, observed)
    gauss = GaussImputer().fit(masked, mask_cohort(cohort.split("valid"), mcar_mask(
        cohort.split("valid").x.shape, rate, rate, seed=6)))
    mean = make_imputer("mean").fit(masked)
    error = {name: float(np.mean((model.impute(masked) - pool.x)[~observed] ** 2))
             for name, model in (("gauss", gauss), ("mean", mean))}
    assert error["gauss"] < 0.6 * error["mean"], error


def test_intervals_follow_the_conditional_sd_value_by_value():
    """Genes in correlated pairs: a hidden gene whose partner is observed is known far better than one whose
    partner is hidden too. Scored in units of gauss's conditional SD, both kinds are covered at the nominal
    level; with one width per gene and sample (no unit) the first would be over- and the second under-covered."""
    from gtex_models.models.calibration import calibrate

    rng = np.random.default_rng(12)
    n, pairs = 1600, 20
    shared = rng.normal(size=(n, pairs))
    x = np.repeat(shared, 2, axis=1) + rng.normal(scale=0.3, size=(n, 2 * pairs))
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    cohort = _cohort(x)
    cohort.samples["split"] = ["train"] * 1000 + ["valid"] * 300 + ["test"] * 300
    cohort.samples["donor_id"] = [f"d{i}" for i in range(n)]
    imputer = GaussImputer().fit(cohort.split("train"), cohort.split("valid"))
    calibration = calibrate(imputer, cohort.split("valid"))
    test = cohort.split("test")
    observed = mcar_mask(test.x.shape, 0.5, 0.5, seed=7)
    masked = mask_cohort(test, observed)
    lower, upper = calibration.interval(imputer, masked, imputer.impute(masked), 0.9)
    partner = observed.reshape(len(observed), pairs, 2)[:, :, ::-1].reshape(observed.shape)
    inside = (test.x >= lower) & (test.x <= upper)
    for known in (True, False):
        values = ~observed & (partner == known)
        assert 0.85 <= inside[values].mean() <= 0.95, (known, inside[values].mean())
    width = upper - lower
    assert np.median(width[~observed & partner]) < 0.6 * np.median(width[~observed & ~partner])
