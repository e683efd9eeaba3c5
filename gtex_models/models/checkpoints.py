"""Save and load fitted imputers: one ``.safetensors`` file, arrays plus JSON metadata, never pickle.

The file holds the imputer's arrays (:meth:`~gtex_models.models.base.Imputer.get_state`) and, in
the safetensors metadata field, one JSON document: format version, method, the imputer's config,
the gene table, the tissue vocabulary, the value transform, the training history, evaluation results
and any other JSON-serialisable metadata the caller adds. A calibration of the model's intervals
(:class:`~gtex_models.models.calibration.Calibration`) is stored beside the weights (arrays prefixed
``calibration.``, its JSON under ``calibration``) and comes back as ``metadata["calibration"]``;
:func:`attach_calibration` adds one to an existing file.

Example
-------
>>> save_checkpoint(imputer, "pmi.safetensors", {"transform": cohort.transform})   # doctest: +SKIP
>>> imputer, metadata = load_checkpoint("pmi.safetensors")                        # doctest: +SKIP
>>> check_compatible(metadata, new_cohort)                                        # doctest: +SKIP

(:func:`check_compatible` and :class:`IncompatibleCohortError` live in :mod:`gtex_models.models.model_space`
and are re-exported here.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import safetensors.numpy

from gtex_models.common.atomic import atomic_file
from gtex_models.common.schema import SchemaError
from gtex_models.data.cohort_format import GENE_COLUMNS
from gtex_models.data.readers.errors import require_file
from gtex_models.data.transform import Transform
from gtex_models.models.base import Imputer
from gtex_models.models.calibration import ARRAY_PREFIX, Calibration
from gtex_models.models.model_space import IncompatibleCohortError, check_compatible  # re-exported
from gtex_models.models.registry import imputer_class
from gtex_models.models.schemas import check_checkpoint_header

FORMAT = "gtex-imputation-checkpoint"
FORMAT_VERSION = 1
STORAGE_DTYPES = ("float32", "float16")
_METADATA_KEY = "gtex_imputation"
_RESERVED = ("format_version", "method", "config", "dtype", "calibration")
__all__ = ["CheckpointError", "IncompatibleCohortError", "attach_calibration", "check_compatible", "load_checkpoint",
           "save_checkpoint"]


class CheckpointError(ValueError):
    """The file is not a readable checkpoint of this project (foreign, truncated, unknown method...)."""


# ------------------------------------------------------------------------------------- saving
def save_checkpoint(
    imputer: Imputer, path: str | Path, metadata: Mapping[str, Any] | None = None, dtype: str = "float32",
    calibration: Calibration | None = None,
) -> Path:
    """Write ``imputer`` and ``metadata`` to one ``.safetensors`` file (atomically).

    Parameters
    ----------
    imputer : a fitted imputer of any method.
    path : the file to write.
    metadata : JSON-serialisable values (numpy values and DataFrames are converted). Recognised keys:
        ``genes`` (DataFrame with ``ensembl_gene_id``, ``symbol``), ``tissues`` (list),
        ``transform`` (:class:`~gtex_models.data.cohort.Transform`), ``history``, ``evaluation``; genes,
        tissues and history default to the imputer's own, when it has them.
    dtype : ``"float32"`` or ``"float16"`` (halves the file; floating arrays are cast on saving and
        restored to float32 on loading).
    calibration : the model's interval calibration, if any.
    """
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"Unknown storage dtype {dtype!r}; use one of {STORAGE_DTYPES}.")
    extra = dict(metadata or {})
    reserved = sorted(set(extra) & set(_RESERVED))
    if reserved:
        raise ValueError(f"Metadata keys {reserved} are reserved for the checkpoint itself.")
    arrays, config = imputer.get_state()
    genes = extra.pop("genes", getattr(imputer, "genes", None))
    tissues = extra.pop("tissues", getattr(imputer, "tissues", None))
    transform = extra.pop("transform", None)
    header = {
        "format_version": FORMAT_VERSION,
        "method": imputer.method,
        "config": config,
        "dtype": dtype,
        "genes": None if genes is None else {c: pd.DataFrame(genes)[c].astype(str).tolist() for c in GENE_COLUMNS},
        "tissues": None if tissues is None else [str(t) for t in tissues],
        "transform": transform.to_dict() if isinstance(transform, Transform) else transform,
        "history": extra.pop("history", getattr(imputer, "history", None)),
        "evaluation": extra.pop("evaluation", None),
        "metadata": extra,
    }
    stored = {key: _cast(key, np.asarray(value), dtype) for key, value in arrays.items()}
    if any(key.startswith(ARRAY_PREFIX) for key in stored):
        raise ValueError(f"Imputer arrays may not start with {ARRAY_PREFIX!r} (reserved for the calibration).")
    _write(path, stored, header, calibration)
    return Path(path)


def attach_calibration(path: str | Path, calibration: Calibration) -> Path:
    """Store ``calibration`` in the checkpoint at ``path`` (replacing any), leaving the rest unchanged."""
    path = Path(path)
    header, arrays = _read(path, restore=False)
    _write(path, {k: v for k, v in arrays.items() if not k.startswith(ARRAY_PREFIX)}, header, calibration)
    return path


def attach_evaluation(path: str | Path, evaluation: Mapping[str, Any]) -> Path:
    """Store ``evaluation`` (the model's test record) in the checkpoint at ``path`` (replacing it), leaving the rest
    unchanged: a record rescored after a change to how R² is estimated."""
    path = Path(path)
    header, arrays = _read(path, restore=False)
    calibration_arrays = {k: v for k, v in arrays.items() if k.startswith(ARRAY_PREFIX)}
    stored = header.get("calibration")
    calibration = None if stored is None else Calibration.from_state(calibration_arrays, stored)
    _write(path, {k: v for k, v in arrays.items() if not k.startswith(ARRAY_PREFIX)},
           {**header, "evaluation": dict(evaluation)}, calibration)
    return path


def _write(path: str | Path, arrays: dict[str, np.ndarray], header: dict[str, Any],
           calibration: Calibration | None) -> None:
    header = {key: value for key, value in header.items() if key != "calibration"}
    if calibration is not None:
        calibration_arrays, header["calibration"] = calibration.to_state()
        arrays = {**arrays, **{k: np.ascontiguousarray(v) for k, v in calibration_arrays.items()}}
    blob = safetensors.numpy.save(
        arrays, metadata={"format": FORMAT, _METADATA_KEY: json.dumps(header, default=_json_default)}
    )
    with atomic_file(path) as tmp:
        tmp.write_bytes(blob)


def _cast(key: str, array: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "float16" and np.issubdtype(array.dtype, np.floating):
        cast = array.astype(np.float16)
        if not np.isfinite(cast).all() and np.isfinite(array).all():
            raise ValueError(f"Array {key!r} overflows float16; save it as float32 (a config's checkpoint: dtype: float32).")
        array = cast
    return np.ascontiguousarray(array)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, pd.DataFrame):
        return value.to_dict(orient="list")
    if isinstance(value, Transform):
        return value.to_dict()
    raise TypeError(f"Metadata value of type {type(value).__name__} is not JSON-serialisable.")


# ------------------------------------------------------------------------------------- loading
def load_checkpoint(path: str | Path) -> tuple[Imputer, dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Returns
    -------
    imputer : the fitted imputer, ready to impute.
    metadata : ``method``, ``format_version``, ``dtype``, ``config``, ``genes`` (DataFrame or None),
        ``tissues``, ``transform`` (Transform or None), ``history``, ``evaluation``, ``calibration``
        (:class:`~gtex_models.models.calibration.Calibration` or None) and the caller's other metadata keys.

    Raises
    ------
    CheckpointError : not a checkpoint of this project, truncated, newer format, unknown method.
    """
    path = require_file(path)
    header, arrays = _read(path)
    calibration_arrays = {key: arrays.pop(key) for key in list(arrays) if key.startswith(ARRAY_PREFIX)}
    method = header["method"]
    try:
        imputer = imputer_class(method).from_state(arrays, header["config"])
    except (KeyError, ValueError, TypeError, RuntimeError) as error:
        detail = " ".join(str(error).split())  # torch's messages span lines
        raise CheckpointError(f"{path}: the stored {method} model cannot be rebuilt: its arrays do not fit its "
                              f"settings ({detail[:300]}). Train the model again.") from error
    return imputer, _metadata(path, header, calibration_arrays)


def read_checkpoint_info(path: str | Path) -> dict[str, Any]:
    """The metadata of :func:`load_checkpoint` without rebuilding the model: for what needs only the model's genes,
    groups, evaluation or calibration. Checks the file as :func:`load_checkpoint` does except the settings against
    the method's (that imports the method's module, and torch with a deep one); raises :class:`CheckpointError`."""
    path = require_file(path)
    header, arrays = _read(path, settings=False)
    return _metadata(path, header, {key: value for key, value in arrays.items() if key.startswith(ARRAY_PREFIX)})


def _metadata(path: Path, header: dict[str, Any], calibration_arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """A checked header as the metadata :func:`load_checkpoint` returns."""
    metadata = {key: header[key] for key in _RESERVED + ("tissues", "history", "evaluation")}
    genes = header["genes"]
    metadata["genes"] = None if genes is None else pd.DataFrame(genes)[GENE_COLUMNS]
    transform = header["transform"]
    metadata["transform"] = None if transform is None else Transform.from_dict(transform)
    metadata.update(header["metadata"])
    try:
        stored = header.get("calibration")
        metadata["calibration"] = None if stored is None else Calibration.from_state(calibration_arrays, stored)
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: its interval calibration cannot be read ({error}).") from error
    return metadata


def _read(path: Path, restore: bool = True, settings: bool = True) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Validate the file piece by piece so that each failure gets its own message (``restore``: float16
    arrays back to float32; ``settings``: check the stored settings against the method's)."""
    data = path.read_bytes()
    not_ours = f"{path} is not a GTEx Imputation Studio checkpoint"
    if len(data) < 9 or data[8:9] != b"{":
        raise CheckpointError(f"{not_ours} (no safetensors header).")
    header_size = int.from_bytes(data[:8], "little")
    if 8 + header_size > len(data):
        raise CheckpointError(
            f"{path} is truncated: its header needs {header_size:,} bytes, the file has {len(data):,}."
        )
    try:
        layout = json.loads(data[8:8 + header_size])
        info = layout.get("__metadata__") or {}
    except (UnicodeDecodeError, ValueError, AttributeError) as error:
        raise CheckpointError(f"{not_ours} (unreadable header: {error}).") from error
    if not isinstance(info, dict) or info.get("format") != FORMAT or _METADATA_KEY not in info:
        raise CheckpointError(f"{not_ours} (a safetensors file without our metadata).")
    try:
        end = max((int(entry["data_offsets"][1]) for key, entry in layout.items() if key != "__metadata__"),
                  default=0)
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path} is corrupt: its tensor table is malformed ({error!r}).") from None
    if 8 + header_size + end > len(data):
        raise CheckpointError(f"{path} is truncated: {8 + header_size + end:,} bytes expected, {len(data):,} found.")
    header = _checked_header(path, info[_METADATA_KEY], settings)
    try:
        arrays = safetensors.numpy.load(data)
    except Exception as error:  # safetensors raises its own error type for corrupt payloads
        raise CheckpointError(f"{path} is corrupt: {error}") from error
    if not restore:
        return header, arrays
    restored = {key: value.astype(np.float32) if value.dtype == np.float16 else value for key, value in arrays.items()}
    return header, restored


def _checked_header(path: Path, text: str, settings: bool = True) -> dict[str, Any]:
    """The checkpoint's JSON metadata, validated against :class:`~gtex_models.models.schemas.CheckpointHeader`."""
    try:
        header = json.loads(text)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: its metadata is not valid JSON ({error}); the file was damaged or "
                              "not written by this project. Train the model again.") from None
    version = header.get("format_version") if isinstance(header, dict) else None
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} uses checkpoint format {version}; this version reads up to {FORMAT_VERSION}. "
            "Update the project, or train the model again with this version."
        )
    try:
        return check_checkpoint_header(header, f"{path}, metadata", settings).model_dump()
    except SchemaError as error:
        raise CheckpointError(f"{error}. The checkpoint was edited, damaged or written by another program: "
                              "train the model again.") from None
