"""Declared schema of checkpoint metadata: the header and each method's stored state and settings.

The settings of a method are declared once, by its constructor's annotations (see
:data:`gtex_models.models.base.PositiveInt` and friends) and :class:`~gtex_models.models.training_settings.TrainingConfig`;
:func:`settings_schema` turns a constructor into a schema.

Example
-------
>>> settings_schema("knn")(k=5).k
5
"""

from __future__ import annotations

import inspect
import typing
from functools import lru_cache
from typing import Annotated, Any, Literal, Mapping

from annotated_types import Ge, Gt
from pydantic import BaseModel, ConfigDict, Strict, ValidationError, create_model, model_validator

from gtex_models.common.schema import OpenSchema, Schema, SchemaError, describe, validate
from gtex_models.data.cohort_format import SCALES
from gtex_models.models.registry import DEEP_METHODS, METHODS, imputer_class
from gtex_models.models.training_settings import TrainingConfig

Method = Literal[METHODS]  # type: ignore[valid-type]


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


class GeneTable(Schema):
    ensembl_gene_id: list[str]
    symbol: list[str]

    @model_validator(mode="after")
    def _same_length(self) -> "GeneTable":
        if len(self.ensembl_gene_id) != len(self.symbol):
            raise ValueError(f"ensembl_gene_id has {len(self.ensembl_gene_id)} entries but symbol "
                             f"{len(self.symbol)}")
        return self


class TransformData(Schema):
    scale: Literal[SCALES]  # type: ignore[valid-type]
    pseudocount: Annotated[float, Gt(0.0)]
    mean: list[float]
    std: list[Annotated[float, Gt(0.0)]]

    @model_validator(mode="after")
    def _same_length(self) -> "TransformData":
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean has {len(self.mean)} values but std {len(self.std)}")
        return self


class CheckpointHeader(Schema):
    """The JSON metadata of a checkpoint (see :func:`gtex_models.models.checkpoints.save_checkpoint`)."""

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


class Covariates(Schema):
    tissues: list[str]
    age_mean: float
    age_std: Annotated[float, Gt(0.0)]


class DeepState(OpenSchema):
    params: dict[str, Any]
    covariates: Covariates
    genes: GeneTable
    history: dict[str, Any] = {}


class MeansState(OpenSchema):
    tissues: list[str]


class BloodState(MeansState):
    blood_donors: list[str]


class ResidualState(OpenSchema):
    params: dict[str, Any]
    sample_id: list[str]
    tissue: list[str]


class GaussState(OpenSchema):
    params: dict[str, Any]
    centring: dict[str, Any]
    chosen: dict[str, Any]


class SoftImputeChoice(Schema):
    penalty: Annotated[float, Gt(0.0)]  # λ / λ_max
    lam: Annotated[float, Gt(0.0)]      # λ itself
    rank: Annotated[int, Ge(0)]


class SoftImputeState(OpenSchema):
    params: dict[str, Any]
    centring: dict[str, Any]
    chosen: SoftImputeChoice


class DonorGaussState(GaussState):
    groups: list[str]


class DonorNetState(OpenSchema):
    params: dict[str, Any]
    centring: dict[str, Any]
    groups: list[str]


class Simulation(Schema):
    n_donors: Annotated[int, Ge(1)]
    n_genes: Annotated[int, Ge(1)]
    seed: int
    noise_scale: Annotated[float, Gt(0.0)]


class OracleState(OpenSchema):
    simulation: Simulation


STATE_SCHEMAS: dict[str, type[BaseModel]] = {
    "pmi": DeepState, "gain": DeepState, "gain-mse": DeepState, "mean": MeansState, "blood": BloodState,
    "knn": ResidualState, "mice": ResidualState, "missforest": ResidualState, "oracle": OracleState,
    "gauss": GaussState, "softimpute": SoftImputeState, "donor-gauss": DonorGaussState, "donor-net": DonorNetState,
    "donor-oracle": OracleState,
}


def check_checkpoint_header(header: Any, where: str, settings: bool = True) -> CheckpointHeader:
    """Validate a checkpoint's metadata, including its method's stored state and (with ``settings``, which
    imports the method's module) its settings against the method's own."""
    checked = validate(CheckpointHeader, header, where)
    assert isinstance(checked, CheckpointHeader)
    state = validate(STATE_SCHEMAS[checked.method], checked.config, where, ("config",))
    params = getattr(state, "params", None)
    if params is not None and settings:
        training_keys = set(TrainingConfig.keys()) if checked.method in DEEP_METHODS else set()
        model = {k: v for k, v in params.items() if k not in training_keys}
        training = {k: v for k, v in params.items() if k in training_keys}
        check_settings(checked.method, model, training, where, ("config.params", "config.params"))
    return checked
