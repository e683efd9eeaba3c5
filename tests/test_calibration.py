"""Calibrated intervals: coverage at the nominal level (pooled, per group, at any missing rate), what
breaks it, storage in checkpoints, cohorts unlike the demo, and cohorts too small to calibrate.

Tolerances were measured (``benchmarks/intervals.py`` for the demo; the numbers below for these cohorts):
on 150-donor simulated cohorts (400 genes, seeds 0-3), small PMI, 90 % nominal, test rates 0.1/0.5/0.9,
pooled coverage ranged 0.883-0.926 (the mean imputer, seeds 0-5: 0.879-0.916) and the lowest tissue's
0.773-0.839. Values of one sample are correlated (shared latent programs), so coverage over a few hundred
test samples varies by about ±0.02 between cohorts: the pooled tolerance is ±0.03 and the per-tissue
floor 0.75. With the scale ignored (fitted and applied as 1) the lowest tissue fell to 0.686-0.740 on
seeds 0-2; GAIN-GTEx's uncalibrated noise-draw intervals cover far less than 90 %: both are caught.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import SMALL_PMI

from gtex_models.analysis.benchmark import calibrate_scenario, scenario_data
from gtex_models.data.cohort import Cohort
from gtex_models.data.patterns import mask_cohort
from gtex_models.data.simulate import simulate_cohort
from gtex_models.models.calibration import (
    LEVELS,
    PROBE_MIN_OBSERVED,
    PROBE_SEED,
    PROBE_SHARE,
    RATE_EDGES,
    Calibration,
    CalibrationError,
    calibrate,
    calibrate_held_out,
    calibration_passes,
    conformal_quantiles,
    coverage_table,
    interval_scores,
)
from gtex_models.models.checkpoints import attach_calibration, attach_evaluation, load_checkpoint, save_checkpoint
from gtex_models.models.registry import make_imputer
from gtex_models.studies.experiment import Experiment, save_model

LEVEL = 0.9
POOLED_TOLERANCE = 0.03
GROUP_FLOOR = 0.75
RATES = (0.1, 0.5, 0.9)


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    """150 donors (~3,000 samples) x 400 genes, 49 tissues: enough test donors for coverage to mean something."""
    return simulate_cohort(n_donors=150, n_genes=400, seed=0)


@pytest.fixture(scope="module")
def pmi(cohort: Cohort):
    return make_imputer("pmi", **SMALL_PMI).fit(cohort.split("train"), cohort.split("valid"))


@pytest.fixture(scope="module")
def pmi_calibration(pmi, cohort: Cohort) -> Calibration:
    return calibrate_held_out(pmi, cohort, cohort.split("train").tissues)


def test_calibration_and_its_settings(pmi_calibration):
    assert LEVELS[0] == 0.5 and LEVELS[-1] == 0.99
    info = pmi_calibration.info
    assert info["method"] == "pmi" and info["n_donors"] >= 20 and info["n_scores"] > 50_000


def _test_scores(imputer, calibration: Calibration, cohort: Cohort, rate: float, level: float = LEVEL, seed: int = 0):
    test = cohort.split("test")
    test = test.subset_samples(test.samples["tissue"].isin(cohort.split("train").tissues).to_numpy())
    observed = np.random.default_rng([seed, 100]).random(test.x.shape) >= rate
    masked = mask_cohort(test, observed)
    lower, upper = calibration.interval(imputer, masked, imputer.impute(masked), level)
    return interval_scores(test.x, lower, upper, observed, test.samples["tissue"], test.transform.std)


@pytest.mark.parametrize("rate", RATES)
def test_pmi_intervals_cover_the_nominal_share_pooled_and_in_every_tissue(pmi, pmi_calibration, cohort, rate):
    scores = _test_scores(pmi, pmi_calibration, cohort, rate)
    assert abs(scores["coverage"] - LEVEL) <= POOLED_TOLERANCE, scores["coverage"]
    assert scores["coverage_min_group"] >= GROUP_FLOOR, sorted(scores["coverage_per_group"].items(), key=lambda x: x[1])[:3]
    assert len(scores["coverage_per_group"]) >= 40


def test_the_check_catches_uncalibrated_intervals_and_calibration_fixes_them(cohort):
    """Today's GAIN-GTEx intervals (the 5-95 % spread of its noise draws, 90 % nominal) fail the coverage check;
    the same model's calibrated intervals pass it."""
    gain = make_imputer("gain", hidden_sizes=[128], batch_size=64, lr=2e-3, max_epochs=8, patience=5, m_low=0.2,
                        m_high=0.5, seed=0).fit(cohort.split("train"), cohort.split("valid"))
    test = cohort.split("test")
    test = test.subset_samples(test.samples["tissue"].isin(cohort.split("train").tissues).to_numpy())
    observed = np.random.default_rng([0, 100]).random(test.x.shape) >= 0.5
    draws = gain.impute_samples(mask_cohort(test, observed), n_draws=20)
    lower, upper = np.quantile(draws, (0.05, 0.95), axis=0)
    uncalibrated = interval_scores(test.x, lower, upper, observed, test.samples["tissue"], test.transform.std)
    assert uncalibrated["coverage"] < LEVEL - POOLED_TOLERANCE, uncalibrated["coverage"]
    calibrated = _test_scores(gain, calibrate_held_out(gain, cohort, cohort.split("train").tissues), cohort, 0.5)
    assert abs(calibrated["coverage"] - LEVEL) <= POOLED_TOLERANCE, calibrated["coverage"]


