"""Batches of rows for the training loop: tensors keyed by name, and where they come from.

A :class:`BatchSource` yields random-order batches for training and in-order chunks for validation:
:class:`TensorBatches` from tensors held on the device, :class:`BlockBatches`
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

import numpy as np
import torch

from gtex_models.data.store import SHUFFLE_BUFFER_BYTES, StoredMatrix, block_rows_for

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


class BlockBatches(BatchSource):
    """Training and validation batches read block by block from a stored (or in-memory) matrix.

    Each pass draws a random order of the blocks, the same on every rank (from ``seed`` and the pass
    number), and gives rank ``r`` of ``world_size`` the blocks ``r, r + world_size, ...`` of it: a
    distributed sampler over blocks. A rank reads a shuffle buffer of blocks (about 64 MiB) at a
    time, shuffles its rows and cuts batches; with several ranks every rank yields the same number
    of full batches per pass (the last partial batch is dropped), as their gradients are averaged
    in lockstep.

    Parameters
    ----------
    matrix : a :class:`~gtex_models.data.store.StoredMatrix` or an in-memory float32 array (model space, NaN = missing).
    covariates : ``tissue``, ``sex``, ``age`` arrays, one row per matrix row.
    rank, world_size : this process's share of the blocks.
    seed : seed of the block order.
    batches_per_pass : stop a pass after this many batches (all blocks when ``None``).
    """

    def __init__(self, matrix: StoredMatrix | np.ndarray, covariates: dict[str, np.ndarray], rank: int = 0,
                 world_size: int = 1, seed: int = 0, batches_per_pass: int | None = None,
                 block_rows: int | None = None) -> None:
        self.matrix = matrix
        self.covariates = covariates
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.batches_per_pass = batches_per_pass
        if isinstance(matrix, StoredMatrix):
            self.plan = matrix.block_plan()
        else:
            size = block_rows or block_rows_for(matrix.shape[1])
            self.plan = [(start, min(start + size, len(matrix)), np.arange(min(size, len(matrix) - start)))
                         for start in range(0, len(matrix), size)]
        self._view_start = np.cumsum([0] + [len(offsets) for _, _, offsets in self.plan])
        self._passes = 0

    @property
    def n_rows(self) -> int:
        return int(self._view_start[-1])

    def _read(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        first, stop, offsets = self.plan[block]
        if isinstance(self.matrix, StoredMatrix):
            values = self.matrix.read_block(first, stop, offsets)
        else:
            values = np.asarray(self.matrix[first:stop])[offsets]
        return values, np.arange(self._view_start[block], self._view_start[block + 1])

    def _batch(self, values: np.ndarray, rows: np.ndarray) -> Batch:
        x = torch.from_numpy(np.ascontiguousarray(values))
        known = ~torch.isnan(x)
        return {"x": torch.nan_to_num(x, nan=0.0), "known": known.float(),
                **{key: torch.from_numpy(value[rows]) for key, value in self.covariates.items()}}

    def shuffled(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        order = np.random.default_rng([self.seed, self._passes]).permutation(len(self.plan))
        self._passes += 1
        sizes = np.diff(self._view_start)[order]
        rows_per_rank = [int(sizes[r::self.world_size].sum()) for r in range(self.world_size)]
        if self.world_size > 1:
            n_batches = min(rows_per_rank) // batch_size
        else:
            n_batches = -(-rows_per_rank[0] // batch_size)
        if self.batches_per_pass is not None:
            n_batches = min(n_batches, self.batches_per_pass)
        mine = order[self.rank::self.world_size]
        largest_block = max((len(offsets) for _, _, offsets in self.plan), default=1)
        per_buffer = max(1, SHUFFLE_BUFFER_BYTES // (4 * max(self.matrix.shape[1], 1) * largest_block))
        carry_values = np.empty((0, self.matrix.shape[1]), dtype=np.float32)
        carry_rows = np.empty(0, dtype=np.int64)
        produced = 0
        for start in range(0, len(mine), per_buffer):
            if produced >= n_batches:
                return
            parts = [self._read(int(block)) for block in mine[start:start + per_buffer]]
            values = np.concatenate([carry_values] + [p[0] for p in parts])
            rows = np.concatenate([carry_rows] + [p[1] for p in parts])
            permutation = torch.randperm(len(rows), generator=generator, device=generator.device).cpu().numpy()
            last = start + per_buffer >= len(mine)
            n_full = len(rows) // batch_size
            for b in range(n_full):
                if produced >= n_batches:
                    return
                take = permutation[b * batch_size:(b + 1) * batch_size]
                yield self._batch(values[take], rows[take])
                produced += 1
            rest = permutation[n_full * batch_size:]
            if last and len(rest) > 1 and produced < n_batches:
                yield self._batch(values[rest], rows[rest])
                produced += 1
            carry_values, carry_rows = values[rest], rows[rest]

    def ordered(self, size: int) -> Iterator[Batch]:
        for block in range(self.rank, len(self.plan), self.world_size):
            values, rows = self._read(block)
            for start in range(0, len(rows), size):
                yield self._batch(values[start:start + size], rows[start:start + size])
