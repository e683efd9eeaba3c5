"""The benchmark protocol shared by the CLI (``evaluate``, ``benchmark``), the README table and the app.

Inductive scenario
    Fit on the (complete) train split, with the valid split for early stopping; hide a random
    ``missing_rate`` share of each test sample's values (MCAR, ``seed``) and impute them.
In-place scenario
    Hide values in every sample (train, valid and test); fit on the masked train + test matrix (the
    masked valid split for early stopping) and impute that same matrix.

Both score the per-gene R² on the hidden entries of the test rows against the training reference (each
value's group mean over the complete training donors, :func:`~gtex_models.analysis.evaluation.reference_values`),
and both hide exactly the same test entries, so their numbers are comparable.

Example
-------
>>> from gtex_models.data.simulate import simulate_cohort
>>> cohort = simulate_cohort(n_donors=20, n_genes=400)
>>> records = run_benchmark(cohort, ["mean", "oracle"], scenario="inductive", missing_rate=0.5)
>>> [record["method"] for record in records]
['mean', 'oracle']
>>> print(to_markdown(records).splitlines()[0])
| Method | Scenario | Pattern | Missing rate | R² mean | R² median | R² SD | Genes | Test samples | Fit (s) | Impute (s) |
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Sequence

import numpy as np
import pandas as pd

from gtex_models.analysis.evaluation import (
    extended_test_indices,
    r2_across_missing_rates,
    r2_per_gene,
    r2_per_tissue,
    reference_values,
    summarize,
)
from gtex_models.common.choices import SCENARIOS
from gtex_models.common.messages import describe_unknown_tissues
from gtex_models.common.progress import ProgressCallback
from gtex_models.data.cohort import Cohort
from gtex_models.data.patterns import Pattern, mask_cohort
from gtex_models.data.provenance import DonorSet
from gtex_models.models.base import Imputer
from gtex_models.models.calibration import (
    Calibration,
    calibrate_held_out,
    calibrate_in_place,
    check_unseen,
    interval_scores,
)
from gtex_models.models.registry import default_settings, make_imputer

RECORD_KEYS = (
    "method", "scenario", "pattern", "missing_rate", "r2_mean", "r2_median", "r2_std", "n_genes", "n_test_samples",
    "fit_seconds", "impute_seconds",
)
INTERVAL_KEYS = ("interval_level", "coverage", "coverage_min_group", "width_median", "coverage_per_group")
"""What ``interval`` adds to a record: the level, the empirical coverage of the hidden test values (pooled and
the lowest group's), their intervals' median width (log2 units) and the coverage per group (JSON only)."""
DEFAULT_RATES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
_HEADERS = {
    "method": "Method", "scenario": "Scenario", "pattern": "Pattern", "missing_rate": "Missing rate", "r2_mean": "R² mean",
    "r2_median": "R² median", "r2_std": "R² SD", "n_genes": "Genes", "n_test_samples": "Test samples",
    "fit_seconds": "Fit (s)", "impute_seconds": "Impute (s)", "interval_level": "Interval level",
    "coverage": "Coverage", "coverage_min_group": "Coverage, lowest group", "width_median": "Median width (log2)",
}
_FORMATS = {"missing_rate": "{:.2f}", "r2_mean": "{:.3f}", "r2_median": "{:.3f}", "r2_std": "{:.3f}",
            "fit_seconds": "{:.1f}", "impute_seconds": "{:.1f}", "interval_level": "{:.2f}", "coverage": "{:.3f}",
            "coverage_min_group": "{:.3f}", "width_median": "{:.3f}"}


def run_benchmark(
    cohort: Cohort,
    methods: Sequence[str],
    scenario: str = "inductive",
    missing_rate: float = 0.5,
    pathway: str | None = None,
    seed: int = 0,
    configs: dict[str, dict[str, Any]] | None = None,
    progress: ProgressCallback | None = None,
    patterns: Sequence[Pattern] | None = None,
    interval: float | None = None,
) -> list[dict[str, Any]]:
    """Fit and score each method under one scenario; one record (keys :data:`RECORD_KEYS`) per method and pattern.

    Parameters
    ----------
    cohort : a complete cohort with train, valid and test splits.
    methods : registry names (see :data:`gtex_models.models.registry.METHODS`).
    scenario : ``"inductive"`` or ``"inplace"`` (see the module docstring).
    missing_rate : share of each sample's values hidden.
    pathway : restrict the genes to a named pathway (``alzheimer``, ``p53``) first.
    seed : seed of the masks.
    configs : constructor arguments per method, e.g. ``{"knn": {"k": 5}}``; a method without one
        gets :func:`~gtex_models.models.registry.default_settings` for the cohort's size.
    progress : ``progress(fraction, message)``, called as the methods fit.
    patterns : missingness patterns of the hidden test values (:mod:`gtex_models.data.patterns`); default MCAR at
        ``missing_rate``. Inductive: each method is fitted once and scored under every pattern; in place
        the pattern also makes the training matrix's gaps, so each pattern is a new fit.
    interval : a level (0.5-0.99): each fitted method is also calibrated (:func:`calibrate_scenario`) and
        its intervals scored (:data:`INTERVAL_KEYS`); a calibration fitted on a scored donor is refused
        (:class:`~gtex_models.data.provenance.DonorLeakError`).
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"Unknown scenario {scenario!r}; use one of {SCENARIOS}.")
    if pathway is not None:
        cohort = cohort.pathway(pathway)
    require_complete(cohort)
    cohort = known_groups_only(cohort, cohort.split("train").tissues, "have no training donors")  # warned once
    configs = configs or {}
    imputers = [make_imputer(method, **configs.get(method, default_settings(method, cohort.n_samples, cohort.n_genes,
                                                                          scenario)))
                for method in methods]  # fail fast
    patterns = list(patterns or [Pattern("mcar", missing_rate)])
    records = []
    for i, (method, imputer) in enumerate(zip(methods, imputers)):
        step = None if progress is None else _scaled(progress, i / len(methods), 1 / len(methods), method)
        fit_seconds, calibration = None, None
        for pattern in patterns:
            data = scenario_data(cohort, scenario, missing_rate, seed, pattern)
            if fit_seconds is None or scenario == "inplace":
                start = perf_counter()
                imputer.fit(data.fit, valid=data.valid, progress=step)
                fit_seconds = perf_counter() - start
                calibration = None if interval is None else calibrate_scenario(imputer, data, cohort, seed)
            records.append(_ordered({**score_fitted(imputer, data, calibration, interval), "fit_seconds": fit_seconds,
                                     "method": method}))
    if progress:
        progress(1.0, "benchmark done")
    return records


