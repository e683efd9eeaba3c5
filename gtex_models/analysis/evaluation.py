"""R² of imputations, computed on the missing entries only (as in Viñas et al. 2021).

For gene j with missing entries M_j and observed entries O_j:
``R²_j = 1 - Σ_M (x - x̂)² / Σ_M (x - mean_O(x))²``. Genes with no missing entries, no observed
entries, or (almost) no variance over their missing entries are excluded (NaN), never averaged in:
the hidden values' variance (with a given reference array: their mean squared distance to it) must
reach :data:`MIN_HIDDEN_VARIANCE` in model space, where each gene has variance 1 over the training
donors. Within one tissue a gene that is (nearly) undetected or flat has a near-zero denominator: its
R² reached −2,600 on the demo and dragged a tissue's mean far below its median; 0.7 % of the demo's
gene-tissue pairs fall below the bar. With
``reference="hidden"`` (a gene panel, whose other genes are never observed) the reference is the mean
of the hidden values themselves, ``mean_M(x)``: the ordinary R² of the hidden values. An array
(groups x genes) as ``reference`` gives the reference means, e.g. the training donors' group means.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from gtex_models.common.choices import ALL_TISSUES
from gtex_models.data.cohort import Cohort
from gtex_models.data.patterns import Pattern, mask_cohort

_EPS = 1e-12
MIN_HIDDEN_VARIANCE = 0.01  # model space: 1 % of the gene's variance over the training donors


REFERENCES = ("observed", "hidden")


def r2_per_gene(x_true: np.ndarray, x_imputed: np.ndarray, observed: np.ndarray,
                reference: str | np.ndarray = "observed") -> np.ndarray:
    """Per-gene R² over the missing entries; NaN for excluded genes."""
    groups = np.zeros(x_true.shape[0], dtype=np.int64)
    return r2_per_group(x_true, x_imputed, observed, groups, n_groups=1, reference=reference)[0]


def r2_per_group(
    x_true: np.ndarray,
    x_imputed: np.ndarray,
    observed: np.ndarray,
    groups: np.ndarray,
    n_groups: int | None = None,
    reference: str | np.ndarray = "observed",
) -> np.ndarray:
    """Per-group, per-gene R² (groups x genes); each group uses its own observed mean as reference
    (``reference="hidden"``: the mean of its hidden values, see the module docstring).

    Vectorised with a one-hot matrix product: one pass over the data whatever the number of groups.
    """
    groups = np.asarray(groups, dtype=np.int64)
    n_groups = int(groups.max()) + 1 if n_groups is None else n_groups
    return r2_from_sums(r2_sums(x_true, x_imputed, observed, onehot(groups, n_groups)), reference)


def onehot(groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Groups x samples 0/1 matrix of integer group codes (the ``weights`` of :func:`r2_sums`)."""
    onehot = np.zeros((n_groups, len(groups)))
    onehot[groups, np.arange(len(groups))] = 1.0
    return onehot


