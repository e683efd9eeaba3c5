"""Validation of what the project reads back from files, shared by every layer's declared formats.

Validated with pydantic 2: it checks types and ranges from the declarations and reports each error's
location, so messages read ``configs/x.yaml: training.lr: Input should be a valid number (got [0.001])``.
Each persisted format declares its schema beside the code that writes it: ``cohort.json`` in
:mod:`gtex_models.data.cohort_format`, checkpoint metadata in :mod:`gtex_models.models.schemas`,
experiment configs and ``study.json`` in :mod:`gtex_models.studies.schemas`.

Example
-------
>>> from pydantic import BaseModel
>>> class Point(Schema):
...     x: float
>>> validate(Point, {"x": [1]}, "p.yaml")
Traceback (most recent call last):
...
gtex_models.common.schema.SchemaError: p.yaml: x: Input should be a valid number (got [1])
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

MAX_ERRORS_SHOWN = 5


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


class Schema(BaseModel):
    """A declared file format: unknown keys are errors (a typo is named, not ignored)."""

    model_config = ConfigDict(extra="forbid")


class OpenSchema(BaseModel):
    """A declared format whose extra keys are kept (a method's own stored state)."""

    model_config = ConfigDict(extra="allow")


def validate(schema: type[BaseModel], data: Any, where: str, prefix: tuple[str | int, ...] = ()) -> BaseModel:
    """``schema.model_validate(data)``; a mismatch raises :class:`SchemaError` naming ``where`` and the fields."""
    try:
        return schema.model_validate(data)
    except ValidationError as error:
        raise SchemaError(describe(error, where, prefix, schema)) from None
