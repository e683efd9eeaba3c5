"""softimpute: nuclear-norm matrix completion (soft-thresholded SVD / softImpute-ALS) with fold-in."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gtex_models.analysis.benchmark import run_benchmark
from gtex_models.data.cohort import Cohort
from gtex_models.data.masks import mcar_mask
from gtex_models.data.patterns import mask_cohort
from gtex_models.data.readers.tables import import_table
from gtex_models.data.transform import Transform
from gtex_models.models.checkpoints import load_checkpoint, save_checkpoint
from gtex_models.models.registry import make_imputer
from gtex_models.models.schemas import check_settings
from gtex_models.models.softimpute import SoftImputeImputer, soft_impute_als, soft_threshold, svd_start

DATA = Path(__file__).parent / "data"


def _cohort(x: np.ndarray, groups=None, split=None) -> Cohort:
    """A microarray-like table: probe-like names, one group unless given, no sex, no age."""
    n, p = x.shape
    samples = pd.DataFrame({
        "sample_id": [f"s{i}" for i in range(n)], "donor_id": [f"d{i}" for i in range(n)],
        "tissue": groups if groups is not None else ["arrays"] * n, "sex": ["unknown"] * n, "age": [np.nan] * n,
        "split": split if split is not None else ["train"] * n,
    })
    genes = pd.DataFrame({"ensembl_gene_id": [""] * p, "symbol": [f"{1000 + i}_at" for i in range(p)]})
    return Cohort(x.astype(np.float32), genes, samples, Transform(np.zeros(p), np.ones(p), scale="log"))


def _low_rank(n: int, p: int, rank: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(signal, signal + noise): a rank-``rank`` matrix with unit-variance entries, plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, p)) / np.sqrt(rank)
    return signal, signal + rng.normal(scale=noise, size=(n, p))


def _hidden_mse(imputer, cohort: Cohort, rate: float, seed: int) -> float:
    observed = mcar_mask(cohort.x.shape, rate, rate, seed=seed)
    return float(np.mean((imputer.impute(mask_cohort(cohort, observed)) - cohort.x)[~observed] ** 2))


def test_als_on_a_complete_matrix_is_the_soft_thresholded_svd():
    """No gaps: the fixed point of the ALS updates is U S_λ(D) Vᵀ, the nuclear-norm solution (closed form)."""
    _, x = _low_rank(60, 40, 5, 0.3, seed=0)
    u, d, vt = np.linalg.svd(x, full_matrices=False)
    lam = 0.3 * d[0]
    exact = (u * soft_threshold(d, lam)) @ vt
    fit = soft_impute_als(x.astype(np.float32), lam, svd_start(u, d * 0.5, vt, 0.0).warm_start(), 2000,
                          tolerance=1e-12)
    assert 1 < (soft_threshold(d, lam) > 0).sum() < 10  # a λ that keeps some components and drops most
    np.testing.assert_allclose(fit.rows, exact, atol=1e-3 * np.abs(exact).max())


def test_als_with_gaps_reaches_the_solution_of_the_soft_thresholded_svd_iteration():
    """With gaps, softImpute-ALS (rank cap 20) reaches the Z of Mazumder et al.'s algorithm,
    Z ← S_λ(P_Ω(X) + P_Ω⊥(Z)) with full SVDs, the nuclear-norm solution."""
    _, x = _low_rank(60, 40, 4, 0.3, seed=12)
    x[mcar_mask(x.shape, 0.4, 0.4, seed=13) == 0] = np.nan
    observed = ~np.isnan(x)
    u, d, vt = np.linalg.svd(np.nan_to_num(x), full_matrices=False)
    lam = 0.15 * d[0]
    z = np.zeros_like(x)
    for _ in range(20_000):
        su, sd, svt = np.linalg.svd(np.where(observed, x, z), full_matrices=False)
        z, previous = (su * soft_threshold(sd, lam)) @ svt, z
        if np.abs(z - previous).max() < 1e-9:
            break
    assert 2 < np.linalg.matrix_rank(z, tol=1e-6) < 20
    fit = soft_impute_als(x.astype(np.float32), lam, svd_start(u[:, :20], d[:20], vt[:20], lam).warm_start(), 5000,
                          tolerance=1e-12)
    np.testing.assert_allclose(fit.rows, z, atol=1e-3 * np.abs(z).max())


def test_recovers_a_low_rank_matrix_from_half_its_entries():
    """In place (fitted on the matrix with gaps), one group, no sex or age: the hidden half is recovered to
    about the noise level, far better than the start the ALS iterations refine (the soft-thresholded SVD
    with gaps as 0)."""
    signal, x = _low_rank(200, 120, 3, 0.2, seed=1)
    split = ["train"] * 170 + ["valid"] * 30
    cohort = _cohort(x, split=split)
    observed = mcar_mask(x.shape, 0.5, 0.5, seed=2)
    masked = mask_cohort(cohort, observed)
    imputer = SoftImputeImputer().fit(masked.split("train"), masked.split("valid"))
    train_rows = np.arange(170)
    hidden = ~observed[train_rows]
    filled = imputer.impute(masked.split("train"))
    error = np.sqrt(np.mean((filled - signal[train_rows])[hidden] ** 2))
    assert error < 0.2, error  # the noise SD is 0.2; the signal's 1.0
    assert imputer.rank_ >= 3 and any(row["stage"] == "als" for row in imputer.selection)
    expected = imputer._centring.expected(masked.split("train").samples)
    u, d, vt = np.linalg.svd(np.nan_to_num(masked.split("train").x - expected), full_matrices=False)
    start = svd_start(u, d, vt, imputer._completion.lam)
    start_error = np.sqrt(np.mean((start.rows + expected - signal[train_rows])[hidden] ** 2))
    assert error < 0.5 * start_error, (error, start_error)


def test_fold_in_equals_the_in_place_completion_of_the_same_row():
    """A row folded in with the fitted right factors, from its own observed values, is the row the ALS fit
    completed in place: u = (B_Oᵀ B_O + λI)⁻¹ B_Oᵀ r_O is the ALS update of that row."""
    _, x = _low_rank(80, 50, 4, 0.3, seed=3)
    x[mcar_mask(x.shape, 0.4, 0.4, seed=4) == 0] = np.nan
    x = x.astype(np.float32)
    u, d, vt = np.linalg.svd(np.nan_to_num(x), full_matrices=False)
    lam = 0.1 * d[0]
    fit = soft_impute_als(x, lam, svd_start(u[:, :10], d[:10], vt[:10], lam).warm_start(), 5000, tolerance=1e-12)
    completion = fit.completion.compact()
    for row in (0, 37):
        folded = completion.fold_in(x[row:row + 1])[0]
        np.testing.assert_allclose(folded, fit.rows[row], atol=1e-3 * np.abs(fit.rows).max())


def _groups_cohort(seed: int) -> Cohort:
    """Three groups with their own offsets, a rank-4 signal and noise; 90 train, 20 valid, 40 test samples."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(3, size=150)
    signal, x = _low_rank(150, 200, 4, 0.5, seed)
    x = x + rng.normal(scale=0.7, size=(3, 200))[groups]
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    return _cohort(x, [f"condition {g}" for g in groups], ["train"] * 90 + ["valid"] * 20 + ["test"] * 40)


