"""Imputation latency and throughput of PMI and GAIN-GTEx for 1 to 10,000 GTEx-scale samples.

Models are **untrained** (weights at initialisation): the time does not depend on the weights. They
have the architecture used at 12,557 genes: PMI with one hidden layer of 3,072 (paper) and 1,024
(our config), GAIN-GTEx with one of 1,024 (our config) and its paper defaults (3 x 296). The timed
call is the public ``imputer.impute(masked_cohort)`` — covariate encoding, tensors, batched forward
passes under ``torch.inference_mode`` (the imputers batch internally), observed values put back — on
query cohorts with 50% of values missing (MCAR), taken from the cached scale cohort. Precision
``bf16`` is the imputers' own setting (``precision="bf16"``, as in the configs): they then predict
with a bfloat16 copy of their networks, made on the first call (the warm-up call here).

Examples::

    python benchmarks/impute_latency.py
    python benchmarks/impute_latency.py --device cuda --sizes 1,100,1000,10000
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

try:
    from benchmarks._common import load_average, markdown_table, reset_peak_rss, sync, vm_hwm_gib, write_results
except ImportError:
    from _common import load_average, markdown_table, reset_peak_rss, sync, vm_hwm_gib, write_results


def untrained_imputer(method: str, hidden: list[int] | None, cohort: Any, device: str,
                      precision: str = "fp32") -> Any:
    """An imputer with freshly initialised networks for ``cohort``'s genes and tissues."""
    from gtex_models.models.registry import make_imputer
    from gtex_models.models.training_settings import resolve_device

    kwargs = {"hidden_sizes": hidden} if hidden else {}
    imputer = make_imputer(method, device=device, precision=precision, **kwargs)
    imputer.setup(cohort)  # freshly initialised networks for the cohort's genes and tissues
    imputer.networks = imputer.networks.to(resolve_device(device)).eval()
    return imputer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="pmi:3072,pmi:1024,gain:1024,gain",
                        help="method[:hidden width] list (no width: the class default, gain's 3 x 296)")
    parser.add_argument("--sizes", default="1,100,1000,10000")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per size (fewer for >= 1,000)")
    parser.add_argument("--precisions", default="fp32,bf16", help="the imputers' precision settings")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--name", default="impute_latency")
    args = parser.parse_args()

    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from benchmarks.scale_cohort import scale_cohort
    from gtex_models.data.masks import mcar_mask
    from gtex_models.data.patterns import mask_cohort
    from gtex_models.models.training_settings import resolve_device

    device = resolve_device(args.device)
    cohort = scale_cohort()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = np.random.default_rng(0)
    queries = {}
    for n in sizes:
        rows = np.sort(rng.choice(cohort.n_samples, size=min(n, cohort.n_samples), replace=False))
        query = cohort.subset_samples(rows)
        queries[n] = mask_cohort(query, mcar_mask(query.x.shape, 0.5, 0.5, seed=1))
    rows_out = []
    for spec in args.models.split(","):
        method, _, hidden = spec.partition(":")
        for precision in args.precisions.split(","):
            imputer = untrained_imputer(method, [int(hidden)] if hidden else None, cohort, args.device, precision)
            label = f"{method} ({'x'.join(map(str, imputer.params['hidden_sizes']))})"
            n_params = sum(p.numel() for p in imputer.networks.parameters())
            imputer.impute(queries[sizes[0]])  # warm-up (and the bf16 copy)
            for n in sizes:
                repeats = args.repeats if n < 1000 else max(1, min(args.repeats, 3 if n < 10000 else 1))
                times = []
                load = load_average()
                reset_peak_rss()
                for _ in range(repeats):
                    sync(device)
                    start = time.perf_counter()
                    out = imputer.impute(queries[n])
                    sync(device)
                    times.append(time.perf_counter() - start)
                assert out.shape == queries[n].x.shape and not np.isnan(out).any()
                seconds = statistics.median(times)
                row = {"model": label, "method": method, "hidden": imputer.params["hidden_sizes"],
                       "parameters": n_params, "precision": precision, "device": str(device), "samples": n,
                       "genes": cohort.n_genes, "seconds": seconds, "min_seconds": min(times),
                       "repeats": repeats, "samples_per_s": n / seconds, "ms_per_sample": 1000 * seconds / n,
                       "peak_rss_gib": vm_hwm_gib(), "load_1min": load[0],
                       "threads": torch.get_num_threads()}
                rows_out.append(row)
                print(f"{label:14s} {precision} n={n:6d}: {seconds:8.3f} s (median of {repeats}), "
                      f"{row['samples_per_s']:8.0f} samples/s, RSS peak {row['peak_rss_gib']:.2f} GiB, "
                      f"load {load[0]}", flush=True)
    table = markdown_table(rows_out, [
        ("model", "Model (hidden)", ""), ("precision", "Precision", ""), ("device", "Device", ""), ("threads", "Threads", ""),
        ("samples", "Samples", "{:,}"), ("seconds", "Seconds (median)", "{:.3f}"),
        ("samples_per_s", "Samples/s", "{:,.0f}"), ("ms_per_sample", "ms / sample", "{:.2f}"),
        ("peak_rss_gib", "Peak RSS (GiB)", "{:.2f}"), ("load_1min", "Load (1 min)", "{:.2f}")])
    print(table)
    write_results(args.name, {"rows": rows_out}, table)


if __name__ == "__main__":
    main()
