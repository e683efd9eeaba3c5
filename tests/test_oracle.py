"""The oracle's conditional mean and variance against brute-force conditioning on the generative model."""

from dataclasses import replace

import numpy as np
import pytest

from gtex_models.data.masks import mcar_mask
from gtex_models.data.patterns import mask_cohort
from gtex_models.data.simulate import DETECTION_MIDPOINT, simulation_parameters
from gtex_models.models.oracle import (
    ZERO_TOLERANCE,
    OracleImputer,
    Platform,
    conditional_moments,
    enumerate_conditional_moments,
    linear_conditional_mean,
)

N_DRAWS = 400_000
TISSUE = "Brain - Cortex"


@pytest.fixture(scope="module")
def tiny_problem():
    """One cortex sample, 8 genes (noise from low to high; two often undetected, one observed as 0): 5 observed."""
    params = simulation_parameters(n_genes=340, seed=3)
    t = params.tissue_names.index(TISSUE)
    noise = params.sample_noise_var(t)
    expressed = np.flatnonzero(params.mean[t] > 3.0)
    by_noise = expressed[np.argsort(noise[expressed])]
    low = np.flatnonzero(np.abs(params.mean[t] - DETECTION_MIDPOINT - 0.3) < 0.3)[:2]
    genes = np.concatenate([by_noise[[0, 10, len(by_noise) // 2, -10, -1, 5]], low])
    observed = np.array([True, True, True, True, False, False, True, False])
    values = params.mean[t, genes] + np.array([0.6, -0.8, 1.0, 1.5, 0, 0, 0, 0])
    values[~observed] = 0.0
    values[6] = 0.0  # an undetected gene
    return params, t, genes, observed, values


def _brute_force(params, t, genes, observed, values, sex, age, rng):
    """Self-normalised importance sampling from the prior: E[x], E[x^2] of every gene and their SEs."""
    prior = params.covariate_mean(np.array([t]), np.array([sex]), np.array([age]))[0, genes]
    detect = params.detection(np.array([t]), np.array([sex]))[0, genes]
    states = rng.choice(len(params.state_weights[t]), size=N_DRAWS, p=params.state_weights[t])
    loadings, active = params.loadings(t)[genes], params.active(t)
    latent = rng.standard_normal((N_DRAWS, loadings.shape[1])) * active[states]
    noise = params.sample_noise_var(t)[genes]
    centre = prior + params.state_shift[states][:, genes] + latent @ loadings.T  # draws x genes
    log_w = np.zeros(N_DRAWS)
    for j in np.flatnonzero(observed):
        if values[j] == 0.0:
            log_w += np.log1p(-detect[j])
        else:
            log_w += np.log(detect[j]) - 0.5 * (values[j] - centre[:, j]) ** 2 / noise[j]
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    first = detect * centre                       # E[x | draw]
    second = detect * (noise + centre**2)         # E[x^2 | draw]
    mean = w @ first
    var = w @ second - mean**2
    # delta-method standard errors of the self-normalised estimates
    se_mean = np.sqrt((w[:, None] ** 2 * (first - mean) ** 2).sum(axis=0))
    se_second = np.sqrt((w[:, None] ** 2 * (second - (w @ second)) ** 2).sum(axis=0))
    return mean, var, se_mean, se_second + 2 * np.abs(mean) * se_mean, 1.0 / (w**2).sum()


def _z_scores(params, t, genes, observed, values, rng):
    mean, var, se_mean, se_var, ess = _brute_force(params, t, genes, observed, values, "female", 55.0, rng)
    assert ess > 1000, f"too few effective draws ({ess:.0f}) for a meaningful comparison"
    return mean, var, se_mean, se_var


def _oracle(params, t, genes, observed, values):
    mean, var = conditional_moments(params, np.array([t]), np.array(["female"]), np.array([55.0]),
                                    values[None], observed[None], gene_index=genes)
    return mean[0], var[0]


def test_oracle_moments_match_brute_force_sampling(tiny_problem):
    params, t, genes, observed, values = tiny_problem
    mc_mean, mc_var, se_mean, se_var = _z_scores(params, t, genes, observed, values, np.random.default_rng(0))
    mean, var = _oracle(params, t, genes, observed, values)
    missing = ~observed
    assert np.all(np.abs(mean - mc_mean)[missing] < 5 * se_mean[missing] + 1e-9)
    assert np.all(np.abs(var - mc_var)[missing] < 5 * se_var[missing] + 1e-9)
    assert np.all(se_mean[missing] < 0.02)  # the check is tight enough to mean something


def _exact_enumeration(params, t, genes, observed, values):
    mean, var = enumerate_conditional_moments(params, t, "female", 55.0, values, observed, genes)
    return mean[~observed], var[~observed]


def _mutant(params, t, mutant):
    if mutant == "equal_noise":      # ignores the per-gene noise levels
        return replace(params, noise_var=np.full_like(params.noise_var, params.noise_var.mean()),
                       eqtl_var=np.full_like(params.eqtl_var, params.eqtl_var.mean()))
    if mutant == "one_state":        # a single mixture component (the tissue's most likely state)
        logits = np.full_like(params.state_logits, -1e9)
        logits[:, params.state_logits[t].argmax()] = 0.0
        return replace(params, state_logits=logits)
    wrong = replace(params)          # forgets that low genes are often undetected
    wrong.detection = lambda tissue_index, sex: np.ones((len(tissue_index), params.mean.shape[1]))
    return wrong


def test_oracle_moments_equal_exact_enumeration(tiny_problem):
    params, t, genes, observed, values = tiny_problem
    reference_mean, reference_var = _exact_enumeration(params, t, genes, observed, values)
    mean, var = _oracle(params, t, genes, observed, values)
    np.testing.assert_allclose(mean[~observed], reference_mean, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(var[~observed], reference_var, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("mutant", ["equal_noise", "one_state", "no_detection"])
def test_exact_enumeration_catches_a_wrong_oracle(tiny_problem, mutant):
    params, t, genes, observed, values = tiny_problem
    reference_mean, reference_var = _exact_enumeration(params, t, genes, observed, values)
    mean, var = _oracle(_mutant(params, t, mutant), t, genes, observed, values)
    error = max(np.abs(mean[~observed] - reference_mean).max(), np.abs(var[~observed] - reference_var).max())
    assert error > 1e-3


def test_importance_sampling_catches_a_single_state_oracle(tiny_problem):
    params, t, genes, observed, values = tiny_problem
    mc_mean, _, se_mean, _ = _z_scores(params, t, genes, observed, values, np.random.default_rng(0))
    mean, _ = _oracle(_mutant(params, t, "one_state"), t, genes, observed, values)
    assert (np.abs(mean - mc_mean)[~observed] / se_mean[~observed]).max() > 5


def test_oracle_imputer_works_in_model_space(small_cohort):
    test = small_cohort.split("test").subset_samples(np.arange(40))
    observed = mcar_mask(test.x.shape, 0.5, 0.5, seed=0)
    masked = mask_cohort(test, observed)
    oracle = OracleImputer().fit(small_cohort)
    imputed, variance = oracle.impute(masked), oracle.predict_variance(masked)
    np.testing.assert_array_equal(imputed[observed], test.x[observed])
    assert np.all(variance[observed] == 0) and np.all(variance[~observed] > 0)
    # calibrated: the squared errors of the hidden entries add up to their predicted variances
    hidden = ~observed
    assert 0.85 < ((test.x - imputed)[hidden] ** 2).sum() / variance[hidden].sum() < 1.15


def test_linear_predictor_is_worse_than_the_oracle_but_better_than_the_mean(small_cohort):
    test = small_cohort.split("test").subset_samples(np.arange(40))
    observed = mcar_mask(test.x.shape, 0.5, 0.5, seed=0)
    oracle = OracleImputer().fit(small_cohort)
    params = oracle.params
    tissue_index = np.array([params.tissue_names.index(name) for name in test.samples["tissue"]])
    log_expr = test.x * test.transform.std + test.transform.mean
    sex, age = test.samples["sex"].to_numpy(), test.samples["age"].to_numpy()
    gene_index = np.arange(test.n_genes)
    linear = linear_conditional_mean(params, tissue_index, sex, age, np.where(observed, log_expr, 0.0), observed,
                                     gene_index)
    exact, _ = conditional_moments(params, tissue_index, sex, age, np.where(observed, log_expr, 0.0), observed,
                                   gene_index)
    prior = params.detection(tissue_index, sex) * (params.covariate_mean(tissue_index, sex, age)
                                                   + params.state_weights[tissue_index] @ params.state_shift)
    hidden = ~observed
    mse = {name: ((p - log_expr)[hidden] ** 2).mean() for name, p in
           [("exact", exact), ("linear", linear), ("prior", prior)]}
    assert mse["exact"] < mse["linear"] < mse["prior"]


@pytest.fixture(scope="module")
def platform(tiny_problem):
    """Another platform for the tiny problem's genes: scales, offsets and measurement noise of real size."""
    rng = np.random.default_rng(5)
    n = len(tiny_problem[2])
    return Platform(np.exp(rng.normal(0, 0.3, n)), rng.normal(0, 0.8, n), noise_sd=0.4)


def _on_platform(values, platform):
    return np.where(np.abs(values) >= ZERO_TOLERANCE, platform.scale * values + platform.offset, 0.0)


def test_oracle_on_another_platform_equals_exact_enumeration(tiny_problem, platform):
    params, t, genes, observed, values = tiny_problem
    shifted = _on_platform(values, platform)
    reference = enumerate_conditional_moments(params, t, "female", 55.0, shifted, observed, genes, platform)
    mean, var = conditional_moments(params, np.array([t]), np.array(["female"]), np.array([55.0]), shifted[None],
                                    observed[None], gene_index=genes, platform=platform)
    np.testing.assert_allclose(mean[0][~observed], reference[0][~observed], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(var[0][~observed], reference[1][~observed], rtol=1e-6, atol=1e-8)
    # the enumeration tells a platform-blind oracle and one that forgets the platform's noise apart
    for wrong in (None, Platform(platform.scale, platform.offset, 0.0)):
        m, v = conditional_moments(params, np.array([t]), np.array(["female"]), np.array([55.0]), shifted[None],
                                   observed[None], gene_index=genes, platform=wrong)
        error = max(np.abs(m[0] - reference[0])[~observed].max(), np.abs(v[0] - reference[1])[~observed].max())
        assert error > 1e-3


def test_the_oracle_of_a_shifted_cohort_is_calibrated_and_beats_a_platform_blind_one(small_cohort):
    from gtex_models.analysis.evaluation import r2_per_gene
    from gtex_models.analysis.other_cohort import shift_cohort

    test = small_cohort.split("test").subset_samples(np.arange(40))
    shifted = shift_cohort(test, offset_sd=1.0, scale_sd=0.3, noise_sd=0.3, drop_share=0.1, seed=2)
    assert Platform.of(shifted) is not None and Platform.of(test) is None
    observed = mcar_mask(shifted.x.shape, 0.5, 0.5, seed=0)
    masked = mask_cohort(shifted, observed)
    oracle = OracleImputer().fit(shifted)
    imputed, variance = oracle.impute(masked), oracle.predict_variance(masked)
    hidden = ~observed
    assert 0.85 < ((shifted.x - imputed)[hidden] ** 2).sum() / variance[hidden].sum() < 1.15
    blind = shifted.genes.drop(columns=["platform_scale", "platform_offset"])
    blind_imputed = oracle.impute(type(masked)(masked.x, blind, masked.samples, masked.transform, masked.meta))
    r2 = {name: np.nanmean(r2_per_gene(shifted.x, p, observed)) for name, p in
          [("exact", imputed), ("blind", blind_imputed)]}
    assert r2["exact"] > r2["blind"] + 0.1, r2
