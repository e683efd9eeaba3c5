"""What a sample is expected to look like before any of its own values are seen: group means and covariates.

The linear methods (:mod:`gtex_models.models.gauss`, :mod:`gtex_models.models.softimpute`) model a
sample's deviation from this expectation. Per gene (model space, observed values only):

- **group means shrunk towards the overall mean**: ``μ_g = (sum_g + τ · μ) / (n_g + τ)``, ``τ``
  pseudo-samples (``group_shrinkage``); ``τ = inf`` is the overall mean alone. On small groups (a few
  dozen samples) the shrunk or overall mean often beats raw group means, so the methods choose ``τ``
  on the validation donors.
- **covariates as regressors**: sex (male +1, female -1, unknown 0) and age (standardised, unknown 0),
  each only where the training cohort varies in it, fitted per gene by ridge regression on what the
  group means leave (two rounds of back-fitting).

Example
-------
>>> import numpy as np, pandas as pd
>>> x = np.array([[1.0], [3.0], [10.0]], dtype=np.float32)
>>> samples = pd.DataFrame({"tissue": ["a", "a", "b"], "sex": ["unknown"] * 3, "age": [np.nan] * 3})
>>> Centring.fit(x, samples, group_shrinkage=0.0).expected(samples).ravel().tolist()
[2.0, 2.0, 10.0]
>>> [round(float(v), 3) for v in Centring.fit(x, samples, group_shrinkage=np.inf).expected(samples).ravel()]
[4.667, 4.667, 4.667]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

RIDGE = 1.0  # pseudo-observations pulling each covariate coefficient towards 0
GROUP_SHRINKAGES = (0.0, 5.0, 20.0, math.inf)  # the candidates the methods choose from on validation


@dataclass(frozen=True)
class Centring:
    """Fitted expectation: shrunk group means plus covariate effects (see the module docstring).

    Attributes
    ----------
    groups : the training groups; an unseen group gets the overall mean.
    means : (groups + 1) x genes; the last row is the overall mean.
    group_shrinkage : ``τ`` (``inf``: overall mean only).
    covariates : the covariates used, a subset of ``("sex", "age")``.
    coef : covariates x genes.
    age_mean, age_std : how age was standardised.
    """

    groups: tuple[str, ...]
    means: np.ndarray
    group_shrinkage: float
    covariates: tuple[str, ...]
    coef: np.ndarray
    age_mean: float = 0.0
    age_std: float = 1.0

    @classmethod
    def fit(cls, x: np.ndarray, samples: pd.DataFrame, group_shrinkage: float = math.inf,
            use_covariates: bool = True) -> "Centring":
        """Fit on ``x`` (samples x genes, NaN missing) and its sample table (``tissue``, ``sex``, ``age``)."""
        x = np.asarray(x, dtype=np.float32)
        observed = ~np.isnan(x)
        filled = np.where(observed, x, 0.0).astype(np.float64)
        covariates: tuple[str, ...] = ()
        age_mean, age_std = 0.0, 1.0
        if use_covariates:  # the sample table needs sex and age columns only then
            ages = samples["age"].to_numpy(dtype=float)
            finite = ages[np.isfinite(ages)]
            age_mean = float(finite.mean()) if finite.size else 0.0
            age_std = float(finite.std()) if finite.size > 1 and finite.std() > 0 else 1.0
            sexes = set(samples["sex"].astype(str)) & {"male", "female"}
            covariates = (("sex",) if len(sexes) == 2 else ()) + (("age",) if len(np.unique(finite)) > 1 else ())
        base = cls((), np.zeros((1, x.shape[1]), np.float32), group_shrinkage, covariates,
                   np.zeros((len(covariates), x.shape[1]), np.float32), age_mean, age_std)
        design = base.design(samples)
        coef = np.zeros((len(covariates), x.shape[1]))
        groups, means = (), np.zeros((1, x.shape[1]))
        for _ in range(2 if covariates else 1):  # back-fitting: group means, then covariates on what is left
            groups, means = _shrunk_means(filled - design @ coef, observed, samples["tissue"], group_shrinkage)
            if covariates:
                rows = pd.Index(groups).get_indexer(samples["tissue"].astype(str))
                coef = _ridge(design, (filled - means[rows]) * observed, observed)
        return cls(groups, means.astype(np.float32), float(group_shrinkage), covariates, coef.astype(np.float32),
                   age_mean, age_std)

    def design(self, samples: pd.DataFrame) -> np.ndarray:
        """The covariate columns of each sample (samples x covariates)."""
        columns = []
        for name in self.covariates:
            if name == "sex":
                sex = samples["sex"].astype(str)
                columns.append(np.where(sex == "male", 1.0, np.where(sex == "female", -1.0, 0.0)))
            else:
                age = (samples["age"].to_numpy(dtype=float) - self.age_mean) / self.age_std
                columns.append(np.nan_to_num(age, nan=0.0))
        return np.stack(columns, axis=1) if columns else np.zeros((len(samples), 0))

    def expected(self, samples: pd.DataFrame) -> np.ndarray:
        """Each sample's expected value of every gene (samples x genes, float32)."""
        rows = pd.Index(self.groups).get_indexer(samples["tissue"].astype(str))  # -1: unseen -> overall (last)
        expected = self.means.astype(np.float32, copy=False)[rows]  # float32 throughout: GTEx width is ~0.4 GiB
        if self.covariates:
            expected += self.design(samples).astype(np.float32) @ self.coef.astype(np.float32)
        return expected

    def settings(self) -> dict[str, Any]:
        """The chosen settings as JSON: ``group_shrinkage`` (None: the overall mean) and whether covariates are used."""
        return {"group_shrinkage": None if math.isinf(self.group_shrinkage) else float(self.group_shrinkage),
                "covariates": bool(self.covariates)}

    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays and JSON config (``centring.`` prefix), for an imputer's state."""
        config = {"groups": list(self.groups), "group_shrinkage": None if math.isinf(self.group_shrinkage)
                  else self.group_shrinkage, "covariates": list(self.covariates), "age_mean": self.age_mean,
                  "age_std": self.age_std}
        return {"centring.means": self.means, "centring.coef": self.coef}, {"centring": config}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> "Centring":
        c = config["centring"]
        shrinkage = math.inf if c["group_shrinkage"] is None else float(c["group_shrinkage"])
        means = np.asarray(arrays["centring.means"], np.float32)
        coef = np.asarray(arrays["centring.coef"], np.float32).reshape(len(c["covariates"]), means.shape[1])
        return cls(tuple(c["groups"]), means, shrinkage, tuple(c["covariates"]), coef, float(c["age_mean"]),
                   float(c["age_std"]))


