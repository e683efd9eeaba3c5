"""The value transform: raw values (TPM or a log scale) to model space and back, per gene.

Model space is ``(log2(TPM + pseudocount) - mean) / std`` per gene (``scale='log'``: the values are
already on a log scale and are only standardised), with mean and std fitted on the training donors.

Example
-------
>>> import numpy as np
>>> transform = Transform.fit(np.array([[0.0, 3.0], [1.0, 7.0]]))
>>> np.allclose(transform.inverse(transform.forward(np.array([[1.0, 3.0]]))), [[1.0, 3.0]])
True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from gtex_models.data.cohort_format import SCALES


@dataclass(frozen=True)
class Transform:
    """Per-gene map from raw values to model space and back.

    ``scale='tpm'``: raw is TPM, ``log2(raw + pseudocount)`` is taken first. ``scale='log'``: raw
    values are already on a log scale and are only standardised.
    """

    mean: np.ndarray
    std: np.ndarray
    scale: str = "tpm"
    pseudocount: float = 1.0

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"Unknown scale {self.scale!r}; use one of {SCALES}.")
        object.__setattr__(self, "mean", np.asarray(self.mean, dtype=np.float32))
        object.__setattr__(self, "std", np.asarray(self.std, dtype=np.float32))

    @classmethod
    def fit(cls, raw: np.ndarray, scale: str = "tpm", pseudocount: float = 1.0) -> "Transform":
        """Fit mean and std per gene on ``raw`` (rows: the training samples; NaN ignored)."""
        log = _to_log(np.asarray(raw, dtype=np.float32), scale, pseudocount)
        with np.errstate(all="ignore"), warnings.catch_warnings():  # all-missing genes: mean 0, std 1
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nan_to_num(np.nanmean(log, axis=0, dtype=np.float64))
            std = np.nan_to_num(np.nanstd(log, axis=0, dtype=np.float64))
        std[std < 1e-6] = 1.0  # constant genes: centre only
        return cls(mean=mean, std=std, scale=scale, pseudocount=pseudocount)

    def forward(self, raw: np.ndarray) -> np.ndarray:
        """Raw values (samples x genes) to model space, float32."""
        log = _to_log(np.asarray(raw, dtype=np.float32), self.scale, self.pseudocount)
        return ((log - self.mean) / self.std).astype(np.float32, copy=False)

    def inverse(self, x: np.ndarray) -> np.ndarray:
        """Model-space values back to the raw scale (TPM clipped at 0)."""
        log = np.asarray(x, dtype=np.float32) * self.std + self.mean
        if self.scale == "log":
            return log
        return np.maximum(np.exp2(log) - self.pseudocount, 0.0).astype(np.float32)

    def subset(self, gene_index: np.ndarray) -> "Transform":
        """The transform of a subset of genes."""
        return Transform(self.mean[gene_index], self.std[gene_index], self.scale, self.pseudocount)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (float32 values round-trip exactly)."""
        return {
            "scale": self.scale,
            "pseudocount": self.pseudocount,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Transform":
        return cls(
            mean=np.asarray(data["mean"], dtype=np.float32),
            std=np.asarray(data["std"], dtype=np.float32),
            scale=data["scale"],
            pseudocount=float(data["pseudocount"]),
        )


def _to_log(raw: np.ndarray, scale: str, pseudocount: float) -> np.ndarray:
    if scale == "log":
        return raw
    with np.errstate(invalid="ignore"):
        return np.log2(raw + np.float32(pseudocount))
