"""Properties of the demo simulator (not targets for any method), measured on the demo cohort.

At 50 % MCAR on the test donors (the benchmark protocol's split and mask), every R² against the product's
reference (the gene's training mean in the tissue, :func:`gtex_models.analysis.evaluation.reference_values`):

* the oracle's R² (exact conditional mean) against the best *linear* predictor: the Gaussian
  conditional under the model's exact mean and covariance given tissue, sex and age (pooled over
  the cell states; computed from the parameters, not estimated), on every test sample;
* what the demo's ``gauss`` (``gauss_all``) learnt from the training donors, and the same learnt covariance
  around the exact means: how much of the gap to the exact linear predictor is the means, how much the
  covariance;
* the per-tissue mean and the blood surrogate (the donor's Whole Blood sample);
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

from gtex_models.analysis.benchmark import scenario_data
from gtex_models.analysis.embeddings import brain_neighbours, tissue_embeddings
from gtex_models.analysis.evaluation import r2_per_gene, reference_values, summarize
from gtex_models.data.patterns import mask_cohort
from gtex_models.models.baselines import BloodImputer, MeanImputer
from gtex_models.models.checkpoints import load_checkpoint
from gtex_models.models.gauss import conditional_mean
from gtex_models.models.oracle import (
    OracleImputer,
    conditional_moments,
    enumerate_conditional_moments,
    linear_conditional_mean,
)
from gtex_models.studies.demo import DEMO_SIMULATION, checkpoint_path, load_demo_cohort

MISSING_RATE = 0.5
N_ENUMERATION_CHECKS = 5


def _r2(truth: np.ndarray, imputed: np.ndarray, observed: np.ndarray, reference: np.ndarray) -> float:
    return float(summarize(r2_per_gene(truth, imputed, observed, reference))["r2_mean"])


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
    cohort = load_demo_cohort()
    data = scenario_data(cohort, "inductive", MISSING_RATE, seed=0)  # the benchmark protocol's split and mask
    train, test = data.train_donors, data.test
    observed = data.pattern.observed(test, data.seed)
    masked = mask_cohort(test, observed)
    hidden = ~observed
    reference = reference_values(test, train)  # the product's R² reference: the gene's training mean in the tissue

    oracle = OracleImputer().fit(cohort)
    start = time.perf_counter()
    oracle_mean, oracle_var = oracle.conditional_moments(masked)
    oracle_seconds = time.perf_counter() - start
    results = {"simulation": asdict(DEMO_SIMULATION), "missing_rate": MISSING_RATE,
               "n_test_samples": test.n_samples, "n_genes": test.n_genes,
               "oracle_seconds": oracle_seconds, "load_average": load_average()}
    results["r2_oracle"] = _r2(test.x, oracle_mean, observed, reference)
    results["r2_mean"] = _r2(test.x, MeanImputer().fit(train).impute(masked), observed, reference)
    results["r2_blood"] = _r2(test.x, BloodImputer().fit(train).impute(masked), observed, reference)
    results["oracle_calibration"] = float(((test.x - oracle_mean)[hidden] ** 2).sum() / oracle_var[hidden].sum())
    results["oracle_max_error_vs_enumeration"] = _exactness(oracle, np.random.default_rng(0))

    params = oracle.params
    tissue_index = pd.Index(params.tissue_names).get_indexer(test.samples["tissue"])
    sex, age = test.samples["sex"].to_numpy(), test.samples["age"].to_numpy()
    std, centre = test.transform.std.astype(np.float64), test.transform.mean.astype(np.float64)
    log_expr = np.where(observed, test.x * std + centre, 0.0)
    start = time.perf_counter()
    linear = linear_conditional_mean(params, tissue_index, sex, age, log_expr, observed)
    results["linear_seconds"] = time.perf_counter() - start
    results["r2_linear"] = _r2(test.x, (linear - centre) / std, observed, reference)
    results["oracle_minus_linear"] = results["r2_oracle"] - results["r2_linear"]

    gauss_path = checkpoint_path("gauss_all")
    if gauss_path.is_file():  # what the demo's gauss learnt, and the same covariance around the exact means
        gauss, _ = load_checkpoint(gauss_path)
        centring, factors = gauss.fitted
        x = np.where(observed, test.x, np.nan).astype(np.float32)
        results["r2_gauss"] = _r2(test.x, conditional_mean(x, centring.expected(test.samples), factors), observed,
                                  reference)
        exact_mean = params.detection(tissue_index, sex) * (params.covariate_mean(tissue_index, sex, age)
                                                            + params.state_weights[tissue_index] @ params.state_shift)
        exact_mean = ((exact_mean - centre) / std).astype(np.float32)
        results["r2_gauss_exact_means"] = _r2(test.x, conditional_mean(x, exact_mean, factors), observed, reference)
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
        keys = ("r2_oracle", "r2_linear", "oracle_minus_linear", "r2_gauss", "r2_gauss_exact_means", "r2_mean",
                "r2_blood", "oracle_calibration", "oracle_max_error_vs_enumeration", "oracle_seconds",
                "linear_seconds", "n_test_samples")
        rows = [{"key": key, "value": f"{results[key]:.4g}"} for key in keys if key in results]
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
