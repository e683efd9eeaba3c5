"""Cross-tissue imputation per donor: a donor's tissue (group) predicted from the other tissues they gave.

The protocol (:func:`run_cross_tissue`; CLI ``benchmark --task cross-tissue``):

1. **Donors, not samples, are split** (the cohort's train / valid / test split). Every method is fitted on
   the training donors (the validation donors choose its settings); a donor in two splits is refused, and no
   test donor ever reaches a fit (:func:`check_disjoint_donors`).
2. **Targets**: every sample of a test donor who gave at least two is a target in turn: all its values are
   hidden and predicted from the donor's other samples (its *sources*) and covariates, in rounds of one
   target per donor (:mod:`gtex_models.data.donor_targets`).
3. **Scores** per target tissue: per-gene R² over the tissue's test targets against the product's reference,
   the gene's mean over the training donors of that tissue (:func:`~gtex_models.analysis.evaluation.reference_values`:
   the tissue mean scores exactly 0, and a few test donors' own mean, which the paper's R² would use, never
   moves the score), for tissues with at least :data:`MIN_TARGET_DONORS` test donors; a method's summary
   is the mean over target tissues and the share of tissues where it beats both baselines (tissue mean,
   blood surrogate).
4. **Against the number of source tissues**: each target predicted from ``k`` of its donor's other samples
   chosen at random (:data:`SOURCE_COUNTS`), R² pooled over tissues (same reference).
5. **Intervals** (``interval``): each method calibrated on the validation donors' own leave-one-out targets
   (:func:`calibrate_cross_tissue`: split-conformal, Mondrian by target tissue and gene bin, as the per-sample
   intervals), then scored on the test targets.

Example
-------
>>> from gtex_models.data.simulate import simulate_cohort
>>> result = run_cross_tissue(simulate_cohort(n_donors=40, n_genes=400), ["mean", "blood"])
>>> [record["method"] for record in result.records]
['mean', 'blood']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, Sequence

import numpy as np
import pandas as pd

from gtex_models.analysis.benchmark import require_complete
from gtex_models.analysis.evaluation import r2_per_gene, r2_per_group, reference_values, summarize
from gtex_models.common.progress import ProgressCallback
from gtex_models.data.cohort import Cohort
from gtex_models.data.donor_targets import donor_rows, hide_samples, rounds_with_sources
from gtex_models.models.base import Imputer
from gtex_models.models.calibration import (
    Calibration,
    CalibrationError,
    Probe,
    calibration_from_residuals,
    value_unit,
)
from gtex_models.models.registry import make_imputer

BASELINES = ("mean", "blood")
"""The methods every other one must beat in a tissue to win it: tissue (group) mean and blood surrogate."""
DONOR_METHODS = ("donor-gauss", "donor-net")
DEFAULT_METHODS = (*BASELINES, *DONOR_METHODS)
MIN_TARGET_DONORS = 3  # test donors a target tissue needs to be scored
SOURCE_COUNTS = (1, 2, 4, 8, 16)
TASK = "cross-tissue"


# ----------------------------------------------------------------------------------- the data
@dataclass(frozen=True)
class CrossTissueData:
    """A complete cohort laid out for the protocol: ``fit`` (training donors), ``valid`` (validation donors,
    None without), ``test`` (test donors)."""

    fit: Cohort
    valid: Cohort | None
    test: Cohort


def check_disjoint_donors(fitted: Cohort, scored: Cohort) -> None:
    """Raise ``ValueError`` when a donor of ``scored`` is also in ``fitted``: its other samples would leak."""
    shared = sorted(set(fitted.samples["donor_id"].astype(str)) & set(scored.samples["donor_id"].astype(str)))
    if shared:
        raise ValueError(f"{len(shared)} donor(s) are both in the training and the scored donors (e.g. "
                         f"{', '.join(map(repr, shared[:3]))}): their own samples would be used to predict "
                         "them. Split the cohort by donor (every donor's samples in one split).")


def cross_tissue_data(cohort: Cohort) -> CrossTissueData:
    """Split a complete cohort by donor for the protocol; refuse donors in two splits, and cohorts where no
    test donor gave two samples (nothing to predict from)."""
    require_complete(cohort)
    cohort.require_trainable()  # refuses donors in several splits, too
    data = CrossTissueData(cohort.split("train"),
                           cohort.split("valid") if (cohort.samples["split"] == "valid").any() else None,
                           cohort.split("test"))
    check_disjoint_donors(data.fit, data.test)
    if not any(len(rows) >= 2 for rows in donor_rows(data.test.samples["donor_id"]).values()):
        raise ValueError(f"No test donor has two or more samples ({data.test.n_samples} test sample(s) of "
                         f"{data.test.n_donors} donor(s)): cross-tissue imputation predicts a donor's sample from "
                         "the donor's other samples. It needs a donor column with several groups per donor.")
    return data


def has_donors(cohort: Cohort) -> bool:
    """Whether any donor gave samples in two or more groups (tissues): cross-tissue imputation needs them."""
    groups = cohort.samples.groupby(cohort.samples["donor_id"].astype(str))["tissue"].nunique()
    return bool((groups >= 2).any())


# ----------------------------------------------------------------------------------- predicting
@dataclass(frozen=True)
class TargetPredictions:
    """Predictions of hidden targets: ``mean`` (rows x genes, NaN on rows that were no target), ``unit`` (the
    method's own conditional SD of each value where it has one, else 1; for intervals) and ``seconds``."""

    mean: np.ndarray
    unit: np.ndarray
    seconds: float

    @property
    def targets(self) -> np.ndarray:
        return ~np.isnan(self.mean[:, 0]) if self.mean.shape[1] else np.zeros(len(self.mean), dtype=bool)


def predict_targets(imputer: Imputer, cohort: Cohort, n_sources: int | None = None, seed: int = 0
                    ) -> TargetPredictions:
    """Hide each target sample of ``cohort`` in turn and predict it from its donor's other samples (all, or
    ``n_sources`` of them chosen at random); one round of :func:`~gtex_models.data.donor_targets.rounds_with_sources`
    is one call of ``imputer.impute``."""
    mean = np.full(cohort.x.shape, np.nan, dtype=np.float32)
    unit = np.ones(cohort.x.shape, dtype=np.float32)
    seconds = 0.0
    for rows, position in rounds_with_sources(cohort.samples["donor_id"].astype(str), n_sources, seed):
        hidden = hide_samples(cohort.subset_samples(rows), position)
        start = perf_counter()
        imputed = imputer.impute(hidden)
        seconds += perf_counter() - start
        mean[rows[position]] = imputed[position]
        unit[rows[position]] = np.broadcast_to(value_unit(imputer, hidden), imputed.shape)[position]
    return TargetPredictions(mean, unit, seconds)


# ----------------------------------------------------------------------------------- scoring
def per_tissue_r2(truth: Cohort, predicted: np.ndarray, reference: np.ndarray,
                  min_donors: int = MIN_TARGET_DONORS) -> pd.DataFrame:
    """Per target tissue and gene: R² over the tissue's predicted targets (``predicted`` not NaN) against
    ``reference`` (samples x genes: :func:`~gtex_models.analysis.evaluation.reference_values`), by
    :func:`~gtex_models.analysis.evaluation.r2_per_group` with every value of a target hidden. Columns
    ``tissue``, ``gene``, ``r2``, ``n_donors``; genes R² leaves undefined (hidden values at their reference)
    and tissues with fewer than ``min_donors`` test donors are left out."""
    observed, imputed = _targets_hidden(truth, predicted)
    targets = ~observed[:, 0]
    tissues = truth.samples["tissue"].astype(str).to_numpy()
    names, codes = np.unique(tissues, return_inverse=True)
    r2 = r2_per_group(truth.x, imputed, observed, codes, len(names), reference)
    donors = truth.samples["donor_id"].astype(str).to_numpy()
    frames = []
    for code in np.unique(codes[targets]):
        n_donors = len(set(donors[targets & (codes == code)]))
        defined = ~np.isnan(r2[code])
        if n_donors >= min_donors:
            frames.append(pd.DataFrame({"tissue": names[code], "gene": truth.genes["symbol"].to_numpy()[defined],
                                        "r2": r2[code][defined], "n_donors": n_donors}))
    columns = ["tissue", "gene", "r2", "n_donors"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def pooled_r2(truth: Cohort, predicted: np.ndarray, reference: np.ndarray) -> float:
    """Mean over genes of the R² pooled over every predicted target, each against its ``reference`` (as in
    :func:`per_tissue_r2`); NaN without a target."""
    observed, imputed = _targets_hidden(truth, predicted)
    return summarize(r2_per_gene(truth.x, imputed, observed, reference))["r2_mean"]


def _targets_hidden(truth: Cohort, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation's view of cross-tissue predictions: every value of a target (a row ``predicted`` fills)
    hidden, every other row observed and kept as it is."""
    observed = np.broadcast_to(np.isnan(predicted[:, :1]), predicted.shape)
    return observed, np.where(observed, truth.x, predicted)


def tissue_means(per_tissue: pd.DataFrame) -> pd.DataFrame:
    """Mean per-gene R² of each method in each tissue: methods as columns, tissues as rows."""
    return per_tissue.groupby(["tissue", "method"])["r2"].mean().unstack("method")


def tissues_won(means: pd.DataFrame, method: str, baselines: Sequence[str] = BASELINES) -> float:
    """Share of tissues where ``method``'s mean R² is above every baseline's (but itself)."""
    rivals = [b for b in baselines if b != method and b in means.columns]
    if method not in means.columns or not rivals:
        return float("nan")
    return float((means[method] > means[rivals].max(axis=1)).mean())


def shortfalls(records: Sequence[dict[str, Any]], method: str, oracle: str = "donor-oracle",
               won_share: float = 0.8, oracle_share: float = 0.8) -> list[str]:
    """Why ``method`` misses the bars of a cross-tissue result (empty when it meets them): beat both baselines in at
    least ``won_share`` of the target tissues, and reach ``oracle_share`` x the ``oracle``'s mean R² (when scored)."""
    by_method = {r["method"]: r for r in records}
    record, missed = by_method[method], []
    if not record["tissues_won"] >= won_share:
        missed.append(f"{method} beats both baselines in {record['tissues_won']:.0%} of the target tissues, "
                      f"not {won_share:.0%}")
    if oracle in by_method and not record["r2_mean"] >= oracle_share * by_method[oracle]["r2_mean"]:
        missed.append(f"{method}'s mean R² {record['r2_mean']:.3f} is below {oracle_share:g} x the oracle's "
                      f"{by_method[oracle]['r2_mean']:.3f}")
    return missed


# ----------------------------------------------------------------------------------- intervals
def calibrate_cross_tissue(imputer: Imputer, valid: Cohort, seed: int = 0) -> Calibration:
    """Split-conformal intervals of ``imputer``'s cross-tissue predictions, calibrated on the validation donors'
    leave-one-out targets (each sample predicted from its donor's other samples), Mondrian by target tissue and
    gene bin; no probe (a target has no value of its own). Applied with :meth:`Calibration.interval`."""
    predictions = predict_targets(imputer, valid, seed=seed)
    targets = predictions.targets
    if not targets.any():
        raise CalibrationError("No validation donor gave two or more samples: cross-tissue intervals are calibrated "
                               "on validation donors' samples predicted from their other samples.")
    truth = np.asarray(valid.x[targets], dtype=np.float64)
    residual = (truth - predictions.mean[targets]) / predictions.unit[targets]
    hidden = np.ones(residual.shape, dtype=bool)
    none = Probe(np.zeros(residual.shape), np.zeros(residual.shape, dtype=bool))
    info = {"method": imputer.method, "scenario": TASK, "passes": 1, "rates": [1.0, 1.0]}
    return calibration_from_residuals(residual, hidden, none, valid.samples[targets].reset_index(drop=True),
                                      np.arange(int(targets.sum())), info, np.random.default_rng([seed, 13]))


def target_intervals(calibration: Calibration, truth: Cohort, predictions: TargetPredictions, level: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds (model space) of the predicted targets (NaN elsewhere)."""
    targets = predictions.targets
    width = np.full(predictions.mean.shape, np.nan, dtype=np.float32)
    tissues = truth.samples["tissue"].astype(str).to_numpy()[targets]
    width[targets] = calibration.half_width(np.zeros((int(targets.sum()), truth.n_genes), dtype=bool), tissues,
                                            level) * predictions.unit[targets]
    return predictions.mean - width, predictions.mean + width


def interval_record(calibration: Calibration, truth: Cohort, predictions: TargetPredictions, level: float
                    ) -> dict[str, Any]:
    """Coverage of the test targets' values (pooled and the lowest target tissue's) and median width (log2)."""
    lower, upper = target_intervals(calibration, truth, predictions, level)
    targets = predictions.targets
    x = np.asarray(truth.x)[targets]
    inside = (x >= lower[targets]) & (x <= upper[targets])
    per_tissue = pd.Series(inside.mean(axis=1)).groupby(truth.samples["tissue"].astype(str).to_numpy()[targets]).mean()
    width = (upper - lower)[targets] * truth.transform.std[None, :]
    return {"interval_level": float(level), "coverage": float(inside.mean()),
            "coverage_min_group": float(per_tissue.min()), "width_median": float(np.median(width)),
            "coverage_per_group": {str(k): float(v) for k, v in per_tissue.items()}}


# ----------------------------------------------------------------------------------- the benchmark
@dataclass
class CrossTissueResult:
    """What :func:`run_cross_tissue` returns.

    Attributes
    ----------
    records : one per method: ``method``, ``task``, ``r2_mean`` (mean over target tissues of the tissue's mean
        per-gene R²), ``r2_median``, ``tissues_won`` (share of target tissues where it beats both baselines),
        ``n_tissues``, ``n_targets``, ``n_test_donors``, ``fit_seconds``, ``impute_seconds``, and with
        intervals the coverage keys of :data:`~gtex_models.analysis.benchmark.INTERVAL_KEYS`.
    per_tissue : ``method``, ``tissue``, ``gene``, ``r2``, ``n_donors``.
    by_sources : ``method``, ``n_sources``, ``r2`` (pooled over tissues), ``n_targets``.
    imputers, calibrations : the fitted methods and their cross-tissue calibrations (with intervals).
    """

    records: list[dict[str, Any]]
    per_tissue: pd.DataFrame
    by_sources: pd.DataFrame
    imputers: dict[str, Imputer] = field(default_factory=dict)
    calibrations: dict[str, Calibration] = field(default_factory=dict)


def run_cross_tissue(
    cohort: Cohort,
    methods: Sequence[str] = DEFAULT_METHODS,
    configs: dict[str, dict[str, Any]] | None = None,
    seed: int = 0,
    interval: float | None = None,
    source_counts: Sequence[int] = SOURCE_COUNTS,
    progress: ProgressCallback | None = None,
) -> CrossTissueResult:
    """Fit every method on the training donors and score its cross-tissue predictions (module docstring)."""
    data = cross_tissue_data(cohort)
    configs = configs or {}
    imputers = {method: make_imputer(method, **configs.get(method, {})) for method in methods}  # fail fast
    report = progress or (lambda fraction, message: None)
    records, frames, curves, calibrations = [], [], [], {}
    reference = reference_values(data.test, data.fit)
    for i, (method, imputer) in enumerate(imputers.items()):
        def step(fraction: float, message: str, i: int = i, method: str = method) -> None:
            report((i + fraction) / len(imputers), f"{method}: {message}")

        start = perf_counter()
        imputer.fit(data.fit, valid=data.valid, progress=lambda f, m: step(0.6 * f, m))
        fit_seconds = perf_counter() - start
        step(0.6, "predicting the test donors' tissues")
        predictions = predict_targets(imputer, data.test, seed=seed)
        frames.append(per_tissue_r2(data.test, predictions.mean, reference).assign(method=method))
        record = {"method": method, "task": TASK, "n_targets": int(predictions.targets.sum()),
                  "n_test_donors": int(data.test.samples.loc[predictions.targets, "donor_id"].nunique()),
                  "fit_seconds": fit_seconds, "impute_seconds": predictions.seconds}
        if interval is not None and data.valid is not None:
            step(0.75, "calibrating intervals on the validation donors")
            calibrations[method] = calibrate_cross_tissue(imputer, data.valid, seed)
            record.update(interval_record(calibrations[method], data.test, predictions, interval))
        for k in source_counts:
            step(0.85, f"{k} source tissue(s)")
            chosen = predict_targets(imputer, data.test, n_sources=k, seed=seed)
            curves.append({"method": method, "n_sources": int(k), "r2": pooled_r2(data.test, chosen.mean, reference),
                           "n_targets": int(chosen.targets.sum())})
        records.append(record)
    per_tissue = pd.concat(frames, ignore_index=True)[["method", "tissue", "gene", "r2", "n_donors"]]
    means = tissue_means(per_tissue)
    for record in records:
        column = means[record["method"]].dropna() if record["method"] in means else pd.Series(dtype=float)
        record.update({"r2_mean": float(column.mean()), "r2_median": float(column.median()),
                       "tissues_won": tissues_won(means, record["method"]), "n_tissues": int(column.size)})
    report(1.0, "cross-tissue benchmark done")
    return CrossTissueResult([_ordered(r) for r in records], per_tissue, pd.DataFrame.from_records(curves),
                             dict(imputers), calibrations)


RECORD_KEYS = ("method", "task", "r2_mean", "r2_median", "tissues_won", "n_tissues", "n_targets", "n_test_donors",
               "fit_seconds", "impute_seconds", "interval_level", "coverage", "coverage_min_group", "width_median",
               "coverage_per_group")
_HEADERS = {"method": "Method", "r2_mean": "R² mean over target tissues", "r2_median": "R² median",
            "tissues_won": "Tissues won", "n_tissues": "Target tissues", "n_targets": "Targets",
            "fit_seconds": "Fit (s)", "impute_seconds": "Impute (s)", "interval_level": "Interval level",
            "coverage": "Coverage", "coverage_min_group": "Coverage, lowest tissue",
            "width_median": "Median width (log2)"}
_FORMATS = {"r2_mean": "{:.3f}", "r2_median": "{:.3f}", "tissues_won": "{:.0%}", "fit_seconds": "{:.1f}",
            "impute_seconds": "{:.1f}", "interval_level": "{:.2f}", "coverage": "{:.3f}",
            "coverage_min_group": "{:.3f}", "width_median": "{:.3f}"}


def _ordered(record: dict[str, Any]) -> dict[str, Any]:
    return {key: record[key] for key in RECORD_KEYS if key in record}


def to_markdown(result: CrossTissueResult) -> str:
    """The methods' table, then R² against the number of source tissues (methods as columns)."""
    keys = [k for k in _HEADERS if any(k in r for r in result.records)]
    lines = ["| " + " | ".join(_HEADERS[k] for k in keys) + " |", "|" + "---|" * len(keys)]
    for record in result.records:
        lines.append("| " + " | ".join(_FORMATS.get(k, "{}").format(record[k]) if k in record else ""
                                       for k in keys) + " |")
    if len(result.by_sources):
        curve = result.by_sources.pivot(index="n_sources", columns="method", values="r2")
        counts = result.by_sources.groupby("n_sources")["n_targets"].first()
        methods = [r["method"] for r in result.records]
        lines += ["", "| Source tissues | Targets | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
        for k, row in curve.iterrows():
            lines.append(f"| {k} | {counts[k]} | " + " | ".join(f"{row[m]:.3f}" for m in methods) + " |")
    return "\n".join(lines)
