"""The benchmark protocol shared by the CLI (``evaluate``, ``benchmark``), the README table and the app.

Inductive scenario
    Fit on the (complete) train split, with the valid split for early stopping; hide a random
    ``missing_rate`` share of each test sample's values (MCAR, ``seed``) and impute them.
In-place scenario
    Hide values in every sample (train, valid and test); fit on the masked train + test matrix (the
    masked valid split for early stopping) and impute that same matrix.

Both score the per-gene R² on the hidden entries of the test rows, and both hide exactly the same
test entries, so their numbers are comparable.

Example
-------
>>> from gtex_models.simulate import simulate_cohort
>>> cohort = simulate_cohort(n_donors=20, n_genes=400)
>>> records = run_benchmark(cohort, ["mean", "oracle"], scenario="inductive", missing_rate=0.5)
>>> [record["method"] for record in records]
['mean', 'oracle']
>>> print(to_markdown(records).splitlines()[0])
| Method | Scenario | Missing rate | R² mean | R² median | R² SD | Genes | Test samples | Fit (s) | Impute (s) |
"""

from __future__ import annotations

import warnings
from time import perf_counter
from typing import Any, Collection, Sequence

import numpy as np
import pandas as pd

from gtex_models.cohort import Cohort
from gtex_models.evaluation import (
    extended_test_indices,
    mask_cohort,
    r2_across_missing_rates,
    r2_per_gene,
    r2_per_tissue,
    summarize,
)
from gtex_models.imputers import make_imputer
from gtex_models.imputers.base import Imputer, ProgressCallback
from gtex_models.masks import mcar_mask
from gtex_models.messages import describe_unknown_tissues

SCENARIOS = ("inductive", "inplace")
RECORD_KEYS = (
    "method", "scenario", "missing_rate", "r2_mean", "r2_median", "r2_std", "n_genes", "n_test_samples",
    "fit_seconds", "impute_seconds",
)
DEFAULT_RATES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
_HEADERS = {
    "method": "Method", "scenario": "Scenario", "missing_rate": "Missing rate", "r2_mean": "R² mean",
    "r2_median": "R² median", "r2_std": "R² SD", "n_genes": "Genes", "n_test_samples": "Test samples",
    "fit_seconds": "Fit (s)", "impute_seconds": "Impute (s)",
}
_FORMATS = {"missing_rate": "{:.2f}", "r2_mean": "{:.3f}", "r2_median": "{:.3f}", "r2_std": "{:.3f}",
            "fit_seconds": "{:.1f}", "impute_seconds": "{:.1f}"}


def run_benchmark(
    cohort: Cohort,
    methods: Sequence[str],
    scenario: str = "inductive",
    missing_rate: float = 0.5,
    pathway: str | None = None,
    seed: int = 0,
    configs: dict[str, dict[str, Any]] | None = None,
    progress: ProgressCallback | None = None,
) -> list[dict[str, Any]]:
    """Fit and score each method under one scenario; one record (keys :data:`RECORD_KEYS`) per method.

    Parameters
    ----------
    cohort : a complete cohort with train, valid and test splits.
    methods : registry names (see :data:`gtex_models.imputers.METHODS`).
    scenario : ``"inductive"`` or ``"inplace"`` (see the module docstring).
    missing_rate : share of each sample's values hidden.
    pathway : restrict the genes to a named pathway (``alzheimer``, ``p53``) first.
    seed : seed of the masks.
    configs : constructor arguments per method, e.g. ``{"knn": {"k": 5}}``.
    progress : ``progress(fraction, message)``, called as the methods fit.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"Unknown scenario {scenario!r}; use one of {SCENARIOS}.")
    if pathway is not None:
        cohort = cohort.pathway(pathway)
    _require_complete(cohort)
    configs = configs or {}
    imputers = [make_imputer(method, **configs.get(method, {})) for method in methods]  # fail fast
    records = []
    for i, (method, imputer) in enumerate(zip(methods, imputers)):
        step = None if progress is None else _scaled(progress, i / len(methods), 1 / len(methods), method)
        record = fit_and_score(imputer, cohort, scenario, missing_rate, seed, step)
        records.append({**record, "method": method})
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
) -> dict[str, Any]:
    """Fit ``imputer`` on ``cohort`` under one scenario and score it: one record (:data:`RECORD_KEYS`)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"Unknown scenario {scenario!r}; use one of {SCENARIOS}.")
    _require_complete(cohort)
    cohort.require_trainable()
    run = _run_inductive if scenario == "inductive" else _run_inplace
    record = run(imputer, cohort, missing_rate, seed, progress)
    return _ordered({**record, "method": imputer.method, "scenario": scenario})