def r2_sums(x_true: np.ndarray, x_imputed: np.ndarray, observed: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """The additive statistics R² is computed from, per row of ``weights`` (groups x samples, 0/1) and gene.

    Sums of several masks of the same samples add up (:func:`r2_from_sums` of the total pools them).
    """
    x_true = np.asarray(x_true, dtype=np.float64)
    observed = np.asarray(observed, dtype=bool)
    obs = observed.astype(np.float64)
    x_mis = np.where(observed, 0.0, x_true)
    return {
        "n_obs": weights @ obs,
        "n_mis": weights @ (1.0 - obs),
        "sum_obs": weights @ np.where(observed, x_true, 0.0),
        "sum_mis": weights @ x_mis,
        "sq_mis": weights @ (x_mis**2),
        "ss_res": weights @ np.where(observed, 0.0, (x_true - np.asarray(x_imputed, dtype=np.float64)) ** 2),
    }


def r2_from_sums(sums: dict[str, np.ndarray], reference: str | np.ndarray = "observed") -> np.ndarray:
    """Per-group, per-gene R² from :func:`r2_sums` (NaN where undefined, see the module docstring)."""
    ss_tot, valid = total_sum_of_squares(sums, reference)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = 1.0 - sums["ss_res"] / ss_tot
    return np.where(valid, r2, np.nan)


def total_sum_of_squares(sums: dict[str, np.ndarray], reference: str | np.ndarray = "observed"
                         ) -> tuple[np.ndarray, np.ndarray]:
    """R²'s denominator per group and gene, ``Σ_M (x - reference)²``, and where R² is defined."""
    n_obs, n_mis = sums["n_obs"], sums["n_mis"]
    given = not isinstance(reference, str)
    if not given and reference not in REFERENCES:
        raise ValueError(f"Unknown R² reference {reference!r}; use one of {REFERENCES}.")
    with np.errstate(invalid="ignore", divide="ignore"):
        if given:
            mean = np.broadcast_to(np.asarray(reference, dtype=np.float64), n_obs.shape)
        else:
            mean = sums["sum_obs"] / n_obs if reference == "observed" else sums["sum_mis"] / n_mis
        ss_tot = sums["sq_mis"] - 2 * mean * sums["sum_mis"] + mean**2 * n_mis
        # spread of the hidden values: around their own mean, or around a given reference (one sample will do)
        spread = ss_tot / n_mis if given else sums["sq_mis"] / n_mis - (sums["sum_mis"] / n_mis) ** 2
    valid = ((n_obs > 0) | (given or reference == "hidden")) & np.isfinite(mean) & (n_mis > 0) \
        & (ss_tot > _EPS * np.maximum(n_mis, 1)) & (spread >= MIN_HIDDEN_VARIANCE)
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
    gene_symbols: Sequence[str], reference: str | np.ndarray = "observed",
) -> pd.DataFrame:
    """Long table with columns ``tissue``, ``gene``, ``r2`` (excluded genes dropped); an array ``reference``
    has one row per tissue in sorted order."""
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
"""Hidden values per gene and group that the R²-against-missing-rate estimator pools at every rate."""
MAX_MASK_REPEATS = 10
"""At most this many masks per rate (a group of a few samples stays below ``MIN_HIDDEN_PER_GENE``)."""


def mask_repeats(rate: float, n_samples: int, min_hidden: int = MIN_HIDDEN_PER_GENE) -> int:
    """Independent masks needed so that a gene of a group of ``n_samples`` has ~``min_hidden`` hidden values
    (at most :data:`MAX_MASK_REPEATS`)."""
    if rate <= 0 or n_samples <= 0:
        return 1
    return int(np.clip(np.ceil(min_hidden / (rate * n_samples)), 1, MAX_MASK_REPEATS))


def r2_across_missing_rates(
    impute: ImputeFn, cohort: Cohort, rates: Sequence[float], seed: int = 0,
    min_hidden: int = MIN_HIDDEN_PER_GENE, pattern: Pattern | None = None,
) -> pd.DataFrame:
    """Per-tissue mean and SD of per-gene R² at each missing rate, stable at low rates.

    Estimator: at each rate the cohort is masked ``repeats`` times (independent masks,
    :func:`mask_repeats` for the smallest group) and each gene's R² in a group is computed on the hidden
    values of all repeats together, so every gene has about ``min_hidden`` hidden values per group at
    every rate (at 10 % missing and 50 samples per group: 4 masks, 20 hidden values instead of 5).
    ``pattern`` (default MCAR) gives the missingness at each rate (:meth:`Pattern.with_rate`).

    Returns columns ``missing_rate``, ``tissue`` (:data:`~gtex_models.common.choices.ALL_TISSUES` for the pooled
    row), ``r2_mean``, ``r2_std``, ``n_genes``, ``n_masks``.
    """
    pattern = pattern or Pattern("mcar")
    names, codes = np.unique(cohort.samples["tissue"].to_numpy(dtype=object), return_inverse=True)
    weights = np.vstack([onehot(codes, len(names)), np.ones(len(codes))])  # last row: all groups pooled
    smallest = int(np.bincount(codes).min()) if len(codes) else 0
    rng = np.random.default_rng(seed)
    records = []
    for rate in rates:
        repeats = mask_repeats(rate, smallest, min_hidden)
        total: dict[str, np.ndarray] | None = None
        for _ in range(repeats):
            observed = pattern.with_rate(rate).observed(cohort, rng)
            sums = r2_sums(cohort.x, impute(mask_cohort(cohort, observed)), observed, weights)
            total = sums if total is None else {key: total[key] + sums[key] for key in sums}
        r2 = r2_from_sums(total, pattern.reference)
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
