"""Baselines: per-tissue mean, blood surrogate, KNN, MICE and MissForest.

Every baseline works in model space and starts from the per-tissue gene means of its training
cohort (:class:`TissueMeans`; KNN, MICE and MissForest: shrunk towards the overall mean as the
validation donors say, :class:`~gtex_models.models.centring.Centring`). The scikit-learn baselines
model the *residuals* from those means, so the large tissue effects never have to be learnt from scratch.

scikit-learn estimators can only be saved with pickle, which this project forbids. KNN, MICE and
MissForest therefore keep their training matrix (and its tissue and sample labels) as their state,
and :meth:`~gtex_models.models.base.Imputer.from_state` rebuilds them from it, deterministically
(fixed ``random_state``).

Example
-------
>>> from gtex_models.data.patterns import mask_cohort
>>> from gtex_models.data.masks import mcar_mask
>>> from gtex_models.data.simulate import simulate_cohort
>>> cohort = simulate_cohort(n_donors=20, n_genes=400)
>>> test = cohort.split("test")
>>> masked = mask_cohort(test, mcar_mask(test.x.shape, 0.5, 0.5, seed=0))
>>> filled = MeanImputer().fit(cohort.split("train")).impute(masked)
>>> bool(np.isnan(filled).any())
False
"""

from __future__ import annotations

import inspect
import warnings
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from gtex_models.common.progress import ProgressCallback
from gtex_models.data.cohort import Cohort
from gtex_models.data.patterns import mask_cohort
from gtex_models.data.reference import WHOLE_BLOOD
from gtex_models.models.base import Imputer, PositiveInt
from gtex_models.models.centring import Centring
from gtex_models.models.validation_probe import validation_probe

# MissForest trees: leaves of at least this many samples, a third of the neighbours tried per split
# (a few times faster than full-depth forests, at a small cost in R² on GTEx-sized data).
FOREST_MIN_SAMPLES_LEAF = 10
FOREST_MAX_FEATURES = 0.33
# The sample labels the scikit-learn baselines keep with their training matrix.
_LABELS = ["sample_id", "tissue"]
# The group shrinkages (pseudo-samples) the scikit-learn baselines choose from, on this many validation samples.
SHRINKAGE_CHOICES = (0.0, 20.0, np.inf)
SELECTION_SAMPLES = 200
SHRINKAGE_MARGIN = 0.05  # the groups' own means are left only for a validation error this much lower (a few
# validation donors are a noisy judge: on a 14-donor study with 49 tissues a shrinkage chosen by a hair
# took a 100-gene panel's KNN from 0.077 to -0.103)
SELECTION_SEED = 23


