"""``donor-gauss``: a donor's missing samples (or values) from all of the donor's observed ones, by a Gaussian.

The ``gauss`` idea (:mod:`gtex_models.models.gauss`) on the **donor x tissue stack**: every donor is one row
of all their samples side by side, and a sample ``i`` of donor ``d`` in group (tissue) ``t`` is, in model space,

    x_i = m(i) + L_t z_d + e_d + ε_i,    z_d ~ N(0, I_k),  e_d ~ N(0, diag(v)),  ε_i ~ N(0, diag(D_t))

- ``m(i)``: what the sample is expected to look like (shrunk group means and covariates,
  :class:`~gtex_models.models.centring.Centring`);
- ``L_t z_d``: ``k`` donor factors shared by all of the donor's samples, loading each tissue its own way
  but pulled towards a pattern common to all tissues (the stacked loadings and the noise ``D`` are a :class:`~gtex_models.models.gauss.Factors` over the
  stack's tissue x gene rows: rank ``k`` plus a diagonal, as in ``gauss``, and shrunk as there);
- ``e_d``: a gene-specific donor effect shared by all tissues (eQTL-like; variance ``v_g``). In the stack it
  is a covariance of rank = genes, not a factor: it is integrated out gene by gene, which leaves a ``k x k``
  system per donor whatever the number of tissues and genes (:mod:`gtex_models.models.shared_effects`).

A missing value is its exact conditional mean given the donor's observed values, ``m + L_t E[z] + E[e]``;
:meth:`DonorGaussImputer.conditional_sd` gives the conditional spread that shapes calibrated intervals. All
donors are solved at once (batched ``k x k`` systems; a sample without gaps contributes through its tissue's
precomputed terms), so a cohort of GTEx width costs a few matrix products per EM iteration.

Fitting: EM on the training donors (gaps allowed; parameter-expanded, so the loadings reach their scale in tens
of iterations), from the principal axes of the stack; the settings left as ``None`` are chosen on the validation
donors by the squared error of leave-one-sample-out predictions (each of a donor's samples predicted from the
others): the centring first (at rank 0, by moments), then each candidate rank and loading prior (its own EM
fit) with each shrinkage ``α``.

Example
-------
>>> from gtex_models.data.simulate import simulate_cohort
>>> cohort = simulate_cohort(n_donors=30, n_genes=400)
>>> imputer = DonorGaussImputer(rank=2, shrinkage=0.1).fit(cohort.split("train"))
>>> imputer.impute(cohort.split("test")).shape[1]
400
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from gtex_models.common.progress import ProgressCallback
from gtex_models.data.cohort import Cohort
from gtex_models.data.donor_targets import donor_rows
from gtex_models.models.base import Imputer, NonNegative, PositiveInt, Share
from gtex_models.models.centring import GROUP_SHRINKAGES, Centring
from gtex_models.models.gauss import Factors
from gtex_models.models.shared_effects import Evidence, donor_posterior

RANKS = (0, 1, 2, 4, 8, 16, 32)  # candidate ranks (capped by max_rank and the training donors)
SHRINKAGES = (0.0, 0.2, 0.5, 0.8)  # candidate α
LOADING_PRIORS = (20.0, 1000.0)  # candidate pseudo-donors pulling a tissue's loadings towards the common loadings
EM_ITERATIONS = 40
MIN_VARIANCE = 1e-4  # floor of the noise D and of v (model space: each gene has variance 1)
NOISE_PRIOR = 10.0  # pseudo-samples pulling a group's noise towards the gene's noise pooled over groups
OFFSET_PRIOR = 5.0  # pseudo-samples pulling a group's offset (its mean net of donor effects) towards 0
EM_TOLERANCE = 1e-5  # stop EM when the mean log evidence per observed value gains less than this
MAX_SELECTION_DONORS = 200  # validation donors used to choose the settings
DONORS_PER_FACTOR = 3  # training donors each factor needs: at most (donors - 1) / 3 factors
DEFAULT_RANK, DEFAULT_SHRINKAGE = 4, 0.2  # without validation donors
CHUNK = 256  # rows (left-out samples, predicted rows) handled at once


# ----------------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class DonorModel:
    """The fitted stack: ``factors`` over tissue x gene rows (row ``t * genes + g``: loadings ``L_t``, noise ``D_t``),
    the shared effects' variances ``shared`` (``v``) and each group's ``offset`` from the centring, for ``groups``."""

    groups: tuple[str, ...]
    factors: Factors
    shared: np.ndarray
    offset: np.ndarray  # groups x genes: each group's mean net of its donors' effects, less the centring's

    @property
    def n_genes(self) -> int:
        return len(self.shared)

    @property
    def rank(self) -> int:
        return self.factors.loadings.shape[1]

    def tables(self) -> tuple[np.ndarray, np.ndarray]:
        """Loadings (groups + 1) x genes x rank and noise (groups + 1) x genes (float64); the last row is for a
        group unseen in training: no loadings, the mean noise."""
        loadings = self.factors.loadings.reshape(len(self.groups), self.n_genes, self.rank).astype(np.float64)
        noise = self.factors.noise.reshape(len(self.groups), self.n_genes).astype(np.float64)
        return (np.concatenate([loadings, np.zeros((1, self.n_genes, self.rank))]),
                np.vstack([noise, noise.mean(axis=0)]))

    def group_index(self, tissues: Sequence[str]) -> np.ndarray:
        """Each sample's row of :meth:`tables` (the last for an unseen group)."""
        index = pd.Index(self.groups).get_indexer(pd.Series(tissues, dtype=str))
        return np.where(index < 0, len(self.groups), index)

    def offsets(self, group: np.ndarray) -> np.ndarray:
        """Each sample's offset (samples x genes; 0 for an unseen group)."""
        return np.vstack([self.offset, np.zeros((1, self.n_genes))])[group]

    def with_factors(self, factors: Factors) -> "DonorModel":
        return DonorModel(self.groups, factors, self.shared, self.offset)


