"""Sample covariates: parsing sex and age from files, and encoding them for the networks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd

from gtex_models.common.messages import describe_unknown_tissues

SEXES = ("female", "male", "unknown")
_SEX_CODES = {"1": "male", "2": "female", "m": "male", "male": "male", "f": "female", "female": "female"}
_AGE_BRACKET = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def parse_sex(values: Iterable[Any]) -> list[str]:
    """Map GTEx codes (1 = male, 2 = female) and words (M/F, male/female) to female/male/unknown."""
    out = []
    for value in values:
        key = str(value).strip().lower()
        if key.endswith(".0"):
            key = key[:-2]
        out.append(_SEX_CODES.get(key, "unknown"))
    return out


def parse_age(values: Iterable[Any]) -> np.ndarray:
    """Age in years as float; a GTEx decade bracket "60-69" becomes its centre, 65.

    We keep age numeric (the bracket's centre) rather than categorical so that a model can use
    exact ages from other cohorts too; unknown or unparsable ages become NaN.
    """
    out = []
    for value in values:
        text = str(value).strip()
        match = _AGE_BRACKET.match(text)
        if match:
            low, high = int(match.group(1)), int(match.group(2))
            out.append((low + high + 1) / 2.0)
            continue
        try:
            age = float(text)
        except ValueError:
            age = float("nan")
        out.append(age if np.isfinite(age) and 0 <= age < 150 else float("nan"))
    return np.asarray(out, dtype=np.float64)


class UnknownTissueError(ValueError):
    """A sample's tissue is not in the model's vocabulary."""


@dataclass(frozen=True)
class CovariateEncoder:
    """Turns the sample table into network inputs: tissue index, sex index, standardised age."""

    tissues: tuple[str, ...]
    age_mean: float = 50.0
    age_std: float = 15.0

    @classmethod
    def fit(cls, samples: pd.DataFrame) -> "CovariateEncoder":
        ages = samples["age"].to_numpy(dtype=float)
        finite = ages[np.isfinite(ages)]
        mean = float(finite.mean()) if finite.size else 50.0
        std = float(finite.std()) if finite.size > 1 and finite.std() > 0 else 15.0
        return cls(tuple(sorted(samples["tissue"].unique().tolist())), mean, std)

    @property
    def n_tissues(self) -> int:
        return len(self.tissues)

    def tissue_index(self, tissues: Iterable[str]) -> np.ndarray:
        """Index of each tissue in the vocabulary; unknown names raise with suggestions."""
        lookup = {t: i for i, t in enumerate(self.tissues)}
        index = []
        for tissue in tissues:
            if tissue not in lookup:
                raise UnknownTissueError(
                    f"Unknown tissue {describe_unknown_tissues([tissue], self.tissues)}: the model knows "
                    f"{len(self.tissues)} tissues."
                )
            index.append(lookup[tissue])
        return np.asarray(index, dtype=np.int64)

    def encode(self, samples: pd.DataFrame) -> dict[str, np.ndarray]:
        """``tissue`` (int64), ``sex`` (int64 into :data:`SEXES`), ``age`` (float32, 0 if unknown)."""
        sex_lookup = {s: i for i, s in enumerate(SEXES)}
        sex = np.asarray([sex_lookup.get(s, sex_lookup["unknown"]) for s in samples["sex"]], dtype=np.int64)
        age = (samples["age"].to_numpy(dtype=float) - self.age_mean) / self.age_std
        age = np.nan_to_num(age, nan=0.0).astype(np.float32)
        return {"tissue": self.tissue_index(samples["tissue"]), "sex": sex, "age": age}

    def to_dict(self) -> dict[str, Any]:
        return {"tissues": list(self.tissues), "age_mean": self.age_mean, "age_std": self.age_std}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CovariateEncoder":
        return cls(tuple(data["tissues"]), float(data["age_mean"]), float(data["age_std"]))
