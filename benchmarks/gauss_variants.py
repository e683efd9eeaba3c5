"""Ideas tried to lift the demo's ``gauss`` towards the exact-parameter linear predictor, and what each gains.

On the demo (the benchmark protocol: inductive, test values hidden at 50 %, seed 0; R² against the product's
reference), starting from the demo's ``gauss_all`` (its means and shrunk low-rank-plus-diagonal covariance):

* **group covariance** (regularised discriminant analysis): each tissue's covariance
  ``a Σ + (1 - a) S_t``, ``S_t`` the tissue's own residual covariance over its training samples;
* **group factor scales**: the same loadings, each factor's variance re-estimated per tissue from its
  training samples' factor scores (shrunk towards 1 by ``ν`` pseudo-samples);
* **neighbour correction**: the ``k`` training samples nearest to the sample on its observed residuals
  (whitened by the noise), and the mean of their own ``gauss`` errors under the sample's observed genes,
  added with weight ``w``: what a non-parametric step adds to the linear model;
* **ensemble** (demo only): ``gauss`` averaged with the demo's own PMI or GAIN-GTEx (the paper's architecture,
  trained without the Gaussian path), weight ``w`` on the deep model.

Each is scored at every setting on the test donors, so the best row is an upper bound of what the idea gains.
With ``--cohort influenza`` the same ideas run on the real influenza cohort (``benchmarks/real_cohorts.py``'s
1,000 genes and subject split ``--seed``; groups: the two conditions), from a ``gauss`` fitted on its training
donors with its settings chosen on the validation donors. None of them is a product method.

Run: ``python benchmarks/gauss_variants.py`` (under a minute on 2 cores), ``python benchmarks/gauss_variants.py
--cohort influenza --seed 1 --out gauss_variants_influenza``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

try:
    from benchmarks._common import load_average, markdown_table, write_results
except ImportError:
    from _common import load_average, markdown_table, write_results

from gtex_models.analysis.benchmark import scenario_data
from gtex_models.analysis.evaluation import r2_per_gene, reference_values
from gtex_models.data.patterns import mask_cohort
from gtex_models.models.checkpoints import load_checkpoint
from gtex_models.models.gauss import Factors, GaussImputer, conditional_mean
from gtex_models.studies.demo import checkpoint_path, load_demo_cohort

GROUP_WEIGHTS = (0.8, 0.6)  # a: the pooled covariance's weight
SCALE_PRIORS = (10.0, 30.0, 100.0)  # ν
NEIGHBOURS = ((5, 0.5), (5, 1.0), (10, 0.5), (20, 0.5))  # (k, w)
ENSEMBLE_WEIGHTS = (0.2, 0.35, 0.5)  # w: the deep model's weight


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", choices=("demo", "influenza"), default="demo")
    parser.add_argument("--seed", type=int, default=0, help="influenza: the subject split")
    parser.add_argument("--out", default="gauss_variants")
    args = parser.parse_args()
    if args.cohort == "demo":
        data = scenario_data(load_demo_cohort(), "inductive", 0.5, seed=0)
        gauss, _ = load_checkpoint(checkpoint_path("gauss_all"))
    else:
        try:
            from benchmarks.real_cohorts import load
        except ImportError:
            from real_cohorts import load
        data = scenario_data(load("influenza", args.seed), "inductive", 0.5, seed=0)
        gauss = GaussImputer().fit(data.fit, data.valid)
    train, test = data.train_donors, data.test
    observed = data.pattern.observed(test, data.seed)
    truth = test.x.astype(np.float64)
    masked = np.where(observed, test.x, np.nan).astype(np.float32)
    reference = reference_values(test, train)
    centring, factors = gauss.fitted
    expected = centring.expected(test.samples)
    train_residual = train.x.astype(np.float64) - centring.expected(train.samples)
    train_groups, test_groups = train.samples["tissue"].to_numpy(), test.samples["tissue"].to_numpy()

    def r2(prediction: np.ndarray) -> float:
        return float(np.mean(r2_per_gene(truth, prediction, observed, reference)))

    def per_group(factors_of) -> np.ndarray:
        """gauss's conditional mean with each tissue's own factors (``factors_of(tissue)``)."""
        out = np.empty_like(truth)
        for tissue in np.unique(test_groups):
            rows = np.flatnonzero(test_groups == tissue)
            out[rows] = conditional_mean(masked[rows], expected[rows], factors_of(tissue))
        return out

    loadings, noise = factors.loadings.astype(np.float64), factors.noise.astype(np.float64)
    rows = []

    def record(idea: str, setting: str, prediction: np.ndarray, start: float) -> None:
        rows.append({"idea": idea, "setting": setting, "r2": r2(prediction), "seconds": time.perf_counter() - start})
        print(rows[-1], flush=True)

    start = time.perf_counter()
    base = conditional_mean(masked, expected, factors)
    record("gauss" + (" (the demo's gauss_all)" if args.cohort == "demo" else ""), "", base, start)

    for a in GROUP_WEIGHTS:
        def group_covariance(tissue: str, a: float = a) -> Factors:
            residual = train_residual[train_groups == tissue]
            own = np.sqrt((1 - a) / len(residual)) * residual.T
            return Factors(np.hstack([np.sqrt(a) * loadings, own]).astype(np.float32), (a * noise).astype(np.float32))
        start = time.perf_counter()
        record("group covariance", f"a = {a}", per_group(group_covariance), start)

    gram = (loadings / noise[:, None]).T @ loadings
    posterior = np.linalg.inv(np.eye(loadings.shape[1]) + gram)
    scores = train_residual @ (loadings / noise[:, None]) @ posterior
    for prior in SCALE_PRIORS:
        def group_scales(tissue: str, prior: float = prior) -> Factors:
            in_group = train_groups == tissue
            second_moment = (scores[in_group] ** 2).mean(axis=0) + np.diag(posterior)
            scale = (in_group.sum() * second_moment + prior) / (in_group.sum() + prior)
            return Factors((loadings * np.sqrt(scale)).astype(np.float32), factors.noise)
        start = time.perf_counter()
        record("group factor scales", f"ν = {prior:g}", per_group(group_scales), start)

    start = time.perf_counter()
    corrections = {k: np.zeros_like(truth) for k in {k for k, _ in NEIGHBOURS}}
    residual = truth - expected
    for i in range(len(truth)):
        seen, hidden = observed[i], ~observed[i]
        lo = loadings[seen] / noise[seen, None]
        solve = np.linalg.solve(np.eye(loadings.shape[1]) + lo.T @ loadings[seen], lo.T)  # k x observed
        distance = (((train_residual[:, seen] - residual[i, seen]) / np.sqrt(noise[seen])) ** 2).sum(axis=1)
        order = np.argsort(distance)
        for k, correction in corrections.items():
            near = train_residual[order[:k]]
            errors = near[:, hidden] - (loadings[hidden] @ (solve @ near[:, seen].T)).T
            correction[i, hidden] = errors.mean(axis=0)
    seconds = time.perf_counter() - start
    for k, weight in NEIGHBOURS:
        record("neighbour correction", f"k = {k}, w = {weight}", base + weight * corrections[k], time.perf_counter())
        rows[-1]["seconds"] = seconds

    if args.cohort == "demo":
        masked_cohort = mask_cohort(test, observed)
        for key in ("pmi_all", "gain_all"):
            start = time.perf_counter()
            deep = load_checkpoint(checkpoint_path(key))[0].impute(masked_cohort)
            for weight in ENSEMBLE_WEIGHTS:
                record(f"ensemble with the demo's {key}", f"w = {weight}", (1 - weight) * base + weight * deep, start)

    table = markdown_table(rows, [("idea", "Idea", ""), ("setting", "Setting", ""), ("r2", "Test R² mean", "{:.3f}"),
                                  ("seconds", "Seconds", "{:.1f}")])
    print(table)
    write_results(args.out, {"cohort": args.cohort, "seed": args.seed, "rows": rows, "load_average": load_average()},
                  table)


if __name__ == "__main__":
    main()
