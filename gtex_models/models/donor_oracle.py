"""``donor-oracle``: the exact conditional mean of a donor's missing values given **all** the donor's samples.

Only for cohorts made by :func:`~gtex_models.data.simulate.simulate_cohort`. The per-sample oracle
(:mod:`gtex_models.models.oracle`) conditions on a sample's own values; this one on every observed value of
the donor, so it is the ceiling of cross-tissue prediction (a donor's tissue from the tissues they gave).

Under the simulator a donor's samples share the donor programs ``u`` (3 latents, loading tissue ``t`` as
``D_t``) and the gene-specific effect ``e``; each sample has its own cell state ``k`` and programs ``h``.
Given every sample's state, the donor's values are jointly Gaussian with latents ``(h_1..h_n, u)`` and ``e``
integrated out gene by gene: the algebra of :func:`~gtex_models.models.shared_effects.donor_posterior`. The
states are summed over: each sample's states with a posterior weight of at least
:data:`~gtex_models.models.oracle.WEIGHT_FLOOR` given its own values (the marginal of the per-sample
oracle) are combined, and every combination is weighted by its exact joint evidence. A sample with no
detected value (a hidden target) keeps its state unknown: its expectation is ``π_t·δ``. Combinations beyond
:data:`MAX_COMBINATIONS` keep each sample's likeliest states (never reached on the demo, whose 2,000 genes
pin every sample's state; :attr:`DonorOracleImputer.truncated` counts the donors where it was).

A hidden value is ``q · E[y]`` (``q`` its detection probability, independent of everything else), as in the
per-sample oracle. :func:`enumerate_donor_mean` is a slow, independent reference for tests.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from gtex_models.data.cohort import Cohort
from gtex_models.data.donor_targets import donor_rows
from gtex_models.data.simulate import N_DONOR_PROGRAMS, SimulationParameters
from gtex_models.models.oracle import ZERO_TOLERANCE, OracleImputer, Platform, _TissueModel
from gtex_models.models.shared_effects import Evidence, donor_posterior

MAX_COMBINATIONS = 4096  # state combinations of one donor's samples summed exactly


def donor_moments(params: SimulationParameters, tissue_index: np.ndarray, sex: np.ndarray, age: np.ndarray,
                  log_expr: np.ndarray, observed: np.ndarray, gene_index: np.ndarray | None = None,
                  candidates: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
    """E[y | all observed values of the donor] and Var for every value of **one donor's** samples (log2(TPM + 1)).

    Parameters are those of :func:`~gtex_models.models.oracle.conditional_moments` (rows: the donor's samples);
    ``candidates``: each row's states by :func:`state_candidates` (computed here when not given). Returns the
    mean, the variance (observed values: their value and 0) and whether the state combinations were truncated.
    """
    if gene_index is None:
        gene_index = np.arange(params.mean.shape[1])
    tissue_index = np.asarray(tissue_index)
    log_expr = np.asarray(log_expr, dtype=np.float64)
    observed = np.asarray(observed, dtype=bool)
    prior = params.covariate_mean(tissue_index, np.asarray(sex), np.asarray(age))[:, gene_index]
    detect = params.detection(tissue_index, np.asarray(sex))[:, gene_index]
    informative = observed & (np.abs(log_expr) >= ZERO_TOLERANCE)
    shifts = params.state_shift[:, gene_index]
    sources = np.flatnonzero(informative.any(axis=1))
    if candidates is None:
        candidates = state_candidates(params, tissue_index, sex, age, log_expr, observed, gene_index)
    states, truncated = _combinable([candidates[i] for i in sources])
    # latent columns: each source's programs, then the shared donor programs u
    sizes = [len(params.tissue_programs[tissue_index[i]]) for i in sources]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    u_columns = np.arange(offsets[-1], offsets[-1] + N_DONOR_PROGRAMS)
    n_latent = int(offsets[-1] + N_DONOR_PROGRAMS)
    shared = params.eqtl_var[gene_index]
    log_joint, means, seconds = [], [], []
    for combination in itertools.product(*states):
        evidence = Evidence.empty(len(gene_index), n_latent)
        log_prior = 0.0
        for j, (i, k) in enumerate(zip(sources, combination)):
            t = tissue_index[i]
            weight = np.where(informative[i], 1.0 / params.noise_var[t, gene_index], 0.0)
            loadings = params.loadings(t)[gene_index] * params.active(t)[k]
            evidence.add(log_expr[i] - prior[i] - shifts[k], weight, loadings,
                         np.concatenate([np.arange(offsets[j], offsets[j + 1]), u_columns]))
            log_prior += math.log(params.state_weights[t, k])
        posterior = donor_posterior(evidence, shared)
        log_joint.append(log_prior + posterior.log_evidence)
        mean, second = _row_moments(params, tissue_index, prior, shifts, gene_index, sources, combination, offsets,
                                    u_columns, n_latent, posterior, np.flatnonzero(~observed.all(axis=1)))
        means.append(mean)
        seconds.append(second)
    w = np.exp(np.array(log_joint) - logsumexp(log_joint))
    mean_y = np.tensordot(w, np.array(means), axes=1)
    second_y = np.tensordot(w, np.array(seconds), axes=1)
    mean = np.where(observed, np.where(informative, log_expr, 0.0), detect * mean_y)
    variance = np.where(observed, 0.0, np.maximum(detect * second_y - (detect * mean_y) ** 2, 0.0))
    return mean, variance, truncated


def state_candidates(params: SimulationParameters, tissue_index: np.ndarray, sex: np.ndarray, age: np.ndarray,
                     log_expr: np.ndarray, observed: np.ndarray, gene_index: np.ndarray) -> list[np.ndarray]:
    """Each sample's states whose posterior given its own detected values (the per-sample oracle's) reaches
    :data:`~gtex_models.models.oracle.WEIGHT_FLOOR`, likeliest first (empty for a sample without detected values)."""
    prior = params.covariate_mean(tissue_index, np.asarray(sex), np.asarray(age))[:, gene_index]
    informative = observed & (np.abs(log_expr) >= ZERO_TOLERANCE)
    shifts_t = np.ascontiguousarray(params.state_shift[:, gene_index].T)
    kept: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(log_expr)
    sources = informative.any(axis=1)
    for t in np.unique(tissue_index[sources]):
        rows = np.flatnonzero(sources & (tissue_index == t))
        model = _TissueModel.of(params, int(t), gene_index, shifts_t)
        post = model.state_posterior(log_expr[rows], informative[rows], prior[rows], np.zeros(len(gene_index)))[0]
        for row, p in zip(rows, post):
            order = np.argsort(p)[::-1]
            kept[row] = order[p[order] > 0]
    return kept


def _combinable(states: list[np.ndarray]) -> tuple[list[np.ndarray], bool]:
    """The sources' candidate states cut to at most :data:`MAX_COMBINATIONS` combinations (the longest lists
    halved first, keeping the likeliest states); whether anything was cut."""
    states, truncated = list(states), False
    while math.prod(len(s) for s in states) > MAX_COMBINATIONS:
        longest = int(np.argmax([len(s) for s in states]))
        states[longest] = states[longest][:max(1, len(states[longest]) // 2)]
        truncated = True
    return states, truncated


def _row_moments(params: SimulationParameters, tissue_index: np.ndarray, prior: np.ndarray, shifts: np.ndarray,
                 gene_index: np.ndarray, sources: np.ndarray, combination: tuple[int, ...], offsets: np.ndarray,
                 u_columns: np.ndarray, n_latent: int, posterior: Any, rows: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """E[y] and E[y²] of the genes of ``rows`` (the others: 0) under one combination of the sources' states."""
    n_genes = prior.shape[1]
    mean, second = np.zeros(prior.shape), np.zeros(prior.shape)
    state_of = dict(zip(sources.tolist(), combination))
    source_column = {i: np.arange(offsets[j], offsets[j + 1]) for j, i in enumerate(sources.tolist())}
    for row in rows:
        t = tissue_index[row]
        loadings = params.loadings(t)[gene_index]
        noise = params.noise_var[t, gene_index]
        design = np.zeros((n_genes, n_latent))
        design[:, u_columns] = loadings[:, -N_DONOR_PROGRAMS:]
        if row in state_of:  # a source: its own state and programs are in the posterior
            k = state_of[row]
            design[:, source_column[row]] = (loadings * params.active(t)[k])[:, :-N_DONOR_PROGRAMS]
            shared_mean, shared_var = posterior.predictive(design)
            mean[row] = prior[row] + shifts[k] + shared_mean
            second[row] = noise + shared_var + mean[row] ** 2
        else:  # no detected value: its state and programs are unknown (their prior)
            pi = params.state_weights[t]
            programs = loadings[:, :-N_DONOR_PROGRAMS]
            usage = pi @ params.active(t)[:, :-N_DONOR_PROGRAMS]
            state_mean = pi @ shifts
            own = (programs**2) @ usage + pi @ shifts**2 - state_mean**2
            shared_mean, shared_var = posterior.predictive(design)
            mean[row] = prior[row] + state_mean + shared_mean
            second[row] = noise + own + shared_var + mean[row] ** 2
    return mean, second


