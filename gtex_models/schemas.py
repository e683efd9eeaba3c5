"""Declared schemas of what the project reads back from files: experiment configs, checkpoint metadata,
cohort.json and study.json.

Validated with pydantic 2: it checks types and ranges from the declarations and reports each error's
location, so messages read ``configs/x.yaml: training.lr: Input should be a valid number (got [0.001])``.
The settings of a method are declared once, by its constructor's annotations (see
:data:`gtex_models.imputers.base.PositiveInt` and friends) and :class:`~gtex_models.training.TrainingConfig`;
:func:`settings_schema` turns a constructor into a schema.

Example
-------
>>> check_experiment({"method": "pmi", "training": {"lr": [1e-3]}}, "my.yaml")  # doctest: +SKIP
SchemaError: my.yaml: training.lr: Input should be a valid number (got [0.001])
"""

from __future__ import annotations

import inspect
import typing
from functools import lru_cache
from typing import Annotated, Any, Literal, Mapping

from annotated_types import Ge, Gt, Lt
from pydantic import BaseModel, ConfigDict, Strict, ValidationError, create_model, model_validator

from gtex_models.choices import COMPRESSIONS, PATTERNS
from gtex_models.cohort import SCALES
from gtex_models.imputers import METHODS, imputer_class
from gtex_models.reference import PATHWAYS

MAX_ERRORS_SHOWN = 5
DEEP_METHODS = ("pmi", "gain", "gain-mse")
Method = Literal[METHODS]  # type: ignore[valid-type]


class SchemaError(ValueError):
    """A file whose content does not match its declared schema; the message names the file and each field."""


_PLAIN_MESSAGES = {  # pydantic error type -> wording for people who write YAML, not Python
    "dict_type": "should be a mapping of key: value entries", "model_type": "should be a mapping of key: value entries",
    "model_attributes_type": "should be a mapping of key: value entries", "is_instance_of": "should be a list",
    "list_type": "should be a list", "missing": "is required but missing", "extra_forbidden": "is not a known key",
}


def describe(error: ValidationError, where: str, prefix: tuple[str | int, ...] = (),
             schema: type[BaseModel] | None = None) -> str:
    """``where: field.path: message (got value); ...`` for the first :data:`MAX_ERRORS_SHOWN` errors.

    With ``schema``, an unknown key's message lists the keys allowed at that place.
    """
    problems = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in (*prefix, *item["loc"])) or "(the whole document)"
        message = _PLAIN_MESSAGES.get(item["type"], item["msg"])
        if item["type"] == "value_error":  # a check across fields: its own message, not the whole input
            message = str(item.get("ctx", {}).get("error", message))
        if item["type"] == "extra_forbidden" and schema is not None:
            allowed = _allowed_keys(schema, item["loc"][:-1])
            message += f" (a typo?); allowed: {', '.join(allowed)}" if allowed else ""
        got = "" if item["type"] in ("missing", "value_error") else f" (got {_short(item['input'])})"
        problems.append(f"{location}: {message}{got}")
    more = f"; and {len(problems) - MAX_ERRORS_SHOWN} more" if len(problems) > MAX_ERRORS_SHOWN else ""
    return f"{where}: " + "; ".join(problems[:MAX_ERRORS_SHOWN]) + more


def _allowed_keys(schema: type[BaseModel], location: tuple[str | int, ...]) -> list[str]:
    """The field names of the (nested) model found at ``location`` in ``schema``."""
    for part in location:
        field = schema.model_fields.get(str(part))
        nested = [t for t in typing.get_args(field.annotation) or (field.annotation,)
                  if isinstance(t, type) and issubclass(t, BaseModel)] if field else []
        if not nested:
            return []
        schema = nested[0]
    return list(schema.model_fields)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid")


def validate(schema: type[BaseModel], data: Any, where: str, prefix: tuple[str | int, ...] = ()) -> BaseModel:
    """``schema.model_validate(data)``; a mismatch raises :class:`SchemaError` naming ``where`` and the fields."""
    try:
        return schema.model_validate(data)
    except ValidationError as error:
        raise SchemaError(describe(error, where, prefix, schema)) from None


