"""``gauss``: the Gaussian conditional mean, with a low-rank-plus-diagonal covariance, at GTEx width.

A sample's values are modelled as ``x = m(sample) + L z + e``: ``m`` its expectation (shrunk group
means and covariates, :class:`~gtex_models.models.centring.Centring`), ``z ~ N(0, I_k)`` a few shared
factors and ``e ~ N(0, D)`` gene-specific noise, so the covariance is ``Σ = L Lᵀ + D`` (rank ``k`` plus
a diagonal). A missing value is imputed by its exact conditional mean given the sample's observed ones,
``x̂_m = m_m + Σ_mo Σ_oo⁻¹ (x_o - m_o) = m_m + L_m M⁻¹ L_oᵀ D_o⁻¹ (x_o - m_o)`` with
``M = I + L_oᵀ D_o⁻¹ L_o`` (Woodbury: a k x k solve per sample instead of a genes x genes one; samples
that share their observed genes, a gene panel, share it). Its conditional variance,
``D_m + diag(L_m M⁻¹ L_mᵀ)``, shapes the calibrated intervals (:meth:`GaussImputer.conditional_sd`).

Fitting (model space):

- on complete training donors: the top ``k`` principal axes of the residuals ``x - m`` give
  ``L = V_k Λ_k^½`` and ``D`` the variance they leave per gene (exactly the sample covariance when
  ``k`` is its rank);
- on training data with gaps (the in-place scenario, or a cohort that arrives with gaps): the same
  factor model by EM (Ghahramani & Hinton 1996, with missing values: the E-step's posterior of ``z``
  uses each sample's observed genes only), started from the mean-filled fit;
- then the low-rank part is shrunk towards the diagonal, ``Σ_α = (1 - α) L Lᵀ + D + α diag(L Lᵀ)``
  (Ledoit-Wolf's target, the diagonal: every gene keeps its variance, correlations shrink by ``1 - α``).

Settings left as ``None`` are chosen on the validation donors, by the squared error of values hidden
at missing rates spread over 0.1-0.9 (each sample its own rate, so one choice serves every rate a user
brings): first the centring (group shrinkage ``τ``, covariates or not), then rank and ``α`` together.

Example
-------
>>> from gtex_models.data.simulate import simulate_cohort
>>> cohort = simulate_cohort(n_donors=30, n_genes=400)
>>> imputer = GaussImputer().fit(cohort.split("train"), cohort.split("valid"))
>>> imputer.impute(cohort.split("test")).shape[1]
400
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from gtex_models.common.progress import ProgressCallback
from gtex_models.data.cohort import Cohort
from gtex_models.models.base import Imputer, NonNegative, PositiveInt, Share
from gtex_models.models.centring import Centring, centring_candidates
from gtex_models.models.validation_probe import ValidationProbe, validation_probe

RANKS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)  # candidate ranks (capped by the data and max_rank)
SHRINKAGES = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7)  # candidate α
MIN_NOISE = 1e-5  # floor of the diagonal D, as a share of the gene's variance (keeps D invertible)
SVD_EXACT_BELOW = 2_000  # full SVD below this many samples or genes, randomised above
EM_TOLERANCE = 1e-4  # stop EM when the mean squared change of L Lᵀ's scale falls below this
ITERATIVE_ABOVE = 2e9  # operations of the exact solves above which conditional_mean may iterate instead
CG_TOLERANCE = 1e-6  # relative residual of the iterative solves (their products are float32)
CG_MAX_ITERATIONS = 100


@dataclass(frozen=True)
class Factors:
    """The fitted covariance ``L Lᵀ + D`` (model space), before shrinkage."""

    loadings: np.ndarray  # genes x k
    noise: np.ndarray     # genes

    def shrunk(self, alpha: float) -> "Factors":
        """``(1 - α) L Lᵀ + D + α diag(L Lᵀ)``."""
        return Factors((self.loadings * math.sqrt(1.0 - alpha)).astype(np.float32),
                       (self.noise + alpha * (self.loadings ** 2).sum(axis=1)).astype(np.float32))

    def truncated(self, k: int) -> "Factors":
        """The first ``k`` factors; the variance of the others moves to the diagonal."""
        rest = (self.loadings[:, k:] ** 2).sum(axis=1)
        return Factors(np.ascontiguousarray(self.loadings[:, :k]), (self.noise + rest).astype(np.float32))


class GaussImputer(Imputer):
    """Gaussian conditional mean with a low-rank-plus-diagonal covariance (see the module docstring).

    Parameters
    ----------
    rank : number of factors ``k`` (None: chosen on validation, up to ``max_rank``).
    shrinkage : ``α``, how far correlations shrink towards 0 (None: chosen on validation).
    group_shrinkage : ``τ``, pseudo-samples pulling group means to the overall mean (None: chosen; a
        large value means the overall mean).
    covariates : use sex and age as regressors where the cohort varies in them (None: chosen).
    max_rank : the largest rank considered.
    em_iterations : EM iterations when the training data have gaps.
    seed : the validation masks and the randomised SVD.
    """

    method = "gauss"

    def __init__(self, rank: PositiveInt | None = None, shrinkage: Share | None = None,
                 group_shrinkage: NonNegative | None = None, covariates: bool | None = None,
                 max_rank: PositiveInt = 256, em_iterations: PositiveInt = 30, seed: int = 0) -> None:
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
        self._factors: Factors | None = None
        self.selection: list[dict[str, Any]] = []  # the validation scores of the settings tried

    # ------------------------------------------------------------------------------- fitting
    def fit(self, cohort: Cohort, valid: Cohort | None = None, progress: ProgressCallback | None = None
            ) -> "GaussImputer":
        x = np.asarray(cohort.x, dtype=np.float32)
        if x.shape[0] < 2:
            raise ValueError("The Gaussian imputer needs at least two training samples.")
        gappy = bool(np.isnan(x).any())
        report = progress or (lambda fraction, message: None)
        probe = validation_probe(valid, self.seed)
        self.selection = []
        centrings = centring_candidates(x, cohort.samples, self.group_shrinkage, self.covariates, probe is not None)
        max_rank = max(1, min(self.max_rank, x.shape[0] - 1, x.shape[1]))
        best = None
        for i, centring in enumerate(centrings):  # centring first, at a middle rank and shrinkage
            factors = _principal_factors(x, centring.expected(cohort.samples), max_rank, self.seed)
            if probe is None:
                best = (centring, factors)
                break
            k = self.rank or min(max_rank, 32)
            score = _score(probe, centring, factors.truncated(min(k, max_rank)).shrunk(self.shrinkage or 0.2))
            self.selection.append({**centring.settings(), "rank": k, "shrinkage": self.shrinkage or 0.2,
                                   "valid_mse": score})
            if best is None or score < best[2]:
                best = (centring, factors, score)
            report(0.3 * (i + 1) / len(centrings), "choosing the centring on the validation donors")
        centring, factors = best[0], best[1]
        rank, alpha = self._choose_rank_and_shrinkage(probe, centring, factors, max_rank, report)
        if gappy:
            factors = _em_factors(x, centring.expected(cohort.samples), factors.truncated(rank), self.em_iterations,
                                  lambda f: report(0.7 + 0.3 * f, "EM on the training data's gaps"))
        self._centring = centring
        self._factors = factors.truncated(rank).shrunk(alpha)
        self.rank_, self.shrinkage_ = rank, alpha
        report(1.0, f"gauss fitted: rank {rank}, shrinkage {alpha:g}, group shrinkage "
                    f"{centring.settings()['group_shrinkage']}, covariates {list(centring.covariates) or 'none'}")
        return self

    def _choose_rank_and_shrinkage(self, probe: ValidationProbe | None, centring: Centring, factors: Factors,
                                   max_rank: int, report: ProgressCallback) -> tuple[int, float]:
        ranks = [self.rank] if self.rank is not None else [k for k in RANKS if k < max_rank] + [max_rank]
        alphas = [self.shrinkage] if self.shrinkage is not None else list(SHRINKAGES)
        ranks = [min(k, max_rank) for k in ranks]
        if probe is None or (len(ranks) == 1 and len(alphas) == 1):
            return ranks[0] if self.rank is not None else min(max_rank, 32), alphas[0] if self.shrinkage is not None \
                else 0.2
        best = (math.inf, ranks[0], alphas[0])
        for i, k in enumerate(ranks):
            base = factors.truncated(k)
            for alpha in alphas:
                score = _score(probe, centring, base.shrunk(alpha))
                self.selection.append({**centring.settings(), "rank": k, "shrinkage": alpha, "valid_mse": score})
                if score < best[0]:
                    best = (score, k, alpha)
            report(0.3 + 0.4 * (i + 1) / len(ranks), "choosing rank and shrinkage on the validation donors")
        return best[1], best[2]

    # ------------------------------------------------------------------------------- imputing
    @property
    def fitted(self) -> tuple[Centring, Factors]:
        if self._centring is None or self._factors is None:
            raise RuntimeError("Fit the gauss imputer first.")
        return self._centring, self._factors

    def _predict(self, cohort: Cohort) -> np.ndarray:
        centring, factors = self.fitted
        expected = centring.expected(cohort.samples)
        return conditional_mean(np.asarray(cohort.x, dtype=np.float32), expected, factors)

    def conditional_sd(self, cohort: Cohort) -> np.ndarray:
        """The conditional standard deviation of every value given the sample's observed ones (0 where observed)."""
        _, factors = self.fitted
        return conditional_sd(~np.isnan(np.asarray(cohort.x)), factors)

    # ------------------------------------------------------------------------------- state
    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        centring, factors = self.fitted
        arrays, config = centring.to_state()
        params = {"rank": self.rank, "shrinkage": self.shrinkage, "group_shrinkage": self.group_shrinkage,
                  "covariates": self.covariates, "max_rank": self.max_rank, "em_iterations": self.em_iterations,
                  "seed": self.seed}
        return ({**arrays, "loadings": factors.loadings, "noise": factors.noise},
                {**config, "params": params, "chosen": {"rank": self.rank_, "shrinkage": self.shrinkage_},
                 "selection": self.selection})

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> "GaussImputer":
        imputer = cls(**config["params"])
        imputer._centring = Centring.from_state(arrays, config)
        imputer._factors = Factors(np.asarray(arrays["loadings"], np.float32), np.asarray(arrays["noise"], np.float32))
        imputer.rank_, imputer.shrinkage_ = int(config["chosen"]["rank"]), float(config["chosen"]["shrinkage"])
        imputer.selection = list(config.get("selection", []))
        return imputer


