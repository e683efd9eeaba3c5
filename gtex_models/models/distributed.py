"""Data-parallel training with PyTorch's own engine: ``torchrun`` processes, DistributedDataParallel.

``torchrun --nproc-per-node N -m gtex_models train --cohort DIR ...`` starts N processes (``--nnodes``
for several machines); each joins the process group torchrun describes in its environment (gloo on
CPU, NCCL on GPU, one GPU per process), wraps every network of the method in its own
:class:`~torch.nn.parallel.DistributedDataParallel` (GAIN's generator and discriminator separately,
so that each objective's step synchronises only its own gradients; the generator step's frozen
discriminator skips synchronisation, see :func:`gtex_models.models.training.frozen`), and trains on its
share of the cohort's blocks (:class:`gtex_models.data.batches.BlockBatches`). Gradients are averaged at
every step, so every rank holds the same weights; batch-norm statistics are averaged after every
epoch; the validation loss is summed over the ranks' shares, so early stopping takes the same
decision everywhere. Rank 0 alone writes files: the resume state after every epoch and the
checkpoint at the end, in the same format as a one-process run. One process stays the default:
without torchrun nothing here is used.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gtex_models.common.atomic import atomic_file
from gtex_models.models.training import History, LoopState, Sync

RESUME_FORMAT = "gtex-imputation-training-state"


def launched() -> bool:
    """Whether this process was started by torchrun with more than one process in all."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_process_group() -> None:
    """Join the process group that torchrun set up (NCCL with one GPU per process, else gloo)."""
    if dist.is_initialized() or not launched():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")


def current_sync() -> "DistributedSync | None":
    """The data-parallel agreement of this process group; ``None`` in one process."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return DistributedSync()
    return None


def is_main_process() -> bool:
    """Rank 0, or the only process: the one that writes files and prints."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class DistributedSync(Sync):
    """All-reduces across the ranks of the current process group."""

    def __init__(self) -> None:
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" \
            else torch.device("cpu")

    def sum(self, values: list[float]) -> list[float]:
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def any(self, flag: bool) -> bool:
        tensor = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item())

    def average_buffers(self, module: nn.Module) -> None:
        for buffer in module.buffers():
            if buffer.is_floating_point():
                dist.all_reduce(buffer)
                buffer /= self.world_size
            else:  # counters (num_batches_tracked): rank 0's
                dist.broadcast(buffer, 0)

    def wrap(self, networks: nn.ModuleDict) -> nn.ModuleDict:
        """Each network as its own DDP module (on this rank's device; buffers synchronised per epoch)."""
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.ModuleDict({name: DistributedDataParallel(network, device_ids=device_ids, forward_sync_buffers=False)
                              for name, network in networks.items()})

    def barrier(self) -> None:
        dist.barrier()


# ------------------------------------------------------------------------------------- resume state
def resume_path(checkpoint: str | Path) -> Path:
    """Where the training state of a run writing ``checkpoint`` is kept: ``<checkpoint>.resume``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name + ".resume")


def save_loop_state(path: str | Path, state: LoopState, extra: dict[str, Any] | None = None) -> Path:
    """Write a :class:`LoopState` as one safetensors file (tensors + JSON), atomically."""
    import safetensors.torch

    tensors = {f"module/{key}": value for key, value in state.module_state.items()}
    if state.best_state is not None:
        tensors.update({f"best/{key}": value for key, value in state.best_state.items()})
    optimizers = []
    for i, optimizer in enumerate(state.optimizer_states):
        for index, moments in optimizer["state"].items():
            for name, value in moments.items():
                tensors[f"optimizer/{i}/{index}/{name}"] = torch.as_tensor(value)
        optimizers.append(optimizer["param_groups"])
    tensors["generator"] = state.generator_state
    tensors["rng"] = state.rng_state
    header = {"epoch": state.epoch, "history": asdict(state.history), "best_loss": state.best_loss,
              "stale": state.stale, "param_groups": optimizers, "extra": extra or {}}
    blob = safetensors.torch.save({key: value.detach().cpu().contiguous() for key, value in tensors.items()},
                                  metadata={"format": RESUME_FORMAT, "state": json.dumps(header)})
    with atomic_file(path) as tmp:
        tmp.write_bytes(blob)
    return Path(path)


def load_loop_state(path: str | Path) -> tuple[LoopState, dict[str, Any]]:
    """Read :func:`save_loop_state`'s file: the state and the ``extra`` values stored with it."""
    import safetensors
    import safetensors.torch

    path = Path(path)
    try:
        with safetensors.safe_open(path, "pt") as handle:
            info = handle.metadata() or {}
        tensors = safetensors.torch.load_file(path)
    except Exception as error:  # safetensors raises its own error types
        raise ValueError(f"{path} is not a readable training state ({error}).") from error
    if info.get("format") != RESUME_FORMAT:
        raise ValueError(f"{path} is not a training state written by `train` (no {RESUME_FORMAT} header).")
    header = json.loads(info["state"])
    optimizers = []
    for i, groups in enumerate(header["param_groups"]):
        moments: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            parts = key.split("/")
            if parts[0] == "optimizer" and int(parts[1]) == i:
                moments.setdefault(int(parts[2]), {})[parts[3]] = value
        optimizers.append({"state": moments, "param_groups": groups})
    best = {key[5:]: value for key, value in tensors.items() if key.startswith("best/")} or None
    state = LoopState(
        epoch=int(header["epoch"]), history=History(**header["history"]), best_loss=float(header["best_loss"]),
        best_state=best, stale=int(header["stale"]),
        module_state={key[7:]: value for key, value in tensors.items() if key.startswith("module/")},
        optimizer_states=optimizers, generator_state=tensors["generator"], rng_state=tensors["rng"])
    return state, header["extra"]
