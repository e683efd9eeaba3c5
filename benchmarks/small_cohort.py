"""Deep models against MICE on a small user cohort: 128 samples x 1,000 genes on a log scale, 50 % missing.

The goal (issue #11): PMI's fit + impute takes no longer than MICE's in the same ``benchmark`` run, at an
R² at least MICE's, with the settings chosen for the cohort's size (no config given). Two cohorts, each
written as files and brought in as a user would (``import`` with the scale detected, then
``benchmark``, one call per method so that each one's CPU time is measured too), through the CLI:

- ``gtex-shaped``: the first 128 samples of the simulated GTEx-shaped cohort (7 donors, 1,000 genes),
  as log2(TPM + 1), with donors, tissues, sex and age;
- ``microarray-like``: 128 samples x 1,000 probe IDs, 4 groups, no sex or age, each sample its own
  donor, log2 intensities from a low-rank model (group means + 6 latent factors + noise).

    python benchmarks/small_cohort.py [--methods pmi,gain,mean,knn,mice] [--cohorts gtex-shaped,microarray-like]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

try:
    from benchmarks._common import load_average, markdown_table, write_results
except ImportError:
    from _common import load_average, markdown_table, write_results

N_SAMPLES, N_GENES = 128, 1000


def gtex_shaped(directory: Path) -> tuple[Path, Path]:
    """The simulated cohort's first 128 samples as log2(TPM + 1) (genes x samples) and its sample table."""
    from gtex_models.data.simulate import simulate_cohort

    cohort = simulate_cohort(n_donors=7, n_genes=N_GENES, seed=0).subset_samples(np.arange(N_SAMPLES))
    log = np.log2(cohort.raw() + 1.0)
    expression = pd.DataFrame(log.T.round(4), index=pd.Index(cohort.genes["symbol"], name="gene"),
                              columns=cohort.samples["sample_id"])
    expression.to_csv(directory / "expression.csv")
    cohort.samples[["sample_id", "donor_id", "tissue", "sex", "age"]].to_csv(directory / "samples.csv", index=False)
    return directory / "expression.csv", directory / "samples.csv"


def microarray_like(directory: Path, n_groups: int = 4, n_factors: int = 6, seed: int = 0) -> tuple[Path, Path]:
    """Probe-ID log2 intensities from group means + latent factors + noise; a sample table with groups only."""
    rng = np.random.default_rng(seed)
    groups = np.arange(N_SAMPLES) % n_groups
    means = rng.normal(7.0, 1.5, (n_groups, N_GENES))
    loadings = rng.normal(0.0, 0.6, (N_GENES, n_factors))
    values = means[groups] + rng.normal(size=(N_SAMPLES, n_factors)) @ loadings.T + rng.normal(0, 0.4, (N_SAMPLES, N_GENES))
    probes = [f"{1000 + j}_at" for j in range(N_GENES)]
    samples = [f"GSM{5000 + i}" for i in range(N_SAMPLES)]
    pd.DataFrame(values.T.round(4), index=pd.Index(probes, name="ID_REF"), columns=samples).to_csv(
        directory / "expression.csv")
    pd.DataFrame({"sample_id": samples, "group": [f"group {g + 1}" for g in groups]}).to_csv(
        directory / "samples.csv", index=False)
    return directory / "expression.csv", directory / "samples.csv"


COHORTS = {"gtex-shaped": (gtex_shaped, "tissue"), "microarray-like": (microarray_like, "group")}


def run(name: str, methods: str, directory: Path) -> list[dict]:
    """Import the cohort's files, then ``benchmark`` each method on it, all through the CLI.

    Each method is its own ``benchmark`` call (same cohort, masks and protocol as one call with every
    method) so that its CPU time (``time.process_time``: every thread of this process) is measured too:
    on a machine shared with other jobs, wall-clock seconds depend on what else runs at that moment.
    """
    from gtex_models.interfaces.cli.main import main

    write, tissue_column = COHORTS[name]
    expression, samples = write(directory)
    cohort = directory / "cohort"
    assert main(["import", "--expression", str(expression), "--samples", str(samples),
                 "--tissue-column", tissue_column, "--out", str(cohort)]) == 0
    rows = []
    for method in methods.split(","):
        records_path = directory / f"{method}.json"
        load, cpu = load_average()[0], time.process_time()
        assert main(["benchmark", "--cohort", str(cohort), "--methods", method, "--missing-rate", "0.5",
                     "--json", str(records_path)]) == 0
        cpu = time.process_time() - cpu
        record = json.loads(records_path.read_text())[0]
        rows.append({**record, "cohort": name, "total_seconds": record["fit_seconds"] + record["impute_seconds"],
                     "cpu_seconds": cpu, "load_before": load, "load_after": load_average()[0]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="pmi,gain,mean,knn,mice")
    parser.add_argument("--cohorts", default=",".join(COHORTS))
    args = parser.parse_args()
    import torch

    rows, verdicts = [], []
    for name in args.cohorts.split(","):
        with tempfile.TemporaryDirectory() as directory:
            records = run(name, args.methods, Path(directory))
        rows += records
        by_method = {r["method"]: r for r in records}
        if "pmi" in by_method and "mice" in by_method:
            pmi, mice = by_method["pmi"], by_method["mice"]
            verdicts.append(
                f"- {name}: PMI fit + impute {pmi['total_seconds']:.1f} s wall / {pmi['cpu_seconds']:.1f} s CPU at "
                f"R² {pmi['r2_mean']:.3f}; MICE {mice['total_seconds']:.1f} s wall / {mice['cpu_seconds']:.1f} s CPU "
                f"at R² {mice['r2_mean']:.3f}. PMI is {'no slower' if pmi['cpu_seconds'] <= mice['cpu_seconds'] else 'SLOWER'}"
                f" in CPU time, its R² {'at least' if pmi['r2_mean'] >= mice['r2_mean'] else 'BELOW'} MICE's.")
    table = markdown_table(rows, [
        ("cohort", "Cohort", ""), ("method", "Method", ""), ("r2_mean", "R² mean", "{:.3f}"),
        ("r2_median", "R² median", "{:.3f}"), ("n_genes", "Genes", ""), ("n_test_samples", "Test samples", ""),
        ("fit_seconds", "Fit (s)", "{:.1f}"), ("impute_seconds", "Impute (s)", "{:.1f}"),
        ("total_seconds", "Fit + impute (s)", "{:.1f}"), ("cpu_seconds", "CPU (s)", "{:.1f}"),
        ("load_before", "Load before", "{:.1f}"), ("load_after", "Load after", "{:.1f}")])
    text = table + "\n\n" + "\n".join(verdicts) + f"\n\ntorch threads: {torch.get_num_threads()}\n"
    print(text)
    write_results("small_cohort", {"rows": rows, "verdicts": verdicts}, text)


if __name__ == "__main__":
    main()
