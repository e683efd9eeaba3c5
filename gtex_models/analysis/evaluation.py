"""R² of imputations, computed on the missing entries only (as in Viñas et al. 2021).

For gene j with missing entries M_j: ``R²_j = 1 - Σ_M (x - x̂)² / Σ_M (x - r)²``; the reference ``r``
is the prediction that scores 0.

**The product reports R² against the training reference** (:func:`reference_values`): each hidden
value's reference is the gene's mean over the training donors of the sample's group (model space,
:func:`training_reference`), or the overall training mean (0 in model space, where genes are
standardised over the training donors) where the group has no training samples or no training donors
are at hand. No mask moves it, so a fixed predictor scores the same at every missing rate and under
every pattern, and the group-mean imputer scores 0. A gene's R² over several groups compares each value
with its own group's training mean: differences between groups are not credited to the imputer.

The paper's reference, the mean of the gene's *observed* test values (:data:`OBSERVED`), is estimated
from fewer values as the rate grows: the trivial baseline worsens and R² inflates with the missing rate
(a fixed predictor of true R² 0.30, 30 test samples per group: 0.249 at 10 % and 0.347 at 90 % missing,
against 0.290 and 0.289 with the training reference), it is biased upwards under MNAR and undefined for
a panel's genes. It is kept only to measure that.

Genes with no missing entries or (almost) no spread over them are excluded (NaN), never averaged in:
the hidden values' mean squared distance to the reference (their variance, for :data:`OBSERVED`) must
reach :data:`MIN_HIDDEN_VARIANCE` in model space, where each gene has variance 1 over the training
donors. Within one tissue a gene that is (nearly) undetected or flat has a near-zero denominator: its
R² reached −2,600 on the demo and dragged a tissue's mean far below its median.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence, Union

import numpy as np
import pandas as pd

from gtex_models.common.choices import ALL_TISSUES
from gtex_models.data.cohort import Cohort
from gtex_models.data.patterns import Pattern, mask_cohort

_EPS = 1e-12
MIN_HIDDEN_VARIANCE = 0.01  # model space: 1 % of the gene's variance over the training donors

TRAINING = "training"
"""The reference given as values (:func:`reference_values`): what the product reports."""
OBSERVED = "observed"
"""The paper's reference, the mean of the gene's observed values: it moves with the mask, so it is kept only
to measure that (see the module docstring)."""
Reference = Union[str, float, np.ndarray]
"""Each hidden value's reference (samples x genes, or broadcastable), or :data:`OBSERVED`."""


def training_reference(train: Cohort, groups: Sequence[str]) -> np.ndarray:
    """Each group's mean of every gene over the training donors ``train`` (groups x genes, model space).

    A group without training samples (or a gene without a training value in the group) gets the overall
    training mean; a gene without any training value gets 0 (the overall mean in model space).
    """
    x = train.x
    tissues = train.samples["tissue"].to_numpy(dtype=object)
    index = {name: i for i, name in enumerate(groups)}
    means = np.full((len(groups), train.n_genes), np.nan)
    total, count = np.zeros(train.n_genes), np.zeros(train.n_genes)
    for tissue in sorted(set(tissues.tolist())):
        block = np.asarray(x[tissues == tissue], dtype=np.float32)
        block_sum, block_count = np.nansum(block, axis=0, dtype=np.float64), (~np.isnan(block)).sum(axis=0)
        total, count = total + block_sum, count + block_count
        if tissue in index:
            with np.errstate(invalid="ignore", divide="ignore"):
                means[index[tissue]] = block_sum / block_count
    with np.errstate(invalid="ignore", divide="ignore"):
        overall = np.nan_to_num(total / count)
    return np.where(np.isnan(means), overall, means)


def reference_values(cohort: Cohort, train: Cohort | None) -> np.ndarray:
    """Each of ``cohort``'s values' reference (samples x genes): the gene's mean over the training donors
    ``train`` of the sample's group (:func:`training_reference`); 0, the overall training mean in model
    space, without training donors (``train`` None)."""
    if train is None:
        return np.zeros(cohort.x.shape)
    names, codes = np.unique(cohort.samples["tissue"].to_numpy(dtype=object), return_inverse=True)
    return training_reference(train, list(names))[codes]