def test_beats_the_group_mean_on_a_low_rank_cohort_at_every_rate():
    cohort = _groups_cohort(5)
    train, valid, test = cohort.split("train"), cohort.split("valid"), cohort.split("test")
    softimpute = SoftImputeImputer().fit(train, valid)
    mean = make_imputer("mean").fit(train)
    for rate in (0.2, 0.5, 0.8):
        errors = {name: _hidden_mse(model, test, rate, seed=6) for name, model in
                  (("softimpute", softimpute), ("mean", mean))}
        assert errors["softimpute"] < 0.6 * errors["mean"], (rate, errors)


def test_lambda_chosen_on_the_validation_donors_beats_a_fixed_bad_one():
    cohort = _groups_cohort(7)
    train, valid, test = cohort.split("train"), cohort.split("valid"), cohort.split("test")
    chosen = SoftImputeImputer().fit(train, valid)
    best = min((row for row in chosen.selection), key=lambda row: row["valid_mse"])
    assert best["penalty"] == pytest.approx(chosen.penalty_)
    for bad in (0.8, 0.001):  # almost everything shrunk away / almost nothing
        fixed = SoftImputeImputer(penalty=bad).fit(train, valid)
        assert _hidden_mse(chosen, test, 0.5, seed=8) < 0.9 * _hidden_mse(fixed, test, 0.5, seed=8), bad


