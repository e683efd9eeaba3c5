"""The one interface every imputation method answers (deep models and baselines alike)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Annotated, Any, Callable, ClassVar

import numpy as np
from annotated_types import Ge, Interval

from gtex_models.data.cohort import Cohort

# progress(fraction_done in [0, 1], message)
ProgressCallback = Callable[[float, str], None]

# Constrained types of the imputers' settings: a constructor's annotations are the schema its settings
# are validated against, in YAML configs and checkpoints (see gtex_models.models.schemas).
PositiveInt = Annotated[int, Ge(1)]
NonNegative = Annotated[float, Ge(0.0)]
Share = Annotated[float, Interval(ge=0.0, le=1.0)]
DropoutRate = Annotated[float, Interval(ge=0.0, lt=1.0)]


class Imputer(ABC):
    """Fit on a cohort, then fill the NaN entries of any cohort with the same genes.

    Missing values are NaN in ``cohort.x``: a training cohort with NaN is the in-place scenario,
    a complete one the inductive scenario. ``impute`` returns a full float32 matrix whose observed
    entries are exactly the input's.

    Example
    -------
    >>> from gtex_models.models.registry import make_imputer
    >>> imputer = make_imputer("mean").fit(train_cohort)          # doctest: +SKIP
    >>> filled = imputer.impute(masked_test_cohort)               # doctest: +SKIP
    """

    method: ClassVar[str]

    @abstractmethod
    def fit(
        self, cohort: Cohort, valid: Cohort | None = None, progress: ProgressCallback | None = None
    ) -> "Imputer":
        """Learn from ``cohort`` (``valid``: held-out donors for early stopping, if the method uses it)."""

    @abstractmethod
    def _predict(self, cohort: Cohort) -> np.ndarray:
        """A full prediction for every entry of ``cohort`` (observed entries may differ)."""

    def impute(self, cohort: Cohort) -> np.ndarray:
        """Fill the NaN entries of ``cohort.x``; observed entries are returned unchanged."""
        prediction = self._predict(cohort).astype(np.float32, copy=False)
        if np.shares_memory(prediction, cohort.x):
            prediction = prediction.copy()
        np.copyto(prediction, cohort.x, where=cohort.observed)  # in place: no second full-size copy
        return prediction

    @abstractmethod
    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays and a JSON-serialisable config that fully describe the fitted imputer."""

    @classmethod
    @abstractmethod
    def from_state(cls, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> "Imputer":
        """Rebuild a fitted imputer from :meth:`get_state`'s output (no pickle involved)."""
