"""GAIN-GTEx of Viñas et al. 2021: a conditional GAIN (Yoon et al. 2018) with covariate embeddings.

The generator sees the observed values, noise ``z ~ U(0, noise)`` on the other entries, the mask and
the covariates, and predicts every gene. The discriminator sees the imputed matrix, a hint
(``b ~ Bernoulli(0.5)``; ``hint = b * m + 0.5 * (1 - b)``) and the covariates, and guesses which
entries were observed; its BCE loss counts the entries the hint leaves open (``b = 0``). The
generator minimises ``reconstruction_weight * MSE + adversarial loss on the missing entries``.

As in PMI, each training batch draws a per-sample MCAR mask (rate in ``[m_low, m_high]``) over the
known values: on complete donors (inductive) it makes the missing entries, on a cohort with NaN
(in-place) it hides a further part of the observed ones. With ``pseudo_mask=True`` (our default)
the MSE is taken on those hidden-but-known entries, which gives the generator a direct training
signal where it must impute; ``pseudo_mask=False`` is the original GAIN loss, MSE on the entries the
generator was shown. ``adversarial=False`` drops the discriminator: the paper's MSE-only ablation,
method ``gain-mse``. Early stopping always uses the MSE on hidden validation entries.

``profile_weight > 0`` (ours; the shipped configs and :func:`~gtex_models.models.registry.default_settings` use
1) adds a training-only linear head that predicts each sample's known values from its covariate
embedding alone. The generator can tell the tissue from half a sample's values, so without it the
tissue embedding gets no consistent gradient and stays unstructured (demo: 3 of 13 brain regions with
brain regions as nearest neighbours); with it the embedding carries the tissue's profile (13 of 13) at
the same R² (0.509 both, 25 epochs in place). The discriminator and this head serve training only: they
are dropped after fitting and not saved in checkpoints.

Example
-------
>>> from gtex_models.models.gain import GAINImputer
>>> imputer = GAINImputer().fit(masked_cohort, masked_valid)      # doctest: +SKIP
>>> draws = imputer.impute_samples(masked_cohort, n_draws=10)     # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gtex_models.data.batches import Batch
from gtex_models.data.cohort import Cohort
from gtex_models.data.masks import gain_hint
from gtex_models.models.base import DropoutRate, NonNegative, PositiveInt, Share
from gtex_models.models.deep import DeepImputer, pattern_param
from gtex_models.models.networks import GAINDiscriminator, GAINGenerator
from gtex_models.models.training import Objective, Task, frozen, masked_mse


class GAINImputer(DeepImputer):
    """GAIN-GTEx (``adversarial=True``, method ``gain``) or its MSE-only ablation (method ``gain-mse``).

    Parameters
    ----------
    hidden_sizes : widths of the hidden layers of generator and discriminator.
    dropout : dropout after each hidden layer.
    m_low, m_high : range of the per-sample training mask rate.
    reconstruction_weight : λ, the weight of the MSE in the generator's loss.
    noise : upper bound of the uniform noise put on the missing entries (GAIN: 0.01).
    adversarial : train with the discriminator (``False``: MSE only).
    pseudo_mask : take the MSE on hidden known entries (``False``: on the shown entries, as GAIN).
    profile_weight : weight of the covariate-embedding profile term (0: none, as the paper).
    pattern : the training masks' missingness pattern (:meth:`gtex_models.data.patterns.Pattern.to_dict`);
        None: MCAR with a per-sample rate in ``[m_low, m_high]``.
    linear : build on a Gaussian path (``gauss`` fitted first; :mod:`gtex_models.models.hybrid`).
    **training : :class:`~gtex_models.models.training_settings.TrainingConfig` settings (defaults
        ``batch_size=32``, ``lr=1e-3``).
    """

    method: ClassVar[str] = "gain"
    training_defaults: ClassVar[dict[str, Any]] = {"batch_size": 32, "lr": 1e-3}
    prediction_networks: ClassVar[tuple[str, ...]] = ("generator",)

    def __init__(
        self, hidden_sizes: Sequence[PositiveInt] = (296, 296, 296), dropout: DropoutRate = 0.0, m_low: Share = 0.5,
        m_high: Share = 0.5, reconstruction_weight: NonNegative = 10.0, noise: NonNegative = 0.01,
        adversarial: bool = True, pseudo_mask: bool = True, profile_weight: NonNegative = 0.0,
        pattern: dict[str, Any] | None = None, linear: bool = False, **training: Any,
    ) -> None:
        super().__init__({
            "hidden_sizes": [int(h) for h in hidden_sizes], "dropout": float(dropout), "m_low": float(m_low),
            "m_high": float(m_high), "reconstruction_weight": float(reconstruction_weight),
            "noise": float(noise), "adversarial": bool(adversarial), "pseudo_mask": bool(pseudo_mask),
            **({"profile_weight": float(profile_weight)} if profile_weight else {}), **pattern_param(pattern),
            **({"linear": True} if linear else {}),
        }, training)
        self.method = "gain" if adversarial else "gain-mse"  # type: ignore[misc]

    @property
    def stochastic(self) -> bool:
        """Whether imputations vary across noise draws (see :meth:`impute_samples`)."""
        return self.params["noise"] > 0

    def impute_samples(self, cohort: Cohort, n_draws: int = 10, seed: int = 0) -> np.ndarray:
        """``n_draws`` imputations (draws x samples x genes), one per noise draw; observed entries kept.

        The spread across draws shows how much the generator's output depends on the noise.
        """
        draws = self._predict_draws(cohort, n_draws, seed)
        return np.where(cohort.observed, cohort.x, draws).astype(np.float32)

    def _build_networks(self, n_genes: int, n_tissues: int) -> dict[str, nn.Module]:
        sizes, dropout = self.params["hidden_sizes"], self.params["dropout"]
        networks: dict[str, nn.Module] = {"generator": GAINGenerator(n_genes, n_tissues, sizes, dropout)}
        if self.params["adversarial"]:
            networks["discriminator"] = GAINDiscriminator(n_genes, n_tissues, sizes, dropout)
        if self.params.get("profile_weight", 0.0) > 0:
            networks["profile"] = nn.Linear(networks["generator"].covariates.out_features, n_genes)
        return networks

    def _noise(self, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype) * self.params["noise"]

    def _task(self, networks: nn.ModuleDict) -> Task:
        params = self.params
        generator_net = networks["generator"]

        def prepare(batch: Batch, generator: torch.Generator) -> Batch:
            mask = self.training_mask(batch["known"], generator)
            return {**batch, "mask": mask, "hidden": batch["known"] - mask,
                    "hint": gain_hint(mask, generator), "noise": self._noise(mask, generator)}

        def generate(batch: Batch) -> torch.Tensor:
            return generator_net(batch["x"], batch["mask"], batch["noise"], batch["tissue"], batch["sex"],
                                 batch["age"])

        def hidden_mse(batch: Batch) -> torch.Tensor:
            return masked_mse(generate(batch), batch["x"], batch["hidden"])

        weight = params.get("profile_weight", 0.0)
        trained = [*generator_net.parameters(), *(networks["profile"].parameters() if weight > 0 else ())]

        def with_profile(loss: torch.Tensor, batch: Batch) -> torch.Tensor:
            """``loss`` plus the profile term: the covariate embedding alone, through a linear head, predicts
            the sample's known values (its tissue's profile), so similar tissues get similar embeddings."""
            if weight == 0:
                return loss
            covariates = generator_net.covariates(batch["tissue"], batch["sex"], batch["age"])
            return loss + weight * masked_mse(networks["profile"](covariates), batch["x"], batch["known"])

        if not params["adversarial"]:
            objectives = [Objective("generator", lambda batch: with_profile(hidden_mse(batch), batch), trained)]
            return Task(networks, objectives, prepare, hidden_mse)

        discriminator_net = networks["discriminator"]

        def discriminate(batch: Batch, generated: torch.Tensor) -> torch.Tensor:
            imputed = batch["mask"] * batch["x"] + (1.0 - batch["mask"]) * generated
            return discriminator_net(imputed, batch["hint"], batch["tissue"], batch["sex"], batch["age"]).float()

        def discriminator_loss(batch: Batch) -> torch.Tensor:
            # The generator's forward pass, with its graph, serves both steps of the batch: the
            # discriminator step does not change the generator, so the generator step reuses it.
            batch["generated"] = generated = generate(batch)
            open_entries = (batch["hint"] == 0.5).float()  # b = 0: the hint does not give the answer
            losses = F.binary_cross_entropy_with_logits(discriminate(batch, generated.detach()), batch["mask"],
                                                        reduction="none")
            return (losses * open_entries).sum() / open_entries.sum().clamp_min(1.0)

        def generator_loss(batch: Batch) -> torch.Tensor:
            generated = batch.pop("generated")
            target = batch["hidden"] if params["pseudo_mask"] else batch["mask"]
            missing = 1.0 - batch["mask"]
            # -log D(x̂) on the missing entries: fool the discriminator into calling them observed;
            # the discriminator's weights take no gradient here (its optimiser does not step)
            with frozen(discriminator_net):
                fooled = F.softplus(-discriminate(batch, generated))
            adversarial = (fooled * missing).sum() / missing.sum().clamp_min(1.0)
            return with_profile(params["reconstruction_weight"] * masked_mse(generated, batch["x"], target)
                                + adversarial, batch)

        objectives = [Objective("discriminator", discriminator_loss, discriminator_net.parameters()),
                      Objective("generator", generator_loss, trained)]
        return Task(networks, objectives, prepare, hidden_mse)

    def predict_batch(self, batch: Batch, generator: torch.Generator) -> torch.Tensor:
        noise = self._noise(batch["known"], generator)
        return self._fitted_networks["generator"](batch["x"], batch["known"], noise, batch["tissue"],
                                                  batch["sex"], batch["age"])
