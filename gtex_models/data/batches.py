"""Batches of rows for the training loop: tensors keyed by name, and where they come from.

A :class:`BatchSource` yields random-order batches for training and in-order chunks for validation:
:class:`TensorBatches` from tensors held on the device, :class:`gtex_models.data.store.BlockBatches`
from an on-disk store. The loop itself is :func:`gtex_models.models.training.train`.

Example
-------
>>> import torch
>>> source = TensorBatches({"x": torch.arange(10.0).reshape(5, 2)})
>>> [len(chunk["x"]) for chunk in source.ordered(2)]
[2, 2, 1]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterator

import torch

Batch = dict[str, torch.Tensor]


def batches(data: Batch, batch_size: int, order: torch.Tensor) -> Iterator[Batch]:
    """Mini-batches (index views) of ``data`` in ``order``; a last batch of one row is skipped (batch
    normalisation cannot train on one sample)."""
    for rows in order.split(batch_size):
        if len(rows) > 1:  # batch normalisation cannot train on one sample
            yield {key: value[rows] for key, value in data.items()}


def n_rows(data: Batch) -> int:
    return len(next(iter(data.values())))


class BatchSource(ABC):
    """Where the loop's rows come from: random-order batches for training, chunks in order for validation."""

    @abstractmethod
    def shuffled(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        """One pass in random order (drawn from ``generator``), batches of 2 to ``batch_size`` rows."""

    @abstractmethod
    def ordered(self, size: int) -> Iterator[Batch]:
        """One pass in order, chunks of at most ``size`` rows."""


class TensorBatches(BatchSource):
    """Rows held as tensors (on the training device): batches are index views."""

    def __init__(self, data: Batch) -> None:
        self.data = data

    def shuffled(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        order = torch.randperm(n_rows(self.data), generator=generator, device=generator.device)
        return batches(self.data, batch_size, order)

    def ordered(self, size: int) -> Iterator[Batch]:
        return chunks(self.data, size)


def chunks(data: Batch, size: int) -> Iterator[Batch]:
    """Consecutive row slices (views) of at most ``size`` rows."""
    n = n_rows(data)
    for start in range(0, n, size):
        yield {key: value[start:start + size] for key, value in data.items()}
