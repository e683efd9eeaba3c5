"""Wall-clock time of ``study build`` (PMI and GAIN-GTEx kept as models, mean / KNN / MICE as baselines)
on simulated GTEx-shaped cohorts of about 100, 1,000 and 6,000 samples (1,000 genes), settings chosen
for the cohort's size (no config, no epoch cap: early stopping decides).

Each size runs the two CLI commands a user would, in a fresh process (``simulate`` then ``study build``);
the wall-clock and CPU time of ``study build`` are reported with the per-run fit and impute seconds from the study's
benchmark records and the epochs each deep model trained.

    python benchmarks/study_build_time.py [--donors 5,50,300] [--genes 1000] [--max-epochs N]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    from benchmarks._common import ROOT, load_average, markdown_table, write_results
except ImportError:
    from _common import ROOT, load_average, markdown_table, write_results


def _children_cpu_seconds() -> float:
    """User + system CPU seconds of the finished child processes (less sensitive to a busy machine than wall time)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def build_once(donors: int, genes: int, max_epochs: int | None, directory: Path) -> dict:
    """Simulate a cohort, time ``study build`` on it, and read back what the study holds."""
    from gtex_models.studies.study import Study

    cohort, study = directory / "cohort", directory / "study"
    subprocess.run([sys.executable, "-m", "gtex_models", "simulate", "--donors", str(donors), "--genes", str(genes),
                    "--out", str(cohort)], check=True, cwd=ROOT, capture_output=True)
    command = [sys.executable, "-m", "gtex_models", "study", "build", "--cohort", str(cohort), "--out", str(study),
               "--models", "pmi,gain", "--baselines", "mean,knn,mice"]
    if max_epochs:
        command += ["--max-epochs", str(max_epochs)]
    load = load_average()
    cpu_before = _children_cpu_seconds()
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    cpu_seconds = _children_cpu_seconds() - cpu_before
    if result.returncode:
        raise RuntimeError(result.stderr[-2000:])
    opened = Study.open(study)
    records = {r["method"]: r for r in opened.benchmark()}
    row = {"donors": donors, "samples": opened.cohort_summary["n_samples"], "genes": genes,
           "build_seconds": seconds, "build_cpu_seconds": cpu_seconds, "load_before": load[0], "load_after": load_average()[0],
           "summary": result.stdout.strip()}
    for method, record in records.items():
        row[f"{method}_seconds"] = record["fit_seconds"] + record["impute_seconds"]
        row[f"{method}_r2"] = record["r2_mean"]
    for key in ("pmi_all", "gain_all"):
        imputer, _ = opened.load_model(key)
        row[f"{key}_epochs"] = imputer.history["epochs"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--donors", default="5,50,300", help="simulated donors per cohort (~20 samples each)")
    parser.add_argument("--genes", type=int, default=1000)
    parser.add_argument("--max-epochs", type=int, default=None)
    args = parser.parse_args()
    rows = []
    for donors in (int(d) for d in args.donors.split(",")):
        with tempfile.TemporaryDirectory() as directory:
            row = build_once(donors, args.genes, args.max_epochs, Path(directory))
        rows.append(row)
        print(json.dumps(row), flush=True)
    table = markdown_table(rows, [
        ("samples", "Samples", "{:,}"), ("genes", "Genes", "{:,}"), ("build_seconds", "study build (s)", "{:.0f}"),
        ("build_cpu_seconds", "CPU (s)", "{:.0f}"),
        ("pmi_seconds", "PMI fit+impute (s)", "{:.0f}"), ("pmi_all_epochs", "PMI epochs", ""),
        ("gain_seconds", "GAIN-GTEx (s)", "{:.0f}"), ("gain_all_epochs", "GAIN epochs", ""),
        ("mean_seconds", "Mean (s)", "{:.0f}"), ("knn_seconds", "KNN (s)", "{:.0f}"),
        ("mice_seconds", "MICE (s)", "{:.0f}"), ("pmi_r2", "PMI R²", "{:.3f}"), ("gain_r2", "GAIN R²", "{:.3f}"),
        ("mice_r2", "MICE R²", "{:.3f}"), ("load_before", "Load before", "{:.1f}"), ("load_after", "Load after", "{:.1f}")])
    print(table)
    write_results("study_build_time", {"rows": rows}, table)


if __name__ == "__main__":
    main()