def enumerate_donor_mean(params: SimulationParameters, tissues: np.ndarray, sex: str, age: float,
                         values: np.ndarray, observed: np.ndarray, target: int, gene_index: np.ndarray) -> np.ndarray:
    """Slow reference: E[x of tissue ``target`` | the donor's samples ``values`` of ``tissues``] for a few genes.

    Every combination of the samples' states is enumerated with the dense covariance of the stacked values
    (no latent space, nothing shared with :func:`donor_moments`); the target's state is marginalised.
    """
    from scipy.stats import multivariate_normal

    tissues = np.asarray(tissues)
    values, observed = np.asarray(values, dtype=np.float64), np.asarray(observed, dtype=bool)
    n, g = values.shape
    everyone = np.append(tissues, target)
    prior = params.covariate_mean(everyone, np.array([sex] * (n + 1)), np.array([age] * (n + 1)))[:, gene_index]
    detect = params.detection(np.array([target]), np.array([sex]))[0, gene_index]
    informative = (observed & (np.abs(values) >= ZERO_TOLERANCE)).reshape(-1)
    donor = [params.donor_loadings[gene_index] * params.donor_scale[t] for t in everyone]
    shared = np.diag(params.eqtl_var[gene_index])
    log_w, means = [], []
    for combination in itertools.product(range(len(params.state_weights[0])), repeat=n):
        mean = np.concatenate([prior[i] + params.state_shift[k, gene_index] for i, k in enumerate(combination)])
        cov = np.zeros((n * g, n * g))
        for i in range(n):
            for j in range(n):
                block = donor[i] @ donor[j].T + shared
                if i == j:
                    t, k = tissues[i], combination[i]
                    programs = (params.loadings(t)[gene_index] * params.active(t)[k])[:, :-N_DONOR_PROGRAMS]
                    block = block + programs @ programs.T + np.diag(params.noise_var[t, gene_index])
                cov[i * g:(i + 1) * g, j * g:(j + 1) * g] = block
        cross = np.hstack([donor[n] @ donor[i].T + shared for i in range(n)])  # target x sources
        o = informative
        gain = np.linalg.solve(cov[np.ix_(o, o)], cross[:, o].T).T
        log_w.append(sum(math.log(params.state_weights[tissues[i], k]) for i, k in enumerate(combination))
                     + multivariate_normal.logpdf(values.reshape(-1)[o], mean[o], cov[np.ix_(o, o)]))
        means.append(gain @ (values.reshape(-1)[o] - mean[o]))
    w = np.exp(np.array(log_w) - logsumexp(log_w))
    target_prior = prior[n] + params.state_weights[target] @ params.state_shift[:, gene_index]
    return detect * (target_prior + w @ np.array(means))