# ----------------------------------------------------------------------------------- method settings
@lru_cache(maxsize=None)
def settings_schema(method: str) -> type[BaseModel]:
    """The model settings of ``method``: its constructor's named arguments, their annotations and defaults."""
    cls = imputer_class(method)
    hints = typing.get_type_hints(cls.__init__, include_extras=True)
    fields = {name: (hints.get(name, Any), ... if p.default is p.empty else p.default)
              for name, p in inspect.signature(cls.__init__).parameters.items()
              if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return create_model(f"{method} settings", __config__=ConfigDict(extra="forbid"), **fields)


def check_settings(method: str, model: Mapping[str, Any], training: Mapping[str, Any], where: str,
                   prefixes: tuple[str, str] = ("model", "training")) -> None:
    """Validate a method's model settings and, for the deep methods, its training settings."""
    from gtex_models.training import TrainingConfig  # torch: only when settings are checked

    validate(settings_schema(method), dict(model), where, (prefixes[0],))
    if method not in DEEP_METHODS:
        if training:
            raise SchemaError(f"{where}: {prefixes[1]}: the {method} method has no training settings "
                              f"(found {sorted(training)}); remove the section.")
        return
    try:
        TrainingConfig(**training)
    except ValidationError as error:
        message = describe(error, where, (prefixes[1],))
        raise SchemaError(message.replace("Unexpected keyword argument", "is not a known key (a typo?); "
                                          f"allowed: {', '.join(TrainingConfig.keys())}")) from None


# ----------------------------------------------------------------------------------- experiment configs
class CheckpointSettings(_Schema):
    dtype: Literal["float32", "float16"] = "float32"


class PatternSettings(_Schema):
    """The ``pattern`` section of a config: the missingness a deep model is trained with."""

    name: Literal[tuple(PATTERNS)]  # type: ignore[valid-type]
    panel_file: str | None = None
    genes: list[str] | None = None
    block_size: Annotated[int, Ge(1)] | None = None


class ExperimentConfig(_Schema):
    """A YAML experiment config (``configs/*.yaml``)."""

    method: Method
    scenario: Literal["inductive", "inplace"] = "inductive"
    pathway: Literal[tuple(PATHWAYS)] | None = None  # type: ignore[valid-type]
    missing_rate: Annotated[float, Gt(0.0), Lt(1.0)] = 0.5
    model: dict[str, Any] = {}
    training: dict[str, Any] = {}
    checkpoint: CheckpointSettings = CheckpointSettings()
    pattern: PatternSettings | None = None

    @model_validator(mode="after")
    def _pattern_for_deep_models(self) -> "ExperimentConfig":
        from gtex_models.imputers import DEEP_METHODS

        if self.pattern is not None and self.method not in DEEP_METHODS:
            raise ValueError(f"a training pattern applies to the deep models' masks ({', '.join(DEEP_METHODS)}); "
                             f"{self.method} fits on complete training donors")
        return self


def check_experiment(data: Any, where: str) -> ExperimentConfig:
    """Validate a config's content (top level, then the method's ``model`` and ``training`` sections)."""
    from gtex_models.imputers import make_imputer

    config = validate(ExperimentConfig, data, where)
    assert isinstance(config, ExperimentConfig)
    check_settings(config.method, config.model, config.training, where)
    try:
        make_imputer(config.method, **config.model, **config.training)
    except ValueError as error:  # checks across settings, e.g. m_low <= m_high
        raise SchemaError(f"{where}: model: {error}") from None
    return config


# ----------------------------------------------------------------------------------- checkpoints
class GeneTable(_Schema):
    ensembl_gene_id: list[str]
    symbol: list[str]

    @model_validator(mode="after")
    def _same_length(self) -> "GeneTable":
        if len(self.ensembl_gene_id) != len(self.symbol):
            raise ValueError(f"ensembl_gene_id has {len(self.ensembl_gene_id)} entries but symbol "
                             f"{len(self.symbol)}")
        return self


class TransformData(_Schema):
    scale: Literal[SCALES]  # type: ignore[valid-type]
    pseudocount: Annotated[float, Gt(0.0)]
    mean: list[float]
    std: list[Annotated[float, Gt(0.0)]]

    @model_validator(mode="after")
    def _same_length(self) -> "TransformData":
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean has {len(self.mean)} values but std {len(self.std)}")
        return self


class CheckpointHeader(_Schema):
    """The JSON metadata of a checkpoint (see :func:`gtex_models.checkpoints.save_checkpoint`)."""

    format_version: Annotated[int, Strict(), Ge(1)]
    method: Method
    config: dict[str, Any]
    dtype: Literal["float32", "float16"] = "float32"
    genes: GeneTable | None = None
    tissues: list[str] | None = None
    transform: TransformData | None = None
    history: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None
    metadata: dict[str, Any] = {}
    calibration: dict[str, Any] | None = None  # checked by Calibration.from_state

    @model_validator(mode="after")
    def _transform_fits_genes(self) -> "CheckpointHeader":
        if self.genes is not None and self.transform is not None and len(self.transform.mean) != len(self.genes.symbol):
            raise ValueError(f"the transform has {len(self.transform.mean)} genes but the gene table "
                             f"{len(self.genes.symbol)}")
        return self


class _State(BaseModel):
    model_config = ConfigDict(extra="allow")


class Covariates(_Schema):
    tissues: list[str]
    age_mean: float
    age_std: Annotated[float, Gt(0.0)]


class DeepState(_State):
    params: dict[str, Any]
    covariates: Covariates
    genes: GeneTable
    history: dict[str, Any] = {}


class MeansState(_State):
    tissues: list[str]


class BloodState(MeansState):
    blood_donors: list[str]


class ResidualState(_State):
    params: dict[str, Any]
    sample_id: list[str]
    tissue: list[str]


class Simulation(_Schema):
    n_donors: Annotated[int, Ge(1)]
    n_genes: Annotated[int, Ge(1)]
    seed: int
    noise_scale: Annotated[float, Gt(0.0)]


class OracleState(_State):
    simulation: Simulation


STATE_SCHEMAS: dict[str, type[BaseModel]] = {
    "pmi": DeepState, "gain": DeepState, "gain-mse": DeepState, "mean": MeansState, "blood": BloodState,
    "knn": ResidualState, "mice": ResidualState, "missforest": ResidualState, "oracle": OracleState,
}


def check_checkpoint_header(header: Any, where: str) -> CheckpointHeader:
    """Validate a checkpoint's metadata, including its method's stored state and settings."""
    checked = validate(CheckpointHeader, header, where)
    assert isinstance(checked, CheckpointHeader)
    state = validate(STATE_SCHEMAS[checked.method], checked.config, where, ("config",))
    params = getattr(state, "params", None)
    if params is not None:
        from gtex_models.training import TrainingConfig

        training_keys = set(TrainingConfig.keys()) if checked.method in DEEP_METHODS else set()
        model = {k: v for k, v in params.items() if k not in training_keys}
        training = {k: v for k, v in params.items() if k in training_keys}
        check_settings(checked.method, model, training, where, ("config.params", "config.params"))
    return checked


# ----------------------------------------------------------------------------------- studies
class StudyModelEntry(_State):
    """One entry of a study manifest's ``models`` list (see :class:`gtex_models.study.ModelEntry`)."""

    key: str
    method: str
    label: str | None = None
    scenario: str | None = None
    pathway: str | None = None
    n_genes: int | None = None
    n_groups: int | None = None
    evaluation: dict[str, Any] | None = None


class CohortSummary(_Schema):
    """A study's cohort summary (:func:`gtex_models.study.cohort_summary`)."""

    n_samples: Annotated[int, Ge(0)]
    n_genes: Annotated[int, Ge(0)]
    n_groups: Annotated[int, Ge(0)]
    n_donors: Annotated[int, Ge(0)]
    has_sex: bool
    has_age: bool
    scale: Literal[SCALES]  # type: ignore[valid-type]


class StudyCohort(_Schema):
    """Where a study's cohort is: a folder (``path``, relative to the study or absolute) or a simulation."""

    path: str | None = None
    simulation: Simulation | None = None
    summary: CohortSummary | None = None


class StudyManifest(_Schema):
    """``study.json`` (see :func:`gtex_models.study.new_manifest`); ``models`` entries are checked one by one."""

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


# ----------------------------------------------------------------------------------- cohorts
class StoreSettings(_Schema):
    """The ``store`` section of an on-disk store's ``cohort.json`` (see :class:`gtex_models.store.StoreWriter`)."""

    block_rows: Annotated[int, Strict(), Ge(1)]
    dataset: str
    compression: Literal[COMPRESSIONS] = "gzip"  # type: ignore[valid-type]


class CohortInfo(_Schema):
    """``cohort.json`` of a cohort folder (see :meth:`gtex_models.cohort.Cohort.save`) or of a store."""

    format_version: Annotated[int, Strict(), Ge(1)]
    scale: Literal[SCALES]  # type: ignore[valid-type]
    pseudocount: Annotated[float, Gt(0.0)]
    meta: dict[str, Any] = {}
    store: StoreSettings | None = None
