"""How the deep imputers are trained: the generic loop, knowing nothing about imputation.

A method hands :func:`train` a :class:`Task`: the modules to train, one or more :class:`Objective`
(a loss for a batch and the parameters it updates, stepped in order on every batch, as GAIN
alternates discriminator and generator), a ``prepare`` hook drawing the batch's random masks, and a
validation loss for early stopping. In-memory data stay on the device as float32 / int64 tensors;
batches are index views, never host-to-device copies. A :class:`BatchSource` instead feeds batches
read from elsewhere (an on-disk store, :class:`gtex_models.data.batches.BlockBatches`), and a :class:`Sync`
lets several data-parallel processes agree on losses and on when to stop
(:mod:`gtex_models.models.distributed`). :class:`gtex_models.models.deep.DeepImputer` builds the tasks
and tensors from cohorts.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gtex_models.common.progress import ProgressCallback
from gtex_models.data.batches import Batch, BatchSource, TensorBatches, n_rows
from gtex_models.models.training_settings import TrainingConfig, autocast, resolve_device

PREDICT_BATCH_SIZE = 2048


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


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global generators inside the block and restore the caller's state afterwards."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Forward passes inside the block record no gradient for ``module``'s parameters.

    A :class:`~torch.nn.parallel.DistributedDataParallel` module also skips its gradient
    synchronisation there (``no_sync``): with its parameters frozen no gradient arrives, and DDP would
    otherwise wait for them at its next step.
    """
    module.requires_grad_(False)
    try:
        with module.no_sync() if isinstance(module, DistributedDataParallel) else nullcontext():
            yield
    finally:
        module.requires_grad_(True)


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the entries where ``weight`` is 1 (computed in float32)."""
    squared = (prediction.float() - target) ** 2
    return (squared * weight).sum() / weight.sum().clamp_min(1.0)


class Sync:
    """How the processes of a data-parallel run agree; one process (this class) agrees with itself.

    :class:`gtex_models.models.distributed.DistributedSync` all-reduces across the ranks instead.
    """

    rank: int = 0
    world_size: int = 1

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum over the ranks."""
        return list(values)

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank."""
        return flag

    def average_buffers(self, module: nn.Module) -> None:
        """Make the modules' buffers (batch-norm running statistics) equal on every rank."""


@dataclass
class LoopState:
    """Where the loop stands after an epoch (a copy): enough to continue it exactly (``resume`` of :func:`train`)."""

    epoch: int
    history: History
    best_loss: float
    best_state: dict[str, torch.Tensor] | None
    stale: int
    module_state: dict[str, torch.Tensor]
    optimizer_states: list[dict[str, Any]]
    generator_state: torch.Tensor
    rng_state: torch.Tensor


def _to_source(data: Batch | BatchSource, device: torch.device) -> BatchSource:
    if isinstance(data, BatchSource):
        return data
    return TensorBatches({key: value.to(device) for key, value in data.items()})


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in module.state_dict().items()}


