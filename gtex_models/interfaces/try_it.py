"""Try it: held-out samples with known truth, a share of their values hidden, imputed and scored.

:func:`example_upload` makes partial profiles to try the upload pipeline with
(:mod:`gtex_models.interfaces.upload`); :func:`hide_and_impute` runs the experiment and scores it
with the per-gene R² on the hidden values (the README's metric: against each value's group mean over the
training donors, :func:`~gtex_models.analysis.evaluation.reference_values`) and, given a calibration, the
intervals' coverage: refused (with a note saying why) when the calibration was fitted on any of the samples'
donors, and noted when it predates donor records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from gtex_models.analysis.evaluation import r2_per_gene, reference_values
from gtex_models.data.cohort import Cohort
from gtex_models.data.masks import mcar_mask
from gtex_models.data.patterns import mask_cohort
from gtex_models.data.provenance import DonorLeakError
from gtex_models.data.transform import Transform
from gtex_models.models.base import Imputer
from gtex_models.models.calibration import DEFAULT_LEVEL, Calibration, check_unseen
from gtex_models.models.calibration import coverage as interval_coverage

MIN_HIDDEN_TO_RANK = 5  # a per-gene R² over fewer hidden values is too noisy to rank genes by


def example_upload(cohort: Cohort, tissue: str = "Whole Blood", n_samples: int = 5, missing_rate: float = 0.3,
                   absent_share: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """Partial profiles to try the upload with: held-out samples of ``tissue`` as TPM (samples x symbols).

    A random ``missing_rate`` of the values is blank and the last ``absent_share`` of the genes is
    left out altogether, so the result shows both kinds of gaps being filled.
    """
    test = cohort.split("test")
    test = test.subset_samples(np.flatnonzero(test.samples["tissue"] == tissue)[:n_samples])
    frame = pd.DataFrame(test.raw(), index=pd.Index(test.samples["sample_id"], name="sample_id"),
                         columns=test.genes["symbol"]).round(3)
    frame = frame.iloc[:, : int(round(frame.shape[1] * (1.0 - absent_share)))]
    return frame.mask(np.random.default_rng(seed).random(frame.shape) < missing_rate)


@dataclass
class TrialResult:
    """Held-out samples with a share of values hidden, imputed, and scored against the truth.

    Attributes
    ----------
    truth, imputed : samples x genes in log2(TPM + 1).
    hidden : True where a value was hidden (and imputed).
    samples : the samples' table.
    genes : the gene table.
    per_gene : ``gene``, ``r2`` (per-gene R² over the hidden values), ``n_hidden``, sorted by R², genes
        with fewer than :data:`MIN_HIDDEN_TO_RANK` hidden values last (their R² is mostly noise).
    r2_pooled : R² over all hidden values together (log2 units, the truth-vs-imputed scatter), against the
        same reference as the per-gene R²: each value's group mean over the training donors (the group-mean
        imputer scores 0; a reference shared by all genes would credit the genes' levels).
    lower, upper : calibrated intervals (log2(TPM + 1)), given a calibration; else None.
    coverage : share of the hidden values inside their interval (None without intervals, or when refused).
    interval_level : the intervals' nominal level.
    interval_note : why the coverage was refused (the calibration was fitted on some of these donors), or,
        with a coverage, that this could not be checked (a calibration stored before donors were recorded).
    """

    truth: np.ndarray
    imputed: np.ndarray
    hidden: np.ndarray
    samples: pd.DataFrame
    genes: pd.DataFrame
    per_gene: pd.DataFrame
    r2_pooled: float
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    coverage: float | None = None
    interval_level: float | None = None
    interval_note: str | None = None


def hide_and_impute(
    imputer: Imputer, cohort: Cohort, rows: Sequence[int], missing_rate: float, seed: int = 0,
    calibration: Calibration | None = None, interval: float = DEFAULT_LEVEL,
) -> TrialResult:
    """Hide ``missing_rate`` of the values of ``cohort``'s ``rows`` at random, impute, and score.

    ``cohort`` must hold the model's genes (see :func:`cohort_for_model`) with complete values; its training
    donors give R²'s reference. With a ``calibration``, the hidden values also get intervals at level
    ``interval`` and their coverage.
    """
    if not 0.0 < missing_rate < 1.0:
        raise ValueError(f"The missing rate must be strictly between 0 and 1, got {missing_rate}.")
    trial = cohort.subset_samples(np.asarray(rows, dtype=np.int64))
    observed = mcar_mask(trial.x.shape, missing_rate, missing_rate, seed=seed)
    masked = mask_cohort(trial, observed)
    imputed = imputer.impute(masked)
    log_space = Transform(trial.transform.mean, trial.transform.std, scale="log")
    truth, estimate = log_space.inverse(trial.x), log_space.inverse(imputed)
    hidden = ~observed
    reference = reference_values(trial, cohort.split("train"))
    r2 = r2_per_gene(trial.x, imputed, observed, reference)
    per_gene = pd.DataFrame({
        "gene": trial.genes["symbol"].to_numpy(),
        "r2": r2,
        "n_hidden": hidden.sum(axis=0),
    })
    per_gene = (per_gene.assign(rankable=per_gene["n_hidden"] >= MIN_HIDDEN_TO_RANK)
                .sort_values(["rankable", "r2"], ascending=False, na_position="last")
                .drop(columns="rankable").reset_index(drop=True))
    residual = float(np.sum((truth[hidden] - estimate[hidden]) ** 2))
    total = float(np.sum((truth[hidden] - log_space.inverse(reference)[hidden]) ** 2))
    r2_pooled = 1.0 - residual / total if total > 0 else float("nan")
    result = TrialResult(truth, estimate, hidden, trial.samples, trial.genes, per_gene, r2_pooled)
    if calibration is not None:
        try:
            result.interval_note = check_unseen(calibration, trial, "these samples' donors")
        except DonorLeakError as error:
            result.interval_note = str(error)
            return result
        low, high = calibration.interval(imputer, masked, imputed, interval)
        result.lower, result.upper = log_space.inverse(low), log_space.inverse(high)
        result.coverage = interval_coverage(truth, result.lower, result.upper, observed)
        result.interval_level = interval
    return result
