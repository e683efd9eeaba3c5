"""Data-parallel training: two CPU processes under torchrun (gloo) on a small store, and the resume state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from gtex_models.data.patterns import mask_cohort
from gtex_models.data.provenance import DonorSet
from gtex_models.data.store import save_store
from gtex_models.models.checkpoints import load_checkpoint
from gtex_models.models.distributed import load_loop_state, save_loop_state
from gtex_models.models.registry import make_imputer
from gtex_models.models.training import LoopState

ROOT = Path(__file__).resolve().parents[1]


def test_two_processes_hold_identical_weights_and_rank_zero_checkpoints(small_cohort, tmp_path: Path) -> None:
    save_store(small_cohort, tmp_path / "store", block_rows=32)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(ROOT / "tests" / "distributed_worker.py"), str(tmp_path / "store"), str(tmp_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    test = small_cohort.split("test")
    for method in ("pmi", "gain"):  # GAIN: generator and discriminator as separate DDP modules
        rank0 = safetensors.torch.load_file(tmp_path / f"{method}_rank0.safetensors")
        rank1 = safetensors.torch.load_file(tmp_path / f"{method}_rank1.safetensors")
        assert rank0.keys() == rank1.keys()
        assert all(torch.equal(rank0[key], rank1[key]) for key in rank0)  # weights and batch-norm statistics
        # the checkpoint (written by rank 0 alone) loads in one process and imputes
        imputer, metadata = load_checkpoint(tmp_path / f"{method}.safetensors")
        assert metadata["processes"] == 2 and imputer.history["epochs"] == 2
        assert DonorSet.from_dict(metadata["donors"]["fit"]) == DonorSet.of_cohort(small_cohort.split("train"))
        assert not (tmp_path / f"{method}.safetensors.resume").exists()
        assert all(torch.equal(value, rank0[key]) for key, value in imputer.networks.state_dict().items())
        untrained = type(imputer)(hidden_sizes=[32])._build_networks(small_cohort.n_genes, len(imputer.tissues))
        name = imputer.prediction_networks[0]
        assert not torch.equal(untrained[name].output.weight, rank0[f"{name}.output.weight"])
        known = test.subset_samples(test.samples["tissue"].isin(imputer.tissues).to_numpy())
        observed = np.random.default_rng(0).random(known.x.shape) > 0.5
        filled = imputer.impute(mask_cohort(known, observed))
        assert np.isfinite(filled).all() and np.array_equal(filled[observed], known.x[observed])


def test_resume_continues_exactly_where_training_stopped(small_cohort, tmp_path: Path) -> None:
    settings = dict(hidden_sizes=[32], dropout=0.2, batch_size=32, lr=0.01, max_epochs=4, patience=10, device="cpu")
    train, valid = small_cohort.split("train"), small_cohort.split("valid")
    straight = make_imputer("pmi", **settings).fit(train, valid)
    states: list[LoopState] = []
    make_imputer("pmi", **settings).fit(train, valid, on_epoch=states.append)
    path = save_loop_state(tmp_path / "state", states[1], {"note": "after epoch 2"})
    state, extra = load_loop_state(path)
    assert extra == {"note": "after epoch 2"} and state.epoch == 2
    resumed = make_imputer("pmi", **settings).fit(train, valid, resume=state)
    assert resumed.history["valid_loss"] == straight.history["valid_loss"]
    for key, value in straight.networks.state_dict().items():
        assert torch.equal(value, resumed.networks.state_dict()[key]), key


def test_a_foreign_file_is_not_a_training_state(tmp_path: Path) -> None:
    (tmp_path / "x.resume").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="not a readable training state"):
        load_loop_state(tmp_path / "x.resume")
