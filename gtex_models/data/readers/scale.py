"""Which scale expression values are on (TPM-like linear, or log2(TPM + 1)), and the one check for
negative values, shared by ``import``, ``prepare-gtex``, ``impute`` and the app's upload.

"tpm" stands for any non-negative linear scale (TPM, FPKM, microarray intensities): the values get
``log2(x + 1)``. "log" values are used as they are (log2(TPM + 1), log2 RMA intensities...).

Example
-------
>>> import numpy as np
>>> detect_scale(np.array([[0.5, 7.0], [2.0, 11.0]]))[0]
'log'
>>> resolve_scale(np.array([[10.0, 5000.0]]), "auto")
('tpm', 'values up to 5,000, beyond a log2(TPM + 1) range')
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from gtex_models.common.choices import NEGATIVE_CHOICES, SCALE_CHOICES
from gtex_models.data.readers.errors import InputError

__all__ = ["NEGATIVE_CHOICES", "SCALE_CHOICES", "check_non_negative", "clip_negative", "detect_scale",
           "resolve_scale"]
_NEGATIVE_HINT = ("If the values are log2(TPM + 1), choose the log scale (CLI: --scale log); if they are a "
                  "linear signal whose negative values are noise below background (MAS5 microarrays), set them "
                  "to 0 (CLI: import --negatives clip).")


def _first_negative(values: np.ndarray, rows: Sequence[str] | None, columns: Sequence[str] | None) -> str:
    """Where the first negative value is, e.g. `` (first at sample 'S2', gene 'TP53'; 3 in all)``."""
    with np.errstate(invalid="ignore"):
        negative = np.asarray(values) < 0
    if rows is None or columns is None or not negative.any():
        return ""
    i, j = np.argwhere(negative)[0]
    return f" (first at sample {rows[i]!r}, gene {columns[j]!r}; {int(negative.sum()):,} in all)"


def check_non_negative(values: np.ndarray, rows: Sequence[str] | None = None,
                       columns: Sequence[str] | None = None, where: str = "") -> None:
    """Raise :class:`InputError` naming the first negative value of a samples x genes linear (TPM) matrix.

    ``rows`` and ``columns`` are the sample and gene names of ``values``; ``where`` prefixes the
    message (e.g. the file's name).
    """
    if np.nanmin(values, initial=0.0) < 0:
        raise InputError(
            f"{where}The values were declared TPM, but some are negative{_first_negative(values, rows, columns)}; "
            f"TPM cannot be negative. {_NEGATIVE_HINT}"
        )


def clip_negative(values: np.ndarray) -> tuple[np.ndarray, int]:
    """``values`` with negative entries set to 0, and how many there were."""
    with np.errstate(invalid="ignore"):
        negative = values < 0
    n = int(negative.sum())
    return (np.where(negative, np.float32(0.0), values).astype(values.dtype) if n else values), n


def detect_scale(values: np.ndarray, rows: Sequence[str] | None = None,
                 columns: Sequence[str] | None = None) -> tuple[str, str]:
    """Guess ``tpm`` or ``log`` (log2(TPM + 1)) from the values; returns the scale and the reason.

    Negative values mean log; a maximum above 50 or a heavy right tail (99th percentile more than
    8 times the median of the non-zero values) means TPM; otherwise log. ``rows`` and ``columns``
    (sample and gene names of ``values``) only make the messages point at a value.

    Raises
    ------
    InputError
        Without any observed value, or with negative values next to values above 50 (neither TPM,
        which is never negative, nor log2(TPM + 1)).
    """
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        raise InputError("The upload has no observed values at all: every cell is empty or NA.")
    low, high = float(finite.min()), float(finite.max())
    if low < 0 and high > 50:
        raise InputError(
            f"The data have negative values{_first_negative(values, rows, columns)}, down to {low:.3g}, "
            f"next to values up to {high:,.4g}: neither TPM (never negative) nor log2(TPM + 1) (rarely "
            f"above 20). Fix the negative values (TPM cannot be negative). {_NEGATIVE_HINT}"
        )
    if low < 0:
        return "log", f"negative values (minimum {low:.3g}), so not TPM"
    if high > 50:
        return "tpm", f"values up to {high:,.4g}, beyond a log2(TPM + 1) range"
    positive = finite[finite > 0]
    if positive.size and np.quantile(positive, 0.99) > 8 * np.median(positive):
        return "tpm", "a heavy right tail (99th percentile > 8 x median)"
    return "log", f"values between {low:.3g} and {high:.3g} without a heavy tail"


def resolve_scale(values: np.ndarray, scale: str = "auto", rows: Sequence[str] | None = None,
                  columns: Sequence[str] | None = None) -> tuple[str, str]:
    """``auto`` -> :func:`detect_scale`; ``tpm`` (checked: no negative value) or ``log`` are kept.

    ``rows`` and ``columns``, the sample and gene names of ``values``, let errors name the place.
    """
    if scale not in SCALE_CHOICES:
        raise InputError(f"Unknown scale {scale!r}; use one of {', '.join(SCALE_CHOICES)}.")
    if scale == "auto":
        return detect_scale(values, rows, columns)
    if scale == "tpm":
        check_non_negative(values, rows, columns)
    return scale, "chosen"