def train(
    task: Task,
    train_data: Batch | BatchSource,
    valid_data: Batch | BatchSource | None,
    config: TrainingConfig,
    progress: ProgressCallback | None = None,
    sync: Sync | None = None,
    on_epoch: Callable[[LoopState], None] | None = None,
    resume: LoopState | None = None,
) -> History:
    """Train ``task`` on tensors (one row per sample) or a :class:`BatchSource`; early-stop on ``valid_data``.

    The validation batches get the same random draws every epoch (a fixed seed), so their losses are
    comparable. Without ``valid_data`` training runs ``max_epochs`` (or ``max_seconds``).

    Parameters
    ----------
    sync : data-parallel agreement (losses, validation, stopping); ``None`` for one process. Rank
        ``r`` draws its masks from seed ``config.seed + r``.
    on_epoch : called after every epoch with the loop's :class:`LoopState` (to save checkpoints).
    resume : a state from ``on_epoch`` to continue from (the same task, data and config).

    Returns
    -------
    History : per-epoch mean training loss of each objective, validation losses, best epoch.
    """
    sync = sync or Sync()
    device = resolve_device(config.device)
    task.module.to(device)
    train_source = _to_source(train_data, device)
    valid_source = None if valid_data is None else _to_source(valid_data, device)
    optimizers = make_optimizers(task, config)
    generator = torch.Generator(device=device).manual_seed(config.seed + sync.rank)
    history = History(train_loss={o.name: [] for o in task.objectives}, device=str(device),
                      precision=config.precision)
    start = time.perf_counter()
    deadline = math.inf if config.max_seconds is None else start + config.max_seconds
    best_loss, best_state, stale, first_epoch = math.inf, None, 0, 1
    history.stop_reason = f"max_epochs ({config.max_epochs})"

    with seeded(config.seed + sync.rank, device):
        if resume is not None:
            task.module.load_state_dict(resume.module_state)
            for optimizer, state in zip(optimizers, resume.optimizer_states):
                optimizer.load_state_dict(state)
            generator.set_state(resume.generator_state)
            torch.set_rng_state(resume.rng_state)
            history, best_loss, best_state, stale = resume.history, resume.best_loss, resume.best_state, resume.stale
            first_epoch = resume.epoch + 1
        for epoch in range(first_epoch, config.max_epochs + 1):
            losses = _train_epoch(task, optimizers, train_source, config, generator, deadline, sync)
            sync.average_buffers(task.module)
            for objective, loss in zip(task.objectives, losses):
                history.train_loss[objective.name].append(loss)
            history.epochs = epoch
            message = f"epoch {epoch}/{config.max_epochs}: train " + ", ".join(
                f"{o.name} {loss:.4f}" for o, loss in zip(task.objectives, losses))
            if valid_source is not None:
                valid = evaluate(task, valid_source, config, sync)
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
            if on_epoch is not None:
                on_epoch(LoopState(epoch, copy.deepcopy(history), best_loss, best_state, stale, _snapshot(task.module),
                                   [copy.deepcopy(optimizer.state_dict()) for optimizer in optimizers],
                                   generator.get_state(), torch.get_rng_state()))
            if stale >= config.patience:
                history.stop_reason = f"early stopping (no better validation loss for {config.patience} epochs)"
                break
            if sync.any(time.perf_counter() > deadline):
                history.stop_reason = f"time budget of {config.max_seconds:g} s"
                warnings.warn(f"Training stopped at its wall-clock safety limit of {config.max_seconds:g} s after "
                              f"{epoch} of {config.max_epochs} epochs, so the model depends on this machine's speed "
                              "and load. Raise max_seconds (or lower max_epochs) in the training settings.",
                              stacklevel=2)
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
    task: Task, optimizers: Sequence[torch.optim.Optimizer], source: BatchSource, config: TrainingConfig,
    generator: torch.Generator, deadline: float, sync: Sync,
) -> list[float]:
    """One pass over ``source`` in random order (cut short at ``deadline``); mean loss per objective."""
    device = generator.device
    task.module.train()
    sums = torch.zeros(len(task.objectives), device=device)
    n_batches = 0
    for batch in source.shuffled(config.batch_size, generator):
        batch = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
        sums += torch.stack(train_step(task, optimizers, batch, config, generator))
        n_batches += 1
        if deadline < math.inf and sync.any(time.perf_counter() > deadline):
            break
    *totals, count = sync.sum([*sums.tolist(), float(n_batches)])
    return (torch.tensor(totals, dtype=torch.float32) / max(count, 1.0)).tolist()


def evaluate(task: Task, data: Batch | BatchSource, config: TrainingConfig, sync: Sync | None = None) -> float:
    """Row-weighted mean of ``task.valid_loss`` over ``data`` in eval mode, with fixed random draws.

    Under ``sync`` each rank scores its share of the rows and the totals are summed over the ranks.
    """
    sync = sync or Sync()
    device = next(task.module.parameters()).device
    source = _to_source(data, device)
    generator = torch.Generator(device=device).manual_seed(config.seed + 1)
    task.module.eval()
    total, rows = 0.0, 0
    with torch.no_grad(), autocast(device, config.precision):
        for batch in source.ordered(PREDICT_BATCH_SIZE):
            batch = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
            n = n_rows(batch)
            total += float(task.valid_loss(task.prepare(batch, generator))) * n
            rows += n
    total, rows = sync.sum([total, float(rows)])
    return total / max(rows, 1)
