"""KNN, MICE and MissForest against PMI and GAIN-GTEx on the largest subset each baseline finishes.

Subsets of the cached GTEx-scale cohort grow along a ladder (donors x genes, every split kept: the
train / valid / test donors stay as they are). Each baseline is run on the ladder's subsets in turn,
each run in a subprocess killed at ``--budget`` seconds; its largest subset finished in time is
kept. PMI and GAIN-GTEx (their inductive configs) are then fitted and scored on
that same subset, with the same protocol: :func:`gtex_models.analysis.benchmark.fit_and_score`, inductive
scenario (fit on train donors, early stopping on valid, 50% of each test sample's values hidden
MCAR, R² per gene on the hidden entries). Deep models train for at most ``--deep-seconds``.

Examples::

    python benchmarks/vs_baselines.py                    # 10-minute budget per baseline run
    python benchmarks/vs_baselines.py --budget 180       # a quicker, smaller comparison
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

try:
    from benchmarks._common import ROOT, load_average, markdown_table, peak_rss_gib, write_results
except ImportError:
    from _common import ROOT, load_average, markdown_table, peak_rss_gib, write_results

# (donors, genes): each step roughly doubles to quadruples the baselines' work
LADDER = [(60, 250), (120, 500), (185, 1000), (370, 1000), (370, 2000), (740, 2000), (740, 4000),
          (740, 8000), (740, 12557)]
BASELINES = ("knn", "mice", "missforest")
DEEP = ("pmi", "gain")


def subset(n_donors: int, n_genes: int, seed: int = 0):
    """The first ``n_donors`` donors (random order, fixed seed) and ``n_genes`` random genes."""
    import numpy as np

    from benchmarks.scale_cohort import scale_cohort

    cohort = scale_cohort()
    rng = np.random.default_rng([seed, 7])  # not the split's own shuffle (that would pick train donors only)
    donor_split = cohort.samples[["donor_id", "split"]].drop_duplicates()
    chosen: set[str] = set()
    for _, group in donor_split.groupby("split"):  # the same share of each split's donors
        share = max(1, round(n_donors * len(group) / len(donor_split)))
        chosen |= set(rng.permutation(group["donor_id"].to_numpy())[:share])
    rows = np.flatnonzero(cohort.samples["donor_id"].isin(chosen).to_numpy())
    genes = np.sort(rng.choice(cohort.n_genes, size=min(n_genes, cohort.n_genes), replace=False))
    return cohort.subset_samples(rows).subset_genes(genes)


def run_one(method: str, n_donors: int, n_genes: int, deep_seconds: float) -> dict[str, Any]:
    from benchmarks.train_throughput import method_settings
    from gtex_models.analysis.benchmark import fit_and_score
    from gtex_models.models.registry import make_imputer

    cohort = subset(n_donors, n_genes)
    config: dict[str, Any] = {}
    if method in DEEP:
        model, training = method_settings(method)
        config = {**model, **training}
        config.update(device="cpu", max_seconds=min(deep_seconds, config.get("max_seconds") or deep_seconds))
    load = load_average()
    imputer = make_imputer(method, **config)
    record = fit_and_score(imputer, cohort, "inductive", missing_rate=0.5, seed=0)
    record.update(donors=n_donors, samples=cohort.n_samples, n_train=int((cohort.samples["split"] == "train").sum()),
                  total_seconds=record["fit_seconds"] + record["impute_seconds"], load_1min=load[0],
                  peak_rss_gib=peak_rss_gib())
    if method in DEEP:
        record.update(epochs=imputer.history.get("epochs"), stop_reason=imputer.history.get("stop_reason"))
    return record


def launch(method: str, step: tuple[int, int], budget: float, deep_seconds: float) -> dict[str, Any] | None:
    """Run one (method, subset) in a subprocess; None when it fails or exceeds ``budget``."""
    command = [sys.executable, str(Path(__file__).resolve()), "--one", method, str(step[0]), str(step[1]),
               "--deep-seconds", str(deep_seconds)]
    start = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=budget)
    except subprocess.TimeoutExpired:
        print(f"  {method:10s} {step[0]} donors x {step[1]} genes: over the {budget:.0f} s budget", flush=True)
        return None
    lines = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")]
    if result.returncode or not lines:
        print(f"  {method} {step} failed:\n{result.stderr[-2000:]}", file=sys.stderr)
        return None
    record = json.loads(lines[-1][len("RESULT "):])
    record["wall_seconds"] = time.perf_counter() - start
    print(f"  {method:10s} {record['samples']:6d} samples x {record['n_genes']:5d} genes: "
          f"fit {record['fit_seconds']:7.1f} s, impute {record['impute_seconds']:7.2f} s, "
          f"R² {record['r2_mean']:.3f} (load {record['load_1min']})", flush=True)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=600.0, help="seconds per baseline run (subprocess)")
    parser.add_argument("--baselines", default=",".join(BASELINES))
    parser.add_argument("--deep-seconds", type=float, default=300.0, help="training budget of PMI / GAIN-GTEx")
    parser.add_argument("--start", type=int, default=0, help="first ladder step to try")
    parser.add_argument("--name", default="vs_baselines")
    parser.add_argument("--one", nargs=3, metavar=("METHOD", "DONORS", "GENES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        method, donors, genes = args.one
        print("RESULT " + json.dumps(run_one(method, int(donors), int(genes), args.deep_seconds), default=float),
              flush=True)
        return

    comparisons = []
    for baseline in args.baselines.split(","):
        print(f"{baseline}: growing the subset (budget {args.budget:.0f} s per run)", flush=True)
        best = None
        for step in LADDER[args.start:]:
            record = launch(baseline, step, args.budget, args.deep_seconds)
            if record is None:
                break
            best = (step, record)
        if best is None:
            print(f"{baseline}: no subset finished in the budget", flush=True)
            continue
        step, record = best
        group = {"baseline": baseline, "subset": {"donors": step[0], "genes": step[1],
                                                   "samples": record["samples"], "n_train": record["n_train"],
                                                   "n_test": record["n_test_samples"]},
                 "records": [record]}
        for method in DEEP:
            deep = launch(method, step, max(args.budget, args.deep_seconds * 2 + 120), args.deep_seconds)
            if deep is not None:
                deep["impute_speedup_vs_baseline"] = record["impute_seconds"] / deep["impute_seconds"]
                deep["total_speedup_vs_baseline"] = record["total_seconds"] / deep["total_seconds"]
                deep["r2_minus_baseline"] = deep["r2_mean"] - record["r2_mean"]
                group["records"].append(deep)
        comparisons.append(group)

    rows = []
    for group in comparisons:
        sub = group["subset"]
        for record in group["records"]:
            rows.append({**record, "subset": f"{group['baseline']}: {sub['samples']:,} x {sub['genes']:,} "
                                             f"({sub['n_test']:,} test)"})
    table = markdown_table(rows, [
        ("subset", "Subset (samples x genes)", ""), ("method", "Method", ""), ("r2_mean", "R² mean", "{:.3f}"),
        ("fit_seconds", "Fit (s)", "{:.1f}"), ("impute_seconds", "Impute (s)", "{:.2f}"),
        ("total_seconds", "Fit+impute (s)", "{:.1f}"),
        ("impute_speedup_vs_baseline", "Impute speed-up vs baseline", "{:.0f}x"),
        ("total_speedup_vs_baseline", "Fit+impute speed-up", "{:.1f}x"),
        ("r2_minus_baseline", "ΔR² vs baseline", "{:+.3f}"), ("epochs", "Epochs", ""),
        ("load_1min", "Load (1 min)", "{:.2f}")])
    print(table)
    write_results(args.name, {"budget_seconds": args.budget, "deep_seconds": args.deep_seconds,
                              "ladder": LADDER, "comparisons": comparisons}, table)


if __name__ == "__main__":
    main()
