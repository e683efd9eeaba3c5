"""Training at scale: an experiment's deep model on an on-disk store and/or under ``torchrun``.

The CLI's ``train`` takes this path for a store or a torchrun launch; the data-parallel machinery is
:mod:`gtex_models.models.distributed`. Rank 0 scores the fitted model on test donors and writes the
checkpoint in the same format as a one-process run.
"""

from __future__ import annotations

import json
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np
import torch.distributed as dist

from gtex_models.analysis.benchmark import evaluate_imputer
from gtex_models.common.progress import ProgressCallback
from gtex_models.data.cohort import Cohort
from gtex_models.data.provenance import DonorSet
from gtex_models.models.base import Imputer
from gtex_models.models.checkpoints import save_checkpoint
from gtex_models.models.distributed import current_sync, is_main_process, load_loop_state, resume_path, save_loop_state
from gtex_models.models.registry import DEEP_METHODS
from gtex_models.models.training import LoopState

EVALUATION_SAMPLES = 2000


def train_at_scale(experiment: Any, cohort: Cohort, out: str | Path, seed: int = 0, resume: bool = False,
                   progress: ProgressCallback | None = None) -> tuple[Imputer, dict[str, Any] | None]:
    """Fit an experiment's deep model on a store and/or under torchrun; rank 0 scores it and saves it.

    Fits on the train donors with the valid donors for early stopping (the inductive protocol),
    writing the training state to ``<out>.resume`` after every epoch (rank 0); ``resume`` continues
    from it. Rank 0 then scores the model on up to :data:`EVALUATION_SAMPLES` test samples read into
    memory (``missing_rate`` of their values hidden, as ``evaluate`` does) and writes the checkpoint.

    Returns
    -------
    The fitted imputer (on every rank) and, on rank 0, the evaluation record (``None`` elsewhere,
    and where the test samples have missing values of their own, so R² cannot be scored).
    """
    if experiment.method not in DEEP_METHODS:
        raise ValueError(f"Only the deep models ({', '.join(DEEP_METHODS)}) train on an on-disk store or under "
                         f"torchrun; {experiment.method} needs the cohort in memory.")
    if experiment.scenario != "inductive":
        raise ValueError("On an on-disk store or under torchrun, training follows the inductive protocol "
                         "(fit on the train donors, score on test donors); use --scenario inductive.")
    cohort = experiment.cohort(cohort)
    imputer = experiment.make_imputer()
    state_file = resume_path(out)
    fingerprint = {"method": experiment.method, "config": imputer.config, "genes": cohort.n_genes,
                   "samples": cohort.n_samples}
    state = None
    if resume:
        if not state_file.is_file():
            raise ValueError(f"--resume: there is no training state {state_file} to continue from; "
                             "run without --resume to start training.")
        state, saved = load_loop_state(state_file)
        if saved != json.loads(json.dumps(fingerprint)):
            raise ValueError(f"--resume: {state_file} was written by another run ({saved.get('method')}, "
                             f"{saved.get('samples')} samples x {saved.get('genes')} genes, other settings?); "
                             "resume with the same cohort and config, or start afresh without --resume.")

    def save_state(loop_state: LoopState) -> None:
        if is_main_process():
            save_loop_state(state_file, loop_state, fingerprint)

    valid = cohort.split("valid")
    start = perf_counter()
    imputer.fit(cohort.split("train"), valid if valid.n_samples else None,
                progress if is_main_process() else None, on_epoch=save_state, resume=state)
    fit_seconds = perf_counter() - start
    record = None
    if is_main_process():
        test = _evaluation_samples(cohort, imputer.tissues)
        if test.n_samples and not np.isnan(test.x).any():
            record = {**evaluate_imputer(imputer, test, experiment.missing_rate, seed, train=cohort.split("train")),
                      "fit_seconds": fit_seconds}
        metadata = {"genes": cohort.genes, "tissues": list(imputer.tissues), "transform": cohort.transform,
                    "evaluation": record, "scenario": experiment.scenario, "pathway": experiment.pathway,
                    "cohort": cohort.meta.get("source", "unknown"),
                    "processes": 1 if current_sync() is None else dist.get_world_size(),
                    "donors": {role: DonorSet.of_cohort(part).to_dict()
                               for role, part in (("fit", cohort.split("train")), ("valid", valid), ("test", test))}}
        save_checkpoint(imputer, out, metadata, dtype=experiment.checkpoint.get("dtype", "float32"))
        state_file.unlink(missing_ok=True)
    if current_sync() is not None:
        dist.barrier()
    return imputer, record


def _evaluation_samples(cohort: Cohort, tissues: tuple[str, ...]) -> Cohort:
    """Up to :data:`EVALUATION_SAMPLES` test samples of tissues the model knows, in memory."""
    test = cohort.split("test")
    rows = np.flatnonzero(test.samples["tissue"].astype(str).isin(tissues).to_numpy())[:EVALUATION_SAMPLES]
    test = test.subset_samples(rows)
    return Cohort(np.asarray(test.x), test.genes, test.samples, test.transform, test.meta)
