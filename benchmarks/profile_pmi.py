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


def impute_breakdown(imputer, query, repeats: int = 3) -> str:
    """Time the steps of ``imputer.impute`` one by one (median of ``repeats``) on ``query``."""
    import statistics

    import numpy as np
    import torch

    from gtex_models.data.batches import chunks
    from gtex_models.models.model_space import gene_indexer
    from gtex_models.models.training import PREDICT_BATCH_SIZE

    def timed(fn):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            value = fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times), value

    steps = {}
    steps["Imputer.impute: cohort.observed (isnan)"], observed = timed(lambda: query.observed)
    columns = gene_indexer(query.genes, imputer.genes)
    steps["tensors: isnan + where + astype copies + covariates"], data = timed(lambda: imputer.tensors(query, columns))
    network = imputer.networks["network"]
    generator = torch.Generator().manual_seed(0)

    def forward():
        with torch.inference_mode():
            return torch.cat([imputer.predict_batch(b, generator).float() for b in chunks(data, PREDICT_BATCH_SIZE)])

    steps["network forward (fp32, chunks of 2048)"], prediction = timed(forward)

    def forward_bf16():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return torch.cat([imputer.predict_batch(b, generator).float() for b in chunks(data, PREDICT_BATCH_SIZE)])

    steps["(alternative) network forward under bf16 autocast"], _ = timed(forward_bf16)
    bf16_net = __import__("copy").deepcopy(network).to(torch.bfloat16)

    def forward_bf16_weights():
        with torch.inference_mode():
            return torch.cat([bf16_net(b["x"].bfloat16(), b["known"].bfloat16(), b["tissue"], b["sex"],
                                       b["age"].bfloat16()).float() for b in chunks(data, PREDICT_BATCH_SIZE)])

    steps["(alternative) network forward, weights stored in bf16"], _ = timed(forward_bf16_weights)
    out = np.empty((1, query.n_samples, query.n_genes), dtype=np.float32)

    def scatter():
        out[0][:, columns] = prediction.cpu().numpy()
        return out

    steps["out[draw][:, columns] = ... (fancy-index copy)"], _ = timed(scatter)
    steps["np.where(observed, x, prediction).astype(float32)"], _ = timed(
        lambda: np.where(observed, query.x, out[0]).astype(np.float32))
    steps["total Imputer.impute()"], _ = timed(lambda: imputer.impute(query))
    lines = ["## Imputation step by step (median of 3)", "", "| Step | Seconds |", "|---|---|"]
    lines += [f"| {name} | {seconds:.3f} |" for name, seconds in steps.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--impute-samples", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=25, help="rows of each table")
    args = parser.parse_args()

    import numpy as np
    from torch.profiler import ProfilerActivity, profile

    from benchmarks.impute_latency import untrained_imputer
    from benchmarks.scale_cohort import scale_cohort
    from benchmarks.train_throughput import method_settings
    from gtex_models.data.masks import mcar_mask
    from gtex_models.data.patterns import mask_cohort
    from gtex_models.models.registry import make_imputer

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
    sections.append(impute_breakdown(imputer, query))
    text = "\n".join(sections)
    print(text)
    write_results(f"profile_pmi_{args.hidden}", {"fit_seconds": fit_seconds, "impute_seconds": impute_seconds,
                                                  "hidden": args.hidden}, text)


if __name__ == "__main__":
    main()
