"""What PMI and GAIN-GTEx share as imputers: covariate encoding, tensors, fitting, batched prediction, state.

:class:`DeepImputer` turns a :class:`~gtex_models.data.cohort.Cohort` into tensors, hands the method's
:class:`~gtex_models.models.training.Task` to the training loop (:func:`gtex_models.models.training.train`) and
predicts in batches; :mod:`gtex_models.models.pmi` and :mod:`gtex_models.models.gain` only say
what their networks and losses are.
"""

from __future__ import annotations

import copy
import warnings
from abc import abstractmethod
from dataclasses import asdict, replace
from typing import Any, Callable, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from gtex_models.common.progress import ProgressCallback
from gtex_models.data.batches import Batch, BatchSource, BlockBatches, chunks
from gtex_models.data.cohort import Cohort
from gtex_models.data.cohort_format import GENE_COLUMNS
from gtex_models.data.covariates import CovariateEncoder
from gtex_models.data.patterns import TRAINABLE_PATTERNS, Pattern, mask_cohort
from gtex_models.models.base import Imputer
from gtex_models.models.distributed import current_sync
from gtex_models.models.hybrid import RESIDUAL_WEIGHTS, fit_gaussian, gaussian_path
from gtex_models.models.model_space import check_compatible, gene_indexer
from gtex_models.models.networks import GaussianPath, HybridNetwork
from gtex_models.models.training import (
    PREDICT_BATCH_SIZE,
    LoopState,
    Task,
    seeded,
    train,
)
from gtex_models.models.training_settings import TrainingConfig, resolve_device
from gtex_models.models.validation_probe import validation_probe