def test_levels_widen_monotonically_and_out_of_range_levels_are_refused(pmi_calibration, cohort):
    test = cohort.split("test")
    observed = np.random.default_rng(1).random(test.x.shape) >= 0.5
    widths = [pmi_calibration.half_width(observed, test.samples["tissue"], level)[~observed].mean()
              for level in (0.5, 0.8, 0.9, 0.955, 0.99)]
    assert np.all(np.diff(widths) > 0)
    assert (pmi_calibration.half_width(observed, test.samples["tissue"], 0.9)[observed] == 0).all()
    for level in (0.3, 0.995, 1.5):
        with pytest.raises(CalibrationError, match="between 0.50 and 0.99"):
            pmi_calibration.half_width(observed, test.samples["tissue"], level)


def test_an_unseen_group_gets_the_pooled_interval(pmi_calibration, cohort):
    observed = np.ones((2, cohort.n_genes), dtype=bool)
    observed[:, ::2] = False
    widths = pmi_calibration.half_width(observed, ["Unseen group", pmi_calibration.groups[0]])
    assert np.isfinite(widths).all() and (widths[:, ::2] > 0).all()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_a_checkpoint_round_trip_keeps_the_calibration(pmi, pmi_calibration, cohort, tmp_path, dtype):
    path = save_checkpoint(pmi, tmp_path / "pmi.safetensors", {"transform": cohort.transform}, dtype=dtype,
                           calibration=pmi_calibration)
    _, metadata = load_checkpoint(path)
    loaded = metadata["calibration"]
    assert loaded.groups == pmi_calibration.groups and loaded.info == pmi_calibration.info
    assert loaded.probe_prior == pmi_calibration.probe_prior and np.isfinite(loaded.probe_prior)
    test = cohort.split("test")
    observed = np.random.default_rng(2).random(test.x.shape) >= 0.4
    masked = mask_cohort(test, observed)
    imputed = pmi.impute(masked)
    for bound, loaded_bound in zip(pmi_calibration.interval(pmi, masked, imputed), loaded.interval(pmi, masked, imputed)):
        np.testing.assert_array_equal(loaded_bound, bound)
    bare = save_checkpoint(pmi, tmp_path / "bare.safetensors", dtype=dtype)
    assert load_checkpoint(bare)[1]["calibration"] is None
    attach_calibration(bare, pmi_calibration)  # added later (python -m gtex_models calibrate)
    imputer, metadata = load_checkpoint(bare)
    assert metadata["calibration"].groups == pmi_calibration.groups and metadata["dtype"] == dtype
    np.testing.assert_array_equal(imputer.impute(masked), load_checkpoint(path)[0].impute(masked))
    before, stored = load_checkpoint(path)
    attach_evaluation(path, {"method": "pmi", "r2_mean": 0.25})  # a record rescored (scripts/refresh_tables.py)
    after, metadata = load_checkpoint(path)
    assert metadata["evaluation"] == {"method": "pmi", "r2_mean": 0.25} and metadata["dtype"] == dtype
    np.testing.assert_array_equal(after.impute(masked), before.impute(masked))
    for bound, kept in zip(stored["calibration"].interval(before, masked, before.impute(masked)),
                           metadata["calibration"].interval(after, masked, after.impute(masked))):
        np.testing.assert_array_equal(kept, bound)


