"""How a cohort's values and groups are named for people: its value scale and its group word.

A GTEx cohort's values are log2(TPM + 1) and its groups are tissues; an own cohort may hold microarray
intensities and groups that are conditions or time points. The CLI and the app name both from here, so
the same files are described the same way everywhere.

Example
-------
>>> value_scale_label("log", "array")
'log2 intensity'
>>> group_word(["Whole Blood", "Liver"]), group_word(["Case", "Control"])
('tissue', 'group')
>>> count_groups(1, "group"), count_groups(49, "tissue")
('1 group', '49 tissues')
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from gtex_models.data.reference import are_gtex_tissues

MEASUREMENTS = ("rna-seq", "array")
_LABELS = {
    ("tpm", "rna-seq"): "log2(TPM + 1)",
    ("log", "rna-seq"): "log2(TPM + 1)",
    ("tpm", "array"): "log2(intensity + 1)",
    ("log", "array"): "log2 intensity",
}
ARRAY_LOG_MINIMUM = 1.0
"""Log values that never come near 0 are array intensities: log2(TPM + 1) of RNA-seq has zeros (genes not
detected), while log2 array signal stays above the background (RMA: about 2 and more)."""


def value_scale_label(scale: str, measurement: str) -> str:
    """What the cohort's values are, for axes and captions: ``log2(TPM + 1)``, ``log2 intensity``, ...

    ``scale`` is the transform's (``tpm``: a linear scale, log2(x + 1) taken; ``log``: used as it is),
    ``measurement`` one of :data:`MEASUREMENTS`.
    """
    if (scale, measurement) not in _LABELS:
        raise ValueError(f"Unknown scale {scale!r} or measurement {measurement!r}; measurements: {MEASUREMENTS}.")
    return _LABELS[scale, measurement]


def default_value_scale(scale: str) -> str:
    """The label of a cohort that does not say what it measured: log2(TPM + 1) for TPM (GTEx, simulated),
    ``log2 expression`` for values imported on a log scale."""
    return _LABELS["tpm", "rna-seq"] if scale == "tpm" else "log2 expression"


def detect_measurement(values: np.ndarray, scale: str, probes: bool, clipped: int = 0) -> tuple[str, str]:
    """``rna-seq`` or ``array``, and why: probe-set identifiers, clipped negative (MAS5) signal, or log values
    without any value near 0 (:data:`ARRAY_LOG_MINIMUM`) mean an array; anything else is read as RNA-seq."""
    if probes:
        return "array", "microarray probe-set identifiers"
    if clipped:
        return "array", "negative linear values (microarray signal)"
    if scale == "log":
        finite = np.asarray(values, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        low = float(finite.min()) if finite.size else 0.0
        if low > ARRAY_LOG_MINIMUM:
            return "array", f"log values from {low:.3g} up, without the zeros of RNA-seq log2(TPM + 1)"
    return "rna-seq", "RNA-seq expression"


def group_word(groups: Iterable[str]) -> str:
    """``tissue`` when every group is a GTEx v8 tissue (:func:`~gtex_models.data.reference.are_gtex_tissues`),
    else ``group``."""
    groups = list(groups)
    return "tissue" if groups and are_gtex_tissues(groups) else "group"


def count_groups(n: int, word: str) -> str:
    """``1 group``, ``5 groups``, ``49 tissues``."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def describe_groups(groups: Sequence[str], column: str | None, word: str) -> str:
    """One line saying which column became the groups, e.g. ``groups from column 'group': Case, Control``."""
    names = ", ".join(map(str, groups[:5])) + (f" and {len(groups) - 5:,} more" if len(groups) > 5 else "")
    if column is None:
        return f"one {word} for all samples ({names})"
    return f"{word}s from column {column!r}: {names}"
