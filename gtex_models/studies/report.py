"""What a study holds and recommends: the model table, the benchmark table and the recommended method.

:func:`study_info` and :func:`benchmark_table` are what ``study info`` prints (and the Benchmark page
shows); :func:`validation_score` scores a fitted method on the validation donors during a build, and
:func:`recommendation` picks the best of them for new samples, simple or deep.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from gtex_models.analysis.benchmark import evaluate_imputer
from gtex_models.analysis.embeddings import UMAP_MIN_GROUPS
from gtex_models.data.cohort import Cohort
from gtex_models.models.base import Imputer
from gtex_models.models.registry import DEEP_METHODS
from gtex_models.studies.study import MODELS_DIR, TABLES, TABLES_DIR, UMAP_TABLE, Study


def study_info(study: Study) -> pd.DataFrame:
    """One row per model the manifest lists: key, label, method, scenario, gene set, genes, groups,
    test R², the donors its intervals were calibrated on (``unknown`` for an entry made before donors were
    recorded, ``-`` without a calibration) and the parts that are missing (checkpoint, tables, UMAP)."""
    rows = []
    for data in study.manifest.get("models", []):
        key = str(data.get("key"))
        missing = []
        if not (study.path / MODELS_DIR / f"{key}.safetensors").is_file():
            missing.append("checkpoint")
        missing += [f"{name} table" for name in TABLES
                    if not (study.path / TABLES_DIR / f"{key}_{name}.csv.gz").is_file()]
        if data.get("method") in DEEP_METHODS and int(data.get("n_groups") or 0) >= UMAP_MIN_GROUPS \
                and not (study.path / TABLES_DIR / f"{key}_{UMAP_TABLE}.csv").is_file():
            missing.append("UMAP")
        r2 = (data.get("evaluation") or {}).get("r2_mean")
        donors = data.get("donors") or {}
        calibrated = donors.get("calibration")
        rows.append({"key": key, "label": data.get("label") or key, "method": data.get("method"),
                     "scenario": data.get("scenario"), "gene set": data.get("pathway") or "all",
                     "genes": data.get("n_genes"), "groups": data.get("n_groups"),
                     "test R²": None if r2 is None else round(float(r2), 3),
                     "calibrated on": ("unknown" if not donors else "-" if not calibrated
                                       else f"{calibrated['count']} {calibrated['split']} donors"),
                     "missing": ", ".join(missing) or "-"})
    columns = ["key", "label", "method", "scenario", "gene set", "genes", "groups", "test R²", "calibrated on",
               "missing"]
    return pd.DataFrame(rows, columns=columns)


def benchmark_table(study: Study) -> pd.DataFrame:
    """One row per benchmark record (models and baselines): method, scenario, missing rate, mean and median
    test R², validation R² (:func:`validation_score`), fit and impute seconds, its checkpoint in the study,
    ``best`` marking the highest mean test R² of each scenario and ``recommended`` the study's recommendation
    (the best validation R², inductive)."""
    columns = ["method", "scenario", "missing rate", "R² mean", "R² median", "valid R²", "fit (s)", "impute (s)",
               "checkpoint", "best", "recommended"]
    recommended = study.manifest.get("recommended") or {}
    rows = [{"method": r.get("method"), "scenario": r.get("scenario"), "missing rate": r.get("missing_rate"),
             "R² mean": _rounded(r.get("r2_mean"), 3), "R² median": _rounded(r.get("r2_median"), 3),
             "valid R²": _rounded(r.get("valid_r2_mean"), 3),
             "fit (s)": _rounded(r.get("fit_seconds"), 1), "impute (s)": _rounded(r.get("impute_seconds"), 1),
             "checkpoint": r.get("checkpoint") or "-", "best": "",
             "recommended": "yes" if recommended and r.get("method") == recommended.get("method")
             and r.get("scenario") == "inductive" else ""} for r in study.benchmark() or []]
    table = pd.DataFrame(rows, columns=columns)
    for _, part in table.groupby("scenario"):
        scores = pd.to_numeric(part["R² mean"], errors="coerce")
        if scores.notna().any():
            table.loc[scores.idxmax(), "best"] = "*"
    return table


RECOMMENDATION_RATES = (0.2, 0.5, 0.8)


def validation_score(imputer: Imputer, valid: Cohort, train: Cohort, seed: int = 0) -> float:
    """Mean per-gene R² on the validation donors (against the ``train`` donors' group means), averaged over
    :data:`RECOMMENDATION_RATES` of values hidden: donors no method is scored on, so choosing by it leaves the
    test scores honest."""
    return float(np.mean([evaluate_imputer(imputer, valid, rate, seed, train=train)["r2_mean"]
                          for rate in RECOMMENDATION_RATES]))


def recommendation(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The inductive record with the best validation score (:func:`validation_score`), simple or deep: what a
    study recommends for new samples; None when an inductive record has no validation score (a partial
    comparison recommends nothing), or there is none."""
    inductive = [r for r in records if r.get("scenario", "inductive") == "inductive"]
    scored = [r for r in inductive if np.isfinite(r.get("valid_r2_mean", np.nan))]
    if not scored or len(scored) < len(inductive):
        return None
    best = max(scored, key=lambda r: r["valid_r2_mean"])
    return {"method": best["method"], "checkpoint": best.get("checkpoint"),
            "valid_r2_mean": float(best["valid_r2_mean"]), "test_r2_mean": float(best["r2_mean"]),
            "rates": list(RECOMMENDATION_RATES)}


def _rounded(value: Any, digits: int) -> float | None:
    return None if value is None or value != value else round(float(value), digits)
