"""The Gaussian posterior of a donor's latents and gene-specific shared effects, given the donor's observed values.

A donor's samples ``i`` are modelled (residuals from their expectation) as

    r_i = L_i z + e + ε_i,    z ~ N(0, I_k),  e ~ N(0, diag(v)),  ε_i ~ N(0, diag(d_i))

``z`` latents (shared by the donor's samples, or some of them: a sample's loadings may be zero on the others'
latents), ``e`` one effect per gene shared by all the donor's samples. ``e`` has as many dimensions as genes,
so it is integrated out gene by gene: across the donor's samples a gene's covariance is ``v 11ᵀ + diag(d)``,
whose inverse is ``W - c w wᵀ`` (Sherman-Morrison; ``w = 1 / d`` on observed values, ``c = v / (1 + v Σ w)``).
What is left is one ``k x k`` system (Woodbury), whatever the number of samples and genes:

    Q = I + Σ_i L_iᵀ W_i L_i - Vᵀ diag(c) V,   V = Σ_i W_i L_i,     E[z] = Q⁻¹ (Σ_i L_iᵀ W_i r_i - Vᵀ (c ⊙ a)),
    E[e] = c ⊙ (a - V E[z]),   a = Σ_i W_i r_i.

Every statistic is a sum over samples (:class:`Evidence`), so a sample can be added or left out cheaply. Arrays
may carry leading batch axes (one posterior per donor, or per left-out sample). Used by the learnt donor model
(:mod:`gtex_models.models.donor_gauss`) and, with the simulator's own latents, by the donor oracle
(:mod:`gtex_models.models.donor_oracle`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class Evidence:
    """What observed values say, as sums over samples (leading axes: a batch of donors).

    ``precision`` = Σ Lᵢᵀ Wᵢ Lᵢ (k x k), ``rhs`` = Σ Lᵢᵀ Wᵢ rᵢ (k), ``spread`` = ``V`` = Σ Wᵢ Lᵢ (genes x k),
    ``weight`` = Σ wᵢ and ``weighted`` = ``a`` = Σ wᵢ rᵢ (genes), ``quad`` = Σ w r², ``log_weight`` = Σ log w and
    ``n_observed``; ``w`` = 1 / noise on observed values, 0 elsewhere.
    """

    precision: np.ndarray
    rhs: np.ndarray
    spread: np.ndarray
    weight: np.ndarray
    weighted: np.ndarray
    quad: np.ndarray
    log_weight: np.ndarray
    n_observed: np.ndarray

    @classmethod
    def empty(cls, n_genes: int, n_latent: int, batch: tuple[int, ...] = ()) -> "Evidence":
        return cls(np.zeros((*batch, n_latent, n_latent)), np.zeros((*batch, n_latent)),
                   np.zeros((*batch, n_genes, n_latent)), np.zeros((*batch, n_genes)), np.zeros((*batch, n_genes)),
                   np.zeros(batch), np.zeros(batch), np.zeros(batch))

    @classmethod
    def of_sample(cls, residual: np.ndarray, weight: np.ndarray, loadings: np.ndarray) -> "Evidence":
        """One sample's share: ``residual`` and ``weight`` per gene (0 where not observed), its ``loadings`` on
        every latent (genes x latents)."""
        evidence = cls.empty(len(weight), loadings.shape[1])
        evidence.add(residual, weight, loadings, np.arange(loadings.shape[1]))
        return evidence

    def add(self, residual: np.ndarray, weight: np.ndarray, loadings: np.ndarray, columns: np.ndarray) -> None:
        """Add one sample's share in place (no batch axes), its ``loadings`` (genes x its latents) at ``columns``."""
        weight = np.asarray(weight, dtype=np.float64)
        residual = np.where(weight > 0, residual, 0.0).astype(np.float64)
        scaled = loadings * weight[:, None]
        self.precision[np.ix_(columns, columns)] += scaled.T @ loadings
        self.rhs[columns] += scaled.T @ residual
        self.spread[:, columns] += scaled
        self.weight = self.weight + weight
        self.weighted = self.weighted + weight * residual
        self.quad = self.quad + weight @ residual**2
        self.log_weight = self.log_weight + np.log(weight[weight > 0]).sum()
        self.n_observed = self.n_observed + (weight > 0).sum()

    def __add__(self, other: "Evidence") -> "Evidence":
        return Evidence(*(a + b for a, b in zip(self._fields(), other._fields())))

    def __sub__(self, other: "Evidence") -> "Evidence":
        return Evidence(*(a - b for a, b in zip(self._fields(), other._fields())))

    def _fields(self) -> tuple[np.ndarray, ...]:
        return (self.precision, self.rhs, self.spread, self.weight, self.weighted, self.quad, self.log_weight,
                self.n_observed)


