"""Properties of the demo simulator (not targets for any method), measured on the demo cohort.

At 50 % MCAR on the test donors (the benchmark's mask):

* the oracle's R² (exact conditional mean) against the best *linear* predictor: the Gaussian
  conditional under the model's exact mean and covariance given tissue, sex and age (pooled over
  the cell states; computed from the parameters, not estimated). Both are scored on the same random
  subset of test samples (the linear predictor costs a rank-500 Woodbury solve per sample);
* the per-tissue mean and the blood surrogate (the donor's Whole Blood sample) on all test samples;
* the oracle's exactness: its moments against a dense enumeration of every state on random
  8-gene problems (max abs difference), and its calibration (sum of squared errors of the hidden
  entries over the sum of its predicted variances, 1 when the variance is right);
* for the demo's all-gene PMI and GAIN-GTEx models (or the ``--pmi``/``--gain`` checkpoints): for
  each brain region, how many of its 5 nearest tissues (cosine similarity of the learnt tissue
  embeddings) are brain regions (the issue's bar: at least 4 for every region).

Run: ``OMP_NUM_THREADS=2 python benchmarks/simulator_properties.py [--pmi PATH] [--gain PATH] [--skip-cohort]``;
writes ``benchmarks/results/simulator_properties.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict

import numpy as np
import pandas as pd
from _common import load_average, markdown_table, write_results

from gtex_models.analysis.embeddings import brain_neighbours, tissue_embeddings
from gtex_models.analysis.evaluation import r2_per_gene, summarize
from gtex_models.data.masks import mcar_mask
from gtex_models.data.patterns import mask_cohort
from gtex_models.data.simulate import simulate_cohort
from gtex_models.models.baselines import BloodImputer, MeanImputer
from gtex_models.models.checkpoints import load_checkpoint
from gtex_models.models.oracle import (
    OracleImputer,
    conditional_moments,
    enumerate_conditional_moments,
    linear_conditional_mean,
)
from gtex_models.studies.demo import DEMO_SIMULATION, checkpoint_path

MISSING_RATE = 0.5
LINEAR_SAMPLES = 300
N_ENUMERATION_CHECKS = 5


def _r2(truth: np.ndarray, imputed: np.ndarray, observed: np.ndarray) -> float:
    return float(summarize(r2_per_gene(truth, imputed, observed))["r2_mean"])


def _exactness(oracle: OracleImputer, rng: np.random.Generator) -> float:
    """Max |oracle - dense enumeration| (mean and variance, log2 space) on random 8-gene problems."""
    params = oracle.params
    worst = 0.0
    for _ in range(N_ENUMERATION_CHECKS):
        t = int(rng.integers(len(params.tissue_names)))
        genes = rng.choice(params.mean.shape[1], size=8, replace=False)
        observed = np.arange(8) < 5
        values = np.where(observed, params.mean[t, genes] + rng.normal(0, 0.7, 8), 0.0)
        reference = enumerate_conditional_moments(params, t, "male", 55.0, values, observed, genes)
        exact = conditional_moments(params, np.array([t]), np.array(["male"]), np.array([55.0]), values[None],
                                    observed[None], genes)
        worst = max(worst, *(float(np.abs(a[0] - b).max()) for a, b in zip(exact, reference)))
    return worst


def simulator_properties() -> dict:
    cohort = simulate_cohort(**asdict(DEMO_SIMULATION))
    test = cohort.split("test")
    observed = mcar_mask(test.x.shape, MISSING_RATE, MISSING_RATE, seed=0)  # the benchmark protocol's mask
    masked = mask_cohort(test, observed)
    hidden = ~observed

    oracle = OracleImputer().fit(cohort)
    start = time.perf_counter()
    oracle_mean, oracle_var = oracle.conditional_moments(masked)
    oracle_seconds = time.perf_counter() - start
    results = {"simulation": asdict(DEMO_SIMULATION), "missing_rate": MISSING_RATE,
               "n_test_samples": test.n_samples, "n_genes": test.n_genes,
               "oracle_seconds": oracle_seconds, "load_average": load_average()}
    results["r2_oracle"] = _r2(test.x, oracle_mean, observed)
    train = cohort.split("train")
    results["r2_mean"] = _r2(test.x, MeanImputer().fit(train).impute(masked), observed)
    results["r2_blood"] = _r2(test.x, BloodImputer().fit(train).impute(masked), observed)
    results["oracle_calibration"] = float(((test.x - oracle_mean)[hidden] ** 2).sum() / oracle_var[hidden].sum())
    results["oracle_max_error_vs_enumeration"] = _exactness(oracle, np.random.default_rng(0))

    rows = np.sort(np.random.default_rng(0).choice(test.n_samples, size=min(LINEAR_SAMPLES, test.n_samples),
                                                   replace=False))
    params = oracle.params
    tissue_index = pd.Index(params.tissue_names).get_indexer(test.samples["tissue"])[rows]
    std, centre = test.transform.std.astype(np.float64), test.transform.mean.astype(np.float64)
    log_expr = np.where(observed[rows], test.x[rows] * std + centre, 0.0)
    start = time.perf_counter()
    linear = linear_conditional_mean(params, tissue_index, test.samples["sex"].to_numpy()[rows],
                                     test.samples["age"].to_numpy()[rows], log_expr, observed[rows])
    results["linear_seconds"] = time.perf_counter() - start
    results["linear_subset_samples"] = len(rows)
    results["r2_linear_subset"] = _r2(test.x[rows], (linear - centre) / std, observed[rows])
    results["r2_oracle_subset"] = _r2(test.x[rows], oracle_mean[rows], observed[rows])
    results["oracle_minus_linear"] = results["r2_oracle_subset"] - results["r2_linear_subset"]
    return results


def brain_check(path: str) -> pd.DataFrame:
    """For each brain region of a checkpoint: its 5 nearest tissues (cosine) and how many are brain regions."""
    imputer, _ = load_checkpoint(path)
    return brain_neighbours(tissue_embeddings(imputer), k=5)


def _demo_checkpoint(key: str) -> str | None:
    path = checkpoint_path(key)
    return str(path) if path.is_file() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pmi", default=_demo_checkpoint("pmi_all"),
                        help="PMI checkpoint (tissue-embedding check; default: the demo's pmi_all)")
    parser.add_argument("--gain", default=_demo_checkpoint("gain_all"),
                        help="GAIN-GTEx checkpoint (tissue-embedding check; default: the demo's gain_all)")
    parser.add_argument("--skip-cohort", action="store_true", help="only the tissue-embedding check")
    args = parser.parse_args()
    payload: dict = {}
    sections = []
    if not args.skip_cohort:
        results = simulator_properties()
        payload["cohort"] = results
        keys = ("r2_oracle", "r2_mean", "r2_blood", "r2_oracle_subset", "r2_linear_subset", "oracle_minus_linear",
                "oracle_calibration", "oracle_max_error_vs_enumeration", "oracle_seconds", "linear_seconds",
                "n_test_samples", "linear_subset_samples")
        rows = [{"key": key, "value": f"{results[key]:.4g}"} for key in keys]
        sections.append(markdown_table(rows, [("key", "Property", ""), ("value", "Value", "")]))
        print(sections[-1])
    for name, path in (("pmi", args.pmi), ("gain", args.gain)):
        if path:
            table = brain_check(path)
            payload[f"embeddings_{name}"] = {"checkpoint": path, "regions": table.to_dict(orient="records"),
                                             "regions_with_4_of_5": int((table["brain_in_top"] >= 4).sum()),
                                             "n_regions": len(table)}
            text = f"\n{name}: brain regions with >= 4 brain tissues among their 5 nearest: " \
                   f"{(table['brain_in_top'] >= 4).sum()} / {len(table)}\n" + markdown_table(
                       table.to_dict(orient="records"),
                       [("tissue", "Brain region", ""), ("brain_in_top", "Brain in top 5", ""),
                        ("neighbours", "5 nearest (cosine)", "")])
            print(text)
            sections.append(text)
    write_results("simulator_properties", payload, "\n".join(sections))


if __name__ == "__main__":
    main()
