"""The training loop's settings and where and in which precision it runs, without importing torch.

:class:`TrainingConfig` is validated wherever settings are read (configs, checkpoint headers, the app's
forms); :func:`resolve_device`, :func:`preferred_precision` and :func:`autocast` import torch only when called,
so that reading a checkpoint's header or a study's settings does not load it. The loop itself is
:mod:`gtex_models.models.training`.
"""

from __future__ import annotations

import time
from dataclasses import fields
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any, Callable, Literal

from annotated_types import Ge, Gt
from pydantic import ConfigDict
from pydantic.dataclasses import dataclass as pydantic_dataclass

if TYPE_CHECKING:
    import torch


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


def resolve_device(name: str = "auto", fallback: bool = False) -> torch.device:
    """``"auto"``: CUDA when available, else CPU.

    ``"cuda"`` without a CUDA GPU raises a ``ValueError`` that says so, or, with ``fallback`` (loading
    a model trained on a GPU), gives the CPU.
    """
    import torch

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
    import torch

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
    import torch

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
    import torch
    from torch import nn

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


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """bf16 autocast for ``precision="bf16"``, a no-op context otherwise."""
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