def test_a_calibration_stored_before_probes_gives_unprobed_intervals(pmi, pmi_calibration, cohort):
    arrays, header = pmi_calibration.to_state()
    old = Calibration.from_state(arrays, {key: value for key, value in header.items() if key != "probe_prior"})
    test = cohort.split("test").subset_samples(np.arange(20))
    masked = mask_cohort(test, np.random.default_rng(3).random(test.x.shape) >= 0.5)
    np.testing.assert_array_equal(old.sample_factor(pmi, masked), np.ones(test.n_samples))
    assert not np.allclose(pmi_calibration.sample_factor(pmi, masked), 1.0)


def test_the_coverage_table_has_every_rate_level_and_group(pmi, pmi_calibration, cohort):
    test = cohort.split("test")
    test = test.subset_samples(test.samples["tissue"].isin(pmi_calibration.groups).to_numpy())
    table = coverage_table(pmi, pmi_calibration, test, (0.2, 0.8), (0.5, 0.9))
    pooled = table[table["group"] == "all"].set_index(["missing_rate", "level"])["coverage"]
    assert len(pooled) == 4 and (pooled.xs(0.9, level="level") > pooled.xs(0.5, level="level")).all()
    assert abs(pooled.loc[(0.2, 0.5)] - 0.5) < 0.05 and abs(pooled.loc[(0.8, 0.9)] - 0.9) < POOLED_TOLERANCE
    assert set(table["group"]) == {"all", *test.tissues}


def test_each_coverage_row_hides_its_rate_of_values_and_more_missing_gets_wider_intervals(pmi, pmi_calibration,
                                                                                           cohort):
    test = cohort.split("test")
    test = test.subset_samples(test.samples["tissue"].isin(pmi_calibration.groups).to_numpy())
    rates = (0.2, 0.5, 0.8)
    table = coverage_table(pmi, pmi_calibration, test, rates, (0.9,))
    values = test.samples["tissue"].value_counts() * test.n_genes
    values["all"] = test.n_samples * test.n_genes
    assert len(table) == len(rates) * len(values)
    for row in table.itertuples():
        n = values[row.group]
        assert abs(row.n_hidden - row.missing_rate * n) <= 5 * np.sqrt(n * row.missing_rate * (1 - row.missing_rate)), row
    widths = table[table["group"] == "all"].set_index("missing_rate")["width_median"]
    assert list(widths.index) == list(rates) and widths[0.8] > max(widths[0.2], widths[0.5]), widths


# ------------------------------------------------------------------------------------- exact values
def test_the_conformal_quantile_is_the_ceil_of_n_plus_1_times_level_th_smallest_score():
    """200 scores, 1 to 200 shuffled, so the k-th smallest is k: level L must give ceil(201 L), computed by
    hand below; a cell with 199 scores (or scores of fewer than 15 samples) has none."""
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.permutation(np.arange(1.0, 201.0)), rng.permutation(np.arange(1.0, 200.0))])
    cell = np.repeat([0, 1], [200, 199])
    by_hand = {0.5: 101, 0.8: 161, 0.89: 179, 0.9: 181, 0.95: 191, 0.99: 199}  # ceil(100.5), ceil(160.8), ...
    quantiles = conformal_quantiles(scores, cell, 2)
    assert {level: quantiles[0, list(LEVELS).index(level)] for level in by_hand} == by_hand
    assert np.isnan(quantiles[1]).all()
    few_samples = conformal_quantiles(scores[:200], cell[:200], 1, sample=np.arange(200) % 14)
    assert np.isnan(few_samples).all()
    enough_samples = conformal_quantiles(scores[:200], cell[:200], 1, sample=np.arange(200) % 15)
    np.testing.assert_array_equal(enough_samples, quantiles[:1])


