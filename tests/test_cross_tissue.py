"""Cross-tissue imputation per donor: the donor oracle, the donor Gaussian's algebra, the protocol and its guards."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy.stats import multivariate_normal

from gtex_models.analysis.cross_tissue import (
    check_disjoint_donors,
    per_tissue_r2,
    predict_targets,
    run_cross_tissue,
    tissue_means,
    tissues_won,
)
from gtex_models.data.cohort import Cohort
from gtex_models.data.donor_targets import rounds_with_sources, target_rounds
from gtex_models.data.simulate import simulate_cohort, simulation_parameters
from gtex_models.models.donor_gauss import DonorGaussImputer
from gtex_models.models.shared_effects import Evidence, donor_posterior
from gtex_models.models.donor_oracle import DonorOracleImputer, donor_moments, enumerate_donor_mean
from gtex_models.models.registry import make_imputer


@pytest.fixture(scope="module")
def few_states():
    """The demo's parameters cut to 6 cell states, so that every combination of two samples' states (36) can be
    enumerated with dense covariances."""
    params = simulation_parameters(n_genes=400, seed=0)
    return dataclasses.replace(params, state_shift=params.state_shift[:6], state_logits=params.state_logits[:, :6],
                               state_active=params.state_active[:6])


def test_donor_oracle_matches_brute_force_enumeration(few_states) -> None:
    """Two source tissues of a donor (one value undetected) predict a third: the latent-space oracle equals the
    dense enumeration of every state combination (no algebra shared)."""
    rng = np.random.default_rng(1)
    genes, tissues, target = np.array([3, 10, 50, 120, 200]), np.array([5, 30]), 12
    values = few_states.mean[tissues][:, genes] + rng.normal(0, 0.6, (2, len(genes)))
    values[0, 1] = 0.0  # undetected: no information beyond the tissue and sex
    observed = np.ones(values.shape, dtype=bool)
    expected = enumerate_donor_mean(few_states, tissues, "male", 55.0, values, observed, target, genes)
    stacked = np.vstack([values, np.zeros(len(genes))])
    seen = np.vstack([observed, np.zeros(len(genes), dtype=bool)])
    mean, variance, truncated = donor_moments(few_states, np.append(tissues, target), np.array(["male"] * 3),
                                              np.full(3, 55.0), stacked, seen, genes)
    np.testing.assert_allclose(mean[2], expected, rtol=1e-9, atol=1e-9)
    assert not truncated and (variance[2] > 0).all() and (variance[:2] == 0).all()
    # the sources move the prediction: without them it is the target's prior expectation
    alone = donor_moments(few_states, np.array([target]), np.array(["male"]), np.array([55.0]),
                          np.zeros((1, len(genes))), np.zeros((1, len(genes)), dtype=bool), genes)[0][0]
    assert np.abs(alone - mean[2]).max() > 0.05


def test_donor_posterior_is_the_dense_gaussian_conditional() -> None:
    """x = L_t z + e + ε over a donor's samples: the Woodbury / Sherman-Morrison posterior gives the dense
    conditional mean and variance of a hidden sample, and the dense log density of the observed ones."""
    rng = np.random.default_rng(0)
    n_genes, rank, groups = 6, 2, [0, 1, 2]
    loadings = rng.normal(0, 0.5, (3, n_genes, rank))
    noise = rng.uniform(0.2, 0.6, (3, n_genes))
    shared = rng.uniform(0.1, 0.5, n_genes)
    # dense covariance of the stacked samples 0, 1 (observed, one value missing) and 2 (hidden)
    blocks = [[loadings[i] @ loadings[j].T + np.diag(shared) + (np.diag(noise[i]) if i == j else 0)
               for j in groups] for i in groups]
    cov = np.block(blocks)
    values = rng.normal(size=2 * n_genes)
    observed = np.ones(2 * n_genes, dtype=bool)
    observed[3] = False
    o, h = np.flatnonzero(observed), np.arange(2 * n_genes, 3 * n_genes)
    gain = np.linalg.solve(cov[np.ix_(o, o)], cov[np.ix_(o, h)]).T
    evidence = sum((Evidence.of_sample(values[i * n_genes:(i + 1) * n_genes], observed[i * n_genes:(i + 1) * n_genes]
                                       / noise[i], loadings[i]) for i in (0, 1)), Evidence.empty(n_genes, rank))
    posterior = donor_posterior(evidence, shared)
    mean, variance = posterior.predictive(loadings[2])
    np.testing.assert_allclose(mean, gain @ values[o], atol=1e-10)
    dense_variance = np.diag(cov[np.ix_(h, h)] - gain @ cov[np.ix_(o, h)])
    np.testing.assert_allclose(variance + noise[2], dense_variance, atol=1e-10)
    np.testing.assert_allclose(posterior.log_evidence, multivariate_normal.logpdf(values[o], cov=cov[np.ix_(o, o)]),
                               atol=1e-9)


def test_target_rounds_hide_every_sample_of_a_multi_sample_donor_once() -> None:
    donors = pd.Series(["a", "b", "a", "c", "b", "a", "d"])
    rounds = target_rounds(donors, seed=3)
    hidden = np.concatenate(rounds)
    assert sorted(hidden.tolist()) == [0, 1, 2, 4, 5]  # c and d gave one sample: nothing to predict from
    assert all(len(set(donors[r])) == len(r) for r in rounds)  # one target per donor and round
    for rows, position in rounds_with_sources(donors, n_sources=1, seed=3):
        kept = donors[rows]
        assert all((kept == donors[t]).sum() == 2 for t in rows[position])  # each target with one source


def test_donor_gauss_batched_predictions_are_each_donors_own_posterior() -> None:
    """All donors solved at once (complete samples through their group's terms, gappy ones on their own) give
    each donor's posterior from its samples one by one."""
    cohort = simulate_cohort(n_donors=16, n_genes=400, seed=4)
    imputer = DonorGaussImputer(rank=2, shrinkage=0.2, group_shrinkage=5.0, covariates=True, em_iterations=3)
    imputer.fit(cohort.split("train"))
    test = cohort.split("test")
    x = np.array(test.x)
    x[0, :200] = np.nan                      # a sample with gaps
    x[1] = np.nan                            # a sample to predict whole
    query = Cohort(x, test.genes, test.samples, test.transform, test.meta)
    centring, model = imputer.fitted
    expected = centring.expected(query.samples)
    loadings, noise = model.tables()
    groups = model.group_index(query.samples["tissue"])
    predicted, sd = imputer._moments(query, with_sd=True)
    for donor in query.samples["donor_id"].unique():
        rows = np.flatnonzero(query.samples["donor_id"] == donor)
        evidence = Evidence.empty(query.n_genes, model.rank)
        for i in rows:
            weight = np.where(np.isnan(x[i]), 0.0, 1.0 / noise[groups[i]])
            evidence = evidence + Evidence.of_sample(np.nan_to_num(x[i] - expected[i]), weight, loadings[groups[i]])
        posterior = donor_posterior(evidence, model.shared)
        for i in rows:
            mean, variance = posterior.predictive(loadings[groups[i]])
            np.testing.assert_allclose(predicted[i], expected[i] + mean, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(sd[i], np.where(np.isnan(x[i]), np.sqrt(variance + noise[groups[i]]), 0),
                                       rtol=1e-4, atol=1e-5)
