"""How the deep imputers are trained: the generic loop, knowing nothing about imputation.

A method hands :func:`train` a :class:`Task`: the modules to train, one or more :class:`Objective`
(a loss for a batch and the parameters it updates, stepped in order on every batch, as GAIN
alternates discriminator and generator), a ``prepare`` hook drawing the batch's random masks, and a
validation loss for early stopping. Data stay on the device as float32 / int64 tensors; batches are
index views, never host-to-device copies. :class:`gtex_models.imputers.deep.DeepImputer` builds the
tasks and tensors from cohorts.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Annotated, Any, Callable, Iterable, Iterator, Literal, Sequence

import torch
from annotated_types import Ge, Gt
from pydantic import ConfigDict
from pydantic.dataclasses import dataclass as pydantic_dataclass
from torch import nn

from gtex_models.imputers.base import ProgressCallback

PREDICT_BATCH_SIZE = 2048
Batch = dict[str, torch.Tensor]


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class TrainingConfig:
    """Settings of the training loop, validated on construction (their annotations are their schema).

    Attributes
    ----------
    batch_size, lr : mini-batch size (at least 2: batch normalisation) and Adam learning rate.
    max_epochs : upper bound on passes over the training samples.
    patience : epochs without a better validation loss before stopping (best weights are restored).
    max_seconds : optional wall-clock budget; training stops after the batch that exceeds it.
    precision : ``"fp32"`` or ``"bf16"`` (training: autocast of the forward pass, weights stay float32;
        imputation: a bfloat16 copy of the fitted networks).
    seed : seeds weight initialisation, batch order, masks and dropout.
    device : ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``.

    Numbers written as text (YAML 1.1 reads ``1e-3`` as a string) are converted; anything else of the
    wrong type or out of range raises :class:`pydantic.ValidationError` (a ``ValueError``) naming the setting.
    """

    batch_size: Annotated[int, Ge(2)] = 32
    lr: Annotated[float, Gt(0)] = 1e-4
    max_epochs: Annotated[int, Ge(1)] = 300
    patience: Annotated[int, Ge(1)] = 10
    max_seconds: Annotated[float, Ge(0)] | None = None
    precision: Literal["fp32", "bf16"] = "fp32"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """Names of the settings (the keyword arguments the deep imputers accept for training)."""
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class Objective:
    """One optimiser step per batch: minimise ``loss(batch)`` over ``parameters`` with Adam."""

    name: str
    loss: Callable[[Batch], torch.Tensor]
    parameters: Iterable[nn.Parameter]


@dataclass(frozen=True)
class Task:
    """What a method plugs into :func:`train`.

    Attributes
    ----------
    module : every trained module (switched between train/eval mode; its best weights are kept).
    objectives : stepped in order on every batch (the same batch dict: an objective may leave a
        tensor in it for a later one, as GAIN's discriminator step leaves the generator's output).
    prepare : ``prepare(batch, generator) -> batch`` adds the random draws (masks, hints, noise).
    valid_loss : loss of a prepared validation batch, used for early stopping.
    """

    module: nn.Module
    objectives: Sequence[Objective]
    prepare: Callable[[Batch, torch.Generator], Batch]
    valid_loss: Callable[[Batch], torch.Tensor]


@dataclass
class History:
    """Per-epoch losses and how training ended."""

    train_loss: dict[str, list[float]] = field(default_factory=dict)
    valid_loss: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    epochs: int = 0
    seconds: float = 0.0
    stop_reason: str = ""
    device: str = "cpu"
    precision: str = "fp32"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)


def resolve_device(name: str = "auto", fallback: bool = False) -> torch.device:
    """``"auto"``: CUDA when available, else CPU.

    ``"cuda"`` without a CUDA GPU raises a ``ValueError`` that says so, or, with ``fallback`` (loading
    a model trained on a GPU), gives the CPU.
    """
    if name == "auto" or (fallback and name == "cuda" and not torch.cuda.is_available()):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("The setting device: cuda asks for a CUDA GPU, but this machine has none (or this "
                         "torch build lacks CUDA). Use device: auto (CUDA when available, else CPU) or cpu.")
    return torch.device(name)


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global generators inside the block and restore the caller's state afterwards."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """bf16 autocast for ``precision="bf16"``, a no-op context otherwise."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Forward passes inside the block record no gradient for ``module``'s parameters."""
    module.requires_grad_(False)
    try:
        yield
    finally:
        module.requires_grad_(True)


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the entries where ``weight`` is 1 (computed in float32)."""
    squared = (prediction.float() - target) ** 2
    return (squared * weight).sum() / weight.sum().clamp_min(1.0)


def _batches(data: Batch, batch_size: int, order: torch.Tensor) -> Iterator[Batch]:
    for rows in order.split(batch_size):
        if len(rows) > 1:  # batch normalisation cannot train on one sample
            yield {key: value[rows] for key, value in data.items()}


def _n_rows(data: Batch) -> int:
    return len(next(iter(data.values())))


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in module.state_dict().items()}


def train(
    task: Task,
    train_data: Batch,
    valid_data: Batch | None,
    config: TrainingConfig,
    progress: ProgressCallback | None = None,
) -> History:
    """Train ``task`` on tensors (one row per sample); early-stop on ``valid_data`` when given.

    The validation batches get the same random draws every epoch (a fixed seed), so their losses are
    comparable. Without ``valid_data`` training runs ``max_epochs`` (or ``max_seconds``).

    Returns
    -------
    History : per-epoch mean training loss of each objective, validation losses, best epoch.
    """
    device = resolve_device(config.device)
    task.module.to(device)
    train_data = {key: value.to(device) for key, value in train_data.items()}
    valid_data = None if valid_data is None else {key: value.to(device) for key, value in valid_data.items()}
    optimizers = [torch.optim.Adam(objective.parameters, lr=config.lr, fused=True) for objective in task.objectives]
    generator = torch.Generator(device=device).manual_seed(config.seed)
    history = History(train_loss={o.name: [] for o in task.objectives}, device=str(device),
                      precision=config.precision)
    start = time.perf_counter()
    deadline = math.inf if config.max_seconds is None else start + config.max_seconds
    best_loss, best_state, stale = math.inf, None, 0
    history.stop_reason = f"max_epochs ({config.max_epochs})"

    with seeded(config.seed, device):
        for epoch in range(1, config.max_epochs + 1):
            losses = _train_epoch(task, optimizers, train_data, config, generator, deadline)
            for objective, loss in zip(task.objectives, losses):
                history.train_loss[objective.name].append(loss)
            history.epochs = epoch
            message = f"epoch {epoch}/{config.max_epochs}: train " + ", ".join(
                f"{o.name} {loss:.4f}" for o, loss in zip(task.objectives, losses))
            if valid_data is not None:
                valid = evaluate(task, valid_data, config)
                history.valid_loss.append(valid)
                message += f", valid {valid:.4f}"
                if valid < best_loss:
                    best_loss, best_state, stale, history.best_epoch = valid, _snapshot(task.module), 0, epoch
                else:
                    stale += 1
            if progress is not None:
                fraction = epoch / config.max_epochs
                if config.max_seconds:
                    fraction = max(fraction, (time.perf_counter() - start) / config.max_seconds)
                progress(min(fraction, 1.0), message)
            if stale >= config.patience:
                history.stop_reason = f"early stopping (no better validation loss for {config.patience} epochs)"
                break
            if time.perf_counter() > deadline:
                history.stop_reason = f"time budget of {config.max_seconds:g} s"
                break

    if best_state is not None:
        task.module.load_state_dict(best_state)
    task.module.eval()
    history.seconds = time.perf_counter() - start
    if progress is not None:
        progress(1.0, f"done: {history.epochs} epochs in {history.seconds:.1f} s, {history.stop_reason}")
    return history


def _train_epoch(
    task: Task, optimizers: Sequence[torch.optim.Optimizer], data: Batch, config: TrainingConfig,
    generator: torch.Generator, deadline: float,
) -> list[float]:
    """One pass over ``data`` in random order (cut short at ``deadline``); mean loss per objective."""
    device = generator.device
    task.module.train()
    sums = torch.zeros(len(task.objectives), device=device)
    n_batches = 0
    order = torch.randperm(_n_rows(data), generator=generator, device=device)
    for batch in _batches(data, config.batch_size, order):
        batch = task.prepare(batch, generator)
        for i, (objective, optimizer) in enumerate(zip(task.objectives, optimizers)):
            with autocast(device, config.precision):
                loss = objective.loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums[i] += loss.detach()
        n_batches += 1
        if time.perf_counter() > deadline:
            break
    return (sums / max(n_batches, 1)).tolist()


def evaluate(task: Task, data: Batch, config: TrainingConfig) -> float:
    """Row-weighted mean of ``task.valid_loss`` over ``data`` in eval mode, with fixed random draws."""
    device = next(iter(data.values())).device
    generator = torch.Generator(device=device).manual_seed(config.seed + 1)
    task.module.eval()
    total, rows = 0.0, 0
    with torch.no_grad(), autocast(device, config.precision):
        for batch in chunks(data, PREDICT_BATCH_SIZE):
            n = _n_rows(batch)
            total += float(task.valid_loss(task.prepare(batch, generator))) * n
            rows += n
    return total / max(rows, 1)


def chunks(data: Batch, size: int) -> Iterator[Batch]:
    """Consecutive row slices (views) of at most ``size`` rows."""
    n = _n_rows(data)
    for start in range(0, n, size):
        yield {key: value[start:start + size] for key, value in data.items()}