def _hand_made_calibration(n_genes: int, rate_coef=(0.0, 0.0, 0.0), probe_prior: float = np.inf) -> Calibration:
    """One group; the quantile of level index i, gene bin b and rate bin r is 1 + i + 100 r + 1000 b;
    the scale of gene j is 1 + j / n_genes (its pooled row twice that)."""
    i, b, r = np.meshgrid(np.arange(len(LEVELS)), np.arange(4), np.arange(len(RATE_EDGES) + 1), indexing="ij")
    quantiles = (1 + i + 100 * r + 1000 * b).transpose(1, 2, 0)[None].repeat(2, axis=0).astype(np.float32)
    scale = (1 + np.arange(n_genes) / n_genes)[None] * np.array([[1.0], [2.0]])
    return Calibration(("g",), scale.astype(np.float32), np.asarray(rate_coef, dtype=float),
                       np.arange(n_genes) % 4, quantiles, probe_prior)


def test_a_level_reads_its_own_stored_quantile_and_interpolates_between_levels():
    calibration = _hand_made_calibration(8)
    observed = np.zeros((2, 8), dtype=bool)
    observed[0, :4] = True  # sample 0: half missing (rate bin 4); sample 1: all missing (rate bin 8)
    scale = 1 + np.arange(8) / 8
    for level, index in ((0.9, 40), (0.5, 0), (0.99, 49), (0.905, 40.5)):
        width = calibration.half_width(observed, ["g", "g"], level)
        expected = scale * (1 + index + 100 * np.array([[4], [8]]) + 1000 * (np.arange(8) % 4))
        np.testing.assert_allclose(width, np.where(observed, 0.0, expected), rtol=1e-6)
    pooled = calibration.half_width(observed[1:], ["unseen group"], 0.9)
    np.testing.assert_allclose(pooled[0], 2 * scale * (41 + 800 + 1000 * (np.arange(8) % 4)), rtol=1e-6)


