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
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from torch import nn

from gtex_models.imputers.base import ProgressCallback

PRECISIONS = ("fp32", "bf16")
PREDICT_BATCH_SIZE = 2048
Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of the training loop.

    Attributes
    ----------
    batch_size, lr : mini-batch size and Adam learning rate.
    max_epochs : upper bound on passes over the training samples.
    patience : epochs without a better validation loss before stopping (best weights are restored).
    max_seconds : optional wall-clock budget; training stops after the batch that exceeds it.
    precision : ``"fp32"`` or ``"bf16"`` (training: autocast of the forward pass, weights stay float32;
        imputation: a bfloat16 copy of the fitted networks).
    seed : seeds weight initialisation, batch order, masks and dropout.
    device : ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``.
    """

    batch_size: int = 32
    lr: float = 1e-4
    max_epochs: int = 300
    patience: int = 10
    max_seconds: float | None = None
    precision: str = "fp32"
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        # YAML 1.1 reads "1e-3" as a string: coerce numbers given as text
        for name, kind in (("batch_size", int), ("lr", float), ("max_epochs", int), ("patience", int),
                           ("seed", int)):
            object.__setattr__(self, name, kind(getattr(self, name)))
        if self.max_seconds is not None:
            object.__setattr__(self, "max_seconds", float(self.max_seconds))
        if self.precision not in PRECISIONS:
            raise ValueError(f"Unknown precision {self.precision!r}; use one of {PRECISIONS}.")
        if self.batch_size < 2:
            raise ValueError("batch_size must be at least 2 (batch normalisation needs two samples).")
        if self.lr <= 0 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError("lr must be positive; max_epochs and patience at least 1.")

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


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def preferred_precision(device: str = "auto") -> str:
    """``bf16`` where the hardware computes in bfloat16 natively (a CUDA GPU that supports it, a CPU with
    AVX512-BF16 or AMX), else ``fp32``: on other CPUs bf16 is emulated and an order of magnitude slower
    (measured: 15x on a 2-core AVX2 EPYC)."""
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "fp32"
    return "bf16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "fp32"


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


def batches(data: Batch, batch_size: int, order: torch.Tensor) -> Iterator[Batch]:
    """Mini-batches (index views) of ``data`` in ``order``; a last batch of one row is skipped (batch
    normalisation cannot train on one sample)."""
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
    optimizers = make_optimizers(task, config)
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


def make_optimizers(task: Task, config: TrainingConfig) -> list[torch.optim.Optimizer]:
    """One Adam optimiser per objective of ``task``."""
    return [torch.optim.Adam(objective.parameters, lr=config.lr, fused=True) for objective in task.objectives]


def train_step(task: Task, optimizers: Sequence[torch.optim.Optimizer], batch: Batch, config: TrainingConfig,
               generator: torch.Generator) -> list[torch.Tensor]:
    """One optimiser step of every objective on one batch (its random draws made first); the losses."""
    device = generator.device
    batch = task.prepare(batch, generator)
    losses = []
    for objective, optimizer in zip(task.objectives, optimizers):
        with autocast(device, config.precision):
            loss = objective.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return losses


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
    for batch in batches(data, config.batch_size, order):
        sums += torch.stack(train_step(task, optimizers, batch, config, generator))
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