def r2_per_gene(x_true: np.ndarray, x_imputed: np.ndarray, observed: np.ndarray,
                reference: Reference = 0.0) -> np.ndarray:
    """Per-gene R² over the missing entries; NaN for excluded genes. ``reference``: :data:`Reference`; the
    product passes :func:`reference_values` (default 0: the overall training mean in model space)."""
    groups = np.zeros(x_true.shape[0], dtype=np.int64)
    return r2_per_group(x_true, x_imputed, observed, groups, n_groups=1, reference=reference)[0]


def r2_per_group(
    x_true: np.ndarray,
    x_imputed: np.ndarray,
    observed: np.ndarray,
    groups: np.ndarray,
    n_groups: int | None = None,
    reference: Reference = 0.0,
) -> np.ndarray:
    """Per-group, per-gene R² (groups x genes) against ``reference`` (:data:`Reference`; with :data:`OBSERVED`
    each group's own observed mean).

    Vectorised with a one-hot matrix product: one pass over the data whatever the number of groups.
    """
    groups = np.asarray(groups, dtype=np.int64)
    n_groups = int(groups.max()) + 1 if n_groups is None else n_groups
    values, kind = _reference_kind(reference)
    return r2_from_sums(r2_sums(x_true, x_imputed, observed, onehot(groups, n_groups), values), kind)


def _reference_kind(reference: Reference) -> tuple[np.ndarray | None, str]:
    """The reference values for :func:`r2_sums` and the kind for :func:`r2_from_sums`."""
    if isinstance(reference, str):
        return None, reference
    return np.asarray(reference, dtype=np.float64), TRAINING


