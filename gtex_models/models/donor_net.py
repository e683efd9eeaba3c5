"""``donor-net``: a neural network that builds a donor representation from a variable set of tissue samples.

The idea of HYFA (Viñas et al. 2023, hypergraph factorisation: a donor's samples in some tissues -> the
donor's profile in any tissue), in our own, smaller form:

1. **Encode** each of the donor's samples: its deviation from its group's expectation (``x - m``,
   :class:`~gtex_models.models.centring.Centring`; missing values 0) and its group's embedding -> a message.
2. **Aggregate** the messages by attention that depends on the **target** group: the target's embedding is the
   query, each sample's message the key and value, so a target draws on the tissues that inform it; any number
   of samples, in any groups, gives one donor representation per target.
3. **Decode** the representation, the target's embedding, sex and age into the target's deviation from its
   expectation; the prediction is ``m + deviation``.

Trained by hiding whole samples of the training donors: at every step each donor's samples are shuffled and
a random number of them (at least one) are sources, the rest targets; the loss is the squared error of the
targets' values (early stopping on the validation donors, with fixed draws). A row is always predicted from
its donor's *other* samples, so a donor with one sample gets its group's expectation.

Example
-------
>>> from gtex_models.data.simulate import simulate_cohort
>>> cohort = simulate_cohort(n_donors=30, n_genes=400)
>>> imputer = DonorNetImputer(max_epochs=2).fit(cohort.split("train"), cohort.split("valid"))
>>> imputer.impute(cohort.split("test")).shape[1]
400
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from gtex_models.common.progress import ProgressCallback
from gtex_models.data.batches import Batch
from gtex_models.data.cohort import Cohort
from gtex_models.data.donor_targets import donor_rows
from gtex_models.models.base import DropoutRate, Imputer, PositiveInt
from gtex_models.models.centring import Centring
from gtex_models.models.networks import EMBEDDING_INIT_STD
from gtex_models.models.training import Objective, Task, masked_mse, train
from gtex_models.models.training_settings import TrainingConfig, resolve_device

GROUP_SHRINKAGE = 5.0  # τ of the centring (pseudo-samples pulling small groups' means to the overall mean)
N_COVARIATES = 2  # sex (+1 / -1 / 0) and standardised age


class DonorNetwork(nn.Module):
    """Encoder, target-dependent attention over a donor's samples, decoder (see the module docstring)."""

    def __init__(self, n_genes: int, n_groups: int, hidden: int, embedding: int, heads: int, dropout: float
                 ) -> None:
        super().__init__()
        self.group = nn.Embedding(n_groups + 1, embedding)  # the last row: a group unseen in training
        nn.init.normal_(self.group.weight, 0.0, EMBEDDING_INIT_STD)
        self.encode = nn.Sequential(nn.Linear(n_genes + embedding, hidden), nn.GELU(), nn.Dropout(dropout),
                                    nn.Linear(hidden, hidden))
        self.query = nn.Linear(embedding, hidden)
        self.heads = heads
        self.decode = nn.Sequential(nn.Linear(hidden + embedding + N_COVARIATES, hidden), nn.GELU(),
                                    nn.Dropout(dropout), nn.Linear(hidden, n_genes))

    def forward(self, residual: torch.Tensor, source: torch.Tensor, group: torch.Tensor,
                covariates: torch.Tensor) -> torch.Tensor:
        """Each row's predicted deviation from the donor's *other* sources.

        ``residual``: donors x rows x genes (0 where missing), ``source``: donors x rows (1 where the row is a
        source), ``group``: donors x rows, ``covariates``: donors x 2. Returns donors x rows x genes.
        """
        n_donors, n_rows, _ = residual.shape
        embedded = self.group(group)
        message = self.encode(torch.cat([residual, embedded], dim=2))                 # donors x rows x hidden
        size = message.shape[2] // self.heads
        keys = message.view(n_donors, n_rows, self.heads, size).transpose(1, 2)       # donors x heads x rows x size
        queries = self.query(embedded).view(n_donors, n_rows, self.heads, size).transpose(1, 2)
        scores = queries @ keys.transpose(2, 3) / math.sqrt(size)                     # targets x sources
        allowed = source[:, None, None, :].bool() & ~torch.eye(n_rows, dtype=torch.bool, device=source.device)
        scores = scores.masked_fill(~allowed, -1e9)
        weights = torch.softmax(scores, dim=3) * allowed.any(dim=3, keepdim=True)     # no source: nothing
        pooled = (weights @ keys).transpose(1, 2).reshape(n_donors, n_rows, -1)
        features = torch.cat([pooled, embedded, covariates[:, None, :].expand(-1, n_rows, -1)], dim=2)
        return self.decode(features)


