"""Deep models on top of what the linear model knows: a Gaussian path inside PMI and GAIN-GTEx.

With ``linear=True`` a deep imputer first fits ``gauss`` (:mod:`gtex_models.models.gauss`) on the same
training donors (its settings chosen on the same validation donors), then trains its network on top of
it (:class:`~gtex_models.models.networks.HybridNetwork`): the prediction is the Gaussian conditional
mean plus what the network adds, the network sees the input completed by the Gaussian path, and its output
layer starts at zero. So the hybrid starts as the linear model; after training, the weight of what the
network adds (0, 1/4, ..., 1) is chosen by the imputation error on validation donors with values hidden at
rates spread over 0.1-0.9 (:meth:`~gtex_models.models.deep.DeepImputer.fit`): on a small cohort where the network overfits,
the hybrid falls back to the linear model instead of doing worse than it.

The path's rank is capped at :data:`MAX_RANK`: it runs on every training batch (a rank x rank solve per
sample), so its cost grows with the square of the rank.
"""

from __future__ import annotations

import numpy as np
import torch

from gtex_models.data.cohort import Cohort
from gtex_models.data.covariates import SEXES, CovariateEncoder
from gtex_models.models.gauss import GaussImputer
from gtex_models.models.networks import GaussianPath

MAX_RANK = 128
RESIDUAL_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def fit_gaussian(cohort: Cohort, valid: Cohort | None, seed: int) -> GaussImputer:
    """The ``gauss`` imputer a hybrid builds on (rank at most :data:`MAX_RANK`)."""
    return GaussImputer(max_rank=MAX_RANK, seed=seed).fit(cohort, valid)


def gaussian_path(gauss: GaussImputer, encoder: CovariateEncoder) -> GaussianPath:
    """A :class:`GaussianPath` holding ``gauss``'s expectation and covariance, indexed by ``encoder``'s covariates."""
    centring, factors = gauss.fitted
    n_genes, rank = factors.loadings.shape
    path = GaussianPath(n_genes, encoder.n_tissues, rank)
    rows = np.array([centring.groups.index(t) if t in centring.groups else len(centring.groups)
                     for t in encoder.tissues], dtype=np.int64)  # unseen groups: the overall mean (last row)
    coef = dict(zip(centring.covariates, centring.coef))
    sex_value = {"female": -1.0, "male": 1.0, "unknown": 0.0}
    sex_effects = np.stack([sex_value[s] * coef.get("sex", np.zeros(n_genes)) for s in SEXES])
    with torch.no_grad():
        path.tissue_means.copy_(torch.from_numpy(centring.means[rows]))
        path.sex_effects.copy_(torch.from_numpy(sex_effects.astype(np.float32)))
        path.age_effects.copy_(torch.from_numpy(coef.get("age", np.zeros(n_genes)).astype(np.float32)))
        path.age_affine.copy_(torch.tensor([encoder.age_std / centring.age_std,
                                            (encoder.age_mean - centring.age_mean) / centring.age_std]))
        path.loadings.copy_(torch.from_numpy(factors.loadings))
        path.noise.copy_(torch.from_numpy(factors.noise))
    return path