def evaluate_imputer(
    imputer: Imputer, cohort_test: Cohort, missing_rate: float = 0.5, seed: int = 0
) -> dict[str, Any]:
    """Score a fitted imputer on a complete test cohort: a record with :data:`RECORD_KEYS` but ``fit_seconds``.

    A random ``missing_rate`` share of each sample's values (MCAR, ``seed``) is hidden and imputed;
    R² is scored per gene on the hidden entries.

    Example
    -------
    >>> from gtex_models.imputers import make_imputer
    >>> from gtex_models.simulate import simulate_cohort
    >>> cohort = simulate_cohort(n_donors=20, n_genes=400)
    >>> imputer = make_imputer("mean").fit(cohort.split("train"))
    >>> evaluate_imputer(imputer, cohort.split("test"))["n_genes"]
    400
    """
    _require_complete(cohort_test)
    observed, imputed, seconds = _mask_and_impute(imputer, cohort_test, missing_rate, seed)
    scores = _score(cohort_test.x, imputed, observed)
    return _ordered({"method": imputer.method, "scenario": "inductive", "missing_rate": missing_rate,
                     **scores, "impute_seconds": seconds})


def evaluation_tables(
    imputer: Imputer,
    cohort: Cohort,
    rates: Sequence[float] = DEFAULT_RATES,
    n_per_tissue: int = 50,
    seed: int = 0,
    missing_rate: float = 0.5,
) -> dict[str, pd.DataFrame]:
    """The tables the app shows for a fitted imputer and a complete test cohort.

    Returns
    -------
    per_gene : ``gene``, ``r2`` on ``cohort`` at ``missing_rate``.
    per_tissue : ``tissue``, ``gene``, ``r2`` on the extended test set (``n_per_tissue`` samples of
        every tissue, see :func:`~gtex_models.evaluation.extended_test_indices`) at ``missing_rate``.
    across_rates : ``missing_rate``, ``tissue``, ``r2_mean``, ``r2_std``, ``n_genes`` on the extended
        test set at each of ``rates``.
    Genes whose R² is undefined are left out.

    Example
    -------
    >>> from gtex_models.imputers import make_imputer
    >>> from gtex_models.simulate import simulate_cohort
    >>> cohort = simulate_cohort(n_donors=20, n_genes=400)
    >>> imputer = make_imputer("mean").fit(cohort.split("train"))
    >>> tables = evaluation_tables(imputer, cohort.split("test"), rates=(0.2, 0.8), n_per_tissue=5)
    >>> sorted(tables)
    ['across_rates', 'per_gene', 'per_tissue']
    """
    _require_complete(cohort)
    symbols = cohort.genes["symbol"].tolist()
    observed, imputed, _ = _mask_and_impute(imputer, cohort, missing_rate, seed)
    per_gene = pd.DataFrame({"gene": symbols, "r2": r2_per_gene(cohort.x, imputed, observed)})
    extended = cohort.subset_samples(extended_test_indices(cohort.samples["tissue"], n_per_tissue, seed))
    observed, imputed, _ = _mask_and_impute(imputer, extended, missing_rate, seed)
    return {
        "per_gene": per_gene.dropna().reset_index(drop=True),
        "per_tissue": r2_per_tissue(extended.x, imputed, observed, extended.samples["tissue"], symbols),
        "across_rates": r2_across_missing_rates(imputer.impute, extended, rates, seed),
    }