def onehot(groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Groups x samples 0/1 matrix of integer group codes (the ``weights`` of :func:`r2_sums`)."""
    onehot = np.zeros((n_groups, len(groups)))
    onehot[groups, np.arange(len(groups))] = 1.0
    return onehot


def r2_sums(x_true: np.ndarray, x_imputed: np.ndarray, observed: np.ndarray, weights: np.ndarray,
            reference: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The additive statistics R² is computed from, per row of ``weights`` (groups x samples, 0/1) and gene;
    given each value's ``reference`` (samples x genes, or broadcastable), also ``ss_ref``, the hidden
    values' squared distances to it.

    Sums of several masks of the same samples add up (:func:`r2_from_sums` of the total pools them).
    """
    x_true = np.asarray(x_true, dtype=np.float64)
    observed = np.asarray(observed, dtype=bool)
    obs = observed.astype(np.float64)
    x_mis = np.where(observed, 0.0, x_true)
    sums = {
        "n_obs": weights @ obs,
        "n_mis": weights @ (1.0 - obs),
        "sum_obs": weights @ np.where(observed, x_true, 0.0),
        "sum_mis": weights @ x_mis,
        "sq_mis": weights @ (x_mis**2),
        "ss_res": weights @ np.where(observed, 0.0, (x_true - np.asarray(x_imputed, dtype=np.float64)) ** 2),
    }
    if reference is not None:
        sums["ss_ref"] = weights @ np.where(observed, 0.0, (x_true - reference) ** 2)
    return sums


def r2_from_sums(sums: dict[str, np.ndarray], reference: str = TRAINING) -> np.ndarray:
    """Per-group, per-gene R² from :func:`r2_sums` (NaN where undefined, see the module docstring)."""
    ss_tot, valid = total_sum_of_squares(sums, reference)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = 1.0 - sums["ss_res"] / ss_tot
    return np.where(valid, r2, np.nan)


def total_sum_of_squares(sums: dict[str, np.ndarray], reference: str = TRAINING
                         ) -> tuple[np.ndarray, np.ndarray]:
    """R²'s denominator per group and gene, ``Σ_M (x - reference)²``, and where R² is defined.

    ``reference``: :data:`TRAINING` (the ``ss_ref`` of sums computed with reference values) or :data:`OBSERVED`.
    """
    n_obs, n_mis = sums["n_obs"], sums["n_mis"]
    if reference == TRAINING:
        if "ss_ref" not in sums:
            raise ValueError("R² against given reference values needs sums computed with them: "
                             "r2_sums(..., reference=reference_values(cohort, train)).")
        ss_tot, defined = sums["ss_ref"], np.ones(n_mis.shape, dtype=bool)
        with np.errstate(invalid="ignore", divide="ignore"):
            spread = ss_tot / n_mis  # mean squared distance of the hidden values to their reference
    elif reference == OBSERVED:
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = sums["sum_obs"] / n_obs
            ss_tot = sums["sq_mis"] - 2 * mean * sums["sum_mis"] + mean**2 * n_mis
            spread = sums["sq_mis"] / n_mis - (sums["sum_mis"] / n_mis) ** 2  # variance of the hidden values
        defined = (n_obs > 0) & np.isfinite(mean)
    else:
        raise ValueError(f"Unknown R² reference {reference!r}; use {TRAINING!r} (reference values) or {OBSERVED!r}.")
    valid = defined & (n_mis > 0) & (ss_tot > _EPS * np.maximum(n_mis, 1)) & (spread >= MIN_HIDDEN_VARIANCE)
    return ss_tot, valid


def summarize(r2: np.ndarray) -> dict[str, float | int]:
    """Mean, median, standard deviation and count of the defined per-gene R² values."""
    r2 = np.asarray(r2, dtype=np.float64)
    r2 = r2[np.isfinite(r2)]
    if r2.size == 0:
        return {"r2_mean": float("nan"), "r2_median": float("nan"), "r2_std": float("nan"), "n_genes": 0}
    return {
        "r2_mean": float(r2.mean()),
        "r2_median": float(np.median(r2)),
        "r2_std": float(r2.std()),
        "n_genes": int(r2.size),
    }


def r2_per_tissue(
    x_true: np.ndarray, x_imputed: np.ndarray, observed: np.ndarray, tissues: Sequence[str],
    gene_symbols: Sequence[str], reference: Reference = 0.0,
) -> pd.DataFrame:
    """Long table with columns ``tissue``, ``gene``, ``r2`` (excluded genes dropped); ``reference``: see
    :func:`r2_per_gene`."""
    names, codes = np.unique(np.asarray(tissues, dtype=object), return_inverse=True)
    r2 = r2_per_group(x_true, x_imputed, observed, codes, len(names), reference)
    table = pd.DataFrame(r2, index=pd.Index(names, name="tissue"), columns=list(gene_symbols))
    table.columns.name = "gene"
    return table.stack().rename("r2").reset_index()


def extended_test_indices(tissues: Sequence[str], n_per_tissue: int, seed: int = 0) -> np.ndarray:
    """Row indices giving every tissue exactly ``n_per_tissue`` samples.

    Tissues with more samples are subsampled; tissues with fewer are resampled with replacement
    (each copy later gets its own random mask, so it is a new test case).
    """
    rng = np.random.default_rng(seed)
    tissues = np.asarray(tissues, dtype=object)
    rows = []
    for tissue in sorted(set(tissues.tolist())):
        members = np.flatnonzero(tissues == tissue)
        replace = len(members) < n_per_tissue
        rows.append(rng.choice(members, size=n_per_tissue, replace=replace))
    return np.sort(np.concatenate(rows)) if rows else np.zeros(0, dtype=np.int64)


ImputeFn = Callable[[Cohort], np.ndarray]


MIN_HIDDEN_PER_GENE = 20
"""Hidden values per gene and group that the R²-against-missing-rate estimator pools at least, at every rate."""
MAX_MASK_REPEATS = 10
"""At most this many masks per rate: enough to hide every value once at 10 % missing."""


def mask_repeats(rate: float, n_samples: int, min_hidden: int = MIN_HIDDEN_PER_GENE) -> int:
    """Masks at ``rate`` that hide every value of a group of ``n_samples`` at least once (with
    :func:`coverage_masks`) and give a gene at least ``min_hidden`` hidden values in it; at most
    :data:`MAX_MASK_REPEATS`."""
    if rate <= 0 or n_samples <= 0:
        return 1
    needed = max(min_hidden / n_samples, 1.0) / rate
    return int(np.clip(np.ceil(needed - 1e-9), 1, MAX_MASK_REPEATS))


def coverage_masks(shape: tuple[int, int], rate: float, repeats: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """``repeats`` MCAR observed-masks at ``rate`` that together hide each value equally often.

    Mask ``r`` hides value ``(i, j)`` when ``frac(u_ij + r · rate) < rate``, ``u_ij`` uniform: within one mask
    every value is hidden with probability ``rate``, independently of the others (MCAR, as
    :class:`~gtex_models.data.patterns.Pattern` draws it), and over the masks each value is hidden
    ``floor`` or ``ceil(repeats · rate)`` times (a rotation of ``u``), never 0 times once ``repeats · rate >= 1``.
    Independent masks would hide some values several times and others never, so a gene's pooled R² would
    rest on fewer distinct samples at low rates than at high ones, and its small-sample bias would move
    with the rate.
    """
    u = rng.random(shape)
    for r in range(repeats):
        yield np.mod(u + r * rate, 1.0) >= rate


def r2_across_missing_rates(
    impute: ImputeFn, cohort: Cohort, rates: Sequence[float], seed: int = 0,
    min_hidden: int = MIN_HIDDEN_PER_GENE, pattern: Pattern | None = None, reference: Reference = 0.0,
) -> pd.DataFrame:
    """Per-tissue mean and SD of per-gene R² at each missing rate, stable at low rates.

    ``reference``: each value's reference (:func:`reference_values` of ``cohort`` and its training donors:
    the same at every rate and mask, so a fixed predictor scores the same at every rate), see
    :func:`r2_per_gene`.

    Estimator: at each rate the cohort is masked ``repeats`` times (:func:`mask_repeats` for the smallest
    group) and each gene's R² in a group is computed on the hidden values of all repeats together. MCAR
    masks are :func:`coverage_masks`: every value of the cohort is hidden equally often, at least once, so
    a gene's R² in a group rests on all of the group's samples at every rate (at 10 % missing: 10 masks,
    each value hidden once; at 50 %: 2). ``pattern`` (default MCAR) gives the missingness at each rate
    (:meth:`Pattern.with_rate`; other patterns draw independent masks).

    Returns columns ``missing_rate``, ``tissue`` (:data:`~gtex_models.common.choices.ALL_TISSUES` for the pooled
    row), ``r2_mean``, ``r2_std``, ``n_genes``, ``n_masks``.
    """
    pattern = pattern or Pattern("mcar")
    values, kind = _reference_kind(reference)
    names, codes = np.unique(cohort.samples["tissue"].to_numpy(dtype=object), return_inverse=True)
    weights = np.vstack([onehot(codes, len(names)), np.ones(len(codes))])  # last row: all groups pooled
    smallest = int(np.bincount(codes).min()) if len(codes) else 0
    rng = np.random.default_rng(seed)
    records = []
    for rate in rates:
        repeats = mask_repeats(rate, smallest, min_hidden)
        total: dict[str, np.ndarray] | None = None
        at_rate = pattern.with_rate(rate)
        masks = coverage_masks(cohort.x.shape, at_rate.rate, repeats, rng) if at_rate.name == "mcar" else \
            (at_rate.observed(cohort, rng) for _ in range(repeats))
        for observed in masks:
            sums = r2_sums(cohort.x, impute(mask_cohort(cohort, observed)), observed, weights, values)
            total = sums if total is None else {key: total[key] + sums[key] for key in sums}
        r2 = r2_from_sums(total, kind)
        for name, row in zip([*names, ALL_TISSUES], r2):
            summary = summarize(row)
            if summary["n_genes"] or name == ALL_TISSUES:  # a group without any defined R² is left out
                records.append({"missing_rate": rate, "tissue": name, **_mean_std(summary), "n_masks": repeats})
    frame = pd.DataFrame.from_records(records, columns=["missing_rate", "tissue", "r2_mean", "r2_std", "n_genes",
                                                        "n_masks"])
    order = frame["tissue"] != ALL_TISSUES  # the pooled row first at each rate, as before
    return frame.assign(_order=order).sort_values(["missing_rate", "_order"], kind="stable").drop(columns="_order") \
        .reset_index(drop=True)


def _mean_std(summary: dict[str, float | int]) -> dict[str, float | int]:
    return {"r2_mean": summary["r2_mean"], "r2_std": summary["r2_std"], "n_genes": summary["n_genes"]}
