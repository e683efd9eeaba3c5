"""Declared schemas of a study's files: experiment configs (``configs/*.yaml``) and ``study.json``.

Example
-------
>>> check_experiment({"method": "pmi", "training": {"lr": [1e-3]}}, "my.yaml")  # doctest: +SKIP
SchemaError: my.yaml: training.lr: Input should be a valid number (got [0.001])
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Lt
from pydantic import Strict, model_validator

from gtex_models.common.choices import PATTERNS, SCENARIOS
from gtex_models.common.schema import OpenSchema, Schema, SchemaError, validate
from gtex_models.data.cohort_format import SCALES
from gtex_models.data.reference import PATHWAYS
from gtex_models.models.registry import DEEP_METHODS, make_imputer
from gtex_models.models.schemas import Method, Simulation, check_settings


class CheckpointSettings(Schema):
    dtype: Literal["float32", "float16"] = "float32"


class PatternSettings(Schema):
    """The ``pattern`` section of a config: the missingness a deep model is trained with."""

    name: Literal[tuple(PATTERNS)]  # type: ignore[valid-type]
    panel_file: str | None = None
    genes: list[str] | None = None
    block_size: Annotated[int, Ge(1)] | None = None


class ExperimentConfig(Schema):
    """A YAML experiment config (``configs/*.yaml``)."""

    method: Method
    scenario: Literal[SCENARIOS] = "inductive"  # type: ignore[valid-type]
    pathway: Literal[tuple(PATHWAYS)] | None = None  # type: ignore[valid-type]
    missing_rate: Annotated[float, Gt(0.0), Lt(1.0)] = 0.5
    model: dict[str, Any] = {}
    training: dict[str, Any] = {}
    checkpoint: CheckpointSettings = CheckpointSettings()
    pattern: PatternSettings | None = None

    @model_validator(mode="after")
    def _pattern_for_deep_models(self) -> "ExperimentConfig":
        if self.pattern is not None and self.method not in DEEP_METHODS:
            raise ValueError(f"a training pattern applies to the deep models' masks ({', '.join(DEEP_METHODS)}); "
                             f"{self.method} fits on complete training donors")
        return self


def check_experiment(data: Any, where: str) -> ExperimentConfig:
    """Validate a config's content (top level, then the method's ``model`` and ``training`` sections)."""
    config = validate(ExperimentConfig, data, where)
    assert isinstance(config, ExperimentConfig)
    check_settings(config.method, config.model, config.training, where)
    try:
        make_imputer(config.method, **config.model, **config.training)
    except ValueError as error:  # checks across settings, e.g. m_low <= m_high
        raise SchemaError(f"{where}: model: {error}") from None
    return config


class StudyModelEntry(OpenSchema):
    """One entry of a study manifest's ``models`` list (see :class:`gtex_models.studies.study.ModelEntry`)."""

    key: str
    method: str
    label: str | None = None
    scenario: str | None = None
    pathway: str | None = None
    n_genes: int | None = None
    n_groups: int | None = None
    evaluation: dict[str, Any] | None = None
    donors: dict[str, dict[str, Any]] | None = None


class CohortSummary(Schema):
    """A study's cohort summary (:func:`gtex_models.studies.study.cohort_summary`)."""

    n_samples: Annotated[int, Ge(0)]
    n_genes: Annotated[int, Ge(0)]
    n_groups: Annotated[int, Ge(0)]
    n_donors: Annotated[int, Ge(0)]
    has_sex: bool
    has_age: bool
    scale: Literal[SCALES]  # type: ignore[valid-type]
    value_scale: str | None = None
    group_word: str | None = None


class StudyCohort(Schema):
    """Where a study's cohort is: a folder (``path``, relative to the study or absolute) or a simulation."""

    path: str | None = None
    simulation: Simulation | None = None
    summary: CohortSummary | None = None


class StudyManifest(Schema):
    """``study.json`` (see :func:`gtex_models.studies.study.new_manifest`); ``models`` entries are checked one by one."""

    format: str
    format_version: Annotated[int, Strict(), Ge(1)]
    title: str
    description: str = ""
    simulated: bool = False
    created: str | None = None
    sources: list[str] = []
    cohort: StudyCohort = StudyCohort()
    models: list[dict[str, Any]] = []
    benchmark: str | None = None
    recommended: dict[str, Any] | None = None