def fit_and_score(
    imputer: Imputer,
    cohort: Cohort,
    scenario: str = "inductive",
    missing_rate: float = 0.5,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    pattern: Pattern | None = None,
    interval: float | None = None,
) -> dict[str, Any]:
    """Fit ``imputer`` on ``cohort`` under one scenario and score it: one record (:data:`RECORD_KEYS`).

    The two steps are public: :func:`scenario_data` (what the imputer is fitted on) and
    :func:`score_fitted` (how a fitted imputer is scored). With ``interval`` (a level), the fitted
    imputer is calibrated on the cohort's validation donors and its intervals scored (:data:`INTERVAL_KEYS`).
    """
    data = scenario_data(cohort, scenario, missing_rate, seed, pattern)
    start = perf_counter()
    imputer.fit(data.fit, valid=data.valid, progress=progress)
    fit_seconds = perf_counter() - start
    calibration = None if interval is None else calibrate_scenario(imputer, data, cohort, seed)
    return _ordered({**score_fitted(imputer, data, calibration, interval), "fit_seconds": fit_seconds})


@dataclass(frozen=True)
class ScenarioData:
    """A cohort laid out for one scenario of the protocol (see the module docstring).

    Attributes
    ----------
    scenario, missing_rate, seed : the protocol's settings.
    pattern : the missingness pattern of the hidden values (:mod:`gtex_models.data.patterns`).
    fit : what the imputer is fitted on (inductive: the complete train split; in place: the masked
        train + test pool).
    valid : the validation donors for early stopping (masked in place); None when the cohort has none.
    test : the complete test donors (inductive) or the complete pool (in place).
    observed : in place, the pool's observed-mask; None for inductive (drawn when scoring).
    is_test : in place, which rows of the pool are test donors; None for inductive.
    """

    scenario: str
    missing_rate: float
    seed: int
    fit: Cohort
    valid: Cohort | None
    test: Cohort
    observed: np.ndarray | None = None
    is_test: np.ndarray | None = None
    pattern: Pattern = Pattern()

    @property
    def test_donors(self) -> Cohort:
        """The complete test donors (in place: the test rows of the pool)."""
        return self.test if self.is_test is None else self.test.subset_samples(self.is_test)

    @property
    def donors(self) -> dict[str, DonorSet]:
        """The donors of each role: ``fit`` (fitted on; in place the pool, test rows included), ``valid`` (early
        stopping; absent without) and ``test`` (scored)."""
        roles = {"fit": self.fit, "valid": self.valid, "test": self.test_donors}
        return {role: DonorSet.of_cohort(part) for role, part in roles.items() if part is not None}

    @property
    def train_donors(self) -> Cohort:
        """The complete training donors (in place: the other rows of the pool, before masking), whose group
        means are R²'s reference."""
        return self.fit if self.is_test is None else self.test.subset_samples(~self.is_test)


