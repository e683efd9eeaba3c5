"""``donor-gauss``: a donor's missing samples (or values) from all of the donor's observed ones, by a Gaussian.

The ``gauss`` idea (:mod:`gtex_models.models.gauss`) on the **donor x tissue stack**: every donor is one row
of all their samples side by side, and a sample ``i`` of donor ``d`` in group (tissue) ``t`` is, in model space,

    x_i = m(i) + L_t z_d + e_d + ε_i,    z_d ~ N(0, I_k),  e_d ~ N(0, diag(v)),  ε_i ~ N(0, diag(D_t))

- ``m(i)``: what the sample is expected to look like (shrunk group means and covariates,
  :class:`~gtex_models.models.centring.Centring`);
- ``L_t z_d``: ``k`` donor factors shared by all of the donor's samples, loading each tissue its own way
  (the stacked loadings and the noise ``D`` are a :class:`~gtex_models.models.gauss.Factors` over the
  stack's tissue x gene rows: rank ``k`` plus a diagonal, as in ``gauss``);
- ``e_d``: a gene-specific donor effect shared by all tissues (eQTL-like; variance ``v_g``). In the stack it
  is a covariance of rank = genes, so it is not a factor: it is integrated out gene by gene (a rank-one plus
  diagonal covariance across the donor's samples, Sherman-Morrison), which leaves a ``k x k`` system per
  donor (Woodbury), whatever the number of tissues and genes.

A missing value is its exact conditional mean given the donor's observed values, ``m + L_t E[z] + E[e]``;
:func:`donor_posterior` computes ``E[z]``, ``E[e]`` and the log evidence from additive per-sample statistics
(:class:`Evidence`), which the cross-tissue oracle (:mod:`gtex_models.models.donor_oracle`) reuses with its
own latents. :meth:`DonorGaussImputer.conditional_sd` gives the conditional spread that shapes calibrated
intervals.

Fitting: EM on the training donors (gaps allowed), started from the principal axes of the stack; then
the settings left as ``None`` are chosen on the validation donors by the squared error of leave-one-sample-
out predictions (each of a donor's samples predicted from the others): first the centring (at rank 0), then
rank and shrinkage (``α``: correlations shrink as in ``gauss``, ``Factors.shrunk``).

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

RANKS = (0, 1, 2, 4, 8, 16, 32)  # candidate ranks (capped by max_rank and the training donors)
SHRINKAGES = (0.0, 0.2, 0.5)  # candidate α
RIDGE = 1.0  # prior precision of each loading (pulls the loadings of rarely collected tissues towards 0)
MIN_VARIANCE = 1e-4  # floor of the noise D and of v (model space: each gene has variance 1)
NOISE_PRIOR = 10.0  # pseudo-samples pulling a group's noise towards the gene's noise pooled over groups
EM_TOLERANCE = 1e-5  # stop EM when the mean log evidence per observed value gains less than this
MAX_SELECTION_DONORS = 200  # validation donors used to choose the settings
DONORS_PER_FACTOR = 3  # training donors each factor needs: at most (donors - 1) / 3 factors
DEFAULT_RANK, DEFAULT_SHRINKAGE = 4, 0.2  # without validation donors


# ----------------------------------------------------------------------------------- the maths
@dataclass
class Evidence:
    """What a donor's observed values say, as sums over samples (so a sample's share can be added or removed).

    ``precision`` = Σ Lᵢᵀ Wᵢ Lᵢ and ``rhs`` = Σ Lᵢᵀ Wᵢ rᵢ over the latent columns, ``spread`` (``V``, genes x
    latents) = Σ Wᵢ Lᵢ, ``weight`` (``s``) = Σ wᵢ and ``weighted`` (``a``) = Σ wᵢ rᵢ per gene, ``quad`` = Σ w r²,
    ``log_weight`` = Σ log w and ``n_observed``; ``w`` = 1 / noise on observed values, 0 elsewhere.
    """

    precision: np.ndarray
    rhs: np.ndarray
    spread: np.ndarray
    weight: np.ndarray
    weighted: np.ndarray
    quad: float
    log_weight: float
    n_observed: int

    @classmethod
    def empty(cls, n_genes: int, n_latent: int) -> "Evidence":
        return cls(np.zeros((n_latent, n_latent)), np.zeros(n_latent), np.zeros((n_genes, n_latent)),
                   np.zeros(n_genes), np.zeros(n_genes), 0.0, 0.0, 0)

    @classmethod
    def of_sample(cls, residual: np.ndarray, weight: np.ndarray, loadings: np.ndarray) -> "Evidence":
        """One sample's share: ``residual`` and ``weight`` per gene (weight 0 where not observed) and its
        ``loadings`` on every latent (genes x latents)."""
        evidence = cls.empty(len(weight), loadings.shape[1])
        evidence.add(residual, weight, loadings, np.arange(loadings.shape[1]))
        return evidence

    def add(self, residual: np.ndarray, weight: np.ndarray, loadings: np.ndarray, columns: np.ndarray) -> None:
        """Add a sample's share in place, its ``loadings`` (genes x its latents) placed at ``columns``."""
        weight = np.asarray(weight, dtype=np.float64)
        residual = np.where(weight > 0, residual, 0.0).astype(np.float64)
        scaled = loadings * weight[:, None]
        self.precision[np.ix_(columns, columns)] += scaled.T @ loadings
        self.rhs[columns] += scaled.T @ residual
        self.spread[:, columns] += scaled
        self.weight = self.weight + weight
        self.weighted = self.weighted + weight * residual
        self.quad += float(weight @ residual**2)
        self.log_weight += float(np.log(weight[weight > 0]).sum())
        self.n_observed += int((weight > 0).sum())

    def __add__(self, other: "Evidence") -> "Evidence":
        return Evidence(self.precision + other.precision, self.rhs + other.rhs, self.spread + other.spread,
                        self.weight + other.weight, self.weighted + other.weighted, self.quad + other.quad,
                        self.log_weight + other.log_weight, self.n_observed + other.n_observed)

    def __sub__(self, other: "Evidence") -> "Evidence":
        return self + Evidence(-other.precision, -other.rhs, -other.spread, -other.weight, -other.weighted,
                               -other.quad, -other.log_weight, -other.n_observed)