@dataclass(frozen=True)
class TissueMeans:
    """Mean of each gene in each tissue over the observed values of a training matrix.

    A gene never observed in a tissue gets its global mean (over all tissues); an unseen tissue gets
    the global means; a gene never observed at all gets 0, the model-space mean.

    Example
    -------
    >>> x = np.array([[1.0, np.nan], [3.0, 4.0], [5.0, 6.0]], dtype=np.float32)
    >>> means = TissueMeans.fit(x, ["Lung", "Lung", "Liver"])
    >>> means.expand(["Lung", "Brain"]).tolist()
    [[2.0, 4.0], [3.0, 5.0]]
    """

    tissues: tuple[str, ...]
    means: np.ndarray        # tissues x genes
    global_mean: np.ndarray  # genes

    @classmethod
    def fit(cls, x: np.ndarray, tissues: Sequence[str]) -> "TissueMeans":
        """Per-tissue and global means of ``x`` (samples x genes, NaN = missing)."""
        names, codes = np.unique(np.asarray(tissues, dtype=str), return_inverse=True)
        onehot = (codes[None, :] == np.arange(len(names))[:, None]).astype(np.float64)
        observed = ~np.isnan(x)
        counts = onehot @ observed
        sums = onehot @ np.where(observed, x, 0.0)
        total = counts.sum(axis=0)
        global_mean = np.divide(sums.sum(axis=0), total, out=np.zeros(x.shape[1]), where=total > 0)
        means = np.divide(sums, counts, out=np.tile(global_mean, (len(names), 1)), where=counts > 0)
        return cls(tuple(names.tolist()), means.astype(np.float32), global_mean.astype(np.float32))

    def expand(self, tissues: Sequence[str]) -> np.ndarray:
        """The mean of every gene for samples of the given tissues (samples x genes)."""
        index = pd.Index(self.tissues).get_indexer(np.asarray(tissues, dtype=str))
        table = np.vstack([self.means, self.global_mean[None, :]])
        return table[index]  # index -1 (unseen tissue) selects the last row: the global means

    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays and JSON config, for :meth:`Imputer.get_state`."""
        return {"tissue_means": self.means, "global_mean": self.global_mean}, {"tissues": list(self.tissues)}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> "TissueMeans":
        return cls(tuple(config["tissues"]), np.asarray(arrays["tissue_means"], dtype=np.float32),
                   np.asarray(arrays["global_mean"], dtype=np.float32))


class _Baseline(Imputer):
    """Shared plumbing: the fitted :class:`TissueMeans`."""

    def __init__(self) -> None:
        self._means: TissueMeans | None = None

    @property
    def means(self) -> TissueMeans:
        if self._means is None:
            raise RuntimeError(f"Fit the {self.method} imputer first.")
        return self._means


class MeanImputer(_Baseline):
    """Per-tissue mean of each gene over the training cohort's observed values.

    Example
    -------
    >>> from gtex_models.data.simulate import simulate_cohort
    >>> cohort = simulate_cohort(n_donors=20, n_genes=400)
    >>> imputer = MeanImputer().fit(cohort.split("train"))
    >>> imputer.impute(cohort.split("test")).shape[1]
    400
    """

    method = "mean"

    def fit(
        self, cohort: Cohort, valid: Cohort | None = None, progress: ProgressCallback | None = None
    ) -> "MeanImputer":
        self._means = TissueMeans.fit(cohort.x, cohort.samples["tissue"])
        if progress:
            progress(1.0, "tissue means computed")
        return self

    def _predict(self, cohort: Cohort) -> np.ndarray:
        return self.means.expand(cohort.samples["tissue"])

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return self.means.to_state()

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> "MeanImputer":
        imputer = cls()
        imputer._means = TissueMeans.from_state(arrays, config)
        return imputer


class BloodImputer(_Baseline):
    """Blood surrogate: the same donor's Whole Blood sample stands in for the missing tissue.

    In model space genes are standardised over all tissues, so a blood value is moved to the target
    tissue by swapping tissue means: ``x̂ = mean[target] + (blood - mean[Whole Blood])``. The donor's
    blood sample may come from the training cohort or from the cohort being imputed (several are
    averaged). Without one, or for genes missing from it, the per-tissue mean is used.

    Example
    -------
    >>> from gtex_models.data.simulate import simulate_cohort
    >>> cohort = simulate_cohort(n_donors=20, n_genes=400)
    >>> imputer = BloodImputer().fit(cohort.split("train"))
    >>> imputer.impute(cohort.split("test")).shape[1]
    400
    """

    method = "blood"

    def __init__(self) -> None:
        super().__init__()
        self._blood_x = np.zeros((0, 0), dtype=np.float32)  # training Whole Blood samples x genes
        self._blood_donors: list[str] = []

    def fit(
        self, cohort: Cohort, valid: Cohort | None = None, progress: ProgressCallback | None = None
    ) -> "BloodImputer":
        self._means = TissueMeans.fit(cohort.x, cohort.samples["tissue"])
        is_blood = (cohort.samples["tissue"] == WHOLE_BLOOD).to_numpy()
        self._blood_x = cohort.x[is_blood].copy()
        self._blood_donors = cohort.samples.loc[is_blood, "donor_id"].astype(str).tolist()
        if progress:
            progress(1.0, f"{len(self._blood_donors)} training blood samples kept")
        return self

    def _predict(self, cohort: Cohort) -> np.ndarray:
        tissues = cohort.samples["tissue"]
        base = self.means.expand(tissues)
        is_blood = (tissues == WHOLE_BLOOD).to_numpy()
        donors = self._blood_donors + cohort.samples.loc[is_blood, "donor_id"].astype(str).tolist()
        blood = np.vstack([self._blood_x, cohort.x[is_blood]])
        per_donor = pd.DataFrame(blood).groupby(np.asarray(donors, dtype=str)).mean()  # NaN skipped
        row = per_donor.index.get_indexer(cohort.samples["donor_id"].astype(str))
        table = np.vstack([per_donor.to_numpy(dtype=np.float32), np.full((1, cohort.n_genes), np.nan)])
        surrogate = base + (table[row] - self.means.expand([WHOLE_BLOOD]))  # row -1: no blood -> NaN
        return np.where(np.isnan(surrogate), base, surrogate)

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, config = self.means.to_state()
        return {**arrays, "blood_x": self._blood_x}, {**config, "blood_donors": self._blood_donors}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> "BloodImputer":
        imputer = cls()
        imputer._means = TissueMeans.from_state(arrays, config)
        imputer._blood_x = np.asarray(arrays["blood_x"], dtype=np.float32)
        imputer._blood_donors = list(config["blood_donors"])
        return imputer


class _ResidualImputer(Imputer):
    """A scikit-learn model of the residuals from the group means, rebuilt from its training matrix.

    The group means are shrunk towards the overall mean by ``τ`` pseudo-samples (``SHRINKAGE_CHOICES``),
    chosen by the method's own error on values hidden from up to ``SELECTION_SAMPLES`` validation donors (each
    its own share, 10-90 %, :func:`~gtex_models.models.validation_probe.validation_probe`):
    on small groups (a few dozen samples) their own means are noisy, and neighbours found on residuals from
    them share less than neighbours found on the values themselves. Without validation donors each group
    keeps its own mean (``τ = 0``), and so it does unless another ``τ`` lowers the validation error by
    ``SHRINKAGE_MARGIN``.
    """

    def __init__(self) -> None:
        self._x = np.zeros((0, 0), dtype=np.float32)
        self._samples = pd.DataFrame(columns=_LABELS, dtype=str)
        self._residuals = np.zeros((0, 0), dtype=np.float32)
        self._group_shrinkage = 0.0
        self._centring: Centring | None = None

    def params(self) -> dict[str, Any]:
        """The constructor's arguments (JSON-serialisable), as in scikit-learn's ``get_params``."""
        names = list(inspect.signature(type(self).__init__).parameters)[1:]
        return {name: getattr(self, name) for name in names}

    def fit(
        self, cohort: Cohort, valid: Cohort | None = None, progress: ProgressCallback | None = None
    ) -> "_ResidualImputer":
        self._x = cohort.x.copy()
        self._samples = cohort.samples[_LABELS].astype(str).reset_index(drop=True)
        self._group_shrinkage = self._choose_group_shrinkage(valid)
        self._refit()
        if progress:
            progress(1.0, f"{self.method} fitted on {len(self._x)} samples")
        return self

    def _choose_group_shrinkage(self, valid: Cohort | None) -> float:
        probe = validation_probe(valid, SELECTION_SEED, SELECTION_SAMPLES)
        if probe is None:
            return 0.0
        masked = mask_cohort(probe.cohort, ~np.isnan(probe.masked))
        errors = {}
        for tau in SHRINKAGE_CHOICES:
            self._group_shrinkage = tau
            self._refit()
            errors[tau] = probe.score(self.impute(masked))
        best = min(errors, key=errors.get)
        return best if errors[best] < (1.0 - SHRINKAGE_MARGIN) * errors[0.0] else 0.0

    def _refit(self) -> None:
        """Recompute everything derived from the training matrix (used by fit and from_state)."""
        self._centring = Centring.fit(self._x, self._samples, self._group_shrinkage, use_covariates=False)
        self._residuals = self._x - self._centring.expected(self._samples)

    def _predict(self, cohort: Cohort) -> np.ndarray:
        if self._centring is None:
            raise RuntimeError(f"Fit the {self.method} imputer first.")
        base = self._centring.expected(cohort.samples)
        return base + self._predict_residuals(cohort.x - base, cohort.samples)

    @abstractmethod
    def _predict_residuals(self, residuals: np.ndarray, samples: pd.DataFrame) -> np.ndarray:
        """Fill the NaN entries of ``residuals`` (the query's rows; ``samples`` is its sample table)."""

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        config = {"params": self.params(), **{key: self._samples[key].tolist() for key in _LABELS},
                  "group_shrinkage": None if np.isinf(self._group_shrinkage) else self._group_shrinkage}
        return {"x": self._x}, config

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> "_ResidualImputer":
        imputer = cls(**config["params"])
        imputer._x = np.asarray(arrays["x"], dtype=np.float32)
        imputer._samples = pd.DataFrame({key: config[key] for key in _LABELS}, dtype=str)
        shrinkage = config.get("group_shrinkage", 0.0)  # checkpoints from before the choice: own group means
        imputer._group_shrinkage = np.inf if shrinkage is None else float(shrinkage)
        imputer._refit()
        return imputer


class KNNImputer(_ResidualImputer):
    """k-nearest-neighbour imputation (scikit-learn ``KNNImputer``) of the residuals.

    Rows are samples and the training samples are the donors. Tissue enters through the residuals
    only: restricting neighbours to the same tissue (one-hot tissue columns) lowered R² on the demo
    cohort (0.48 against 0.65 at 50% missing), each tissue having few training samples.

    Example
    -------
    >>> from gtex_models.data.simulate import simulate_cohort
    >>> cohort = simulate_cohort(n_donors=20, n_genes=400)
    >>> imputer = KNNImputer(k=5).fit(cohort.split("train"))
    >>> imputer.impute(cohort.split("test")).shape[1]
    400
    """

    method = "knn"

    def __init__(self, k: PositiveInt = 10) -> None:
        super().__init__()
        self.k = k
        self._knn: Any = None

    def _refit(self) -> None:
        from sklearn.impute import KNNImputer as SklearnKNNImputer

        super()._refit()
        self._knn = SklearnKNNImputer(n_neighbors=self.k, keep_empty_features=True).fit(self._residuals)

    def _predict_residuals(self, residuals: np.ndarray, samples: pd.DataFrame) -> np.ndarray:
        return self._knn.transform(residuals)


class _ChainedImputer(_ResidualImputer):
    """Chained equations (scikit-learn ``IterativeImputer``) over the residuals.

    Fitted on a complete matrix, ``IterativeImputer.transform`` replays a single round of
    regressions from mean-filled neighbours, which imputes poorly. So the chained equations run at
    imputation time on the query rows stacked under the training rows (those not also in the query,
    by ``sample_id``): the training samples act as fully or partly observed context. In the in-place
    scenario, where the query is the training cohort, this is plain MICE on that cohort.
    """

    def __init__(self, max_iter: int, n_nearest_features: int | None, seed: int) -> None:
        super().__init__()
        self.max_iter = max_iter
        self.n_nearest_features = n_nearest_features
        self.seed = seed

    @abstractmethod
    def _estimator(self) -> Any:
        """The per-gene regressor."""

    def _neighbours(self, n_rows: int) -> int | None:
        """``n_nearest_features``, capped at a third of the rows' degrees of freedom left by the group means.

        With fewer residual degrees of freedom than predictors each regression is ill-posed: on 40 rows in
        15 groups x 300 genes, MICE's error was 3.2x the group means' with 30 neighbours and 0.19x with 8.
        """
        cap = max(1, (n_rows - self._samples["tissue"].nunique()) // 3)
        return cap if self.n_nearest_features is None else min(self.n_nearest_features, cap)

    def _predict_residuals(self, residuals: np.ndarray, samples: pd.DataFrame) -> np.ndarray:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.experimental import enable_iterative_imputer  # noqa: F401
        from sklearn.impute import IterativeImputer
        from threadpoolctl import threadpool_limits

        context = self._residuals[~self._samples["sample_id"].isin(samples["sample_id"].astype(str)).to_numpy()]
        stack = np.vstack([context, residuals])
        low, high = _observed_range(stack)
        imputer = IterativeImputer(
            estimator=self._estimator(), max_iter=self.max_iter, n_nearest_features=self._neighbours(len(stack)),
            keep_empty_features=True, random_state=self.seed, min_value=low, max_value=high,
        )
        # Thousands of small regressions: multi-threaded BLAS only adds overhead (often 10x).
        with threadpool_limits(limits=1), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is deliberately small
            filled = imputer.fit_transform(stack)
        return filled[len(context):]


def _observed_range(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column range of the observed (non-NaN) values; unbounded where it is empty or a single value.

    Chained imputations are clipped to it after every round: with fewer samples than genes the
    regressions are ill-posed and, unbounded, feed each other's errors until the imputed values
    diverge (R² of -1e10 on 94 samples x 1,000 genes).
    """
    observed = ~np.isnan(x)
    has_values = observed.any(axis=0)
    low = np.where(has_values, np.min(np.where(observed, x, np.inf), axis=0), -np.inf)
    high = np.where(has_values, np.max(np.where(observed, x, -np.inf), axis=0), np.inf)
    degenerate = ~(high > low)
    return np.where(degenerate, -np.inf, low), np.where(degenerate, np.inf, high)


class MICEImputer(_ChainedImputer):
    """MICE: chained Bayesian ridge regressions, each gene on its ``n_nearest_features`` neighbours.

    Example
    -------
    >>> from gtex_models.data.simulate import simulate_cohort
    >>> cohort = simulate_cohort(n_donors=20, n_genes=400)
    >>> imputer = MICEImputer(max_iter=2, n_nearest_features=10).fit(cohort.split("train"))
    >>> imputer.impute(cohort.split("test")).shape[1]
    400
    """

    method = "mice"

    def __init__(self, max_iter: PositiveInt = 5, n_nearest_features: PositiveInt | None = 30, seed: int = 0) -> None:
        super().__init__(max_iter, n_nearest_features, seed)

    def _estimator(self) -> Any:
        from sklearn.linear_model import BayesianRidge

        return BayesianRidge()


class MissForestImputer(_ChainedImputer):
    """MissForest: chained extremely randomised trees, each gene on its ``n_nearest_features`` neighbours.

    Example
    -------
    >>> from gtex_models.data.simulate import simulate_cohort
    >>> cohort = simulate_cohort(n_donors=20, n_genes=400)
    >>> imputer = MissForestImputer(n_estimators=3, max_iter=1, n_nearest_features=5)
    >>> imputer.fit(cohort.split("train")).impute(cohort.split("test")).shape[1]
    400
    """

    method = "missforest"

    def __init__(
        self, n_estimators: PositiveInt = 10, max_iter: PositiveInt = 2, n_nearest_features: PositiveInt | None = 20,
        seed: int = 0,
    ) -> None:
        super().__init__(max_iter, n_nearest_features, seed)
        self.n_estimators = n_estimators

    def _estimator(self) -> Any:
        from sklearn.ensemble import ExtraTreesRegressor

        return ExtraTreesRegressor(
            n_estimators=self.n_estimators, min_samples_leaf=FOREST_MIN_SAMPLES_LEAF,
            max_features=FOREST_MAX_FEATURES, random_state=self.seed,
        )
