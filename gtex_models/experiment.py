"""Experiments as YAML configs: which method, scenario and genes, and how to train.

``configs/paper/*.yaml`` hold the authors' settings, ``configs/demo/*.yaml`` those tuned for the
simulated demo (see ``configs/README.md``). A config has ``method``, ``scenario`` (inductive |
inplace), ``pathway`` (null | alzheimer | p53), ``missing_rate``, and the sections ``model`` and
``training`` (constructor arguments of the imputer) and ``checkpoint`` (``dtype``). Without a config,
:func:`default_config` picks settings for the cohort's size.

Training and evaluation are separate steps: :func:`train_experiment` fits (on the scenario's data,
:func:`~gtex_models.benchmark.scenario_data`), :func:`~gtex_models.benchmark.score_fitted` scores,
:func:`save_model` writes the checkpoint; :func:`run_experiment` chains the three.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from time import perf_counter
from typing import Any

import yaml

from gtex_models.benchmark import RECORD_KEYS, ScenarioData, calibrate_scenario, scenario_data, score_fitted
from gtex_models.calibration import Calibration, CalibrationError
from gtex_models.checkpoints import save_checkpoint
from gtex_models.choices import SCENARIOS
from gtex_models.cohort import Cohort
from gtex_models.imputers import DEEP_METHODS, default_settings, make_imputer
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

    @property
    def gene_set(self) -> str:
        """``all`` or the pathway's name."""
        return self.pathway or "all"

    def make_imputer(self) -> Imputer:
        """A new imputer with this experiment's model and training settings."""
        return make_imputer(self.method, **self.model, **self.training)

    def cohort(self, cohort: Cohort) -> Cohort:
        """The cohort restricted to the experiment's genes."""
        return cohort.pathway(self.pathway) if self.pathway else cohort

    def with_max_epochs(self, max_epochs: int | None) -> "Experiment":
        """A copy whose deep model trains at most ``max_epochs`` epochs (baselines: unchanged)."""
        if max_epochs is None or self.method not in DEEP_METHODS:
            return self
        if int(max_epochs) < 1:
            raise ValueError(f"max_epochs must be at least 1, got {max_epochs}.")
        return replace(self, training={**self.training, "max_epochs": int(max_epochs)})


def default_config(method: str, n_samples: int, n_genes: int, scenario: str = "inductive",
                   pathway: str | None = None) -> Experiment:
    """The experiment run when no config is given: settings chosen for the cohort's size
    (:func:`~gtex_models.imputers.default_settings`), model and training settings split."""
    from gtex_models.training import TrainingConfig

    settings = default_settings(method, n_samples, n_genes, scenario)
    training = {k: v for k, v in settings.items() if k in TrainingConfig.keys()}
    model = {k: v for k, v in settings.items() if k not in training}
    return Experiment(method, scenario, pathway, model=model, training=training)


def train_experiment(
    experiment: Experiment, cohort: Cohort, seed: int = 0, progress: ProgressCallback | None = None,
) -> tuple[Imputer, ScenarioData, float]:
    """Fit the experiment's imputer on its scenario's data (no scoring).

    Returns
    -------
    imputer : fitted.
    data : the scenario's data (:func:`~gtex_models.benchmark.scenario_data`), to score it with.
    seconds : the fit's wall-clock time.
    """
    data = scenario_data(experiment.cohort(cohort), experiment.scenario, experiment.missing_rate, seed)
    imputer = experiment.make_imputer()
    start = perf_counter()
    imputer.fit(data.fit, valid=data.valid, progress=progress)
    return imputer, data, perf_counter() - start


def save_model(imputer: Imputer, experiment: Experiment, cohort: Cohort, out: str | Path,
               evaluation: dict[str, Any] | None = None, seed: int = 0, data: ScenarioData | None = None) -> Path:
    """Write a checkpoint whose metadata says what the model is (genes, groups, transform, scenario,
    gene set, source cohort and test record), with its interval calibration (:func:`calibrate_model`;
    ``data``: the scenario's data it was fitted on, needed in place); a study reads its manifest entry from it."""
    cohort = experiment.cohort(cohort)
    tissues = getattr(imputer, "tissues", None) or cohort.split("train").tissues
    metadata = {"genes": cohort.genes, "tissues": list(tissues), "transform": cohort.transform,
                "evaluation": evaluation, "scenario": experiment.scenario, "pathway": experiment.pathway,
                "cohort": cohort.meta.get("source", "unknown")}
    if data is None:
        data = scenario_data(cohort, experiment.scenario, experiment.missing_rate, seed)
    return save_checkpoint(imputer, out, metadata, dtype=experiment.checkpoint.get("dtype", "float32"),
                           calibration=calibrate_model(imputer, data, cohort, seed))


def calibrate_model(imputer: Imputer, data: ScenarioData, cohort: Cohort, seed: int = 0) -> Calibration | None:
    """The interval calibration of an imputer fitted on ``data`` (:func:`~gtex_models.benchmark.calibrate_scenario`);
    None, with a warning saying why, when the cohort is too small for one."""
    try:
        return calibrate_scenario(imputer, data, cohort, seed)
    except CalibrationError as error:
        warnings.warn(f"No interval calibration, so this model gives no intervals: {error}", stacklevel=2)
        return None


def calibrate_checkpoint(imputer: Imputer, metadata: dict[str, Any], cohort: Cohort, seed: int = 0) -> Calibration:
    """Calibrate a saved model's intervals on the cohort it was trained on (already restricted to its genes,
    :func:`~gtex_models.model_space.cohort_for_model`), under the scenario its metadata names (in place: the
    protocol's pool and mask for ``seed``, as when it was trained)."""
    evaluation = metadata.get("evaluation") or {}
    scenario = metadata.get("scenario") or "inductive"
    data = scenario_data(cohort, scenario, float(evaluation.get("missing_rate", 0.5)), seed)
    return calibrate_scenario(imputer, data, cohort, seed)


def run_experiment(
    experiment: Experiment, cohort: Cohort, out: str | Path | None = None, seed: int = 0,
    progress: ProgressCallback | None = None,
) -> tuple[Imputer, dict[str, Any]]:
    """Fit, score on the test donors (at the experiment's missing rate), and save a checkpoint if ``out``.

    Returns the fitted imputer and its benchmark record (stored as the checkpoint's ``evaluation``).
    """
    imputer, data, fit_seconds = train_experiment(experiment, cohort, seed, progress)
    scores = {**score_fitted(imputer, data), "fit_seconds": fit_seconds}
    record = {key: scores[key] for key in RECORD_KEYS if key in scores}
    if out is not None:
        save_model(imputer, experiment, cohort, out, record, seed, data)
    return imputer, record
