"""Cross-tissue imputation per donor: the README's table on the demo and on the influenza cohort.

Each run is :func:`gtex_models.analysis.cross_tissue.run_cross_tissue` (CLI ``benchmark --task cross-tissue``):
methods fitted on the training donors, every sample of a test donor predicted from the donor's other samples,
per-gene R² per target group over the test donors; R² against the number of source samples; 90 % intervals.

- ``--cohort demo``: the demo cohort (``simulate_cohort(300, 2000, 0)``, the demo study's cohort), with the
  donor oracle; the issue's bars: the best method beats the group mean and the blood surrogate in ≥ 80 % of
  target tissues, and reaches ≥ 0.8 x the oracle's mean R².
- ``--cohort flu``: GEO GSE30550 (Bioconductor qusage ``fluExample``; 17 subjects x 15 time points, whole blood,
  log2 microarray), the subject the donor and the time point the group; one run per donor split
  (``--seeds``: 4 test subjects each), bar: the best method ≥ the time-point mean + 0.05.

Run with one BLAS thread on a shared machine (``OPENBLAS_NUM_THREADS=1``): many threads on two busy cores
made the small solves 30x slower here. Examples::

    OPENBLAS_NUM_THREADS=1 python benchmarks/cross_tissue.py --cohort demo --out cross_tissue_demo --study data/demo
    OPENBLAS_NUM_THREADS=1 python benchmarks/cross_tissue.py --cohort flu --seeds 0,1,2,3,4 --out cross_tissue_flu
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import pandas as pd

try:
    from benchmarks._common import load_average, markdown_table, write_results
except ImportError:
    from _common import load_average, markdown_table, write_results

FLU_DIR = Path("/work/shared/reference/real_cohorts")
COLUMNS = [("method", "Method", ""), ("r2_mean", "R² mean over target groups", "{:.3f}"),
           ("r2_median", "R² median", "{:.3f}"), ("tissues_won", "Groups won", "{:.0%}"),
           ("n_tissues", "Target groups", ""), ("n_targets", "Targets", ""), ("fit_seconds", "Fit (s)", "{:.1f}"),
           ("impute_seconds", "Impute (s)", "{:.1f}"), ("coverage", "90 % coverage", "{:.3f}"),
           ("coverage_min_group", "Lowest group", "{:.3f}"), ("width_median", "Median width (log2)", "{:.2f}")]


def load(name: str, seed: int, flu_dir: Path):
    from gtex_models.data.readers import import_table
    from gtex_models.data.simulate import simulate_cohort

    if name == "demo":  # the demo study's cohort
        return simulate_cohort(n_donors=300, n_genes=2000, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return import_table(flu_dir / "flu_gse30550_expression.csv.gz", flu_dir / "flu_gse30550_samples.csv",
                            tissue_column="hours", seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", choices=("demo", "flu"), default="demo")
    parser.add_argument("--methods", default=None, help="default: mean,blood,donor-gauss,donor-net (+ donor-oracle "
                                                        "on the demo)")
    parser.add_argument("--seeds", default="0", help="donor splits (comma-separated), one run each")
    parser.add_argument("--flu-dir", type=Path, default=FLU_DIR)
    parser.add_argument("--out", default=None)
    parser.add_argument("--study", type=Path, default=None,
                        help="also store the (first split's) results in this study for the Donors page, as `study "
                             "add-donors` does (--cohort demo: data/demo)")
    args = parser.parse_args()

    from gtex_models.analysis.cross_tissue import DEFAULT_METHODS, run_cross_tissue, tissue_means

    methods = args.methods.split(",") if args.methods else [*DEFAULT_METHODS, *(["donor-oracle"] if args.cohort ==
                                                                                 "demo" else [])]
    runs, sections = [], []
    for seed in [int(s) for s in args.seeds.split(",")]:
        cohort = load(args.cohort, seed, args.flu_dir)
        start, load_before = time.time(), load_average()

        def progress(fraction: float, message: str) -> None:
            if "EM iteration" not in message and "epoch" not in message:
                print(f"{time.time() - start:8.1f} s {fraction:4.0%} {message}", flush=True)

        result = run_cross_tissue(cohort, methods, seed=seed, interval=0.9, progress=progress)
        if args.study is not None and not runs:
            from gtex_models.studies.donors import write_donor_results

            write_donor_results(args.study, result, cohort)
        means = tissue_means(result.per_tissue)
        curve = result.by_sources.pivot(index="n_sources", columns="method", values="r2").reset_index()
        runs.append({"seed": seed, "cohort": cohort.summary(), "records": result.records,
                     "by_sources": result.by_sources.to_dict("records"),
                     "per_tissue": {t: row.dropna().to_dict() for t, row in means.iterrows()},
                     "chosen": {m: {k: getattr(i, k) for k in ("rank_", "shrinkage_") if hasattr(i, k)}
                                for m, i in result.imputers.items()},
                     "seconds": time.time() - start, "load": [load_before, load_average()]})
        curve_columns = [("n_sources", "Source samples", "")] + [(m, m, "{:.3f}") for m in methods]
        sections.append(f"### Split seed {seed}: {cohort.summary()}\n\n"
                        + markdown_table(result.records, COLUMNS) + "\n\nR² against the number of source samples "
                        "(pooled over target groups):\n\n" + markdown_table(curve.to_dict("records"), curve_columns)
                        + f"\n\nLoad {load_before} -> {load_average()}, {time.time() - start:.0f} s wall.\n")
        print(sections[-1], flush=True)
    if len(runs) > 1:
        table = pd.DataFrame([{**r, "seed": run["seed"]} for run in runs for r in run["records"]])
        summary = table.groupby("method", sort=False)["r2_mean"].agg(["mean", "std", "min", "max"]).reset_index()
        sections.insert(0, "### Over the splits: mean R² over target groups\n\n"
                        + markdown_table(summary.to_dict("records"),
                                         [("method", "Method", ""), ("mean", "Mean", "{:.3f}"), ("std", "SD", "{:.3f}"),
                                          ("min", "Min", "{:.3f}"), ("max", "Max", "{:.3f}")]) + "\n")
    if args.out:
        write_results(args.out, {"cohort": args.cohort, "methods": methods, "runs": runs}, "\n".join(sections))


if __name__ == "__main__":
    main()
