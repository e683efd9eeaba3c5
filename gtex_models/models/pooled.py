"""Imputing samples of a group the model never saw: the mean of their imputations under each group it knows.

A model learns one embedding (or one set of means) per group of its training cohort, so it cannot impute a
sample of any other group as such. :class:`PooledGroups` imputes such a sample once as if it were of each of
the model's groups and averages: an explicit, reported fallback (CLI: ``impute --unknown-groups pooled``),
never a silent guess. Samples of known groups are imputed as usual.

Example
-------
>>> pooled = PooledGroups(imputer, imputer.tissues)            # doctest: +SKIP
>>> filled = pooled.impute(upload_with_a_new_group)           # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from gtex_models.data.cohort import Cohort
from gtex_models.models.base import Imputer


class PooledGroups(Imputer):
    """A fitted imputer whose samples of unknown groups get the mean of their imputations under each of ``groups``.

    Attributes the wrapper lacks (``tissues``, ``genes``, ``conditional_sd``, ...) are the wrapped imputer's, but
    its noise draws (``impute_samples``): they are not pooled. It is for imputation only: neither fitted nor saved.
    """

    def __init__(self, imputer: Imputer, groups: Sequence[str]) -> None:
        if not groups:
            raise ValueError("Pooling over the model's groups needs at least one group.")
        self.imputer = imputer
        self.groups = tuple(groups)

    @property
    def method(self) -> str:  # type: ignore[override]
        return self.imputer.method

    def __getattr__(self, name: str) -> Any:
        if name in ("imputer", "groups", "impute_samples"):  # the first two unset yet (copying): no recursion
            raise AttributeError(name)
        return getattr(self.imputer, name)

    def unknown(self, cohort: Cohort) -> np.ndarray:
        """Which samples of ``cohort`` are of a group the model does not know."""
        return ~cohort.samples["tissue"].astype(str).isin(self.groups).to_numpy()

    def fit(self, cohort: Cohort, valid: Cohort | None = None, progress: Any = None) -> "PooledGroups":
        raise TypeError("PooledGroups wraps a fitted imputer for imputation; fit the wrapped imputer instead.")

    def _predict(self, cohort: Cohort) -> np.ndarray:
        unknown = self.unknown(cohort)
        if not unknown.any():
            return self.imputer.impute(cohort)
        out = np.empty(cohort.x.shape, dtype=np.float32)
        if (~unknown).any():
            out[~unknown] = self.imputer.impute(cohort.subset_samples(~unknown))
        part = cohort.subset_samples(unknown)
        total = np.zeros(part.x.shape, dtype=np.float64)
        for group in self.groups:
            as_group = Cohort(part.x, part.genes, part.samples.assign(tissue=group), part.transform, part.meta)
            total += self.imputer.impute(as_group)
        out[unknown] = total / len(self.groups)
        return out

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        raise TypeError("PooledGroups is not saved: save the wrapped imputer.")

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> "PooledGroups":
        raise TypeError("PooledGroups is not saved: load the wrapped imputer.")
