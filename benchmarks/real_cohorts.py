"""Every method on the real cohorts: R² at 20 / 50 / 80 % missing, fit and impute seconds, same splits and masks.

The cohorts (copied from ``../shared/reference/real_cohorts``; see ``benchmarks/data/README.md``):

- ``influenza``: whole blood of 17 people sampled every ~8 hours after influenza exposure (GEO GSE30550),
  the 1,000 most variable genes, groups = ``condition`` (symptomatic or not), ``subject`` the donor, so
  every split keeps a person's 14-15 samples together;
- ``biobase``: Biobase's 26-sample Affymetrix example (MAS5 signal, negative values clipped to 0, 500 probe
  sets, groups Case/Control), each sample its own donor — tiny: a check that every method runs and is sane.

Protocol: :func:`gtex_models.analysis.benchmark.run_benchmark`'s inductive scenario (fit on the training
donors, settings and early stopping on the validation donors, test donors' values hidden MCAR), for several
donor splits (``--splits``), each fitted once and scored at every rate. Every method gets the product's default
settings for the cohort's size (:func:`gtex_models.models.registry.default_settings`); ``pmi-paper`` is PMI
without the Gaussian path and with the paper's 50 % training masks.

Usage::

    python benchmarks/real_cohorts.py                                  # all methods, both cohorts, 3 splits
    python benchmarks/real_cohorts.py --cohorts influenza --methods gauss,pmi --splits 1
    python benchmarks/real_cohorts.py --cohorts influenza --interval 0.9 --out real_cohorts_intervals

``--interval LEVEL`` also calibrates every method on the validation donors and reports the empirical coverage
of its LEVEL intervals on the hidden test values (pooled, and the lowest condition's) at each rate.
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

try:
    from benchmarks._common import ROOT, markdown_table, write_results
except ImportError:
    from _common import ROOT, markdown_table, write_results

DATA = ROOT / "benchmarks" / "data"
RATES = (0.2, 0.5, 0.8)
METHODS = ("gauss", "softimpute", "pmi", "pmi-paper", "gain", "knn", "mice", "mean")
VARIANTS = {"pmi-paper": ("pmi", {"linear": False, "m_low": 0.5, "m_high": 0.5}),
            "pmi-linear": ("pmi", {"linear": True, "m_low": 0.1, "m_high": 0.9})}


def load(name: str, seed: int):
    """A real cohort with the donor split of ``seed``."""
    from gtex_models import import_table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "influenza":
            cohort = import_table(DATA / "flu_gse30550_expression.csv.gz", DATA / "flu_gse30550_samples.csv",
                                  tissue_column="condition", seed=seed)
            variance = np.nanvar(np.asarray(cohort.transform.inverse(cohort.x)), axis=0)
            return cohort.subset_genes(np.sort(np.argsort(variance)[::-1][:1000]))
        if name == "biobase":
            return import_table(DATA / "biobase_sample_expression.csv", DATA / "biobase_sample_samples.csv",
                                tissue_column="group", seed=seed, negatives="clip")
    raise ValueError(f"Unknown cohort {name!r}")


def run(cohort_name: str, methods: list[str], seed: int, interval: float | None = None) -> list[dict[str, Any]]:
    from gtex_models.analysis.benchmark import run_benchmark
    from gtex_models.data.patterns import Pattern
    from gtex_models.models.registry import default_settings

    cohort = load(cohort_name, seed)
    train = cohort.split("train")
    records = []
    for label in methods:
        method, overrides = VARIANTS.get(label, (label, {}))
        config = {**default_settings(method, train.n_samples, train.n_genes), **overrides}
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = run_benchmark(cohort, [method], configs={method: config}, seed=seed, interval=interval,
                                  patterns=[Pattern("mcar", rate) for rate in RATES])
        for record in found:
            records.append({"cohort": cohort_name, "split": seed, "method": label,
                            "missing_rate": record["missing_rate"], "r2_mean": record["r2_mean"],
                            "fit_seconds": record["fit_seconds"], "impute_seconds": record["impute_seconds"],
                            **{key: record[key] for key in ("coverage", "coverage_min_group") if key in record}})
        print(f"{cohort_name} split {seed} {label}: " + ", ".join(
            f"{r['missing_rate']:.1f}: {r['r2_mean']:.3f}" for r in found) + f" ({time.perf_counter() - start:.0f} s)",
            flush=True)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohorts", default="influenza,biobase", help="comma-separated: influenza, biobase")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods (and pmi-paper)")
    parser.add_argument("--splits", type=int, default=3, help="donor splits (import seeds 0, 1, ...)")
    parser.add_argument("--interval", type=float, default=None, help="also score LEVEL intervals (e.g. 0.9)")
    parser.add_argument("--out", default="real_cohorts", help="results file stem in benchmarks/results/")
    args = parser.parse_args()
    records = [record for name in args.cohorts.split(",") for seed in range(args.splits)
               for record in run(name, args.methods.split(","), seed, args.interval)]
    table = pd.DataFrame(records)
    summary = (table.groupby(["cohort", "method", "missing_rate"])
               .agg(r2_mean=("r2_mean", "mean"), fit_seconds=("fit_seconds", "mean"),
                    impute_seconds=("impute_seconds", "mean")).reset_index())
    wide = summary.pivot_table(index=["cohort", "method"], columns="missing_rate", values="r2_mean").reset_index()
    wide.columns = [f"R² at {c:.0%}" if isinstance(c, float) else c for c in wide.columns]
    seconds = summary.groupby(["cohort", "method"])[["fit_seconds", "impute_seconds"]].mean().reset_index()
    wide = wide.merge(seconds, on=["cohort", "method"]).sort_values(["cohort", "R² at 50%"], ascending=[True, False])
    columns = [("cohort", "Cohort", ""), ("method", "Method", ""),
               *[(f"R² at {rate:.0%}", f"R² at {rate:.0%}", "{:.3f}") for rate in RATES],
               ("fit_seconds", "Fit (s)", "{:.1f}"), ("impute_seconds", "Impute (s)", "{:.2f}")]
    text = markdown_table(wide.to_dict("records"), columns)
    if args.interval is not None:
        coverage = (table.groupby(["cohort", "method", "missing_rate"])
                    .agg(coverage=("coverage", "mean"), lowest=("coverage_min_group", "min")).reset_index())
        text += (f"\n\n{args.interval:.0%} intervals: coverage of the hidden test values (mean over splits; lowest "
                 "group: the minimum over splits)\n\n" + markdown_table(coverage.to_dict("records"), [
                     ("cohort", "Cohort", ""), ("method", "Method", ""), ("missing_rate", "Missing rate", "{:.0%}"),
                     ("coverage", "Coverage", "{:.3f}"), ("lowest", "Lowest group", "{:.3f}")]))
    print(text)
    write_results(args.out, {"records": records}, text)


if __name__ == "__main__":
    main()
