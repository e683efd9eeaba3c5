"""Experiments as YAML configs: which method, scenario and genes, and how to train.

``configs/paper/*.yaml`` hold the authors' settings, ``configs/demo/*.yaml`` those tuned for the
simulated demo (see ``configs/README.md``). A config has ``method``, ``scenario`` (inductive |
inplace), ``pathway`` (null | alzheimer | p53), ``missing_rate``, and the sections ``model`` and
``training`` (constructor arguments of the imputer) and ``checkpoint`` (``dtype``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gtex_models.benchmark import SCENARIOS, fit_and_score
from gtex_models.checkpoints import save_checkpoint
from gtex_models.cohort import Cohort
from gtex_models.imputers import make_imputer
from gtex_models.imputers.base import Imputer, ProgressCallback

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
_KEYS = {"method", "scenario", "pathway", "missing_rate", "model", "training", "checkpoint"}


@dataclass
class Experiment:
    """One training run: a method under a scenario on all genes or a pathway."""

    method: str
    scenario: str = "inductive"
    pathway: str | None = None
    missing_rate: float = 0.5
    model: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    checkpoint: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"Unknown scenario {self.scenario!r}; use one of {SCENARIOS}.")
        if not 0 < float(self.missing_rate) < 1:
            raise ValueError(f"missing_rate must be between 0 and 1, got {self.missing_rate}.")

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Experiment":
        """Read a config file; unknown keys are an error (they are usually typos)."""
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict) or "method" not in data:
            raise ValueError(f"{path}: a config is a YAML mapping with at least a 'method' key.")
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise ValueError(f"{path}: unknown keys {unknown}; allowed: {sorted(_KEYS)}.")
        return cls(**data)

    def make_imputer(self) -> Imputer:
        """A new imputer with this experiment's model and training settings."""
        return make_imputer(self.method, **self.model, **self.training)

    def cohort(self, cohort: Cohort) -> Cohort:
        """The cohort restricted to the experiment's genes."""
        return cohort.pathway(self.pathway) if self.pathway else cohort


def run_experiment(
    experiment: Experiment, cohort: Cohort, out: str | Path | None = None, seed: int = 0,
    progress: ProgressCallback | None = None,
) -> tuple[Imputer, dict[str, Any]]:
    """Fit, score on the test donors (at the experiment's missing rate), and save a checkpoint if ``out``.

    Returns the fitted imputer and its benchmark record (stored as the checkpoint's ``evaluation``).
    """
    cohort = experiment.cohort(cohort)
    imputer = experiment.make_imputer()
    record = fit_and_score(imputer, cohort, experiment.scenario, experiment.missing_rate, seed, progress)
    if out is not None:
        tissues = getattr(imputer, "tissues", None) or cohort.split("train").tissues
        metadata = {"genes": cohort.genes, "tissues": list(tissues), "transform": cohort.transform,
                    "evaluation": record,
                    "scenario": experiment.scenario, "pathway": experiment.pathway,
                    "cohort": cohort.meta.get("source", "unknown")}
        save_checkpoint(imputer, out, metadata, dtype=experiment.checkpoint.get("dtype", "float32"))
    return imputer, record