class DeepImputer(Imputer):
    """What PMI and GAIN-GTEx share: covariate encoding, tensors, the loop, batched prediction, state.

    A subclass defines ``method``, ``prediction_networks``, :meth:`_build_networks`, :meth:`_task`
    and :meth:`predict_batch`. Networks needed only for training (GAIN's discriminator) are dropped
    after :meth:`fit`, so they are neither kept in memory nor saved: ``fit`` always starts afresh.
    Keyword arguments are the model's hyper-parameters (``params``) plus any
    :class:`TrainingConfig` setting; the subclass's ``training_defaults`` fill the settings not given.
    With ``params["linear"]`` the prediction network is a hybrid on top of a fitted ``gauss``
    (:mod:`gtex_models.models.hybrid`).
    """

    training_defaults: ClassVar[dict[str, Any]] = {}
    prediction_networks: ClassVar[tuple[str, ...]]

    def __init__(self, params: dict[str, Any], training: dict[str, Any]) -> None:
        unknown = set(training) - set(TrainingConfig.keys())
        if unknown:
            raise ValueError(
                f"Unknown setting(s) {sorted(unknown)} for {type(self).__name__}; model settings are "
                f"{sorted(params)}, training settings {list(TrainingConfig.keys())}."
            )
        if params.get("m_low", 0.0) > params.get("m_high", 1.0):
            raise ValueError(f"m_low ({params['m_low']}) must not exceed m_high ({params['m_high']}): each "
                             "training sample's mask rate is drawn from [m_low, m_high].")
        self.params = params
        self.training = TrainingConfig(**{**self.training_defaults, **training})
        self.networks: nn.ModuleDict | None = None
        self._bf16_copy: tuple[nn.ModuleDict, nn.ModuleDict] | None = None  # (fitted networks, bf16 copy)
        self.encoder: CovariateEncoder | None = None
        self.genes: pd.DataFrame | None = None
        self.history: dict[str, Any] = {}

    # ---------------------------------------------------------------- subclass hooks
    @abstractmethod
    def _build_networks(self, n_genes: int, n_tissues: int) -> dict[str, nn.Module]:
        """The method's networks for training, by name."""

    @abstractmethod
    def _task(self, networks: nn.ModuleDict) -> Task:
        """Objectives, random draws and validation loss for :func:`train`."""

    @abstractmethod
    def predict_batch(self, batch: Batch, generator: torch.Generator) -> torch.Tensor:
        """Prediction for every entry of a batch of :meth:`tensors` (``x`` zero where ``known`` is 0), in
        the networks' dtype."""

    # ---------------------------------------------------------------- public API
    @property
    def config(self) -> dict[str, Any]:
        """All keyword arguments (model and training) that rebuild this imputer."""
        return {**self.params, **asdict(self.training)}

    @property
    def tissues(self) -> tuple[str, ...]:
        """The tissue vocabulary the model was trained on."""
        return self._fitted_encoder.tissues

    def fit(
        self, cohort: Cohort, valid: Cohort | None = None, progress: ProgressCallback | None = None, *,
        on_epoch: Callable[[LoopState], None] | None = None, resume: LoopState | None = None,
    ) -> "DeepImputer":
        """Train on ``cohort`` (NaN = missing: the in-place scenario); ``valid`` drives early stopping.

        Covariates are normalised with the training samples' age statistics; the tissue vocabulary
        also covers the validation samples' tissues. Cohorts from an on-disk store are read block by
        block; inside a ``torchrun`` process group (:mod:`gtex_models.models.distributed`) the networks train
        as DistributedDataParallel modules, each rank on its share of the blocks. ``on_epoch`` and
        ``resume`` go to :func:`~gtex_models.models.training.train`.
        """
        sync = current_sync()
        task = self.setup(cohort, valid, sync)
        history = train(task, self._rows(cohort, sync), None if valid is None else self._rows(valid, sync),
                        self.training, progress, sync=sync, on_epoch=on_epoch, resume=resume)
        self.history = history.to_dict()
        network = self._fitted_networks[self.prediction_networks[0]]
        if isinstance(network, HybridNetwork):
            self.history["residual_weight"] = self._choose_residual_weight(network, valid)
        return self

    def _choose_residual_weight(self, hybrid: HybridNetwork, valid: Cohort | None) -> float:
        """Set the hybrid's ``residual_weight`` to the :data:`~gtex_models.models.hybrid.RESIDUAL_WEIGHTS` value that
        imputes the validation donors best (values hidden at spread rates); returns it."""
        probe = validation_probe(valid, self.training.seed)
        if probe is None:
            return float(hybrid.residual_weight)
        masked = mask_cohort(probe.cohort, ~np.isnan(probe.masked))
        errors = {}
        for weight in RESIDUAL_WEIGHTS:
            hybrid.residual_weight.fill_(weight)
            self._bf16_copy = None  # a bfloat16 copy holds the previous weight
            errors[weight] = probe.score(self.impute(masked))
        best = min(errors, key=errors.get)
        hybrid.residual_weight.fill_(best)
        self._bf16_copy = None
        return best

    def setup(self, cohort: Cohort, valid: Cohort | None = None, sync: Any = None) -> Task:
        """Make an untrained model for ``cohort`` and return its training :class:`~gtex_models.models.training.Task`.

        Fits the covariate encoder (ages of ``cohort``; tissues of both), keeps the gene table, and
        builds freshly initialised networks (seeded); the prediction networks are the imputer's own,
        so training the task trains the imputer. Under a process group ``sync`` the task's losses use
        DistributedDataParallel wrappers of the networks. :meth:`fit` is ``setup`` then the loop.
        """
        if valid is not None and not valid.genes[GENE_COLUMNS].equals(cohort.genes[GENE_COLUMNS]):
            raise ValueError("The validation cohort must have the training cohort's genes, in the same order.")
        encoder = CovariateEncoder.fit(cohort.samples)
        if valid is not None:
            vocabulary = tuple(sorted(set(encoder.tissues) | set(valid.samples["tissue"])))
            encoder = CovariateEncoder(vocabulary, encoder.age_mean, encoder.age_std)
        self.encoder = encoder
        self.genes = cohort.genes[GENE_COLUMNS].copy()
        self.history = {}
        device = resolve_device(self.training.device)
        with seeded(self.training.seed, device):
            networks = nn.ModuleDict(self._build_networks(cohort.n_genes, encoder.n_tissues))
        if self.params.get("linear") and (cohort.stored or sync is not None):
            warnings.warn("The Gaussian path (linear: true) needs the cohort in memory in one process; this model is "
                          "trained without it (an on-disk store or torchrun).", stacklevel=2)
            self.params = {key: value for key, value in self.params.items() if key != "linear"}
        if self.params.get("linear"):
            name = self.prediction_networks[0]
            gaussian = fit_gaussian(cohort, valid, self.training.seed)
            networks[name] = HybridNetwork(networks[name], gaussian_path(gaussian, encoder))
        self.networks = self._for_prediction(networks)
        if sync is None:
            return self._task(networks)
        return replace(self._task(sync.wrap(networks.to(device))), module=networks)

    def training_mask(self, known: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The part of ``known`` left visible in a training batch: the ``pattern`` parameter's masks, else
        the paper's MCAR pseudo-mask (per-sample rate in ``[m_low, m_high]``)."""
        pattern = Pattern.from_dict(self.params["pattern"]) if self.params.get("pattern") else Pattern()
        return pattern.torch_mask(known, self.params["m_low"], self.params["m_high"], generator)

    def _predict(self, cohort: Cohort) -> np.ndarray:
        return self._predict_draws(cohort, n_draws=1)[0]

    def _predict_draws(self, cohort: Cohort, n_draws: int, seed: int = 0) -> np.ndarray:
        """``n_draws`` predictions (draws x samples x genes) of :meth:`predict_batch` in model space.

        Under ``precision="bf16"`` the networks predict in bfloat16 (a copy made once), else in fp32.
        """
        check_compatible(self, cohort)
        networks = self._inference_networks()
        parameter = next(networks.parameters())
        columns = gene_indexer(cohort.genes, self.genes)
        identity = np.array_equal(columns, np.arange(cohort.n_genes))
        data = {key: value.to(parameter.device, parameter.dtype if value.is_floating_point() else None)
                for key, value in self.tensors(cohort, None if identity else columns).items()}
        generator = torch.Generator(device=parameter.device).manual_seed(seed)
        target_columns = slice(None) if identity else columns
        out = np.empty((n_draws, cohort.n_samples, cohort.n_genes), dtype=np.float32)
        with torch.inference_mode():
            for draw in range(n_draws):
                start = 0
                for batch in chunks(data, PREDICT_BATCH_SIZE):
                    prediction = self.predict_batch(batch, generator).float().cpu().numpy()
                    out[draw, start:start + len(prediction)][:, target_columns] = prediction
                    start += len(prediction)
        return out

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {key: value.detach().cpu().numpy() for key, value in self._fitted_networks.state_dict().items()}
        config = {
            "method": self.method,
            "params": self.config,
            "covariates": self._fitted_encoder.to_dict(),
            "genes": {column: self.genes[column].tolist() for column in GENE_COLUMNS},
            "history": self.history,
        }
        network = self._fitted_networks[self.prediction_networks[0]]
        if isinstance(network, HybridNetwork):
            config["linear_rank"] = int(network.path.loadings.shape[1])
        return arrays, config

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> "DeepImputer":
        imputer = cls(**config["params"])
        imputer.encoder = CovariateEncoder.from_dict(config["covariates"])
        imputer.genes = pd.DataFrame(config["genes"])[GENE_COLUMNS]
        imputer.history = dict(config.get("history", {}))
        n_genes, n_tissues = len(imputer.genes), imputer.encoder.n_tissues
        networks = imputer._for_prediction(nn.ModuleDict(imputer._build_networks(n_genes, n_tissues)))
        if imputer.params.get("linear"):
            name = imputer.prediction_networks[0]
            networks[name] = HybridNetwork(networks[name], GaussianPath(n_genes, n_tissues, config["linear_rank"]))
        networks.load_state_dict({key: torch.from_numpy(np.asarray(value)) for key, value in arrays.items()})
        imputer.networks = networks.to(resolve_device(imputer.training.device, fallback=True)).eval()
        return imputer

    # ---------------------------------------------------------------- helpers
    def _for_prediction(self, networks: nn.ModuleDict) -> nn.ModuleDict:
        return nn.ModuleDict({name: networks[name] for name in self.prediction_networks})

    def _inference_networks(self) -> nn.ModuleDict:
        """The fitted networks in eval mode, as a bfloat16 copy (made once) under ``precision="bf16"``."""
        networks = self._fitted_networks.eval()
        if self.training.precision != "bf16":
            return networks
        if self._bf16_copy is None or self._bf16_copy[0] is not networks:
            low = copy.deepcopy(networks).to(torch.bfloat16)
            for module in low.modules():
                if isinstance(module, GaussianPath):
                    module.float()  # its k x k solves need float32 loadings
            self._bf16_copy = (networks, low)
        return self._bf16_copy[1]

    @property
    def _fitted_networks(self) -> nn.ModuleDict:
        if self.networks is None:
            raise RuntimeError(f"Fit the {self.method} imputer (or load a checkpoint) first.")
        return self.networks

    @property
    def _fitted_encoder(self) -> CovariateEncoder:
        if self.encoder is None:
            raise RuntimeError(f"Fit the {self.method} imputer (or load a checkpoint) first.")
        return self.encoder

    def _rows(self, cohort: Cohort, sync: Any) -> Batch | BatchSource:
        """Training rows: tensors for an in-memory cohort in one process, else blocks (this rank's share)."""
        if not cohort.stored and sync is None:
            return self.tensors(cohort)
        rank, world_size = (0, 1) if sync is None else (sync.rank, sync.world_size)
        return BlockBatches(cohort.x, self._fitted_encoder.encode(cohort.samples), rank, world_size,
                            seed=self.training.seed)

    def tensors(self, cohort: Cohort, columns: np.ndarray | None = None) -> Batch:
        """``x`` (NaN -> 0), ``known`` (1 observed), ``tissue``, ``sex``, ``age`` as CPU tensors."""
        x = torch.from_numpy(np.ascontiguousarray(cohort.x if columns is None else cohort.x[:, columns]))
        covariates = self._fitted_encoder.encode(cohort.samples)
        return {
            "x": torch.nan_to_num(x, nan=0.0),
            "known": (~torch.isnan(x)).float(),
            **{key: torch.from_numpy(value) for key, value in covariates.items()},
        }


def pattern_param(pattern: dict[str, Any] | None) -> dict[str, Any]:
    """``{"pattern": settings}`` for a training pattern (checked), or nothing for the paper's MCAR masks."""
    if not pattern:
        return {}
    settings = Pattern.from_dict(dict(pattern))
    if settings.name not in TRAINABLE_PATTERNS:
        raise ValueError(f"Training masks cannot follow the {settings.name!r} pattern; use one of "
                         f"{', '.join(TRAINABLE_PATTERNS)}.")
    return {"pattern": settings.to_dict()}