class DonorOracleImputer(OracleImputer):
    """Exact E[missing | every observed value of the donor, covariates] under the simulation (module docstring).

    Fitted like :class:`~gtex_models.models.oracle.OracleImputer` (simulated cohorts only). After imputing,
    :attr:`truncated` is the number of donors whose state combinations were cut (0 means exact).
    """

    method = "donor-oracle"

    def __init__(self) -> None:
        super().__init__()
        self.truncated = 0
        self._candidates: dict[tuple[Any, ...], np.ndarray] = {}  # a sample's states, by its content

    def conditional_moments(self, cohort: Cohort) -> tuple[np.ndarray, np.ndarray]:
        """Exact conditional mean and variance of every entry given its donor's observed values (model space)."""
        params = self.params
        if Platform.of(cohort) is not None:
            raise ValueError("The donor oracle reads cohorts on the simulation's own platform only (not a shifted "
                             "copy); use the per-sample oracle there.")
        gene_index = pd.Index(params.genes["ensembl_gene_id"]).get_indexer(cohort.genes["ensembl_gene_id"])
        tissue_index = pd.Index(params.tissue_names).get_indexer(cohort.samples["tissue"])
        if (gene_index < 0).any() or (tissue_index < 0).any():
            raise ValueError("The cohort has genes or tissues the simulation did not generate.")
        std, centre = cohort.transform.std.astype(np.float64), cohort.transform.mean.astype(np.float64)
        observed = cohort.observed
        log_expr = np.where(observed, np.asarray(cohort.x, dtype=np.float64) * std + centre, 0.0)
        mean, variance = np.empty(log_expr.shape), np.empty(log_expr.shape)
        self.truncated = 0
        sex, age = cohort.samples["sex"].to_numpy(), cohort.samples["age"].to_numpy()
        candidates = self._state_candidates(tissue_index, sex, age, log_expr, observed, gene_index)
        for rows in donor_rows(cohort.samples["donor_id"].astype(str)).values():
            m, v, cut = donor_moments(params, tissue_index[rows], sex[rows], age[rows], log_expr[rows],
                                      observed[rows], gene_index, [candidates[i] for i in rows])
            mean[rows], variance[rows] = m, v
            self.truncated += int(cut)
        return (mean - centre) / std, variance / std**2

    def _state_candidates(self, tissue_index: np.ndarray, sex: np.ndarray, age: np.ndarray, log_expr: np.ndarray,
                          observed: np.ndarray, gene_index: np.ndarray) -> list[np.ndarray]:
        """:func:`state_candidates`, remembered by each sample's content (the same sources recur in every round)."""
        keys = [(int(t), str(s), float(a), gene_index.tobytes(), row.tobytes(), o.tobytes())
                for t, s, a, row, o in zip(tissue_index, sex, age, log_expr, observed)]
        new = np.flatnonzero([key not in self._candidates for key in keys])
        if len(new):
            found = state_candidates(self.params, tissue_index[new], sex[new], age[new], log_expr[new],
                                     observed[new], gene_index)
            if len(self._candidates) > 50_000:
                self._candidates.clear()
            self._candidates.update({keys[i]: states for i, states in zip(new, found)})
        return [self._candidates[key] for key in keys]

    def conditional_sd(self, cohort: Cohort) -> np.ndarray:
        """The exact conditional standard deviation of every entry (model space; 0 where observed)."""
        return np.sqrt(self.conditional_moments(cohort)[1]).astype(np.float32)