@dataclass(frozen=True)
class _Rows:
    """Per-sample statistics of a cohort under a model: weights ``w`` (1 / noise where observed), ``rhs`` = Lᵀ W r,
    and which samples are complete (their other terms depend on their group only)."""

    loadings: np.ndarray    # (groups + 1) x genes x rank
    noise: np.ndarray       # (groups + 1) x genes
    group: np.ndarray       # samples
    residual: np.ndarray    # samples x genes (0 where missing)
    weight: np.ndarray      # samples x genes
    rhs: np.ndarray         # samples x rank
    complete: np.ndarray    # samples (bool)
    seen: np.ndarray        # samples (bool): any observed value

    @classmethod
    def of(cls, model: DonorModel, x: np.ndarray, expected: np.ndarray, tissues: Sequence[str]) -> "_Rows":
        loadings, noise = model.tables()
        group = model.group_index(tissues)
        observed = ~np.isnan(x)
        residual = np.where(observed, x - expected - model.offsets(group), 0.0).astype(np.float64)
        weight = np.where(observed, 1.0 / noise[group], 0.0)
        rhs = np.zeros((len(x), model.rank))
        for g in np.unique(group):
            rows = group == g
            rhs[rows] = (weight[rows] * residual[rows]) @ loadings[g]
        return cls(loadings, noise, group, residual, weight, rhs, observed.all(axis=1), observed.any(axis=1))

    def group_precision(self) -> np.ndarray:
        """Lᵀ D⁻¹ L of every group: a complete sample's share of the precision."""
        return np.swapaxes(self.loadings / self.noise[..., None], 1, 2) @ self.loadings

    def shares(self, rows: np.ndarray) -> Evidence:
        """The evidence of each of ``rows`` on its own (batched over them)."""
        loadings = self.loadings[self.group[rows]]
        spread = self.weight[rows][..., None] * loadings
        weighted = self.weight[rows] * self.residual[rows]
        return Evidence(np.swapaxes(spread, 1, 2) @ loadings, self.rhs[rows], spread, self.weight[rows], weighted,
                        (weighted * self.residual[rows]).sum(axis=1), self._log_weight(rows),
                        (self.weight[rows] > 0).sum(axis=1).astype(np.float64))

    def donors(self, donor_of: np.ndarray, n_donors: int) -> Evidence:
        """The evidence of each donor: the sum of their samples' shares (complete samples through their group)."""
        n_groups, n_genes, rank = self.loadings.shape
        complete = self.complete & self.seen
        counts = np.zeros((n_donors, n_groups))
        np.add.at(counts, (donor_of[complete], self.group[complete]), 1.0)
        per_gene = (self.loadings / self.noise[..., None]).reshape(n_groups, n_genes * rank)
        evidence = Evidence((counts @ self.group_precision().reshape(n_groups, rank * rank)).reshape(n_donors, rank, rank),
                            np.zeros((n_donors, rank)), (counts @ per_gene).reshape(n_donors, n_genes, rank),
                            np.zeros((n_donors, n_genes)), np.zeros((n_donors, n_genes)), np.zeros(n_donors),
                            np.zeros(n_donors), np.zeros(n_donors))
        for start in range(0, int((~complete & self.seen).sum()), CHUNK):  # samples with gaps: their own shares
            rows = np.flatnonzero(~complete & self.seen)[start:start + CHUNK]
            share = self.shares(rows)
            np.add.at(evidence.precision, donor_of[rows], share.precision)
            np.add.at(evidence.spread, donor_of[rows], share.spread)
        weighted = self.weight * self.residual
        for total, values in ((evidence.rhs, self.rhs), (evidence.weight, self.weight), (evidence.weighted, weighted),
                              (evidence.quad, (weighted * self.residual).sum(axis=1)),
                              (evidence.log_weight, self._log_weight(np.arange(len(self.group)))),
                              (evidence.n_observed, (self.weight > 0).sum(axis=1).astype(np.float64))):
            np.add.at(total, donor_of, values)
        return evidence

    def _log_weight(self, rows: np.ndarray) -> np.ndarray:
        weight = self.weight[rows]
        return np.where(weight > 0, np.log(np.where(weight > 0, weight, 1.0)), 0.0).sum(axis=1)