def test_a_checkpoint_round_trip_imputes_the_same(tmp_path):
    cohort = _groups_cohort(9)
    imputer = SoftImputeImputer().fit(cohort.split("train"), cohort.split("valid"))
    path = save_checkpoint(imputer, tmp_path / "softimpute.safetensors", {
        "genes": cohort.genes, "tissues": sorted(set(cohort.samples["tissue"])), "transform": cohort.transform})
    loaded, _ = load_checkpoint(path)
    masked = mask_cohort(cohort.split("test"), mcar_mask(cohort.split("test").x.shape, 0.5, 0.5, seed=10))
    np.testing.assert_array_equal(loaded.impute(masked), imputer.impute(masked))
    assert (loaded.penalty_, loaded.rank_, loaded.selection) == (imputer.penalty_, imputer.rank_, imputer.selection)


def test_a_group_never_seen_in_training_gets_the_overall_expectation():
    cohort = _groups_cohort(14)
    imputer = SoftImputeImputer(group_shrinkage=0.0).fit(cohort.split("train"), cohort.split("valid"))
    test = cohort.split("test")
    test.samples["tissue"] = "a group never seen"
    filled = imputer.impute(mask_cohort(test, mcar_mask(test.x.shape, 0.5, 0.5, seed=15)))
    assert np.isfinite(filled).all()


def test_a_cohort_with_nothing_to_complete_fits_rank_zero_and_round_trips(tmp_path):
    """Constant values: every residual is 0, λ_max is 0; the model is the means alone, and still saves and loads."""
    cohort = _cohort(np.full((30, 10), 2.0), split=["train"] * 20 + ["valid"] * 10)
    imputer = SoftImputeImputer().fit(cohort.split("train"), cohort.split("valid"))
    assert imputer.rank_ == 0
    loaded, _ = load_checkpoint(save_checkpoint(imputer, tmp_path / "flat.safetensors", {"genes": cohort.genes}))
    masked = mask_cohort(cohort.split("valid"), mcar_mask((10, 10), 0.5, 0.5, seed=16))
    np.testing.assert_array_equal(loaded.impute(masked), np.full((10, 10), 2.0, dtype=np.float32))


def test_bad_settings_are_refused_with_what_is_allowed():
    with pytest.raises(ValueError, match=r"penalty .* must be in \(0, 1\]"):
        SoftImputeImputer(penalty=0.0)
    with pytest.raises(ValueError, match="penalty"):
        check_settings("softimpute", {"penalty": 1.5}, {}, "config.yaml")
    with pytest.raises(ValueError, match="at least two training samples"):
        SoftImputeImputer().fit(_cohort(np.ones((1, 5))))


def test_a_real_microarray_cohort_with_probe_ids():
    """The Biobase arrays: 26 samples, probe IDs, MAS5 signal (negatives clipped), two groups, no age."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cohort = import_table(DATA / "biobase_sample" / "expression.csv", DATA / "biobase_sample" / "samples.csv",
                              tissue_column="group", negatives="clip")
    imputer = SoftImputeImputer().fit(cohort.split("train"), cohort.split("valid"))
    test = cohort.split("test")
    observed = mcar_mask(test.x.shape, 0.5, 0.5, seed=11)
    filled = imputer.impute(mask_cohort(test, observed))
    assert np.isfinite(filled).all() and np.array_equal(filled[observed], test.x[observed])


def test_the_influenza_cohort_both_scenarios(influenza):
    """Real whole blood, repeated measures (the subject is the donor), 300 genes: softimpute beats the group
    mean by a wide margin, inductive and in place (per-gene R² mean and median; measured: +0.8 / +0.8 inductive,
    +1.0 / +0.86 in place)."""
    for scenario in ("inductive", "inplace"):
        records = {r["method"]: r for r in run_benchmark(influenza, ["softimpute", "mean"], scenario=scenario)}
        gain = {key: records["softimpute"][key] - records["mean"][key] for key in ("r2_mean", "r2_median")}
        assert gain["r2_mean"] > 0.3 and gain["r2_median"] > 0.5, (scenario, gain)
