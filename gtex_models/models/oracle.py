"""The simulator's exact conditional moments: the oracle imputer, and the best *linear* predictor.

Given a sample's tissue, sex, age and observed values, the model of :mod:`gtex_models.data.simulate` is a
mixture over cell states of factor models (low rank plus diagonal covariance), with undetected genes
(zeros) that carry no information beyond tissue and sex. The exact conditional distribution of a
missing gene is therefore a posterior-weighted mixture of Gaussian conditionals, times its detection
probability. Everything is solved in the latent space (Woodbury identity): one ``P x P`` system per
sample and state, ``P`` the tissue's number of latent programs (about 15), never a genes x genes one.

The oracle conditions on the sample's **own** observed values and covariates only, not on the
donor's other samples: the donor effects are integrated out (their low-rank part is a latent of the
sample, their gene-specific part adds to the noise). It is the ceiling for single-sample methods; a
method that also reads the donor's other tissues (the blood surrogate) sees information it does not.

States whose posterior weight is below :data:`WEIGHT_FLOOR` are left out of a sample's final sums
(their total weight is below ``N_STATES * WEIGHT_FLOOR``, about 4e-10).

A cohort measured on another **platform** (:func:`gtex_models.analysis.other_cohort.shift_cohort`: each detected
value becomes ``scale_g · x + offset_g`` plus Gaussian noise, undetected values stay 0) keeps an exact
oracle: its detected values are mapped back (``(x' − offset) / scale``, extra noise variance
``(noise_sd / scale)²``), conditioned on, and the moments mapped forward (:class:`Platform`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from gtex_models.common.progress import ProgressCallback
from gtex_models.data.cohort import Cohort
from gtex_models.data.simulate import SimulationConfig, SimulationParameters, simulation_parameters
from gtex_models.models.base import Imputer

if TYPE_CHECKING:
    import torch

WEIGHT_FLOOR = 1e-12
ZERO_TOLERANCE = 1e-4  # |log2(TPM + 1)| below this is an undetected gene (float32 round trip of 0)
_ROW_CHUNK = 64
PLATFORM_COLUMNS = ("platform_scale", "platform_offset")  # per-gene columns of a shifted cohort's gene table


@dataclass(frozen=True)
class Platform:
    """How another platform reads a detected log value ``y``: ``scale · y + offset + N(0, noise_sd²)``, per gene.

    Undetected values (0) stay 0. Arrays follow the columns of the cohort they describe.
    """

    scale: np.ndarray
    offset: np.ndarray
    noise_sd: float = 0.0

    @classmethod
    def of(cls, cohort: Cohort) -> "Platform | None":
        """The platform a shifted cohort records (gene columns :data:`PLATFORM_COLUMNS`, ``meta["shift"]``), or None."""
        if not set(PLATFORM_COLUMNS) <= set(cohort.genes.columns):
            return None
        scale, offset = (cohort.genes[c].to_numpy(dtype=np.float64) for c in PLATFORM_COLUMNS)
        return cls(scale, offset, float(cohort.meta.get("shift", {}).get("noise_sd", 0.0)))

    def to_latent(self, values: np.ndarray) -> np.ndarray:
        """Detected values on this platform back on the simulation's log scale (noise left in)."""
        return (values - self.offset) / self.scale

    def extra_noise(self) -> np.ndarray:
        """The platform's noise variance on the simulation's log scale, per gene."""
        return np.broadcast_to((self.noise_sd / self.scale) ** 2, self.scale.shape)

    def forward_moments(self, mean: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """E[x'] and E[x'²] of a detected value from E[y] and E[y²]."""
        a, b = self.scale, self.offset
        return a * mean + b, a * a * second + 2 * a * b * mean + b * b + self.noise_sd**2


def conditional_moments(
    params: SimulationParameters,
    tissue_index: np.ndarray,
    sex: np.ndarray,
    age: np.ndarray,
    log_expr: np.ndarray,
    observed: np.ndarray,
    gene_index: np.ndarray | None = None,
    platform: Platform | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact E[y_g | observed] and Var[y_g | observed] of every gene of every sample (log2(TPM + 1)).

    Parameters
    ----------
    params : the model.
    tissue_index : each sample's tissue (index into ``params.tissue_names``).
    sex, age : each sample's covariates.
    log_expr : samples x genes, log2(TPM + 1); entries where ``observed`` is False are ignored.
    observed : samples x genes, bool.
    gene_index : the model genes the columns are (default: all, in order); the others are marginalised.
    platform : the values were measured on another platform (columns as ``log_expr``); moments are on it.

    Returns
    -------
    mean, variance : samples x genes (float64). Observed entries get the moments given the *other*
    observed values and themselves, i.e. their own value and 0 up to rounding.
    """
    if gene_index is None:
        gene_index = np.arange(params.mean.shape[1])
    tissue_index = np.asarray(tissue_index)
    sex, age = np.asarray(sex), np.asarray(age)
    log_expr = np.asarray(log_expr, dtype=np.float64)
    observed = np.asarray(observed, dtype=bool)
    prior = params.covariate_mean(tissue_index, sex, age)[:, gene_index]
    detect = params.detection(tissue_index, sex)[:, gene_index]
    shifts_t = np.ascontiguousarray(params.state_shift[:, gene_index].T)   # genes x states
    informative = observed & (np.abs(log_expr) >= ZERO_TOLERANCE)
    latent = log_expr if platform is None else np.where(informative, platform.to_latent(log_expr), 0.0)
    extra_noise = np.zeros(len(gene_index)) if platform is None else platform.extra_noise()
    mean = np.empty_like(log_expr)
    variance = np.empty_like(log_expr)
    for t in np.unique(tissue_index):
        tissue = _TissueModel.of(params, t, gene_index, shifts_t)
        rows_all = np.flatnonzero(tissue_index == t)
        for start in range(0, len(rows_all), _ROW_CHUNK):
            rows = rows_all[start:start + _ROW_CHUNK]
            m, second = tissue.moments(latent[rows], informative[rows], prior[rows], extra_noise)
            if platform is not None:
                m, second = platform.forward_moments(m, second)
            mean[rows] = detect[rows] * m
            variance[rows] = detect[rows] * second - mean[rows] ** 2   # E[x^2] = q E[y^2]
    mean = np.where(observed, np.where(informative, log_expr, 0.0), mean)
    variance = np.where(observed, 0.0, np.maximum(variance, 0.0))
    return mean, variance


@dataclass
class _TissueModel:
    """One tissue's mixture over states, restricted to some genes, in the form the solves need."""

    loadings: np.ndarray      # genes x P (programs, then donor programs)
    outer: np.ndarray         # genes x P*P (λ_g λ_gᵀ, flattened)
    active: np.ndarray        # states x P (bool)
    mask: np.ndarray          # states x P x P (both columns active)
    shifts_t: np.ndarray      # genes x states (δ_k as columns)
    noise: np.ndarray         # genes (noise + eQTL variance)
    log_weights: np.ndarray   # states (log pi_t)

    @classmethod
    def of(cls, params: SimulationParameters, t: int, gene_index: np.ndarray, shifts_t: np.ndarray) -> "_TissueModel":
        loadings, active = params.loadings(t)[gene_index], params.active(t)
        return cls(loadings, (loadings[:, :, None] * loadings[:, None, :]).reshape(len(loadings), -1), active,
                   active[:, :, None] & active[:, None, :], shifts_t, params.sample_noise_var(t)[gene_index],
                   np.log(np.maximum(params.state_weights[t], 1e-300)))

    def moments(self, log_expr: np.ndarray, informative: np.ndarray, prior: np.ndarray,
                extra_noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """E[y | detected values] and E[y² | detected values] of every gene of some samples (the caller applies
        detection); ``extra_noise``: measurement noise variance of the detected values beyond the model's."""
        import torch  # loaded with the first oracle solve, not with the module

        post, solved, chol = self.state_posterior(log_expr, informative, prior, extra_noise)
        rows, states = np.nonzero(post)
        covariance = torch.cholesky_inverse(chol[rows, states]).numpy()    # posterior covariance of the latents
        mean = np.zeros_like(log_expr)
        second = np.zeros_like(log_expr)
        for j, (i, k) in enumerate(zip(rows, states)):
            load = self.loadings * self.active[k]
            m = prior[i] + self.shifts_t[:, k] + load @ solved[i, k]
            v = self.noise + ((load @ covariance[j]) * load).sum(axis=1)
            mean[i] += post[i, k] * m
            second[i] += post[i, k] * (v + m * m)
        return mean, second

    def state_posterior(self, log_expr: np.ndarray, informative: np.ndarray, prior: np.ndarray,
                        extra_noise: np.ndarray) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        """p(state | the sample's detected values) of some samples (rows x states; below :data:`WEIGHT_FLOOR`: 0),
        with each state's latent solve and Cholesky factor (for :meth:`moments`)."""
        import torch

        n, n_latent = log_expr.shape[0], self.loadings.shape[1]
        weight = informative / (self.noise + extra_noise)                  # W, rows x genes
        residual = np.where(informative, log_expr - prior, 0.0)            # r
        weighted = weight * residual
        # per state k: rhs_k = a_k ⊙ Λᵀ W (r - δ_k), quad_k = (r - δ_k)ᵀ W (r - δ_k), system_k = I + D_a Λᵀ W Λ D_a
        shift_projected = np.stack([(weight * column) @ self.shifts_t for column in self.loadings.T], axis=2)
        rhs = ((weighted @ self.loadings)[:, None, :] - shift_projected) * self.active[None]
        quad = ((weighted * residual).sum(axis=1)[:, None] - 2 * weighted @ self.shifts_t
                + weight @ self.shifts_t**2)
        gram = (weight @ self.outer).reshape(n, n_latent, n_latent)
        chol = torch.linalg.cholesky(torch.from_numpy(gram[:, None] * self.mask[None] + np.eye(n_latent)))
        solved = torch.cholesky_solve(torch.from_numpy(rhs)[..., None], chol)[..., 0].numpy()
        logdet = 2 * torch.log(torch.diagonal(chol, dim1=2, dim2=3)).sum(dim=2).numpy()
        # log p(k | obs) up to a constant: the Gaussian likelihood of the detected values by Woodbury
        log_post = self.log_weights[None] - 0.5 * (quad - (rhs * solved).sum(axis=2) + logdet)
        post = np.exp(log_post - logsumexp(log_post, axis=1, keepdims=True))
        post = np.where(post >= WEIGHT_FLOOR, post, 0.0)
        post /= post.sum(axis=1, keepdims=True)
        return post, solved, chol


def enumerate_conditional_moments(
    params: SimulationParameters, tissue: int, sex: str, age: float, values: np.ndarray, observed: np.ndarray,
    gene_index: np.ndarray, platform: Platform | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Slow reference for a few genes of one sample: every state enumerated, dense Gaussian conditioning.

    Shares no algebra with :func:`conditional_moments` (full covariances, no latent space): tests and
    ``benchmarks/simulator_properties.py`` check the oracle against it. Returns the conditional mean
    and variance of every listed gene (observed ones: their value and 0); with ``platform``, the values
    and moments are on that platform (its mean and covariance transformed, not the values mapped back).
    """
    from scipy.stats import multivariate_normal

    values, observed = np.asarray(values, dtype=np.float64), np.asarray(observed, dtype=bool)
    prior = params.covariate_mean(np.array([tissue]), np.array([sex]), np.array([age]))[0, gene_index]
    detect = params.detection(np.array([tissue]), np.array([sex]))[0, gene_index]
    loadings, noise = params.loadings(tissue)[gene_index], params.sample_noise_var(tissue)[gene_index]
    informative, missing = observed & (np.abs(values) >= ZERO_TOLERANCE), ~observed
    scale, offset, extra = (np.ones(len(gene_index)), np.zeros(len(gene_index)), 0.0) if platform is None else (
        platform.scale, platform.offset, platform.noise_sd**2)
    log_w, means, variances = [], [], []
    for k, weight in enumerate(params.state_weights[tissue]):
        mean = scale * (prior + params.state_shift[k, gene_index]) + offset
        active = loadings * params.active(tissue)[k]
        cov = np.outer(scale, scale) * (active @ active.T + np.diag(noise)) + extra * np.eye(len(gene_index))
        cov_oo, cov_om = cov[np.ix_(informative, informative)], cov[np.ix_(informative, missing)]
        gain = np.linalg.solve(cov_oo, cov_om).T
        log_w.append(np.log(weight) + multivariate_normal.logpdf(values[informative], mean[informative], cov_oo))
        means.append(mean[missing] + gain @ (values[informative] - mean[informative]))
        variances.append(np.diag(cov[np.ix_(missing, missing)]) - (gain * cov_om.T).sum(axis=1))
    w = np.exp(np.array(log_w) - max(log_w))
    w /= w.sum()
    means, variances = np.array(means), np.array(variances)
    q = detect[missing]
    mean_out = np.where(informative, values, 0.0)
    var_out = np.zeros(len(values))
    mean_out[missing] = q * (w @ means)
    var_out[missing] = q * (w @ (variances + means**2)) - mean_out[missing] ** 2
    return mean_out, var_out


def linear_conditional_mean(
    params: SimulationParameters,
    tissue_index: np.ndarray,
    sex: np.ndarray,
    age: np.ndarray,
    values: np.ndarray,
    observed: np.ndarray,
    gene_index: np.ndarray | None = None,
) -> np.ndarray:
    """The best *linear* predictor of every gene from a sample's observed values (log2(TPM + 1)).

    The Gaussian conditional under the exact mean and covariance of the stored values ``x = b y``
    given tissue, sex and age (pooled over the cell states, zeros included as values), computed from
    the model's parameters. No linear method can do better on average; the gap to
    :func:`conditional_moments` measures how non-linear the simulator is.
    """
    if gene_index is None:
        gene_index = np.arange(params.mean.shape[1])
    tissue_index = np.asarray(tissue_index)
    values = np.asarray(values, dtype=np.float64)
    prior = params.covariate_mean(tissue_index, np.asarray(sex), np.asarray(age))[:, gene_index]
    detect = params.detection(tissue_index, np.asarray(sex))[:, gene_index]
    shifts = params.state_shift[:, gene_index]
    prediction = np.empty_like(values)
    for t in np.unique(tissue_index):
        pi = params.state_weights[t]
        loadings = params.loadings(t)[gene_index]
        usage = pi @ params.active(t)                                 # E[a_p] per latent column
        mean_shift = pi @ shifts
        basis = np.hstack([loadings * np.sqrt(usage), ((shifts - mean_shift) * np.sqrt(pi)[:, None]).T])
        variance_y = params.sample_noise_var(t)[gene_index] + (basis**2).sum(axis=1)
        for i in np.flatnonzero(tissue_index == t):
            q = detect[i]
            mean_y = prior[i] + mean_shift
            mean_x = q * mean_y
            diag = q**2 * params.sample_noise_var(t)[gene_index] + q * (1 - q) * (variance_y + mean_y**2)
            o = observed[i]
            u_o = basis[o] * q[o, None]
            scaled = u_o / diag[o, None]
            inner = np.eye(basis.shape[1]) + u_o.T @ scaled
            residual = values[i, o] - mean_x[o]
            solved = residual / diag[o] - scaled @ np.linalg.solve(inner, scaled.T @ residual)
            prediction[i] = mean_x + q * (basis @ (u_o.T @ solved))
            prediction[i, o] = values[i, o]
    return prediction


class OracleImputer(Imputer):
    """Exact conditional mean E[missing | observed, tissue, sex, age] under the simulation's model.

    Only for cohorts made by :func:`~gtex_models.data.simulate.simulate_cohort` (any subset of their genes
    and samples). It conditions on each sample's own observed values and covariates, not on the
    donor's other samples (see the module docstring): the ceiling of single-sample methods.
    :meth:`predict_variance` gives the exact conditional variance.
    """

    method = "oracle"

    def __init__(self) -> None:
        self.config: SimulationConfig | None = None
        self._params: SimulationParameters | None = None

    def fit(self, cohort: Cohort, valid: Cohort | None = None, progress: ProgressCallback | None = None) -> "OracleImputer":
        simulation = cohort.meta.get("simulation")
        if cohort.meta.get("source") not in ("simulated", "shifted simulated") or not simulation:
            raise ValueError("The oracle imputer only works on simulated cohorts (it needs the true model).")
        self.config = SimulationConfig(**simulation)
        self._params = None
        if progress:
            progress(1.0, "oracle ready")
        return self

    @property
    def params(self) -> SimulationParameters:
        if self.config is None:
            raise RuntimeError("Fit the oracle on a simulated cohort first.")
        if self._params is None:
            self._params = simulation_parameters(self.config.n_genes, self.config.seed, self.config.noise_scale)
        return self._params

    def conditional_moments(self, cohort: Cohort) -> tuple[np.ndarray, np.ndarray]:
        """Exact conditional mean and variance of every entry, in model space (observed: value, 0).

        A shifted cohort (:func:`~gtex_models.analysis.other_cohort.shift_cohort`) is read on its own platform."""
        params = self.params
        gene_index = pd.Index(params.genes["ensembl_gene_id"]).get_indexer(cohort.genes["ensembl_gene_id"])
        if (gene_index < 0).any():
            raise ValueError("The cohort has genes the simulation did not generate.")
        tissue_index = pd.Index(params.tissue_names).get_indexer(cohort.samples["tissue"])
        if (tissue_index < 0).any():
            raise ValueError("The cohort has tissues the simulation did not generate.")
        std, centre = cohort.transform.std.astype(np.float64), cohort.transform.mean.astype(np.float64)
        observed = cohort.observed
        log_expr = np.where(observed, cohort.x * std + centre, 0.0)
        mean, variance = conditional_moments(params, tissue_index, cohort.samples["sex"].to_numpy(),
                                             cohort.samples["age"].to_numpy(), log_expr, observed, gene_index,
                                             Platform.of(cohort))
        return (mean - centre) / std, variance / std**2

    def predict_variance(self, cohort: Cohort) -> np.ndarray:
        """Exact conditional variance of every entry in model space (0 for observed entries)."""
        return self.conditional_moments(cohort)[1].astype(np.float32)

    def _predict(self, cohort: Cohort) -> np.ndarray:
        return self.conditional_moments(cohort)[0].astype(np.float32)

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if self.config is None:
            raise RuntimeError("Fit the oracle before saving it.")
        return {}, {"simulation": asdict(self.config)}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> "OracleImputer":
        oracle = cls()
        oracle.config = SimulationConfig(**config["simulation"])
        return oracle
