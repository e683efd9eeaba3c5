"""Pseudo-mask imputer (PMI) of Viñas et al. 2021.

Training hides a random share of each sample's known values — a per-sample MCAR pseudo-mask whose
rate is drawn from ``[m_low, m_high]`` — and the network, given the remaining values, their mask and
the covariates, learns to reconstruct the hidden ones: the loss is the MSE on entries that are
known but hidden. On complete training donors (inductive scenario) the pseudo-mask simulates the
missingness met at test time; on a cohort with NaN (in-place scenario) it is combined with the real
missingness, so it hides a further part of the observed values. At inference the network sees every
observed value and predicts the missing ones.

Example
-------
>>> from gtex_models.models.pmi import PMIImputer
>>> imputer = PMIImputer(hidden_sizes=(1024,)).fit(train, valid)   # doctest: +SKIP
>>> filled = imputer.impute(masked_test)                           # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import torch
from torch import nn

from gtex_models.data.batches import Batch
from gtex_models.models.base import DropoutRate, PositiveInt, Share
from gtex_models.models.deep import DeepImputer, pattern_param
from gtex_models.models.networks import PMINetwork
from gtex_models.models.training import Objective, Task, masked_mse


class PMIImputer(DeepImputer):
    """Pseudo-mask imputer.

    Parameters
    ----------
    hidden_sizes : widths of the hidden layers (paper: one layer of 3072).
    dropout : dropout after each hidden layer (paper: 0.2).
    m_low, m_high : range of the per-sample pseudo-mask rate during training (paper: 0.5, 0.5).
    pattern : the training masks' missingness pattern (:meth:`gtex_models.data.patterns.Pattern.to_dict`), e.g. a
        gene panel for a panel-trained PMI; None: the MCAR pseudo-mask of the paper.
    linear : build on a Gaussian path (``gauss`` fitted first; :mod:`gtex_models.models.hybrid`).
    **training : :class:`~gtex_models.models.training_settings.TrainingConfig` settings; paper defaults
        ``batch_size=32``, ``lr=1e-4``.
    """

    method: ClassVar[str] = "pmi"
    training_defaults: ClassVar[dict[str, Any]] = {"batch_size": 32, "lr": 1e-4}
    prediction_networks: ClassVar[tuple[str, ...]] = ("network",)

    def __init__(
        self, hidden_sizes: Sequence[PositiveInt] = (3072,), dropout: DropoutRate = 0.2, m_low: Share = 0.5,
        m_high: Share = 0.5, pattern: dict[str, Any] | None = None, linear: bool = False, **training: Any,
    ) -> None:
        super().__init__({"hidden_sizes": [int(h) for h in hidden_sizes], "dropout": float(dropout),
                          "m_low": float(m_low), "m_high": float(m_high), **pattern_param(pattern),
                          **({"linear": True} if linear else {})}, training)

    def _build_networks(self, n_genes: int, n_tissues: int) -> dict[str, nn.Module]:
        return {"network": PMINetwork(n_genes, n_tissues, self.params["hidden_sizes"], self.params["dropout"])}

    def _task(self, networks: nn.ModuleDict) -> Task:
        network = networks["network"]

        def prepare(batch: Batch, generator: torch.Generator) -> Batch:
            mask = self.training_mask(batch["known"], generator)
            return {**batch, "mask": mask, "hidden": batch["known"] - mask}

        def loss(batch: Batch) -> torch.Tensor:
            prediction = network(batch["x"], batch["mask"], batch["tissue"], batch["sex"], batch["age"])
            return masked_mse(prediction, batch["x"], batch["hidden"])

        return Task(networks, [Objective("reconstruction", loss, network.parameters())], prepare, loss)

    def predict_batch(self, batch: Batch, generator: torch.Generator) -> torch.Tensor:
        network = self._fitted_networks["network"]
        return network(batch["x"], batch["known"], batch["tissue"], batch["sex"], batch["age"])