class DonorNetImputer(Imputer):
    """A donor's missing samples from the donor's other samples, by a network (see the module docstring).

    Parameters
    ----------
    hidden_size, embedding_size, heads, dropout : the network's widths, attention heads and dropout.
    batch_size, lr, max_epochs, patience, max_seconds, seed, device : the training loop's settings
        (:class:`~gtex_models.models.training_settings.TrainingConfig`; a batch is a number of donors).
    """

    method = "donor-net"

    def __init__(self, hidden_size: PositiveInt = 256, embedding_size: PositiveInt = 16, heads: PositiveInt = 4,
                 dropout: DropoutRate = 0.2, batch_size: PositiveInt = 16, lr: float = 1e-3,
                 max_epochs: PositiveInt = 300, patience: PositiveInt = 20, max_seconds: float | None = 600.0,
                 seed: int = 0, device: Literal["auto", "cpu", "cuda"] = "auto") -> None:
        if hidden_size % heads:
            raise ValueError(f"hidden_size ({hidden_size}) must be a multiple of heads ({heads})")
        self.params = {"hidden_size": hidden_size, "embedding_size": embedding_size, "heads": heads,
                       "dropout": dropout, "batch_size": batch_size, "lr": lr, "max_epochs": max_epochs,
                       "patience": patience, "max_seconds": max_seconds, "seed": seed, "device": device}
        self.training = TrainingConfig(batch_size=max(2, batch_size), lr=lr, max_epochs=max_epochs, patience=patience,
                                       max_seconds=max_seconds, seed=seed, device=device)
        self._centring: Centring | None = None
        self._network: DonorNetwork | None = None
        self.groups: tuple[str, ...] = ()
        self.history: dict[str, Any] = {}

    @property
    def tissues(self) -> list[str]:
        return list(self.groups)

    # ------------------------------------------------------------------------------- fitting
    def fit(self, cohort: Cohort, valid: Cohort | None = None, progress: ProgressCallback | None = None
            ) -> "DonorNetImputer":
        x = np.asarray(cohort.x, dtype=np.float32)
        self._centring = Centring.fit(x, cohort.samples, GROUP_SHRINKAGE)
        self.groups = tuple(sorted(set(cohort.samples["tissue"].astype(str))))
        p = self.params
        with torch.random.fork_rng():
            torch.manual_seed(p["seed"])
            network = DonorNetwork(cohort.n_genes, len(self.groups), p["hidden_size"], p["embedding_size"],
                                   p["heads"], p["dropout"])
        task = Task(network, [Objective("mse", lambda batch: self._loss(network, batch), network.parameters())],
                    _draw_targets, lambda batch: self._loss(network, batch))
        valid_data = None
        if valid is not None and any(len(r) >= 2 for r in donor_rows(valid.samples["donor_id"]).values()):
            valid_data = self._tensors(valid)
        history = train(task, self._tensors(cohort), valid_data, self.training, progress)
        self.history = history.to_dict()
        self._network = network.cpu().eval()
        return self

    @staticmethod
    def _loss(network: DonorNetwork, batch: Batch) -> torch.Tensor:
        target = batch["present"] * (1 - batch["source"])
        residual = torch.where(batch["observed"].bool() & batch["source"][..., None].bool(), batch["residual"], 0.0)
        predicted = network(residual, batch["source"], batch["group"], batch["covariates"])
        return masked_mse(predicted, batch["residual"], batch["observed"] * target[..., None])

    def _tensors(self, cohort: Cohort) -> Batch:
        """Donors x rows x genes tensors of ``cohort`` (rows padded; ``present`` marks real samples)."""
        centring = self._fitted[0]
        x = np.asarray(cohort.x, dtype=np.float32)
        observed = ~np.isnan(x)
        residual = np.where(observed, x - centring.expected(cohort.samples), 0.0).astype(np.float32)
        groups = pd.Index(self.groups).get_indexer(cohort.samples["tissue"].astype(str))
        groups = np.where(groups < 0, len(self.groups), groups)
        design = _covariates(centring, cohort.samples)
        by_donor = list(donor_rows(cohort.samples["donor_id"].astype(str)).values())
        width = max(len(rows) for rows in by_donor)
        shape = (len(by_donor), width)
        out = {"residual": np.zeros((*shape, cohort.n_genes), np.float32),
               "observed": np.zeros((*shape, cohort.n_genes), np.float32), "present": np.zeros(shape, np.float32),
               "group": np.full(shape, len(self.groups), np.int64), "covariates": np.zeros((len(by_donor), 2), np.float32),
               "row": np.full(shape, -1, np.int64)}
        for d, rows in enumerate(by_donor):
            n = len(rows)
            out["residual"][d, :n], out["observed"][d, :n] = residual[rows], observed[rows]
            out["present"][d, :n], out["group"][d, :n], out["row"][d, :n] = 1.0, groups[rows], rows
            out["covariates"][d] = design[rows[0]]
        out["source"] = out["present"] * (out["observed"].sum(axis=2) > 0)
        return {key: torch.from_numpy(value) for key, value in out.items()}

    # ------------------------------------------------------------------------------- imputing
    @property
    def _fitted(self) -> tuple[Centring, DonorNetwork | None]:
        if self._centring is None:
            raise RuntimeError("Fit the donor-net imputer first.")
        return self._centring, self._network

    def _predict(self, cohort: Cohort) -> np.ndarray:
        centring, network = self._fitted
        assert network is not None
        data = self._tensors(cohort)
        device = resolve_device(self.params["device"], fallback=True)
        network = network.to(device)
        prediction = centring.expected(cohort.samples).astype(np.float32)
        with torch.no_grad():
            for start in range(0, len(data["row"]), 64):
                batch = {key: value[start:start + 64].to(device) for key, value in data.items()}
                residual = torch.where(batch["observed"].bool(), batch["residual"], 0.0)
                deviation = network(residual, batch["source"], batch["group"], batch["covariates"]).float().cpu()
                rows = batch["row"].cpu()
                kept = rows >= 0
                prediction[rows[kept].numpy()] += deviation[kept].numpy()
        self._network = network.cpu()
        return prediction

    # ------------------------------------------------------------------------------- state
    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        centring, network = self._fitted
        assert network is not None
        arrays, config = centring.to_state()
        weights = {f"network.{k}": v.detach().cpu().numpy() for k, v in network.state_dict().items()}
        return {**arrays, **weights}, {**config, "params": self.params, "groups": list(self.groups),
                                       "history": self.history}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> "DonorNetImputer":
        imputer = cls(**config["params"])
        imputer._centring = Centring.from_state(arrays, config)
        imputer.groups = tuple(config["groups"])
        imputer.history = dict(config.get("history", {}))
        p = imputer.params
        network = DonorNetwork(len(imputer._centring.means[0]), len(imputer.groups), p["hidden_size"],
                               p["embedding_size"], p["heads"], p["dropout"])
        network.load_state_dict({k[len("network."):]: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()
                                 if k.startswith("network.")})
        imputer._network = network.eval()
        return imputer


