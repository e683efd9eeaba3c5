"""A simulated cohort with GTEx v8's dimensions (~15,000 samples x 12,557 genes, 49 tissues), cached.

``simulate_cohort(n_donors=740, n_genes=12557)`` is generated once and saved under
``benchmarks/results/scale_cohort/`` (gitignored, ~0.8 GB); later calls memory-map it.

Run it alone to (re)build the cache and print the generation time and peak memory::

    /usr/bin/time -v python benchmarks/scale_cohort.py [--rebuild]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

try:
    from benchmarks._common import RESULTS, load_average, markdown_table, peak_rss_gib, write_results
except ImportError:  # run as a script
    from _common import RESULTS, load_average, markdown_table, peak_rss_gib, write_results

N_DONORS = 740
N_GENES = 12557
SEED = 0
CACHE = RESULTS / "scale_cohort"


def scale_cohort(mmap: bool = True, rebuild: bool = False, directory: Path = CACHE):
    """The GTEx-scale simulated cohort; built and saved on first use, memory-mapped afterwards."""
    from gtex_models.data.cohort import Cohort
    from gtex_models.data.simulate import simulate_cohort

    if rebuild or not (directory / "cohort.json").is_file():
        cohort = simulate_cohort(n_donors=N_DONORS, n_genes=N_GENES, seed=SEED)
        cohort.save(directory, overwrite=rebuild)  # a --rebuild replaces the cached cohort
        del cohort
    return Cohort.load(directory, mmap=mmap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rebuild", action="store_true", help="regenerate even if cached")
    args = parser.parse_args()
    load = load_average()
    start = time.perf_counter()
    built = args.rebuild or not (CACHE / "cohort.json").is_file()
    cohort = scale_cohort(rebuild=args.rebuild)
    seconds = time.perf_counter() - start
    splits = cohort.samples["split"].value_counts().to_dict()
    row = {"samples": cohort.n_samples, "genes": cohort.n_genes, "tissues": len(cohort.tissues),
           "donors": cohort.n_donors, **{f"n_{k}": int(v) for k, v in splits.items()},
           "built": built, "seconds": seconds, "peak_rss_gib": peak_rss_gib(), "load": load,
           "matrix_gib": cohort.x.nbytes / 2**30}
    print(cohort.summary(), splits)
    print(f"{'generated + saved' if built else 'loaded (mmap)'} in {seconds:.1f} s, "
          f"peak RSS {row['peak_rss_gib']:.2f} GiB, load {load}")
    if built:
        table = markdown_table([row], [
            ("samples", "Samples", "{:,}"), ("genes", "Genes", "{:,}"), ("tissues", "Tissues", ""),
            ("donors", "Donors", ""), ("n_train", "Train", "{:,}"), ("n_valid", "Valid", "{:,}"),
            ("n_test", "Test", "{:,}"), ("seconds", "Generate + save (s)", "{:.1f}"),
            ("peak_rss_gib", "Peak RSS (GiB)", "{:.2f}"), ("matrix_gib", "Matrix (GiB)", "{:.2f}"),
            ("load", "Load (1/5/15 min)", "")])
        write_results("scale_cohort", {"rows": [row]}, table)


if __name__ == "__main__":
    main()
