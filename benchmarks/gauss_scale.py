"""``gauss`` at a small cohort's size and at GTEx width: fit and impute seconds, peak memory, R².

Sizes (issue #26's bars in brackets):

- ``small``: a simulated cohort cut to 128 training samples x 1,000 genes (fit + impute <= 5 s on 2 cores);
- ``gtex``: :mod:`benchmarks.scale_cohort` (GTEx v8's width: 8,835 training samples x 12,557 genes, 49 tissues;
  fit <= 10 min, peak RSS <= 6 GiB, 1,000 samples imputed <= 5 s).

Each fit chooses its settings on the cohort's validation donors, as ``train --method gauss`` does; then
``--impute`` test samples (50 % MCAR, each sample its own observed genes) are imputed and scored (per-gene R²
against the training group means). Peak RSS is the process's, read after each step (the GTEx-width cohort is
memory-mapped; the pages it touches count). Run it alone::

    python benchmarks/gauss_scale.py --sizes small,gtex --out gauss_scale
"""

from __future__ import annotations

import argparse
import time

import numpy as np

try:
    from benchmarks._common import load_average, markdown_table, peak_rss_gib, write_results
    from benchmarks.scale_cohort import scale_cohort
except ImportError:  # run as a script
    from _common import load_average, markdown_table, peak_rss_gib, write_results
    from scale_cohort import scale_cohort

SMALL_TRAIN, SMALL_GENES = 128, 1000
COLUMNS = [("size", "Size", ""), ("n_train", "Train samples", "{:,}"), ("n_valid", "Valid samples", "{:,}"),
           ("n_genes", "Genes", "{:,}"), ("rank", "Rank chosen", ""), ("shrinkage", "α chosen", "{:.2f}"),
           ("fit_seconds", "Fit (s)", "{:.1f}"), ("fit_cpu_seconds", "Fit CPU (s)", "{:.1f}"),
           ("n_imputed", "Imputed samples", "{:,}"), ("impute_seconds", "Impute (s)", "{:.2f}"),
           ("r2_mean", "R² (50 % MCAR)", "{:.3f}"), ("peak_rss_gib", "Peak RSS (GiB)", "{:.2f}"),
           ("load", "Load (1/5/15 min)", "")]


def cohorts(size: str):
    """The training, validation and test cohorts of ``size``."""
    from gtex_models.data.simulate import simulate_cohort

    if size == "gtex":
        cohort = scale_cohort()
        return cohort.split("train"), cohort.split("valid"), cohort.split("test")
    cohort = simulate_cohort(n_donors=30, n_genes=SMALL_GENES, seed=1)
    train = cohort.split("train")
    return train.subset_samples(np.arange(min(SMALL_TRAIN, train.n_samples))), cohort.split("valid"), cohort.split("test")


def run(size: str, n_impute: int) -> dict:
    from gtex_models.analysis.evaluation import r2_per_gene, reference_values, summarize
    from gtex_models.data.masks import mcar_mask
    from gtex_models.data.patterns import mask_cohort
    from gtex_models.models.gauss import GaussImputer

    load = load_average()
    train, valid, test = cohorts(size)
    start, cpu = time.perf_counter(), time.process_time()
    imputer = GaussImputer().fit(train, valid)
    fit_seconds, fit_cpu = time.perf_counter() - start, time.process_time() - cpu
    test = test.subset_samples(np.arange(min(n_impute, test.n_samples)))
    observed = mcar_mask(test.x.shape, 0.5, 0.5, seed=0)
    masked = mask_cohort(test, observed)
    start = time.perf_counter()
    imputed = imputer.impute(masked)
    impute_seconds = time.perf_counter() - start
    r2 = summarize(r2_per_gene(test.x, imputed, observed, reference_values(test, train)))["r2_mean"]
    row = {"size": size, "n_train": train.n_samples, "n_valid": valid.n_samples, "n_genes": train.n_genes,
           "rank": imputer.rank_, "shrinkage": imputer.shrinkage_, "fit_seconds": fit_seconds,
           "fit_cpu_seconds": fit_cpu, "n_imputed": test.n_samples, "impute_seconds": impute_seconds,
           "r2_mean": r2, "peak_rss_gib": peak_rss_gib(), "load": load}
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,gtex", help="comma-separated: small, gtex")
    parser.add_argument("--impute", type=int, default=1000, help="test samples imputed (default 1,000)")
    parser.add_argument("--out", default=None, help="write benchmarks/results/OUT.json and .md")
    args = parser.parse_args()
    rows = [run(size, args.impute) for size in args.sizes.split(",")]
    table = markdown_table(rows, COLUMNS)
    print(table)
    if args.out:
        write_results(args.out, {"rows": rows}, table)


if __name__ == "__main__":
    main()