@dataclass(frozen=True)
class DonorPosterior:
    """The posterior of a donor's latents ``z`` and shared effects ``e`` given their observed values.

    ``latent_mean`` = E[z], ``latent_cov`` = Cov(z) = Q⁻¹, ``shared_mean`` = E[e], ``shrink`` = ``c`` (per gene:
    Var(e | z) = c, E[e | z] = c (a - V z)), ``spread`` = ``V``; ``log_evidence`` = log p(observed values).
    """

    latent_mean: np.ndarray
    latent_cov: np.ndarray
    shared_mean: np.ndarray
    shrink: np.ndarray
    spread: np.ndarray
    log_evidence: float

    def shared_cov_latent(self) -> np.ndarray:
        """Cov(z, e_g) for every gene (genes x latents): ``-c_g V_g Q⁻¹``."""
        return -self.shrink[:, None] * (self.spread @ self.latent_cov)

    def shared_var(self) -> np.ndarray:
        """Var(e_g) = c_g + c_g² V_g Q⁻¹ V_gᵀ."""
        return self.shrink + self.shrink**2 * ((self.spread @ self.latent_cov) * self.spread).sum(axis=1)

    def predictive(self, loadings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of ``loadings @ z + e`` per gene (``loadings``: genes x latents), before noise."""
        mean = loadings @ self.latent_mean + self.shared_mean
        direction = loadings - self.shrink[:, None] * self.spread
        return mean, self.shrink + ((direction @ self.latent_cov) * direction).sum(axis=1)


def donor_posterior(evidence: Evidence, shared: np.ndarray) -> DonorPosterior:
    """The posterior given a donor's :class:`Evidence` and the shared effects' variances ``v`` (see the module
    docstring): ``e`` is integrated out gene by gene, then one latents x latents solve (Woodbury)."""
    shared = np.asarray(shared, dtype=np.float64)
    shrink = shared / (1.0 + shared * evidence.weight)  # c_g
    spread = evidence.spread
    n_latent = spread.shape[1]
    precision = np.eye(n_latent) + evidence.precision - (spread * shrink[:, None]).T @ spread
    rhs = evidence.rhs - spread.T @ (shrink * evidence.weighted)
    if n_latent:
        chol = np.linalg.cholesky(precision)
        cov = np.linalg.inv(precision)
        cov = (cov + cov.T) / 2
        mean = cov @ rhs
        logdet_q = 2.0 * float(np.log(np.diag(chol)).sum())
    else:
        cov, mean, logdet_q = np.zeros((0, 0)), np.zeros(0), 0.0
    shared_mean = shrink * (evidence.weighted - spread @ mean)
    quad = evidence.quad - float(shrink @ evidence.weighted**2) - float(rhs @ mean)
    logdet = logdet_q + float(np.log1p(shared * evidence.weight).sum()) - evidence.log_weight
    log_evidence = -0.5 * (quad + logdet + evidence.n_observed * math.log(2 * math.pi))
    return DonorPosterior(mean, cov, shared_mean, shrink, spread, log_evidence)


@dataclass(frozen=True)
class DonorModel:
    """The fitted covariance of the stack: ``factors`` over tissue x gene rows (row ``t * genes + g``: loadings
    ``L_t``, noise ``D_t``) and the shared effects' variances ``shared`` (``v``), for ``groups``."""

    groups: tuple[str, ...]
    factors: Factors
    shared: np.ndarray

    @property
    def n_genes(self) -> int:
        return len(self.shared)

    @property
    def rank(self) -> int:
        return self.factors.loadings.shape[1]

    def loadings(self, group: int) -> np.ndarray:
        """``L_t`` (genes x rank); an unknown group (-1) loads nothing."""
        if group < 0:
            return np.zeros((self.n_genes, self.rank), dtype=np.float32)
        return self.factors.loadings[group * self.n_genes:(group + 1) * self.n_genes]

    def noise(self, group: int) -> np.ndarray:
        """``D_t``; an unknown group gets the mean noise over groups."""
        if group < 0:
            return self.factors.noise.reshape(-1, self.n_genes).mean(axis=0)
        return self.factors.noise[group * self.n_genes:(group + 1) * self.n_genes]

    def group_index(self, tissues: Sequence[str]) -> np.ndarray:
        return pd.Index(self.groups).get_indexer(pd.Series(tissues, dtype=str))

    def evidence(self, residual: np.ndarray, observed: np.ndarray, group: int) -> Evidence:
        """One sample's :class:`Evidence` (``residual``: x - m, any value where not ``observed``)."""
        weight = np.where(observed, 1.0 / self.noise(group).astype(np.float64), 0.0)
        return Evidence.of_sample(residual, weight, self.loadings(group).astype(np.float64))

    def with_factors(self, factors: Factors) -> "DonorModel":
        return DonorModel(self.groups, factors, self.shared)


def sample_evidence(model: DonorModel, residual: np.ndarray, observed: np.ndarray, groups: np.ndarray
                    ) -> list[Evidence]:
    """:meth:`DonorModel.evidence` of each row (rows with no observed value: empty)."""
    return [model.evidence(residual[i], observed[i], int(groups[i])) if observed[i].any()
            else Evidence.empty(model.n_genes, model.rank) for i in range(len(residual))]


def predict_donors(model: DonorModel, x: np.ndarray, expected: np.ndarray, donors: Sequence[str],
                   tissues: Sequence[str], with_sd: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Every value's conditional mean (and, ``with_sd``, standard deviation) given the observed values of its
    donor's samples (rows of ``x``, NaN missing; ``expected`` = m)."""
    observed = ~np.isnan(x)
    residual = np.where(observed, x - expected, 0.0)
    groups = model.group_index(tissues)
    mean = np.empty(x.shape, dtype=np.float32)
    sd = np.zeros(x.shape, dtype=np.float32) if with_sd else None
    for rows in donor_rows(donors).values():
        evidence = sum(sample_evidence(model, residual[rows], observed[rows], groups[rows]),
                       Evidence.empty(model.n_genes, model.rank))
        posterior = donor_posterior(evidence, model.shared)
        for row in rows:
            value, variance = posterior.predictive(model.loadings(int(groups[row])).astype(np.float64))
            mean[row] = expected[row] + value
            if sd is not None:
                sd[row] = np.where(observed[row], 0.0, np.sqrt(variance + model.noise(int(groups[row]))))
    return mean, sd


# ----------------------------------------------------------------------------------- fitting
def _start(residual: np.ndarray, observed: np.ndarray, donors: Sequence[str], groups: np.ndarray,
           n_groups: int, rank: int, seed: int) -> tuple[Factors, np.ndarray]:
    """Starting values: loadings from the principal axes of the donor x stack matrix (missing blocks 0; its
    Gram matrix, so the stack is never held), noise the rest of each variance, ``v`` the mean product of a
    gene's residuals in two samples of one donor."""
    n_genes = residual.shape[1]
    by_donor = list(donor_rows(donors).values())
    filled = np.where(observed, residual, 0.0)
    count = np.maximum(np.array([observed[groups == t].sum(axis=0) for t in range(n_groups)], dtype=np.float64), 1)
    variance = np.array([(filled[groups == t] ** 2).sum(axis=0) for t in range(n_groups)]) / count
    loadings = np.zeros((n_groups * n_genes, rank), dtype=np.float32)
    if rank:
        gram = np.zeros((len(by_donor), len(by_donor)))
        blocks = []
        for t in range(n_groups):
            block = np.zeros((len(by_donor), n_genes), dtype=np.float32)
            for d, rows in enumerate(by_donor):
                mine = rows[groups[rows] == t]
                if len(mine):
                    block[d] = filled[mine].mean(axis=0)
            gram += block.astype(np.float64) @ block.T
            blocks.append(block)
        values, vectors = np.linalg.eigh(gram)
        top = np.argsort(values)[::-1][:rank]
        axes = vectors[:, top] / math.sqrt(max(len(by_donor) - 1, 1))
        for t, block in enumerate(blocks):
            loadings[t * n_genes:(t + 1) * n_genes] = block.T @ axes
    explained = (loadings**2).sum(axis=1).reshape(n_groups, n_genes)
    noise = _pooled_noise(np.maximum(variance - explained, 0.0) * count, count)
    totals = np.array([filled[rows].sum(axis=0) for rows in by_donor])
    squares = np.array([(filled[rows] ** 2).sum(axis=0) for rows in by_donor])
    counts = np.array([observed[rows].sum(axis=0) for rows in by_donor], dtype=np.float64)
    pairs = (counts * (counts - 1)).sum(axis=0)
    shared = np.maximum(((totals**2 - squares).sum(axis=0)) / np.maximum(pairs, 1), MIN_VARIANCE)
    return Factors(loadings, noise.reshape(-1).astype(np.float32)), shared


def fit_donor_model(x: np.ndarray, expected: np.ndarray, samples: pd.DataFrame, rank: int, iterations: int,
                    seed: int = 0, progress: ProgressCallback | None = None) -> DonorModel:
    """EM for the stack's model (module docstring) on training samples ``x`` (NaN missing), ``expected`` = m.

    E-step per donor: :func:`donor_posterior`. M-step per tissue and gene: ridge regression of ``r - E[e]`` on
    E[z] (with E[z zᵀ] and Cov(z, e)) for ``L_t``, the expected squared residual for ``D_t``, and E[e²] averaged
    over donors for ``v``.
    """
    observed = ~np.isnan(x)
    residual = np.where(observed, x - expected, 0.0).astype(np.float64)
    groups_names = tuple(sorted(set(samples["tissue"].astype(str))))
    groups = pd.Index(groups_names).get_indexer(samples["tissue"].astype(str))
    donors = samples["donor_id"].astype(str).to_numpy()
    n_groups, n_genes = len(groups_names), x.shape[1]
    factors, shared = _start(residual, observed, donors, groups, n_groups, rank, seed)
    model = DonorModel(groups_names, factors, shared)
    by_donor = list(donor_rows(donors).values())
    donor_of = np.empty(len(x), dtype=np.int64)
    for d, rows in enumerate(by_donor):
        donor_of[rows] = d
    previous = -math.inf
    for iteration in range(iterations):
        latent_mean = np.zeros((len(by_donor), rank))
        latent_second = np.zeros((len(by_donor), rank, rank))
        shared_mean = np.zeros((len(by_donor), n_genes))
        shared_var = np.zeros((len(by_donor), n_genes))
        cross = np.zeros((len(by_donor), n_genes, rank))  # Cov(z, e_g) of each donor
        seen = np.zeros((len(by_donor), n_genes), dtype=bool)
        total = 0.0
        for d, rows in enumerate(by_donor):
            evidence = sum(sample_evidence(model, residual[rows], observed[rows], groups[rows]),
                           Evidence.empty(n_genes, rank))
            post = donor_posterior(evidence, model.shared)
            total += post.log_evidence
            latent_mean[d] = post.latent_mean
            latent_second[d] = post.latent_cov + np.outer(post.latent_mean, post.latent_mean)
            shared_mean[d], shared_var[d], cross[d] = post.shared_mean, post.shared_var(), post.shared_cov_latent()
            seen[d] = observed[rows].any(axis=0)
        loadings = np.zeros((n_groups, n_genes, rank))
        squares, counts = np.zeros((n_groups, n_genes)), np.zeros((n_groups, n_genes))
        for t in range(n_groups):
            mine = np.flatnonzero(groups == t)
            d = donor_of[mine]
            o = observed[mine].astype(np.float64)
            target = (residual[mine] - shared_mean[d]) * o
            numerator = np.einsum("ig,ik->gk", target, latent_mean[d]) - np.einsum("ig,igk->gk", o, cross[d])
            if rank:
                second = np.einsum("ig,ikl->gkl", o, latent_second[d]) + RIDGE * np.eye(rank)
                loadings[t] = np.linalg.solve(second, numerator[:, :, None])[:, :, 0]
            fitted = latent_mean[d] @ loadings[t].T
            spread = np.einsum("gk,ikl,gl->ig", loadings[t], latent_second[d], loadings[t]) - fitted**2
            squared = ((residual[mine] - fitted - shared_mean[d]) ** 2 + spread + shared_var[d]
                       + 2 * np.einsum("gk,igk->ig", loadings[t], cross[d]))
            squares[t], counts[t] = (squared * o).sum(axis=0), o.sum(axis=0)
        noise = _pooled_noise(squares, counts)
        shared_second = np.where(seen, shared_mean**2 + shared_var, 0.0).sum(axis=0)
        shared_count = seen.sum(axis=0)
        shared = np.maximum(np.divide(shared_second, shared_count, out=np.full(n_genes, MIN_VARIANCE),
                                      where=shared_count > 0), MIN_VARIANCE)
        model = DonorModel(groups_names, Factors(loadings.reshape(n_groups * n_genes, rank).astype(np.float32),
                                                 noise.reshape(-1).astype(np.float32)), shared)
        if progress:
            progress((iteration + 1) / iterations, f"EM iteration {iteration + 1}: log evidence {total:.4g}")
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


def leave_one_out_error(model: DonorModel, x: np.ndarray, expected: np.ndarray, samples: pd.DataFrame) -> float:
    """Mean squared error of every sample's observed values predicted from its donor's other samples alone."""
    observed = ~np.isnan(x)
    residual = np.where(observed, x - expected, 0.0)
    groups = model.group_index(samples["tissue"].astype(str))
    squared, count = 0.0, 0
    for rows in donor_rows(samples["donor_id"].astype(str)).values():
        if len(rows) < 2:
            continue
        shares = sample_evidence(model, residual[rows], observed[rows], groups[rows])
        total = sum(shares, Evidence.empty(model.n_genes, model.rank))
        for share, row in zip(shares, rows):
            post = donor_posterior(total - share, model.shared)
            error = residual[row] - post.predictive(model.loadings(int(groups[row])).astype(np.float64))[0]
            squared += float((error[observed[row]] ** 2).sum())
            count += int(observed[row].sum())
    return squared / max(count, 1)


class DonorGaussImputer(Imputer):
    """A donor's missing samples and values from all the donor's observed ones (see the module docstring).

    Parameters
    ----------
    rank : number of donor factors ``k`` (None: chosen on validation, up to ``max_rank``).
    shrinkage : ``α``, how far the factors' correlations shrink towards 0 (None: chosen on validation).
    group_shrinkage : ``τ`` of the centring (None: chosen).
    covariates : use sex and age as regressors where the cohort varies in them (None: chosen).
    max_rank : the largest rank fitted.
    em_iterations : at most this many EM iterations.
    seed : the starting point's randomness (none at present) and the choice of validation donors.
    """

    method = "donor-gauss"

    def __init__(self, rank: int | None = None, shrinkage: Share | None = None,
                 group_shrinkage: NonNegative | None = None, covariates: bool | None = None,
                 max_rank: PositiveInt = 16, em_iterations: PositiveInt = 25, seed: int = 0) -> None:
        if rank is not None and rank < 0:
            raise ValueError(f"rank must be 0 or more, got {rank}")
        if shrinkage is not None and not 0.0 <= shrinkage < 1.0:
            raise ValueError(f"shrinkage must be in [0, 1), got {shrinkage}")
        self.rank = rank
        self.shrinkage = shrinkage
        self.group_shrinkage = group_shrinkage
        self.covariates = covariates
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
        if probe is None and self.rank is None:
            ranks = [min(DEFAULT_RANK, max_rank)]
        if probe is None and self.shrinkage is None:
            alphas = [DEFAULT_SHRINKAGE]
        scores: dict[tuple[int, float], float] = {}
        fitted: dict[int, DonorModel] = {}
        for i, k in enumerate(ranks):  # each rank its own EM fit: a truncated fit would leave v too small
            fitted[k] = fit_donor_model(x, expected, cohort.samples, k, self.em_iterations, self.seed,
                                        lambda f, m, i=i, k=k: report(0.3 + 0.7 * (i + f) / len(ranks), f"rank {k}: {m}"))
            for alpha in (alphas if k else [0.0]) if probe is not None and len(ranks) * len(alphas) > 1 else []:
                scores[(k, alpha)] = leave_one_out_error(fitted[k].with_factors(fitted[k].factors.shrunk(alpha)),
                                                         *probe(centring))
                self.selection.append({**_describe(centring), "rank": k, "shrinkage": alpha,
                                       "valid_mse": scores[(k, alpha)]})
        choice = min(scores, key=scores.get) if scores else (ranks[0], alphas[0])
        model = fitted[choice[0]]
        self._centring = centring
        self._model = model.with_factors(model.factors.shrunk(choice[1]))
        self.rank_, self.shrinkage_ = int(choice[0]), float(choice[1])
        report(1.0, f"donor-gauss fitted: rank {self.rank_}, shrinkage {self.shrinkage_:g}")
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
                  "covariates": self.covariates, "max_rank": self.max_rank, "em_iterations": self.em_iterations,
                  "seed": self.seed}
        return ({**arrays, "loadings": model.factors.loadings, "noise": model.factors.noise, "shared": model.shared},
                {**config, "params": params, "groups": list(model.groups),
                 "chosen": {"rank": self.rank_, "shrinkage": self.shrinkage_}, "selection": self.selection})

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> "DonorGaussImputer":
        imputer = cls(**config["params"])
        imputer._centring = Centring.from_state(arrays, config)
        rank = int(config["chosen"]["rank"])
        loadings = np.asarray(arrays["loadings"], np.float32).reshape(len(arrays["noise"]), rank)
        imputer._model = DonorModel(tuple(config["groups"]), Factors(loadings, np.asarray(arrays["noise"], np.float32)),
                                    np.asarray(arrays["shared"], np.float64))
        imputer.rank_, imputer.shrinkage_ = rank, float(config["chosen"]["shrinkage"])
        imputer.selection = list(config.get("selection", []))
        return imputer


def _describe(centring: Centring) -> dict[str, Any]:
    return {"group_shrinkage": None if math.isinf(centring.group_shrinkage) else centring.group_shrinkage,
            "covariates": bool(centring.covariates)}