def to_markdown(records: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of benchmark records (columns: :data:`RECORD_KEYS` present in the records)."""
    keys = [key for key in RECORD_KEYS if any(key in record for record in records)]
    lines = ["| " + " | ".join(_HEADERS[key] for key in keys) + " |", "|" + "---|" * len(keys)]
    for record in records:
        cells = [_FORMATS.get(key, "{}").format(record[key]) if key in record else "" for key in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- protocol steps
def _run_inductive(
    imputer: Imputer, cohort: Cohort, missing_rate: float, seed: int, progress: ProgressCallback | None
) -> dict[str, Any]:
    train, valid = cohort.split("train"), cohort.split("valid")
    test = known_tissue_samples(cohort.split("test"), set(train.tissues) | set(valid.tissues))
    start = perf_counter()
    imputer.fit(train, valid=valid, progress=progress)
    fit_seconds = perf_counter() - start
    return {**evaluate_imputer(imputer, test, missing_rate, seed), "fit_seconds": fit_seconds}


def _run_inplace(
    imputer: Imputer, cohort: Cohort, missing_rate: float, seed: int, progress: ProgressCallback | None
) -> dict[str, Any]:
    split = cohort.samples["split"].to_numpy()
    pool = cohort.subset_samples(np.flatnonzero(split != "valid"))
    is_test = split[split != "valid"] == "test"
    observed = np.empty(pool.x.shape, dtype=bool)
    observed[is_test] = _test_mask((int(is_test.sum()), pool.n_genes), missing_rate, seed)
    observed[~is_test] = _test_mask((int((~is_test).sum()), pool.n_genes), missing_rate, seed + 1)
    valid = cohort.split("valid")
    masked = mask_cohort(pool, observed)
    start = perf_counter()
    imputer.fit(masked, valid=mask_cohort(valid, _test_mask(valid.x.shape, missing_rate, seed + 2)),
                progress=progress)
    fit_seconds = perf_counter() - start
    start = perf_counter()
    imputed = imputer.impute(masked)
    impute_seconds = perf_counter() - start
    scores = _score(pool.x[is_test], imputed[is_test], observed[is_test])
    return {"missing_rate": missing_rate, **scores, "fit_seconds": fit_seconds, "impute_seconds": impute_seconds}


def _test_mask(shape: tuple[int, int], missing_rate: float, seed: int) -> np.ndarray:
    """The protocol's observed-mask: MCAR, the same ``missing_rate`` for every sample."""
    return mcar_mask(shape, missing_rate, missing_rate, seed=seed)


def _mask_and_impute(
    imputer: Imputer, cohort: Cohort, missing_rate: float, seed: int
) -> tuple[np.ndarray, np.ndarray, float]:
    observed = _test_mask(cohort.x.shape, missing_rate, seed)
    start = perf_counter()
    imputed = imputer.impute(mask_cohort(cohort, observed))
    return observed, imputed, perf_counter() - start


def _score(x_true: np.ndarray, imputed: np.ndarray, observed: np.ndarray) -> dict[str, Any]:
    summary = summarize(r2_per_gene(x_true, imputed, observed))
    if summary["n_genes"] == 0:
        raise ValueError(
            f"R² could not be computed for any gene: it needs, per gene, hidden test values that differ and an "
            f"observed one, and the {len(x_true)} test sample(s) with {int((~observed).sum())} hidden value(s) "
            "give none. Use a cohort with more test donors (or a missing rate nearer 0.5).")
    return {**summary, "n_test_samples": int(len(x_true))}


def known_tissue_samples(cohort: Cohort, tissues: Collection[str]) -> Cohort:
    """The samples of ``cohort`` whose tissue is in ``tissues`` (a model's vocabulary).

    A model cannot impute a tissue it never saw, so the others are left out of a score, with a
    warning; when no sample is left, ``ValueError`` names the unknown tissues.
    """
    keep = cohort.samples["tissue"].isin(set(tissues)).to_numpy()
    if keep.all():
        return cohort
    unknown = sorted(set(cohort.samples.loc[~keep, "tissue"]))
    described = describe_unknown_tissues(unknown, sorted(tissues))
    if not keep.any():
        raise ValueError(f"None of the {cohort.n_samples} test sample(s) is of a tissue the model knows; "
                         f"unknown: {described}. The model knows {len(tissues)} tissue(s).")
    warnings.warn(f"{int((~keep).sum())} test sample(s) of {len(unknown)} tissue(s) the model was not trained on "
                  f"are left out of the score ({described}): a model cannot impute a tissue it never saw.",
                  stacklevel=2)
    return cohort.subset_samples(keep)


def _ordered(values: dict[str, Any]) -> dict[str, Any]:
    return {key: values[key] for key in RECORD_KEYS if key in values}


def _scaled(progress: ProgressCallback, start: float, width: float, label: str) -> ProgressCallback:
    return lambda fraction, message: progress(start + width * fraction, f"{label}: {message}")


def _require_complete(cohort: Cohort) -> None:
    n_missing = int(np.isnan(cohort.x).sum())
    if n_missing:
        raise ValueError(
            f"Evaluation needs a complete cohort (R² is scored on values hidden on purpose), but "
            f"{n_missing} values are already missing."
        )