def _tiny_cohort(n_train: int, n_test: int, n_genes: int = 40, seed: int = 4) -> Cohort:
    """One group ``g`` of probes (log scale, no sex or age), each sample its own donor, in train and test."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    raw = 8 + rng.normal(size=(n, n_genes)) * np.linspace(0.5, 2.0, n_genes)
    samples = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "donor_id": [f"s{i}" for i in range(n)],
                            "tissue": "g", "sex": "unknown", "age": np.nan, "split": ["train"] * n_train + ["test"] * n_test})
    genes = pd.DataFrame({"ensembl_gene_id": "", "symbol": [f"p{j}" for j in range(n_genes)]})
    return Cohort.from_raw(raw, genes, samples, scale="log")


def test_coverage_rows_get_wider_with_each_rate_under_a_calibration_whose_widths_grow_with_it():
    """A hand-made calibration whose rate factor and quantiles grow with the missing share: each row of the table
    is measured at its own rate, so its median width grows from row to row."""
    cohort = _tiny_cohort(20, 200)
    imputer = make_imputer("mean").fit(cohort.split("train"))
    rates = (0.1, 0.3, 0.5, 0.7, 0.9)
    table = coverage_table(imputer, _hand_made_calibration(40, (0.0, 2.0, 0.0)), cohort.split("test"), rates, (0.9,))
    pooled = table[table["group"] == "all"]
    assert pooled["missing_rate"].tolist() == list(rates) and np.all(np.diff(pooled["width_median"]) > 0)
    assert np.allclose(pooled["n_hidden"] / (200 * 40), rates, atol=0.02)


def test_the_probe_factor_follows_its_formula_on_a_fixed_probe_mask():
    """g = sqrt((Σ (r / s)² + κ) / (n + κ)) over the probed values (``PROBE_SHARE`` of the observed ones, drawn
    with ``PROBE_SEED``), with s the gene's scale times f at the missing share left after probing; computed by
    hand for the mean imputer (r: value minus the training mean). A sample with fewer than
    ``PROBE_MIN_OBSERVED`` observed values is not probed (g = 1)."""
    rng = np.random.default_rng(4)
    n_genes, kappa, coef = 40, 3.0, (1.0, 0.5, -0.2)
    cohort = _tiny_cohort(20, 6, n_genes)
    train, test = cohort.split("train"), cohort.split("test")
    observed = rng.random(test.x.shape) >= np.array([0.1, 0.3, 0.5, 0.7, 0.3, 0.0])[:, None]
    observed[5] = np.arange(n_genes) < PROBE_MIN_OBSERVED - 1  # too few observed values to probe
    calibration = _hand_made_calibration(n_genes, coef, kappa)
    factor = calibration.sample_factor(make_imputer("mean").fit(train), mask_cohort(test, observed))

    probed = observed & (np.random.default_rng(PROBE_SEED).random(observed.shape) < PROBE_SHARE)
    probed[5] = False
    residual = test.x.astype(np.float64) - train.x.astype(np.float64).mean(axis=0)
    left = np.clip(1 - (observed & ~probed).mean(axis=1), 0.05, 0.95)
    spread = (1 + np.arange(n_genes) / n_genes)[None] * np.sqrt(np.exp(np.polyval(coef, left)))[:, None]
    squares = np.where(probed, (residual / spread) ** 2, 0.0).sum(axis=1)
    np.testing.assert_allclose(factor, np.sqrt((squares + kappa) / (probed.sum(axis=1) + kappa)), rtol=1e-5)
    assert factor[5] == 1.0 and probed[:5].sum(axis=1).min() > 0


# ------------------------------------------------------------------------------------- unlike the demo
def probe_cohort(n_samples: int = 400, n_probes: int = 350, seed: int = 0, poor_share: float = 0.0) -> Cohort:
    """Log intensities of probes in one group, no sex or age, each sample its own donor; the probes' noise
    SD spans 0.2-2 (so a per-gene width is needed), on top of three shared programs. A ``poor_share`` of the
    arrays are of poor quality: 3x the noise on every probe (``meta["poor"]``, per sample; the data has no flag)."""
    rng = np.random.default_rng(seed)
    noise = np.geomspace(0.2, 2.0, n_probes)
    rng.shuffle(noise)
    latent = rng.standard_normal((n_samples, 3))
    poor = rng.random(n_samples) < poor_share
    raw = (8 + latent @ rng.standard_normal((3, n_probes))
           + rng.standard_normal((n_samples, n_probes)) * noise * np.where(poor, 3.0, 1.0)[:, None])
    genes = pd.DataFrame({"ensembl_gene_id": "", "symbol": [f"{1000 + j}_at" for j in range(n_probes)]})
    ids = [f"array{i:03d}" for i in range(n_samples)]
    samples = pd.DataFrame({"sample_id": ids, "donor_id": ids, "tissue": "All samples", "sex": "unknown",
                            "age": np.nan})
    cohort = Cohort.from_raw(raw.astype(np.float32), genes, samples, scale="log", seed=seed)
    cohort.meta["noise_sd"] = noise.tolist()
    cohort.meta["poor"] = dict(zip(ids, poor.tolist()))
    return cohort


@pytest.mark.parametrize("method", ["mean", "knn"])
def test_one_group_probe_cohort_without_covariates_is_covered_including_its_noisiest_probes(method):
    cohort = probe_cohort()
    imputer = make_imputer(method).fit(cohort.split("train"))
    calibration = calibrate_held_out(imputer, cohort)
    assert calibration.groups == ("All samples",)
    test = cohort.split("test")
    observed = np.random.default_rng(5).random(test.x.shape) >= 0.5
    masked = mask_cohort(test, observed)
    lower, upper = calibration.interval(imputer, masked, imputer.impute(masked))
    inside = (test.x >= lower) & (test.x <= upper)
    assert abs(inside[~observed].mean() - LEVEL) <= POOLED_TOLERANCE
    noise = np.asarray(cohort.meta["noise_sd"])
    for probes in (noise < np.quantile(noise, 0.25), noise > np.quantile(noise, 0.75)):  # quietest, noisiest
        hidden = ~observed & probes[None, :]
        assert abs(inside[hidden].mean() - LEVEL) <= 2 * POOLED_TOLERANCE, inside[hidden].mean()


@pytest.mark.parametrize("method", ["mean", "knn"])
def test_poor_arrays_get_wider_intervals_from_the_probe_and_are_covered_like_the_good_ones(method):
    """Nothing marks the poor arrays: only the probe (observed values hidden again and imputed) sees that they
    are hard. Measured (seeds 0-3): coverage of poor arrays 0.87-0.91 and of good ones 0.89-0.92; without the
    probe factor, poor arrays 0.67-0.87 and good ones 0.92-0.99, with the same width for both."""
    cohort = probe_cohort(poor_share=0.25)
    imputer = make_imputer(method).fit(cohort.split("train"))
    calibration = calibrate_held_out(imputer, cohort)
    test = cohort.split("test")
    poor = test.samples["sample_id"].map(cohort.meta["poor"]).to_numpy(dtype=bool)
    observed = np.random.default_rng(5).random(test.x.shape) >= 0.5
    masked = mask_cohort(test, observed)
    lower, upper = calibration.interval(imputer, masked, imputer.impute(masked))
    inside = (test.x >= lower) & (test.x <= upper)
    for arrays in (poor, ~poor):
        assert abs(inside[arrays][~observed[arrays]].mean() - LEVEL) <= 2 * POOLED_TOLERANCE
    width = np.nanmedian(np.where(observed, np.nan, upper - lower), axis=1)
    assert np.median(width[poor]) > 1.5 * np.median(width[~poor])


def test_a_small_validation_set_is_masked_again_so_that_rate_bins_get_their_own_quantiles():
    """About 45 validation arrays give each bin of missing rates about 5 samples in one pass, too few (15) for
    a bin's own quantiles; masked again at new rates (5 passes here) they give 5x the scores, and bins their own."""
    cohort = probe_cohort(n_samples=300)
    valid = cohort.split("valid")
    imputer = make_imputer("mean").fit(cohort.split("train"))
    once, again = calibrate(imputer, valid, n_passes=1), calibrate(imputer, valid)
    assert again.info["passes"] == calibration_passes(valid.n_samples) == 5
    assert again.info["n_scores"] > 4 * once.info["n_scores"]
    assert once.info["n_own_cells"] == 0 < again.info["n_own_cells"]
    assert calibration_passes(250) == 1  # a large enough validation set is masked once


