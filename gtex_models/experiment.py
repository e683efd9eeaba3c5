"""Experiments as YAML configs (``configs/*.yaml``): which method, scenario and genes, and how to train.

A config has ``method``, ``scenario`` (inductive | inplace), ``pathway`` (null | alzheimer | p53),
``missing_rate``, and the sections ``model`` and ``training`` (constructor arguments of the imputer)
and ``checkpoint`` (``dtype``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gtex_models.benchmark import fit_and_score
from gtex_models.checkpoints import save_checkpoint
from gtex_models.schemas import SchemaError, check_experiment
from gtex_models.cohort import Cohort
from gtex_models.imputers import make_imputer
from gtex_models.imputers.base import Imputer, ProgressCallback
from gtex_models.io.errors import require_file

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


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
        check_experiment(asdict(self), "The experiment")

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Experiment":
        """Read a config file, validated against the config schema; errors name the file and the key."""
        path = require_file(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
        except UnicodeDecodeError as error:
            raise SchemaError(f"{path} is not a UTF-8 text file (byte {error.start}); a config is YAML text, "
                              "see configs/ for examples.") from None
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            place = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(error, "problem", None) or str(error)
            raise SchemaError(f"{path} is not valid YAML{place}: {problem}. See configs/ for examples.") from None
        check_experiment(data, str(path))
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