def _donor_index(donors: Sequence[str]) -> tuple[np.ndarray, int]:
    codes, names = pd.factorize(pd.Series(donors, dtype=str))
    return codes, len(names)


def predict_donors(model: DonorModel, x: np.ndarray, expected: np.ndarray, donors: Sequence[str],
                   tissues: Sequence[str], with_sd: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Every value's conditional mean (and, ``with_sd``, standard deviation) given the observed values of its
    donor's samples (rows of ``x``, NaN missing; ``expected`` = m)."""
    rows = _Rows.of(model, x, expected, tissues)
    donor_of, n_donors = _donor_index(donors)
    posterior = donor_posterior(rows.donors(donor_of, n_donors), model.shared)
    loadings = rows.loadings[rows.group]
    mean = (expected + model.offsets(rows.group) + (loadings @ posterior.latent_mean[donor_of][..., None])[..., 0]
            + posterior.shared_mean[donor_of])
    if not with_sd:
        return mean.astype(np.float32), None
    sd = np.zeros(x.shape, dtype=np.float32)
    for start in range(0, len(x), CHUNK):
        chunk = np.arange(start, min(start + CHUNK, len(x)))
        d = donor_of[chunk]
        direction = loadings[chunk] - posterior.shrink[d][..., None] * posterior.spread[d]
        variance = posterior.shrink[d] + ((direction @ posterior.latent_cov[d]) * direction).sum(axis=-1)
        sd[chunk] = np.sqrt(variance + rows.noise[rows.group[chunk]])
    return mean.astype(np.float32), np.where(np.isnan(x), sd, 0.0)


def leave_one_out_error(model: DonorModel, x: np.ndarray, expected: np.ndarray, samples: pd.DataFrame) -> float:
    """Mean squared error of every sample's observed values predicted from its donor's other samples alone."""
    rows = _Rows.of(model, x, expected, samples["tissue"].astype(str))
    donor_of, n_donors = _donor_index(samples["donor_id"])
    totals = rows.donors(donor_of, n_donors)
    several = np.bincount(donor_of, minlength=n_donors)[donor_of] >= 2
    candidates = np.flatnonzero(several & rows.seen)
    squared, count = 0.0, 0
    for start in range(0, len(candidates), CHUNK):
        chunk = candidates[start:start + CHUNK]
        rest = Evidence(*(total[donor_of[chunk]] for total in totals._fields())) - rows.shares(chunk)
        predicted = donor_posterior(rest, model.shared).predictive(rows.loadings[rows.group[chunk]])[0]
        observed = rows.weight[chunk] > 0
        squared += float(np.where(observed, (rows.residual[chunk] - predicted) ** 2, 0.0).sum())
        count += int(observed.sum())
    return squared / max(count, 1)


# ----------------------------------------------------------------------------------- fitting
def _start(residual: np.ndarray, observed: np.ndarray, donor_of: np.ndarray, n_donors: int, groups: np.ndarray,
           n_groups: int, rank: int) -> tuple[Factors, np.ndarray]:
    """Starting values: loadings from the principal axes of the donor x stack matrix (a donor's samples of a group
    averaged, missing blocks 0; through its Gram matrix, so the stack is never held), noise the rest of each
    variance, ``v`` the mean product of a gene's residuals in two samples of one donor (less what the loadings
    common to all tissues explain)."""
    n_genes = residual.shape[1]
    filled = np.where(observed, residual, 0.0)
    count = np.zeros((n_groups, n_genes))
    np.add.at(count, groups, observed.astype(np.float64))
    variance = np.zeros((n_groups, n_genes))
    np.add.at(variance, groups, filled**2)
    variance /= np.maximum(count, 1.0)
    loadings = np.zeros((n_groups, n_genes, rank))
    if rank:
        blocks = np.zeros((n_groups, n_donors, n_genes))
        per_cell = np.zeros((n_groups, n_donors))
        np.add.at(blocks, (groups, donor_of), filled)
        np.add.at(per_cell, (groups, donor_of), 1.0)
        blocks /= np.maximum(per_cell, 1.0)[..., None]
        gram = np.einsum("tdg,teg->de", blocks, blocks)
        values, vectors = np.linalg.eigh(gram)
        axes = vectors[:, np.argsort(values)[::-1][:rank]] / math.sqrt(max(n_donors - 1, 1))
        loadings = np.swapaxes(blocks, 1, 2) @ axes
    explained = (loadings**2).sum(axis=2)
    noise = _pooled_noise(np.maximum(variance - explained, 0.0) * count, count)
    totals, squares, counts = (np.zeros((n_donors, n_genes)) for _ in range(3))
    np.add.at(totals, donor_of, filled)
    np.add.at(squares, donor_of, filled**2)
    np.add.at(counts, donor_of, observed.astype(np.float64))
    pairs = (counts * (counts - 1)).sum(axis=0)
    common = (loadings.mean(axis=0) ** 2).sum(axis=1)  # what the factors shared by all tissues already explain
    shared = np.maximum((totals**2 - squares).sum(axis=0) / np.maximum(pairs, 1) - common, MIN_VARIANCE)
    return Factors(loadings.reshape(n_groups * n_genes, rank).astype(np.float32), noise.reshape(-1).astype(np.float32)), shared


def fit_donor_model(x: np.ndarray, expected: np.ndarray, samples: pd.DataFrame, rank: int, iterations: int,
                    loading_prior: float = LOADING_PRIORS[0], progress: ProgressCallback | None = None) -> DonorModel:
    """EM for the stack's model (module docstring) on training samples ``x`` (NaN missing), ``expected`` = m.

    E-step: every donor's posterior at once. M-step: each group's ``offset``, its mean net of its samples' donor
    effects (a group of few samples is otherwise off by their donors' average effect), less the centring's (pulled
    towards 0 by :data:`OFFSET_PRIOR`); then (parameter-expanded, Liu, Rubin & Wu 1998: the loadings end
    multiplied by the Cholesky factor of E[z zᵀ] averaged over donors) per tissue and gene: regression of ``r - E[e]`` on E[z] (with
    E[z zᵀ] and Cov(z, e)) for ``L_t``, pulled towards the loadings shared by all tissues (their mean) by
    ``loading_prior`` pseudo-donors, so a rarely collected tissue borrows the common pattern; the expected
    squared residual for ``D_t`` (pulled towards the gene's pooled noise), and E[e²] averaged over donors for
    ``v``. ``iterations = 0``: the starting values.
    """
    observed = ~np.isnan(x)
    groups_names = tuple(sorted(set(samples["tissue"].astype(str))))
    groups = pd.Index(groups_names).get_indexer(samples["tissue"].astype(str))
    donor_of, n_donors = _donor_index(samples["donor_id"])
    n_groups, n_genes = len(groups_names), x.shape[1]
    residual = np.where(observed, x - expected, 0.0).astype(np.float64)
    factors, shared = _start(residual, observed, donor_of, n_donors, groups, n_groups, rank)
    model = DonorModel(groups_names, factors, shared, np.zeros((n_groups, n_genes)))
    seen = np.zeros((n_donors, n_genes))
    np.add.at(seen, donor_of, observed.astype(np.float64))
    seen = seen > 0
    common = factors.loadings.reshape(n_groups, n_genes, rank).mean(axis=0)  # loadings shared by all tissues
    previous = -math.inf
    for iteration in range(iterations):
        rows = _Rows.of(model, x, expected, samples["tissue"].astype(str))
        post = donor_posterior(rows.donors(donor_of, n_donors), model.shared)
        second = post.latent_cov + post.latent_mean[:, :, None] * post.latent_mean[:, None, :]
        shared_var, cross = post.shared_var(), post.shared_cov_latent()  # donors x genes, donors x genes x rank
        loadings = np.zeros((n_groups, n_genes, rank))
        squares, counts = np.zeros((n_groups, n_genes)), np.zeros((n_groups, n_genes))
        offset = np.zeros((n_groups, n_genes))
        old_loadings = model.factors.loadings.reshape(n_groups, n_genes, rank).astype(np.float64)
        for t in range(n_groups):
            mine = np.flatnonzero(groups == t)
            d, o = donor_of[mine], observed[mine].astype(np.float64)
            donor_part = post.latent_mean[d] @ old_loadings[t].T + post.shared_mean[d]
            offset[t] = ((residual[mine] - donor_part) * o).sum(axis=0) / (o.sum(axis=0) + OFFSET_PRIOR)
            base = residual[mine] - offset[t]
            target = (base - post.shared_mean[d]) * o
            numerator = target.T @ post.latent_mean[d] - np.einsum("ig,igk->gk", o, cross[d])
            complete = bool(o.all())
            if rank:
                gram = second[d].sum(axis=0) if complete else np.einsum("ig,ikl->gkl", o, second[d])
                numerator = numerator + loading_prior * common
                loadings[t] = np.linalg.solve(gram + loading_prior * np.eye(rank), numerator[..., None])[..., 0] \
                    if not complete else numerator @ np.linalg.inv(gram + loading_prior * np.eye(rank))
            fitted = post.latent_mean[d] @ loadings[t].T
            spread = (((loadings[t] @ post.latent_cov[d].sum(axis=0)) * loadings[t]).sum(axis=1) if complete else
                      np.einsum("gk,ikl,gl,ig->g", loadings[t], post.latent_cov[d], loadings[t], o))
            squares[t] = (((base - fitted - post.shared_mean[d]) ** 2 + shared_var[d]
                           + 2 * (loadings[t][None] * cross[d]).sum(axis=2)) * o).sum(axis=0) + spread
            counts[t] = o.sum(axis=0)
        noise = _pooled_noise(squares, counts)
        if rank:  # parameter expansion (PX-EM): z's second moment folded into the loadings; converges many times faster
            loadings = loadings @ np.linalg.cholesky(second.mean(axis=0))
        common = loadings.mean(axis=0)
        second_shared = np.where(seen, post.shared_mean**2 + shared_var, 0.0).sum(axis=0)
        shared = np.maximum(second_shared / np.maximum(seen.sum(axis=0), 1), MIN_VARIANCE)
        model = DonorModel(groups_names, Factors(loadings.reshape(n_groups * n_genes, rank).astype(np.float32),
                                                 noise.reshape(-1).astype(np.float32)), shared, offset)
        total = float(post.log_evidence.sum())
        if progress:
            progress((iteration + 1) / iterations, f"EM iteration {iteration + 1}: log evidence {total:.6g}")
        gain = (total - previous) / max(int(observed.sum()), 1)
        previous = total
        if 0 <= gain < EM_TOLERANCE:
            break
    return model


def _pooled_noise(squares: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each group's noise per gene from its sums of squared residuals, pulled towards the gene's noise pooled over
    groups by :data:`NOISE_PRIOR` pseudo-samples (a group of a few samples would otherwise get the residual its
    own fitted loadings leave, far below its real noise)."""
    pooled = squares.sum(axis=0) / np.maximum(counts.sum(axis=0), 1.0)
    return np.maximum((squares + NOISE_PRIOR * pooled) / (counts + NOISE_PRIOR), MIN_VARIANCE)


class DonorGaussImputer(Imputer):
    """A donor's missing samples and values from all the donor's observed ones (see the module docstring).

    Parameters
    ----------
    rank : number of donor factors ``k`` (None: chosen on validation, up to ``max_rank``).
    shrinkage : ``α``, how far the factors' correlations shrink towards 0 (None: chosen on validation).
    group_shrinkage : ``τ`` of the centring (None: chosen).
    covariates : use sex and age as regressors where the cohort varies in them (None: chosen).
    loading_prior : pseudo-donors pulling each tissue's loadings towards the loadings common to all tissues (large:
        the same donor factors in every tissue; None: chosen on validation among :data:`LOADING_PRIORS`).
    max_rank : the largest rank fitted.
    em_iterations : at most this many EM iterations.
    seed : which validation donors choose the settings (when there are more than :data:`MAX_SELECTION_DONORS`).
    """

    method = "donor-gauss"

    def __init__(self, rank: int | None = None, shrinkage: Share | None = None,
                 group_shrinkage: NonNegative | None = None, covariates: bool | None = None,
                 loading_prior: NonNegative | None = None, max_rank: PositiveInt = 16,
                 em_iterations: PositiveInt = EM_ITERATIONS, seed: int = 0) -> None:
        if rank is not None and rank < 0:
            raise ValueError(f"rank must be 0 or more, got {rank}")
        if shrinkage is not None and not 0.0 <= shrinkage < 1.0:
            raise ValueError(f"shrinkage must be in [0, 1), got {shrinkage}")
        self.rank = rank
        self.shrinkage = shrinkage
        self.group_shrinkage = group_shrinkage
        self.covariates = covariates
        self.loading_prior = loading_prior
        self.max_rank = max_rank
        self.em_iterations = em_iterations
        self.seed = seed
        self._centring: Centring | None = None
        self._model: DonorModel | None = None
        self.selection: list[dict[str, Any]] = []

    # ------------------------------------------------------------------------------- fitting
    def fit(self, cohort: Cohort, valid: Cohort | None = None, progress: ProgressCallback | None = None
            ) -> "DonorGaussImputer":
        x = np.asarray(cohort.x, dtype=np.float32)
        if x.shape[0] < 2:
            raise ValueError("The donor Gaussian needs at least two training samples.")
        report = progress or (lambda fraction, message: None)
        probe = self._probe(valid)
        self.selection = []
        n_donors = cohort.n_donors
        max_rank = int(min(self.max_rank, max((n_donors - 1) // DONORS_PER_FACTOR, 0)))
        ranks = [min(self.rank, max_rank)] if self.rank is not None else [k for k in RANKS if k <= max_rank]
        alphas = [self.shrinkage] if self.shrinkage is not None else list(SHRINKAGES)
        centrings = self._centrings(x, cohort.samples, probe is not None)
        best = None
        for i, centring in enumerate(centrings):  # the centring at rank 0 (v and D only): cheap
            if len(centrings) == 1:
                best = (centring, math.inf)
                break
            model = fit_donor_model(x, centring.expected(cohort.samples), cohort.samples, 0, 0)  # moments only
            score = leave_one_out_error(model, *probe(centring))
            self.selection.append({**_describe(centring), "rank": 0, "shrinkage": 0.0, "valid_mse": score})
            if best is None or score < best[1]:
                best = (centring, score)
            report(0.3 * (i + 1) / len(centrings), "choosing the centring on the validation donors")
        centring = best[0]
        expected = centring.expected(cohort.samples)
        choose = probe is not None
        ranks = ranks if choose or self.rank is not None else [min(DEFAULT_RANK, max_rank)]
        alphas = alphas if choose or self.shrinkage is not None else [DEFAULT_SHRINKAGE]
        priors = [self.loading_prior] if self.loading_prior is not None else list(LOADING_PRIORS[:1 + choose])
        fits = [(k, prior) for k in ranks for prior in (priors if k else priors[:1])]
        scores: dict[tuple[int, float, float], float] = {}
        fitted: dict[tuple[int, float], DonorModel] = {}
        for i, (k, prior) in enumerate(fits):  # each rank and prior its own EM fit (a truncated fit leaves v too small)
            fitted[(k, prior)] = fit_donor_model(
                x, expected, cohort.samples, k, self.em_iterations, prior,
                lambda f, m, i=i, k=k: report(0.3 + 0.7 * (i + f) / len(fits), f"rank {k}: {m}"))
            for alpha in (alphas if k else [0.0]) if choose and len(fits) * len(alphas) > 1 else []:
                model = fitted[(k, prior)]
                scores[(k, prior, alpha)] = leave_one_out_error(model.with_factors(model.factors.shrunk(alpha)),
                                                                *probe(centring))
                self.selection.append({**_describe(centring), "rank": k, "loading_prior": prior, "shrinkage": alpha,
                                       "valid_mse": scores[(k, prior, alpha)]})
        rank, prior, alpha = min(scores, key=scores.get) if scores else (*fits[0], alphas[0])
        self._centring = centring
        self._model = fitted[(rank, prior)].with_factors(fitted[(rank, prior)].factors.shrunk(alpha))
        self.rank_, self.loading_prior_, self.shrinkage_ = int(rank), float(prior), float(alpha)
        report(1.0, f"donor-gauss fitted: rank {rank}, loading prior {prior:g}, shrinkage {alpha:g}")
        return self

    def _centrings(self, x: np.ndarray, samples: pd.DataFrame, choose: bool) -> list[Centring]:
        shrinkages = [self.group_shrinkage] if self.group_shrinkage is not None else (
            list(GROUP_SHRINKAGES) if choose else [5.0])
        covariates = [self.covariates] if self.covariates is not None else ([True, False] if choose else [True])
        fitted = {}
        for tau in shrinkages:
            for use in covariates:
                centring = Centring.fit(x, samples, float(tau), use)
                fitted[(centring.group_shrinkage, centring.covariates)] = centring
        return list(fitted.values())

    def _probe(self, valid: Cohort | None):
        """``probe(centring)`` -> the arguments of :func:`leave_one_out_error` on the validation donors with at
        least two samples (at most :data:`MAX_SELECTION_DONORS`), or None when there are none."""
        if valid is None:
            return None
        rows = [r for r in donor_rows(valid.samples["donor_id"].astype(str)).values() if len(r) >= 2]
        if not rows:
            return None
        rng = np.random.default_rng([self.seed, 41])
        if len(rows) > MAX_SELECTION_DONORS:
            rows = [rows[i] for i in np.sort(rng.choice(len(rows), MAX_SELECTION_DONORS, replace=False))]
        chosen = valid.subset_samples(np.sort(np.concatenate(rows)))
        x = np.asarray(chosen.x, dtype=np.float32)
        return lambda centring: (x, centring.expected(chosen.samples), chosen.samples)

    # ------------------------------------------------------------------------------- imputing
    @property
    def fitted(self) -> tuple[Centring, DonorModel]:
        if self._centring is None or self._model is None:
            raise RuntimeError("Fit the donor-gauss imputer first.")
        return self._centring, self._model

    @property
    def tissues(self) -> list[str]:
        return list(self.fitted[1].groups)

    def _predict(self, cohort: Cohort) -> np.ndarray:
        return self._moments(cohort, with_sd=False)[0]

    def conditional_sd(self, cohort: Cohort) -> np.ndarray:
        """Each value's conditional standard deviation given its donor's observed values (0 where observed)."""
        sd = self._moments(cohort, with_sd=True)[1]
        assert sd is not None
        return sd

    def _moments(self, cohort: Cohort, with_sd: bool) -> tuple[np.ndarray, np.ndarray | None]:
        centring, model = self.fitted
        return predict_donors(model, np.asarray(cohort.x, dtype=np.float32), centring.expected(cohort.samples),
                              cohort.samples["donor_id"].astype(str).tolist(),
                              cohort.samples["tissue"].astype(str).tolist(), with_sd)

    # ------------------------------------------------------------------------------- state
    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        centring, model = self.fitted
        arrays, config = centring.to_state()
        params = {"rank": self.rank, "shrinkage": self.shrinkage, "group_shrinkage": self.group_shrinkage,
                  "covariates": self.covariates, "loading_prior": self.loading_prior, "max_rank": self.max_rank,
                  "em_iterations": self.em_iterations, "seed": self.seed}
        return ({**arrays, "loadings": model.factors.loadings, "noise": model.factors.noise, "shared": model.shared,
                 "offset": model.offset},
                {**config, "params": params, "groups": list(model.groups),
                 "chosen": {"rank": self.rank_, "loading_prior": self.loading_prior_, "shrinkage": self.shrinkage_},
                 "selection": self.selection})

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> "DonorGaussImputer":
        imputer = cls(**config["params"])
        imputer._centring = Centring.from_state(arrays, config)
        rank = int(config["chosen"]["rank"])
        loadings = np.asarray(arrays["loadings"], np.float32).reshape(len(arrays["noise"]), rank)
        imputer._model = DonorModel(tuple(config["groups"]), Factors(loadings, np.asarray(arrays["noise"], np.float32)),
                                    np.asarray(arrays["shared"], np.float64),
                                    np.asarray(arrays["offset"], np.float64).reshape(len(config["groups"]), -1))
        imputer.rank_, imputer.shrinkage_ = rank, float(config["chosen"]["shrinkage"])
        imputer.loading_prior_ = float(config["chosen"]["loading_prior"])
        imputer.selection = list(config.get("selection", []))
        return imputer


def _describe(centring: Centring) -> dict[str, Any]:
    return {"group_shrinkage": None if math.isinf(centring.group_shrinkage) else centring.group_shrinkage,
            "covariates": bool(centring.covariates)}