# ----------------------------------------------------------------------------------- the maths
def observed_sets(observed: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Groups of samples that share their observed genes: (rows, observed genes of those rows)."""
    if len(observed) == 0:
        return
    packed = np.packbits(observed, axis=1)
    _, first, inverse = np.unique(packed, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    bounds = np.flatnonzero(np.diff(inverse[order])) + 1
    for rows in np.split(order, bounds):
        yield rows, observed[rows[0]]


def _posterior(factors: Factors, observed_genes: np.ndarray, gram: np.ndarray) -> np.ndarray:
    """``M = I + L_oᵀ D_o⁻¹ L_o`` for one set of observed genes (from the full ``gram`` = ``Lᵀ D⁻¹ L``)."""
    loadings, noise = factors.loadings, factors.noise
    k = loadings.shape[1]
    missing = ~observed_genes
    if missing.sum() < observed_genes.sum():  # subtract the missing genes' share: fewer rows to multiply
        lm = loadings[missing]
        return np.eye(k) + gram - (lm / noise[missing, None]).T.astype(np.float64) @ lm
    lo = loadings[observed_genes]
    return np.eye(k) + (lo / noise[observed_genes, None]).T.astype(np.float64) @ lo


def conditional_mean(x: np.ndarray, expected: np.ndarray, factors: Factors, iterative: bool | None = None
                     ) -> np.ndarray:
    """``m + L E[z | x_o]`` for every sample (the observed entries are replaced by the imputer's caller).

    ``E[z | x_o] = M⁻¹ L_oᵀ D_o⁻¹ r_o`` is solved exactly per set of observed genes, or for all samples at
    once by :func:`iterative_posterior_means` (``iterative``; None: where that costs fewer operations: many
    samples with their own observed genes and a rank above ~40).
    """
    observed = ~np.isnan(x)
    residual = np.where(observed, x - expected, 0.0).astype(np.float32)
    loadings, noise = factors.loadings, factors.noise
    gram = (loadings / noise[:, None]).T.astype(np.float64) @ loadings
    scores = (residual / noise) @ loadings  # samples x k: L_oᵀ D_o⁻¹ r_o (missing residuals are 0)
    sets = list(observed_sets(observed))
    n, genes = observed.shape
    k = loadings.shape[1]
    if iterative is None:  # exact: ~k² x genes per set; iterative: ~10 iterations of 4 x k x genes per sample
        iterative = len(sets) * k * k * genes > max(ITERATIVE_ABOVE, 40 * n * k * genes)
    if iterative:
        z = iterative_posterior_means(scores, observed, factors, gram)
    else:
        z = np.empty_like(scores, dtype=np.float64)
        for rows, kept in sets:
            z[rows] = np.linalg.solve(_posterior(factors, kept, gram), scores[rows].T.astype(np.float64)).T
    return (expected + z.astype(np.float32) @ loadings.T).astype(np.float32)


def iterative_posterior_means(scores: np.ndarray, observed: np.ndarray, factors: Factors, gram: np.ndarray,
                              tolerance: float = CG_TOLERANCE, max_iterations: int = CG_MAX_ITERATIONS
                              ) -> np.ndarray:
    """``M_s⁻¹ scores_s`` for every sample ``s`` at once, ``M_s = I + Lᵀ diag(o_s / D) L``: preconditioned
    conjugate gradients, each iteration two (samples x genes x k) float32 matrix products.

    Preconditioner: ``I + f_s Lᵀ D⁻¹ L`` (diagonal in the eigenbasis of the full ``gram``), ``f_s`` the share
    of the factors' signal (``Σ_g o_sg |L_g|² / D_g``) the sample observes: ``M_s``'s expectation when its
    observed genes are a random draw, so a few iterations reach ``tolerance`` (relative residual). Samples
    still above it after ``max_iterations`` (observed genes far from a random draw) are solved exactly.
    """
    loadings, noise = factors.loadings, factors.noise
    weights = (observed / noise).astype(np.float32)  # samples x genes: o_sg / D_g
    energy = (loadings.astype(np.float64) ** 2).sum(axis=1) / noise
    share = observed @ energy / max(float(energy.sum()), 1e-30)
    eigenvalues, basis = np.linalg.eigh(gram)
    inverse = 1.0 / (1.0 + share[:, None] * np.maximum(eigenvalues, 0.0)[None, :])

    def apply(v: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return v + (((v.astype(np.float32) @ loadings.T) * weights[rows]) @ loadings).astype(np.float64)

    def precondition(r: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return ((r @ basis) * inverse[rows]) @ basis.T

    everyone = np.arange(len(scores))
    b = scores.astype(np.float64)
    bound = tolerance * np.linalg.norm(b, axis=1)
    z = precondition(b, everyone)
    residual = b - apply(z, everyone)
    direction = precondition(residual, everyone)
    rz = (residual * direction).sum(axis=1)
    rows = np.flatnonzero(np.linalg.norm(residual, axis=1) > bound)
    for _ in range(max_iterations):
        if len(rows) == 0:
            break
        product = apply(direction[rows], rows)
        alpha = rz[rows] / (direction[rows] * product).sum(axis=1)
        z[rows] += alpha[:, None] * direction[rows]
        residual[rows] -= alpha[:, None] * product
        preconditioned = precondition(residual[rows], rows)
        updated = (residual[rows] * preconditioned).sum(axis=1)
        direction[rows] = preconditioned + (updated / rz[rows])[:, None] * direction[rows]
        rz[rows] = updated
        rows = rows[np.linalg.norm(residual[rows], axis=1) > bound[rows]]
    for row in rows:  # not converged: the exact solve
        z[row] = np.linalg.solve(_posterior(factors, observed[row], gram), b[row])
    return z


def conditional_sd(observed: np.ndarray, factors: Factors) -> np.ndarray:
    """``sqrt(D + diag(L M⁻¹ Lᵀ))`` on the missing values of each sample, 0 on the observed ones."""
    loadings, noise = factors.loadings, factors.noise
    gram = (loadings / noise[:, None]).T.astype(np.float64) @ loadings
    sd = np.zeros(observed.shape, dtype=np.float32)
    for rows, genes in observed_sets(observed):
        chol = np.linalg.cholesky(np.linalg.inv(_posterior(factors, genes, gram)))
        spread = noise + ((loadings @ chol.astype(np.float32)) ** 2).sum(axis=1)
        sd[rows] = np.where(genes, 0.0, np.sqrt(spread))[None, :]
    return sd


def truncated_svd(matrix: np.ndarray, rank: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The top ``rank`` singular triplets ``(u, s, vt)``: exact below :data:`SVD_EXACT_BELOW` samples or genes,
    randomised (Halko et al.; 20 extra directions, 4 power iterations) above."""
    if min(matrix.shape) <= SVD_EXACT_BELOW:
        u, s, vt = np.linalg.svd(matrix, full_matrices=False)
        return u[:, :rank], s[:rank], vt[:rank]
    from sklearn.utils.extmath import randomized_svd

    return randomized_svd(matrix, rank, n_oversamples=20, n_iter=4, random_state=seed)


def _principal_factors(x: np.ndarray, expected: np.ndarray, max_rank: int, seed: int) -> Factors:
    """``L = V_k Λ_k^½`` from the residuals' top ``max_rank`` principal axes, ``D`` the rest of each variance.

    Missing values are filled with the expectation (residual 0) first; EM refines that fit.
    """
    residual = np.nan_to_num(np.subtract(x, expected, dtype=np.float32), copy=False, nan=0.0)
    n = residual.shape[0]
    variance = np.einsum("ij,ij->j", residual, residual, dtype=np.float64) / max(n - 1, 1)
    _, s, vt = truncated_svd(residual, max_rank, seed)
    loadings = (vt.T * (s / math.sqrt(max(n - 1, 1)))).astype(np.float32)
    explained = (loadings ** 2).sum(axis=1)
    noise = np.maximum(variance - explained, MIN_NOISE * np.maximum(variance, 1e-6) + 1e-6)
    return Factors(loadings, noise.astype(np.float32))


def _em_factors(x: np.ndarray, expected: np.ndarray, start: Factors, iterations: int,
                progress: ProgressCallback) -> Factors:
    """Factor analysis by EM on data with gaps: each sample's posterior of ``z`` uses its observed genes only.

    M-step per gene j, over the samples where it is observed: ``L_j = (Σ r_sj E[z_s]ᵀ)(Σ E[z_s z_sᵀ])⁻¹``
    and ``D_j = mean(r_sj² - r_sj L_j E[z_s])``; the expectation ``m`` stays fixed.
    """
    observed = ~np.isnan(x)
    residual = np.where(observed, x - expected, 0.0).astype(np.float64)
    weights = observed.astype(np.float64)
    counts = np.maximum(weights.sum(axis=0), 1.0)
    floor = MIN_NOISE * np.maximum((residual ** 2).sum(axis=0) / counts, 1e-6) + 1e-6
    loadings, noise = start.loadings.astype(np.float64), start.noise.astype(np.float64)
    k = loadings.shape[1]
    for iteration in range(iterations):
        factors = Factors(loadings, noise)
        gram = (loadings / noise[:, None]).T @ loadings
        scores = (residual / noise) @ loadings
        ez = np.empty((len(x), k))
        ezz = np.empty((len(x), k, k))
        for rows, genes in observed_sets(observed):
            inverse = np.linalg.inv(_posterior(factors, genes, gram))
            ez[rows] = scores[rows] @ inverse  # M is symmetric
            ezz[rows] = inverse[None] + ez[rows, :, None] * ez[rows, None, :]
        cross = residual.T @ ez  # genes x k: Σ_s o_sj r_sj E[z_s] (r is 0 where missing)
        second = (weights.T @ ezz.reshape(len(x), k * k)).reshape(-1, k, k)  # genes x k x k
        new = np.linalg.solve(second + 1e-8 * np.eye(k), cross[:, :, None])[:, :, 0]
        noise = np.maximum(((residual ** 2).sum(axis=0) - (new * cross).sum(axis=1)) / counts, floor)
        change = float(np.mean((new @ new.T - loadings @ loadings.T) ** 2)) if k * len(new) < 4e6 else \
            float(np.mean((new - loadings) ** 2))
        loadings = new
        progress((iteration + 1) / iterations)
        if change < EM_TOLERANCE:
            break
    return Factors(loadings.astype(np.float32), noise.astype(np.float32))


def _score(probe: ValidationProbe, centring: Centring, factors: Factors) -> float:
    """Squared error of the conditional mean on the probe's hidden values."""
    return probe.score(conditional_mean(probe.masked, centring.expected(probe.cohort.samples), factors))