def scenario_data(cohort: Cohort, scenario: str = "inductive", missing_rate: float = 0.5,
                  seed: int = 0, pattern: Pattern | None = None) -> ScenarioData:
    """Split and mask a complete cohort for ``scenario``: the data an imputer is fitted and scored on.

    ``pattern`` (default: MCAR at ``missing_rate``) hides the test values; in place it also makes the
    pool's gaps (a panel is refused there: the other genes would never be observed in training).

    Validation and test samples of a tissue (group) without training samples are left out, with a
    warning: no model can learn such a group, and every method is scored on the same entries.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"Unknown scenario {scenario!r}; use one of {SCENARIOS}.")
    require_complete(cohort)
    cohort.require_trainable()
    cohort = known_groups_only(cohort, cohort.split("train").tissues, "have no training donors")
    for split in ("train", "test"):
        if not (cohort.samples["split"] == split).any():
            raise ValueError(f"The cohort has no {split} donors ({cohort.n_donors} donor(s) in all); the protocol "
                             "needs train, valid and test donors. Use a cohort with more donors.")
    pattern = pattern or Pattern("mcar", missing_rate)
    pattern.check_genes(cohort.n_genes)
    missing_rate = pattern.missing_share(cohort.n_genes)
    valid = cohort.split("valid") if (cohort.samples["split"] == "valid").any() else None
    if scenario == "inductive":
        return ScenarioData(scenario, missing_rate, seed, cohort.split("train"), valid, cohort.split("test"),
                            pattern=pattern)
    if pattern.name == "panel":
        raise ValueError("The panel pattern needs the inductive scenario: in place, the genes outside the panel "
                         "would be missing in every training sample. Use --scenario inductive.")
    split = cohort.samples["split"].to_numpy()
    pool = cohort.subset_samples(np.flatnonzero(split != "valid"))
    is_test = split[split != "valid"] == "test"
    observed = np.empty(pool.x.shape, dtype=bool)
    observed[is_test] = pattern.observed(pool.subset_samples(is_test), seed)
    observed[~is_test] = pattern.observed(pool.subset_samples(~is_test), seed + 1)
    masked_valid = None if valid is None else mask_cohort(valid, pattern.observed(valid, seed + 2))
    return ScenarioData(scenario, missing_rate, seed, mask_cohort(pool, observed), masked_valid, pool,
                        observed, is_test, pattern)


def calibrate_scenario(imputer: Imputer, data: ScenarioData, cohort: Cohort, seed: int = 0) -> Calibration:
    """The interval calibration of an imputer fitted on ``data`` (from complete ``cohort``).

    Inductive: the validation donors, masked at rates over 0.05-0.95 (:func:`~gtex_models.models.calibration.calibrate_held_out`).
    In place: the pool's training donors' hidden values, imputed in place like the scored ones
    (:func:`~gtex_models.models.calibration.calibrate_in_place`); the model never saw them, and no test donor is used.
    """
    if data.scenario == "inplace":
        assert data.is_test is not None
        return calibrate_in_place(imputer, data.fit, data.test, np.flatnonzero(~data.is_test), seed)
    complete = known_groups_only(cohort, cohort.split("train").tissues, "have no training donors")
    return calibrate_held_out(imputer, complete, getattr(imputer, "tissues", None), seed)


def known_groups_only(cohort: Cohort, groups: Sequence[str], why: str = "are unknown to the model") -> Cohort:
    """The samples of ``cohort`` whose tissue (group) is in ``groups``; a warning names the others.

    A model cannot impute a group it never saw, so the others are left out of a score; when no sample
    is left, ``ValueError`` names the unknown groups (with the closest known names).
    """
    known = cohort.samples["tissue"].isin(list(groups)).to_numpy()
    if known.all():
        return cohort
    left_out = cohort.samples.loc[~known, "tissue"].value_counts()
    if not known.any():
        unknown = describe_unknown_tissues(list(left_out.index), sorted(groups))
        raise ValueError(f"None of the {cohort.n_samples} sample(s) can be scored: their groups {why} ({unknown}); "
                         f"{len(groups)} group(s) are known.")
    described = ", ".join(f"{name!r} ({n})" for name, n in left_out.head(5).items())
    more = f" and {len(left_out) - 5} more" if len(left_out) > 5 else ""
    warnings.warn(f"{int((~known).sum())} sample(s) of {len(left_out)} group(s) that {why} are left out of the "
                  f"evaluation: {described}{more}.", stacklevel=2)
    return cohort.subset_samples(np.flatnonzero(known))


def score_fitted(imputer: Imputer, data: ScenarioData, calibration: Calibration | None = None,
                 interval: float | None = None) -> dict[str, Any]:
    """Score an imputer fitted on ``data.fit``: a record with :data:`RECORD_KEYS` but ``fit_seconds``
    (and :data:`INTERVAL_KEYS` given a ``calibration`` and an ``interval`` level).

    Inductive: hide ``missing_rate`` of each test sample's values and impute them. In place: impute
    the masked pool and score its test rows.
    """
    if data.scenario == "inductive":
        record = evaluate_imputer(imputer, data.test, data.missing_rate, data.seed, data.pattern, calibration, interval,
                                  train=data.train_donors)
    else:
        assert data.observed is not None and data.is_test is not None
        start = perf_counter()
        imputed = imputer.impute(data.fit)
        impute_seconds = perf_counter() - start
        rows = data.is_test
        test = data.test_donors
        record = {"missing_rate": data.missing_rate, "pattern": data.pattern.label(),
                  **_score(test.x, imputed[rows], data.observed[rows], reference_values(test, data.train_donors)),
                  "impute_seconds": impute_seconds,
                  **_interval_scores(imputer, calibration, interval, test,
                                     data.fit.subset_samples(rows), imputed[rows])}
    return _ordered({**record, "method": imputer.method, "scenario": data.scenario})


def evaluate_imputer(
    imputer: Imputer, cohort_test: Cohort, missing_rate: float = 0.5, seed: int = 0,
    pattern: Pattern | None = None, calibration: Calibration | None = None, interval: float | None = None,
    *, train: Cohort | None,
) -> dict[str, Any]:
    """Score a fitted imputer on a complete test cohort: a record with :data:`RECORD_KEYS` but ``fit_seconds``.

    Values are hidden under ``pattern`` (default: MCAR, a ``missing_rate`` share of each sample's values;
    ``seed``) and imputed; R² is scored per gene on the hidden entries, against each value's group mean over
    the complete training donors ``train`` (None: the overall training mean, 0 in model space; see
    :func:`~gtex_models.analysis.evaluation.reference_values`). Given a ``calibration`` and an
    ``interval`` level, the intervals of the hidden values are scored too (:data:`INTERVAL_KEYS`): refused
    (:class:`~gtex_models.data.provenance.DonorLeakError`) if the calibration was fitted on any test donor, with
    a warning if it predates donor records.

    Example
    -------
    >>> from gtex_models.models.registry import default_settings, make_imputer
    >>> from gtex_models.data.simulate import simulate_cohort
    >>> cohort = simulate_cohort(n_donors=20, n_genes=400)
    >>> imputer = make_imputer("mean").fit(cohort.split("train"))
    >>> evaluate_imputer(imputer, cohort.split("test"), train=cohort.split("train"))["n_genes"]
    400
    """
    require_complete(cohort_test)
    pattern = pattern or Pattern("mcar", missing_rate)
    observed, imputed, seconds = _mask_and_impute(imputer, cohort_test, pattern, seed)
    scores = _score(cohort_test.x, imputed, observed, reference_values(cohort_test, train))
    intervals = _interval_scores(imputer, calibration, interval, cohort_test, mask_cohort(cohort_test, observed),
                                 imputed)
    return _ordered({"method": imputer.method, "scenario": "inductive", "pattern": pattern.label(),
                     "missing_rate": pattern.missing_share(cohort_test.n_genes), **scores, "impute_seconds": seconds,
                     **intervals})


def evaluation_tables(
    imputer: Imputer,
    cohort: Cohort,
    rates: Sequence[float] = DEFAULT_RATES,
    n_per_tissue: int = 50,
    seed: int = 0,
    missing_rate: float = 0.5,
    *,
    train: Cohort | None,
) -> dict[str, pd.DataFrame]:
    """The tables the app shows for a fitted imputer and a complete test cohort; R² against each value's group
    mean over the complete training donors ``train`` (see :func:`evaluate_imputer`).

    Returns
    -------
    per_gene : ``gene``, ``r2`` on ``cohort`` at ``missing_rate``.
    per_tissue : ``tissue``, ``gene``, ``r2`` on the extended test set (``n_per_tissue`` samples of
        every tissue, see :func:`~gtex_models.analysis.evaluation.extended_test_indices`) at ``missing_rate``.
    across_rates : ``missing_rate``, ``tissue``, ``r2_mean``, ``r2_std``, ``n_genes`` on the extended
        test set at each of ``rates``.
    Genes whose R² is undefined are left out.

    Example
    -------
    >>> from gtex_models.models.registry import default_settings, make_imputer
    >>> from gtex_models.data.simulate import simulate_cohort
    >>> cohort = simulate_cohort(n_donors=20, n_genes=400)
    >>> imputer = make_imputer("mean").fit(cohort.split("train"))
    >>> tables = evaluation_tables(imputer, cohort.split("test"), rates=(0.2, 0.8), n_per_tissue=5,
    ...                            train=cohort.split("train"))
    >>> sorted(tables)
    ['across_rates', 'per_gene', 'per_tissue']
    """
    require_complete(cohort)
    symbols = cohort.genes["symbol"].tolist()
    pattern = Pattern("mcar", missing_rate)
    observed, imputed, _ = _mask_and_impute(imputer, cohort, pattern, seed)
    per_gene = pd.DataFrame({"gene": symbols,
                             "r2": r2_per_gene(cohort.x, imputed, observed, reference_values(cohort, train))})
    extended = cohort.subset_samples(extended_test_indices(cohort.samples["tissue"], n_per_tissue, seed))
    reference = reference_values(extended, train)
    observed, imputed, _ = _mask_and_impute(imputer, extended, pattern, seed)
    return {
        "per_gene": per_gene.dropna().reset_index(drop=True),
        "per_tissue": r2_per_tissue(extended.x, imputed, observed, extended.samples["tissue"], symbols, reference),
        "across_rates": r2_across_missing_rates(imputer.impute, extended, rates, seed, reference=reference),
    }


def to_markdown(records: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of benchmark records (columns: :data:`RECORD_KEYS` and :data:`INTERVAL_KEYS` present
    in the records, but the per-group coverage)."""
    keys = [key for key in RECORD_KEYS + INTERVAL_KEYS[:-1] if any(key in record for record in records)]
    lines = ["| " + " | ".join(_HEADERS[key] for key in keys) + " |", "|" + "---|" * len(keys)]
    for record in records:
        cells = [_FORMATS.get(key, "{}").format(record[key]) if key in record else "" for key in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- protocol steps
def _mask_and_impute(
    imputer: Imputer, cohort: Cohort, pattern: Pattern, seed: int
) -> tuple[np.ndarray, np.ndarray, float]:
    observed = pattern.observed(cohort, seed)
    start = perf_counter()
    imputed = imputer.impute(mask_cohort(cohort, observed))
    return observed, imputed, perf_counter() - start


def _score(x_true: np.ndarray, imputed: np.ndarray, observed: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    summary = summarize(r2_per_gene(x_true, imputed, observed, reference))
    if summary["n_genes"] == 0:
        raise ValueError(
            f"R² could not be computed for any gene: it needs, per gene, hidden test values that differ from their "
            f"training mean, and the {len(x_true)} test sample(s) with {int((~observed).sum())} hidden value(s) "
            "give none. Use a cohort with more test donors (or a higher missing rate).")
    return {**summary, "n_test_samples": int(len(x_true))}


def _interval_scores(imputer: Imputer, calibration: Calibration | None, level: float | None, truth: Cohort,
                     masked: Cohort, imputed: np.ndarray) -> dict[str, Any]:
    """:data:`INTERVAL_KEYS` of the hidden values of ``masked`` (empty without a calibration and a level);
    :class:`~gtex_models.data.provenance.DonorLeakError` if the calibration was fitted on any of ``truth``'s donors."""
    if calibration is None or level is None:
        return {}
    note = check_unseen(calibration, truth, "the test donors scored")
    if note:
        warnings.warn(note, stacklevel=3)
    lower, upper = calibration.interval(imputer, masked, imputed, level)
    return {"interval_level": float(level),
            **interval_scores(truth.x, lower, upper, masked.observed, truth.samples["tissue"], truth.transform.std)}


def _ordered(values: dict[str, Any]) -> dict[str, Any]:
    return {key: values[key] for key in RECORD_KEYS + INTERVAL_KEYS if key in values}


def _scaled(progress: ProgressCallback, start: float, width: float, label: str) -> ProgressCallback:
    return lambda fraction, message: progress(start + width * fraction, f"{label}: {message}")


def require_complete(cohort: Cohort) -> None:
    """Raise ``ValueError`` when ``cohort`` has missing values: R² is scored on values hidden on purpose."""
    missing = np.isnan(cohort.x)
    if missing.any():
        genes = cohort.genes["symbol"][missing.any(axis=0)].tolist()
        raise ValueError(
            f"Evaluation needs a complete cohort (R² is scored on values hidden on purpose), but "
            f"{int(missing.sum())} values are already missing, in {len(genes)} gene(s) such as "
            f"{', '.join(genes[:3])}. Impute them first, or leave those genes or samples out of the matrix."
        )
