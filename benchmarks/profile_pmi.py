"""Profile PMI's hot paths at GTEx scale: training batches and imputation of 1,000 samples.

Prints torch.profiler operator tables (self CPU time) and cProfile's top Python functions, and writes
them to ``benchmarks/results/profile_pmi.md``. Uses the configs' PMI (1,024 hidden; ``--hidden``
3072 for the paper's width), bf16 autocast for training as configured, fp32 for imputation.

    python benchmarks/profile_pmi.py [--hidden 3072] [--batches 6] [--impute-samples 1000]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time

try:
    from benchmarks._common import load_average, write_results
except ImportError:
    from _common import load_average, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--impute-samples", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=25, help="rows of each table")
    args = parser.parse_args()

    import numpy as np
    import torch
    from torch.profiler import ProfilerActivity, profile

    from benchmarks.impute_latency import untrained_imputer
    from benchmarks.scale_cohort import scale_cohort
    from benchmarks.train_throughput import method_settings
    from gtex_models.evaluation import mask_cohort
    from gtex_models.imputers import make_imputer
    from gtex_models.masks import mcar_mask

    sections = []
    cohort = scale_cohort()
    train, valid = cohort.split("train"), cohort.split("valid")
    model, training = method_settings("pmi", args.hidden)
    # a bounded fit: the training set cut to `batches` batches, one epoch, no validation
    n = training["batch_size"] * args.batches
    small_train = train.subset_samples(np.arange(n))
    small_valid = valid.subset_samples(np.arange(min(512, valid.n_samples)))
    training.update(precision=args.precision, device="cpu", max_epochs=1, max_seconds=None)

    def fit() -> None:
        make_imputer("pmi", **model, **training).fit(small_train, small_valid)

    fit()  # warm-up (first-call overheads, oneDNN kernel selection)
    load = load_average()
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    fit()
    profiler.disable()
    fit_seconds = time.perf_counter() - start
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fit()
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(args.rows)
    sections.append(f"## PMI training: fit() on {n} samples ({args.batches} batches of "
                    f"{training['batch_size']}) + validation on {small_valid.n_samples}, hidden {args.hidden}, "
                    f"{args.precision}; {fit_seconds:.2f} s; load {load}\n\n### torch.profiler (self CPU)\n```\n"
                    + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows)
                    + "\n```\n\n### cProfile (cumulative)\n```\n" + stream.getvalue() + "\n```\n")

    imputer = untrained_imputer("pmi", [args.hidden], cohort, "cpu")
    rows = np.arange(args.impute_samples)
    query = cohort.subset_samples(rows)
    query = mask_cohort(query, mcar_mask(query.x.shape, 0.5, 0.5, seed=1))
    imputer.impute(query)
    load = load_average()
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    imputer.impute(query)
    profiler.disable()
    impute_seconds = time.perf_counter() - start
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        imputer.impute(query)
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(args.rows)
    sections.append(f"## PMI imputation of {args.impute_samples} samples x {cohort.n_genes} genes, hidden "
                    f"{args.hidden}, fp32; {impute_seconds:.2f} s; load {load}\n\n### torch.profiler (self CPU)\n```\n"
                    + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows)
                    + "\n```\n\n### cProfile (tottime)\n```\n" + stream.getvalue() + "\n```\n")
    text = "\n".join(sections)
    print(text)
    write_results(f"profile_pmi_{args.hidden}", {"fit_seconds": fit_seconds, "impute_seconds": impute_seconds,
                                                  "hidden": args.hidden}, text)


if __name__ == "__main__":
    main()