def test_a_cohort_too_small_to_calibrate_says_so_and_the_model_is_saved_without_intervals(tmp_path):
    cohort = probe_cohort(n_samples=30, n_probes=350)  # 4-5 validation samples: too few (15 are needed)
    imputer = make_imputer("mean").fit(cohort.split("train"))
    with pytest.raises(CalibrationError, match=r"at least 15 calibration samples, and there are only \d \(the "
                                               r"validation donors' samples\).*import --split"):
        calibrate_held_out(imputer, cohort)
    one_donor = cohort.split("valid").subset_samples([0])
    with pytest.raises(CalibrationError, match="at least 2 donors"):
        calibrate(imputer, one_donor)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = save_model(imputer, Experiment("mean"), cohort, tmp_path / "mean.safetensors")
    assert any("No interval calibration" in str(w.message) for w in caught)
    assert load_checkpoint(path)[1]["calibration"] is None


def test_an_in_place_model_is_calibrated_on_the_pools_training_donors(cohort):
    """In place the model has seen the scored donors' observed values: it is calibrated on the other donors of
    its pool (their hidden values, imputed in place), and covers the test donors' hidden values at 90 %."""
    data = scenario_data(cohort, "inplace", 0.5, seed=0)
    imputer = make_imputer("mean").fit(data.fit)  # (KNN in place: minutes)
    calibration = calibrate_scenario(imputer, data, cohort)
    assert calibration.info["scenario"] == "inplace" and calibration.info["n_samples"] == int((~data.is_test).sum())
    rows = np.flatnonzero(data.is_test)
    masked = data.fit.subset_samples(rows)
    lower, upper = calibration.interval(imputer, masked, imputer.impute(data.fit)[rows])
    truth = data.test.subset_samples(rows)
    scores = interval_scores(truth.x, lower, upper, masked.observed, truth.samples["tissue"], truth.transform.std)
    assert abs(scores["coverage"] - LEVEL) <= POOLED_TOLERANCE, scores["coverage"]
