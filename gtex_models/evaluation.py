"""R² of imputations, computed on the missing entries only (as in Viñas et al. 2021).

For gene j with missing entries M_j and observed entries O_j:
``R²_j = 1 - Σ_M (x - x̂)² / Σ_M (x - mean_O(x))²``. Genes with no missing entries, no observed
entries, or zero variance over their missing entries are excluded (NaN), never averaged in.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from gtex_models.choices import ALL_TISSUES
from gtex_models.cohort import Cohort
from gtex_models.masks import mcar_mask

_EPS = 1e-12


def r2_per_gene(x_true: np.ndarray, x_imputed: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Per-gene R² over the missing entries; NaN for excluded genes."""
    groups = np.zeros(x_true.shape[0], dtype=np.int64)
    return r2_per_group(x_true, x_imputed, observed, groups, n_groups=1)[0]


def r2_per_group(
    x_true: np.ndarray,
    x_imputed: np.ndarray,
    observed: np.ndarray,
    groups: np.ndarray,
    n_groups: int | None = None,
) -> np.ndarray:
    """Per-group, per-gene R² (groups x genes); each group uses its own observed mean as reference.

    Vectorised with a one-hot matrix product: one pass over the data whatever the number of groups.
    """
    x_true = np.asarray(x_true, dtype=np.float64)
    x_imputed = np.asarray(x_imputed, dtype=np.float64)
    observed = np.asarray(observed, dtype=bool)
    groups = np.asarray(groups, dtype=np.int64)
    n_groups = int(groups.max()) + 1 if n_groups is None else n_groups
    onehot = np.zeros((n_groups, len(groups)))
    onehot[groups, np.arange(len(groups))] = 1.0
    obs = observed.astype(np.float64)
    mis = 1.0 - obs
    x_obs = np.where(observed, x_true, 0.0)
    x_mis = np.where(observed, 0.0, x_true)
    n_obs = onehot @ obs
    n_mis = onehot @ mis
    with np.errstate(invalid="ignore", divide="ignore"):
        reference = (onehot @ x_obs) / n_obs
        ss_res = onehot @ (mis * (x_true - np.where(observed, x_true, x_imputed)) ** 2)
        ss_tot = onehot @ (x_mis**2) - 2 * reference * (onehot @ x_mis) + reference**2 * n_mis
        r2 = 1.0 - ss_res / ss_tot
    valid = (n_obs > 0) & (n_mis > 0) & (ss_tot > _EPS * np.maximum(n_mis, 1))
    return np.where(valid, r2, np.nan)


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
    gene_symbols: Sequence[str],
) -> pd.DataFrame:
    """Long table with columns ``tissue``, ``gene``, ``r2`` (excluded genes dropped)."""
    names, codes = np.unique(np.asarray(tissues, dtype=object), return_inverse=True)
    r2 = r2_per_group(x_true, x_imputed, observed, codes, len(names))
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


def mask_cohort(cohort: Cohort, observed: np.ndarray) -> Cohort:
    """A copy of ``cohort`` whose entries outside ``observed`` are NaN (missing)."""
    return Cohort(np.where(observed, cohort.x, np.nan).astype(np.float32), cohort.genes,
                  cohort.samples, cohort.transform, cohort.meta)


ImputeFn = Callable[[Cohort], np.ndarray]


def r2_across_missing_rates(
    impute: ImputeFn, cohort: Cohort, rates: Sequence[float], seed: int = 0
) -> pd.DataFrame:
    """Per-tissue mean and SD of per-gene R² at each missing rate.

    Returns columns ``missing_rate``, ``tissue`` (:data:`~gtex_models.choices.ALL_TISSUES` for the pooled row), ``r2_mean``,
    ``r2_std``, ``n_genes``.
    """
    records = []
    symbols = cohort.genes["symbol"].tolist()
    for i, rate in enumerate(rates):
        observed = mcar_mask(cohort.x.shape, rate, rate, seed=seed + i)
        imputed = impute(mask_cohort(cohort, observed))
        pooled = summarize(r2_per_gene(cohort.x, imputed, observed))
        records.append({"missing_rate": rate, "tissue": ALL_TISSUES, **_mean_std(pooled)})
        per_tissue = r2_per_tissue(cohort.x, imputed, observed, cohort.samples["tissue"], symbols)
        for tissue, group in per_tissue.groupby("tissue"):
            records.append({"missing_rate": rate, "tissue": tissue, **_mean_std(summarize(group["r2"]))})
    return pd.DataFrame.from_records(records)


def _mean_std(summary: dict[str, float | int]) -> dict[str, float | int]:
    return {"r2_mean": summary["r2_mean"], "r2_std": summary["r2_std"], "n_genes": summary["n_genes"]}