def centring_candidates(x: np.ndarray, samples: pd.DataFrame, group_shrinkage: float | None,
                        covariates: bool | None, choose: bool) -> list[Centring]:
    """The centrings a linear method tries: the given settings, else every candidate (``choose``) or the default.

    Candidates: ``τ`` in :data:`GROUP_SHRINKAGES` (only the overall mean for one group), covariates or not;
    without a choice (no validation donors) ``τ = 20`` with covariates. Fits that coincide (e.g. no
    covariate varies) are kept once.
    """
    shrinkages = [group_shrinkage] if group_shrinkage is not None else (list(GROUP_SHRINKAGES) if choose else [20.0])
    if samples["tissue"].nunique() == 1:
        shrinkages = [math.inf]  # one group: its mean is the overall mean
    uses = [covariates] if covariates is not None else ([True, False] if choose else [True])
    fitted = {}
    for tau in shrinkages:
        for use in uses:
            centring = Centring.fit(x, samples, float(tau), use)
            fitted[(centring.group_shrinkage, centring.covariates)] = centring  # drop duplicates
    return list(fitted.values())


def _shrunk_means(filled: np.ndarray, observed: np.ndarray, groups: pd.Series, shrinkage: float
                  ) -> tuple[tuple[str, ...], np.ndarray]:
    """Group means shrunk towards the overall mean, with the overall mean as the last row."""
    names, codes = np.unique(groups.astype(str).to_numpy(), return_inverse=True)
    onehot = np.zeros((len(names), len(codes)))
    onehot[codes, np.arange(len(codes))] = 1.0
    counts = onehot @ observed
    sums = onehot @ np.where(observed, filled, 0.0)
    total = counts.sum(axis=0)
    overall = np.divide(sums.sum(axis=0), total, out=np.zeros(filled.shape[1]), where=total > 0)
    if math.isinf(shrinkage):
        means = np.tile(overall, (len(names), 1))
    else:
        weight = counts + shrinkage
        means = np.divide(sums + shrinkage * overall, weight, out=np.tile(overall, (len(names), 1)),
                          where=weight > 0)
    return tuple(names.tolist()), np.vstack([means, overall])


def _ridge(design: np.ndarray, residual: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Per-gene ridge coefficients of ``residual`` (0 where missing) on ``design``, over the observed rows."""
    c = design.shape[1]
    gram = np.einsum("sa,sb,sj->jab", design, design, observed.astype(np.float64)) + RIDGE * np.eye(c)
    rhs = design.T @ residual  # c x genes
    return np.linalg.solve(gram, rhs.T[:, :, None])[:, :, 0].T
