"""How the deep imputers are trained: the generic loop, knowing nothing about imputation.

A method hands :func:`train` a :class:`Task`: the modules to train, one or more :class:`Objective`
(a loss for a batch and the parameters it updates, stepped in order on every batch, as GAIN
alternates discriminator and generator), a ``prepare`` hook drawing the batch's random masks, and a
validation loss for early stopping. In-memory data stay on the device as float32 / int64 tensors;
batches are index views, never host-to-device copies. A :class:`BatchSource` instead feeds batches
read from elsewhere (an on-disk store, :class:`gtex_models.data.store.BlockBatches`), and a :class:`Sync`
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
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from typing import Annotated, Any, Callable, Iterable, Iterator, Literal, Sequence

import torch
from annotated_types import Ge, Gt
from pydantic import ConfigDict
from pydantic.dataclasses import dataclass as pydantic_dataclass
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gtex_models.common.progress import ProgressCallback
from gtex_models.data.batches import Batch, BatchSource, TensorBatches, n_rows

PREDICT_BATCH_SIZE = 2048


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class TrainingConfig:
    """Settings of the training loop, validated on construction (their annotations are their schema).

    Attributes
    ----------
    batch_size, lr : mini-batch size (at least 2: batch normalisation) and Adam learning rate.
    max_epochs : upper bound on passes over the training samples.
    patience : epochs without a better validation loss before stopping (best weights are restored).
    max_seconds : optional wall-clock safety limit; training stops after the batch that exceeds it, with a
        warning (the result then depends on the machine's speed and load: budgets are in epochs).
    precision : ``"fp32"``, ``"bf16"`` (training: autocast of the forward pass, weights stay float32;
        imputation: a bfloat16 copy of the fitted networks) or ``"auto"``: bf16 where it measured faster on
        this machine, else fp32 (:func:`preferred_precision`; resolved when the config is made).
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
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        if self.precision == "auto":  # resolved once, so a saved config names what was used
            object.__setattr__(self, "precision", preferred_precision(self.device))

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


def preferred_precision(device: str = "auto") -> str:
    """``bf16`` where training in bfloat16 is faster on this machine, else ``fp32``.

    A CUDA GPU that supports bf16 gets it. On a CPU the flags do not tell: bf16 is emulated and an order of
    magnitude slower without native support (15x on a 2-core AVX2 EPYC), and even with AVX512-BF16 but no AMX
    it was 6x slower in one real training. So a training step of a small network is timed in both precisions
    (:func:`precision_benchmark`, once per process) and bf16 is chosen only when it is clearly faster.
    """
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return precision_benchmark()["choice"]


BF16_MARGIN = 0.8
"""bf16 is chosen only when its training step takes at most this share of fp32's (timings are noisy)."""


@lru_cache(maxsize=1)
def precision_benchmark(repeats: int = 5) -> dict[str, Any]:
    """Time a CPU training step (forward, backward, Adam) of a 512-256-512 network on a batch of 64 in fp32 and
    in bf16 autocast, alternating, ``repeats`` times each after a warm-up; the fastest of each counts.

    Returns ``fp32_ms``, ``bf16_ms`` and the ``choice`` (``bf16`` when it takes at most :data:`BF16_MARGIN` of
    fp32's time). Cached: measured once per process (tens of milliseconds).
    """
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        steps = {precision: _timed_step(precision) for precision in times}
        for _ in range(repeats + 1):
            for precision, step in steps.items():
                times[precision].append(step())
    fp32, bf16 = (min(values[1:]) * 1000 for values in times.values())  # the first run is the warm-up
    return {"fp32_ms": fp32, "bf16_ms": bf16, "choice": "bf16" if bf16 <= BF16_MARGIN * fp32 else "fp32"}


def _timed_step(precision: str) -> Callable[[], float]:
    """A function that runs one training step of a fresh small network in ``precision`` and returns its seconds."""
    network = nn.Sequential(nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 512))
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    x = torch.randn(64, 512)

    def step() -> float:
        start = time.perf_counter()
        with autocast(torch.device("cpu"), precision):
            loss = ((network(x).float() - x) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    return step


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
