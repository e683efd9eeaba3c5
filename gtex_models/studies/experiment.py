"""Experiments as YAML configs: which method, scenario and genes, and how to train.

``configs/paper/*.yaml`` hold the authors' settings, ``configs/demo/*.yaml`` those tuned for the
simulated demo (see ``configs/README.md``). A config has ``method``, ``scenario`` (inductive |
inplace), ``pathway`` (null | alzheimer | p53), ``missing_rate``, the sections ``model`` and
``training`` (constructor arguments of the imputer) and ``checkpoint`` (``dtype``), and optionally
``pattern``: the missingness the deep model is trained and scored with (:mod:`gtex_models.data.patterns`),
e.g. ``{name: panel, panel_file: panel.txt}`` (or ``genes: [..]``) for a panel-trained PMI, or
``{name: block, block_size: 50}`` (rate: ``missing_rate``). Without a config,
:func:`default_config` picks settings for the cohort's size.

Training and evaluation are separate steps: :func:`train_experiment` fits (on the scenario's data,
:func:`~gtex_models.analysis.benchmark.scenario_data`), :func:`~gtex_models.analysis.benchmark.score_fitted` scores,
:func:`save_model` writes the checkpoint; :func:`run_experiment` chains the three.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from time import perf_counter
from typing import Any

import yaml

from gtex_models.analysis.benchmark import RECORD_KEYS, ScenarioData, calibrate_scenario, scenario_data, score_fitted
from gtex_models.analysis.panels import match_panel, read_panel
from gtex_models.common.messages import list_examples
from gtex_models.common.progress import ProgressCallback
from gtex_models.common.schema import SchemaError
from gtex_models.data.cohort import Cohort
from gtex_models.data.patterns import Pattern
from gtex_models.data.readers.errors import require_file
from gtex_models.models.base import Imputer
from gtex_models.models.calibration import Calibration, CalibrationError
from gtex_models.models.checkpoints import save_checkpoint
from gtex_models.models.registry import DEEP_METHODS, default_settings, make_imputer
from gtex_models.studies.schemas import check_experiment


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
    pattern: dict[str, Any] | None = None

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

    @property
    def gene_set(self) -> str:
        """``all`` or the pathway's name."""
        return self.pathway or "all"

    def make_imputer(self, pattern: Pattern | None = None) -> Imputer:
        """A new imputer with this experiment's model and training settings (and training ``pattern``)."""
        extra = {} if pattern is None else {"pattern": pattern.to_dict()}
        return make_imputer(self.method, **self.model, **self.training, **extra)

    def training_pattern(self, cohort: Cohort) -> Pattern | None:
        """The config's ``pattern`` resolved on ``cohort`` (the experiment's genes): panel genes matched to
        its columns (unmatched ones are an error); None without one."""
        if self.pattern is None:
            return None
        settings = dict(self.pattern)
        name = settings.pop("name")
        if name != "panel":
            if "panel_file" in settings or "genes" in settings:
                raise ValueError(f"panel_file and genes belong to the panel pattern, not {name!r}.")
            return Pattern(name, float(self.missing_rate), **settings)
        if ("panel_file" in settings) == ("genes" in settings):
            raise ValueError("The panel pattern needs exactly one of panel_file and genes.")
        identifiers = read_panel(settings["panel_file"]) if "panel_file" in settings else list(settings["genes"])
        match = match_panel(cohort.genes, identifiers)
        if match.unmatched:
            raise ValueError(f"{len(match.unmatched)} panel gene(s) are not in the cohort: "
                             f"{list_examples(match.unmatched, quote=False)}. Fix the panel or the cohort.")
        return match.pattern()

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
    (:func:`~gtex_models.models.registry.default_settings`), model and training settings split."""
    from gtex_models.models.training_settings import TrainingConfig

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
    data : the scenario's data (:func:`~gtex_models.analysis.benchmark.scenario_data`), to score it with.
    seconds : the fit's wall-clock time.
    """
    cohort = experiment.cohort(cohort)
    pattern = experiment.training_pattern(cohort)
    data = scenario_data(cohort, experiment.scenario, experiment.missing_rate, seed, pattern)
    imputer = experiment.make_imputer(pattern)
    start = perf_counter()
    imputer.fit(data.fit, valid=data.valid, progress=progress)
    return imputer, data, perf_counter() - start


def save_model(imputer: Imputer, experiment: Experiment, cohort: Cohort, out: str | Path,
               evaluation: dict[str, Any] | None = None, seed: int = 0, data: ScenarioData | None = None) -> Path:
    """Write a checkpoint whose metadata says what the model is (genes, groups, transform, scenario,
    gene set, source cohort and test record, and ``donors``: the :class:`~gtex_models.data.provenance.DonorSet`
    records of :attr:`~gtex_models.analysis.benchmark.ScenarioData.donors`), with its interval calibration
    (:func:`calibrate_model`; ``data``: the scenario's data it was fitted on, needed in place); a study reads its
    manifest entry from it."""
    cohort = experiment.cohort(cohort)
    tissues = getattr(imputer, "tissues", None) or cohort.split("train").tissues
    if data is None:
        data = scenario_data(cohort, experiment.scenario, experiment.missing_rate, seed)
    metadata = {"genes": cohort.genes, "tissues": list(tissues), "transform": cohort.transform,
                "evaluation": evaluation, "scenario": experiment.scenario, "pathway": experiment.pathway,
                "cohort": cohort.meta.get("source", "unknown"),
                "donors": {role: donors.to_dict() for role, donors in data.donors.items()}}
    return save_checkpoint(imputer, out, metadata, dtype=experiment.checkpoint.get("dtype", "float32"),
                           calibration=calibrate_model(imputer, data, cohort, seed))


def calibrate_model(imputer: Imputer, data: ScenarioData, cohort: Cohort, seed: int = 0) -> Calibration | None:
    """The interval calibration of an imputer fitted on ``data`` (:func:`~gtex_models.analysis.benchmark.calibrate_scenario`);
    None, with a warning saying why, when the cohort is too small for one."""
    try:
        return calibrate_scenario(imputer, data, cohort, seed)
    except CalibrationError as error:
        warnings.warn(f"No interval calibration, so this model gives no intervals: {error}", stacklevel=2)
        return None


def calibrate_checkpoint(imputer: Imputer, metadata: dict[str, Any], cohort: Cohort, seed: int = 0) -> Calibration:
    """Calibrate a saved model's intervals on the cohort it was trained on (already restricted to its genes,
    :func:`~gtex_models.models.model_space.cohort_for_model`), under the scenario its metadata names (in place: the
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
