"""Run by ``tests/test_distributed.py`` under torchrun: train PMI and GAIN-GTEx on a store, save each rank's weights.

Usage: ``torchrun --standalone --nproc-per-node 2 tests/distributed_worker.py STORE OUT_DIR``
"""

import sys
from pathlib import Path

import safetensors.torch
import torch.distributed as dist

from gtex_models.data.cohort import Cohort
from gtex_models.models.distributed import init_process_group
from gtex_models.studies.at_scale import train_at_scale
from gtex_models.studies.experiment import Experiment

store, out = Path(sys.argv[1]), Path(sys.argv[2])
init_process_group()
for method in ("pmi", "gain"):
    experiment = Experiment(method=method, model={"hidden_sizes": [32], "dropout": 0.1},
                            training={"batch_size": 16, "lr": 0.01, "max_epochs": 2, "device": "cpu"})
    imputer, _ = train_at_scale(experiment, Cohort.load(store), out / f"{method}.safetensors")
    weights = {key: value.contiguous() for key, value in imputer.networks.state_dict().items()}
    safetensors.torch.save_file(weights, out / f"{method}_rank{dist.get_rank()}.safetensors")
dist.destroy_process_group()