@dataclass(frozen=True)
class DonorPosterior:
    """The posterior of ``z`` and ``e`` (leading batch axes as the :class:`Evidence`).

    ``latent_mean`` = E[z], ``latent_cov`` = Cov(z) = Q⁻¹, ``shared_mean`` = E[e], ``shrink`` = ``c`` (per gene:
    Var(e | z) = c, E[e | z] = c (a - V z)), ``spread`` = ``V``; ``log_evidence`` = log p(observed values).
    """

    latent_mean: np.ndarray
    latent_cov: np.ndarray
    shared_mean: np.ndarray
    shrink: np.ndarray
    spread: np.ndarray
    log_evidence: np.ndarray

    def shared_cov_latent(self) -> np.ndarray:
        """Cov(e_g, z) for every gene (genes x latents): ``-c_g V_g Q⁻¹``."""
        return -self.shrink[..., None] * (self.spread @ self.latent_cov)

    def shared_var(self) -> np.ndarray:
        """Var(e_g) = c_g + c_g² V_g Q⁻¹ V_gᵀ."""
        return self.shrink + self.shrink**2 * ((self.spread @ self.latent_cov) * self.spread).sum(axis=-1)

    def predictive(self, loadings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of ``loadings @ z + e`` per gene (``loadings``: genes x latents), before noise."""
        mean = (loadings @ self.latent_mean[..., None])[..., 0] + self.shared_mean
        direction = loadings - self.shrink[..., None] * self.spread
        return mean, self.shrink + ((direction @ self.latent_cov) * direction).sum(axis=-1)


def donor_posterior(evidence: Evidence, shared: np.ndarray) -> DonorPosterior:
    """The posterior given :class:`Evidence` and the shared effects' variances ``v`` (module docstring)."""
    shared = np.asarray(shared, dtype=np.float64)
    shrink = shared / (1.0 + shared * evidence.weight)  # c
    spread = evidence.spread
    n_latent = spread.shape[-1]
    precision = np.eye(n_latent) + evidence.precision - np.swapaxes(spread * shrink[..., None], -1, -2) @ spread
    rhs = evidence.rhs - (np.swapaxes(spread, -1, -2) @ (shrink * evidence.weighted)[..., None])[..., 0]
    if n_latent:
        cov = np.linalg.inv(precision)
        cov = (cov + np.swapaxes(cov, -1, -2)) / 2
        mean = (cov @ rhs[..., None])[..., 0]
        logdet_q = np.linalg.slogdet(precision)[1]
    else:
        cov, mean, logdet_q = precision * 0.0, rhs * 0.0, np.zeros(precision.shape[:-2])
    shared_mean = shrink * (evidence.weighted - (spread @ mean[..., None])[..., 0])
    quad = evidence.quad - (shrink * evidence.weighted**2).sum(axis=-1) - (rhs * mean).sum(axis=-1)
    logdet = logdet_q + np.log1p(shared * evidence.weight).sum(axis=-1) - evidence.log_weight
    log_evidence = -0.5 * (quad + logdet + evidence.n_observed * math.log(2 * math.pi))
    return DonorPosterior(mean, cov, shared_mean, shrink, spread, log_evidence)