def _covariates(centring: Centring, samples: pd.DataFrame) -> np.ndarray:
    """Sex (+1 male, -1 female, 0 unknown) and age standardised as the centring's (0 unknown), per sample."""
    sex = samples["sex"].astype(str)
    age = (samples["age"].to_numpy(dtype=float) - centring.age_mean) / centring.age_std
    return np.stack([np.where(sex == "male", 1.0, np.where(sex == "female", -1.0, 0.0)),
                     np.nan_to_num(age, nan=0.0)], axis=1).astype(np.float32)


def _draw_targets(batch: Batch, generator: torch.Generator) -> Batch:
    """Each donor's available samples shuffled; a random number of them (1 to all but one) are sources."""
    available = batch["source"]
    count = available.sum(dim=1)
    noise = torch.rand(available.shape, generator=generator, device=available.device)
    rank = torch.argsort(torch.argsort(torch.where(available.bool(), noise, 2.0), dim=1), dim=1)
    n_sources = 1 + (torch.rand(count.shape, generator=generator, device=available.device)
                     * (count - 1).clamp_min(0)).floor()
    source = (rank < n_sources[:, None]) & available.bool() & (count[:, None] >= 2)
    return {**batch, "source": source.float(), "present": batch["present"] * (count[:, None] >= 2)}
