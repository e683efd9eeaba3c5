"""Cohorts larger than memory: peak RSS against cohort size, store vs in-memory throughput, 1 -> 2 processes.

Stores are simulated fast (not the GTEx simulator): log2 expression = tissue mean + 8 latent factors +
noise, 2,000 genes, 30 tissues, 20 samples per donor, written block by block by
:class:`gtex_models.data.store.StoreWriter` (which accumulates the training donors' statistics on the way).

1. **Peak RSS** (``VmHWM`` of a fresh process, everything included) for each cohort size:
   *train*: PMI (1 x 512 hidden, batch 256, fp32) for ``--steps`` steps through ``imputer.fit`` on
   whole blocks drawn at random from the whole training split of the store; *impute*: one streaming
   pass of :func:`gtex_models.interfaces.streaming.impute_store` over the **whole** test split (25 % of the
   cohort; the network predicts every gene of every sample, block by block) into a new store.
   Each size is generated, measured once, and deleted.
2. **Throughput** at the same batch size: ``fit`` for the same number of steps on the same rows read
   from the store vs held in memory (the in-memory path is the unchanged tensor loop).
3. **Scaling**: the same store training with 1 process x 2 threads, 1 process x 1 thread and 2
   processes x 1 thread under ``torchrun`` (gloo, DistributedDataParallel); global samples/s.

Run it alone on a quiet machine (about 10 minutes; disk: ~3.5 GB at the largest size)::

    python benchmarks/scale_store.py [--sizes 50000,100000,200000,400000] [--steps 100] [--dir /work/tmp]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

try:
    from benchmarks._common import ROOT, load_average, markdown_table, vm_hwm_gib, write_results
except ImportError:  # run as a script
    from _common import ROOT, load_average, markdown_table, vm_hwm_gib, write_results

N_GENES = 2000
N_TISSUES = 30
PER_DONOR = 20
MODEL = {"hidden_sizes": [512], "dropout": 0.1}
BATCH = 256


def generate_store(directory: Path, n_samples: int, n_genes: int = N_GENES, seed: int = 0,
                   compression: str = "gzip") -> float:
    """Write a simulated store; returns the seconds it took."""
    import numpy as np
    import pandas as pd

    from gtex_models.data.cohort import assign_donor_split
    from gtex_models.data.reference import tissues as reference_tissues
    from gtex_models.data.store import StoreWriter, split_order

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    tissues = np.asarray(reference_tissues()["smtsd"].tolist()[:N_TISSUES], dtype=object)
    donor = np.arange(n_samples) // PER_DONOR
    n_donors = int(donor[-1]) + 1
    samples = pd.DataFrame({
        "sample_id": [f"S{i:07d}" for i in range(n_samples)],
        "donor_id": [f"D{d:06d}" for d in donor],
        "tissue": tissues[rng.integers(0, N_TISSUES, n_samples)],
        "sex": np.where(rng.random(n_donors) < 0.5, "female", "male")[donor],
        "age": rng.integers(20, 80, n_donors)[donor].astype(float),
    })
    samples["split"] = assign_donor_split(samples["donor_id"], seed=seed)
    samples = samples.iloc[split_order(samples)].reset_index(drop=True)
    genes = pd.DataFrame({"ensembl_gene_id": [f"ENSG9{g:010d}" for g in range(n_genes)],
                          "symbol": [f"GENE{g}" for g in range(n_genes)]})
    tissue_mean = rng.normal(4.0, 2.0, size=(N_TISSUES, n_genes)).astype(np.float32)
    loadings = (0.7 * rng.standard_normal((8, n_genes))).astype(np.float32)
    tissue_code = pd.Index(tissues).get_indexer(samples["tissue"])
    with StoreWriter(directory, genes, samples, scale="tpm", meta={"source": "scale_store benchmark"},
                     compression=compression) as writer:
        for first in range(0, n_samples, writer.block_rows):
            rows = slice(first, min(first + writer.block_rows, n_samples))
            n = rows.stop - rows.start
            x = tissue_mean[tissue_code[rows]]
            x += rng.standard_normal((n, 8), dtype=np.float32) @ loadings
            x += 0.5 * rng.standard_normal((n, n_genes), dtype=np.float32)
            writer.append(np.maximum(x, 0.0), log=True)
    return time.perf_counter() - start


def _pmi(threads: int):
    import torch

    from gtex_models.models.registry import make_imputer

    torch.set_num_threads(threads)
    return make_imputer("pmi", **MODEL, batch_size=BATCH, lr=1e-3, max_epochs=1, patience=1, device="cpu")


def _random_blocks(train, n_rows: int, seed: int = 0):
    """Whole storage blocks of the training split, drawn at random, about ``n_rows`` rows in all."""
    import numpy as np

    plan = train.x.block_plan()
    starts = np.cumsum([0] + [len(offsets) for _, _, offsets in plan])
    chosen = np.sort(np.random.default_rng(seed).permutation(len(plan))[:max(1, -(-n_rows // len(plan[0][2])))])
    rows = np.concatenate([np.arange(starts[b], starts[b + 1]) for b in chosen])[:n_rows]
    return train.subset_samples(rows)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in this (fresh) process; printed as JSON on the last line."""
    import numpy as np

    from gtex_models.data.cohort import Cohort
    from gtex_models.models.checkpoints import load_checkpoint, save_checkpoint
    from gtex_models.models.distributed import current_sync, init_process_group, is_main_process
    from gtex_models.models.model_space import ModelSpace

    init_process_group()
    sync = current_sync()
    world = 1 if sync is None else sync.world_size
    store = Cohort.load(args.store)
    row: dict[str, Any] = {"mode": args.measure, "samples": store.n_samples, "threads": args.threads,
                           "processes": world, "load_before": load_average()}
    if args.measure in ("train", "store", "memory"):
        train = store.split("train")
        rows = args.steps * BATCH * world
        part = _random_blocks(train, rows) if args.measure == "train" else train.subset_samples(np.arange(rows))
        if args.measure == "memory":
            part = Cohort(np.asarray(part.x), part.genes, part.samples, part.transform, part.meta)
        imputer = _pmi(args.threads)
        imputer.fit(part)
        seconds = imputer.history["seconds"]
        row.update(steps=args.steps, batch=BATCH, rows=rows, seconds=seconds, samples_per_s=rows / seconds,
                   blocks_read=len(part.x.block_plan()) if part.stored else None)
        if args.checkpoint and is_main_process():
            save_checkpoint(imputer, args.checkpoint, {"genes": store.genes, "tissues": list(imputer.tissues),
                                                       "transform": store.transform})
    else:  # impute: one streaming pass over the whole test split into a new store
        from gtex_models.interfaces.streaming import impute_store

        imputer, metadata = load_checkpoint(args.checkpoint)
        test = store.split("test")
        start = time.perf_counter()
        summary = impute_store(imputer, ModelSpace.from_metadata(metadata), test, args.out)
        seconds = time.perf_counter() - start
        row.update(rows=summary.n_samples, seconds=seconds, samples_per_s=summary.n_samples / seconds)
    row["peak_rss_gib"] = vm_hwm_gib()
    row["load_after"] = load_average()
    return row


def _run(command: list[str], threads: int, timeout: float = 900) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _measure(store: Path, mode: str, threads: int, steps: int, extra: list[str] = (), torchrun: int = 0):
    script = [str(Path(__file__).resolve()), "--measure", mode, "--store", str(store), "--threads", str(threads),
              "--steps", str(steps), *extra]
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(torchrun)]
                if torchrun else [sys.executable])
    row = _run(launcher + script, threads)
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="50000,100000,200000,400000")
    parser.add_argument("--steps", type=int, default=30, help="training steps per measurement")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved memory / store throughput runs")
    parser.add_argument("--dir", type=Path, default=ROOT / "benchmarks" / "results" / "scale_store_tmp")
    parser.add_argument("--measure", choices=["train", "store", "memory", "impute"], help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        row = measure(args)
        from gtex_models.models.distributed import is_main_process

        if is_main_process():
            print(json.dumps(row))
        return

    args.dir.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    memory_rows, throughput, scaling = [], [], []
    # the default store format (gzip): throughput against memory, and 1 -> 2 processes
    store = args.dir / "store_gzip"
    seconds = generate_store(store, sizes[0])
    print(f"generated {sizes[0]:,} samples (gzip) in {seconds:.1f} s", flush=True)
    for _ in range(args.repeats):  # interleaved: the shared machine's load drifts
        for mode in ("memory", "store"):
            throughput.append({**_measure(store, mode, 1, args.steps), "compression": "gzip"})
    scaling.append(throughput[-1])
    scaling.append(_measure(store, "store", 2, args.steps))
    scaling.append(_measure(store, "store", 1, args.steps, torchrun=2))
    shutil.rmtree(store)
    # peak RSS against size, on stores written uncompressed (fast to generate; same block reads)
    for i, size in enumerate(sizes):
        store = args.dir / f"store_{size}"
        load = load_average()
        seconds = generate_store(store, size, compression="none")
        disk = sum(f.stat().st_size for f in store.iterdir()) / 2**30
        print(f"generated {size:,} samples in {seconds:.1f} s ({disk:.2f} GiB on disk)", flush=True)
        checkpoint = args.dir / "pmi.safetensors"
        train = _measure(store, "train", 1, args.steps, ["--checkpoint", str(checkpoint)])
        impute = _measure(store, "impute", 1, args.steps, ["--checkpoint", str(checkpoint),
                                                           "--out", str(args.dir / "imputed")])
        shutil.rmtree(args.dir / "imputed", ignore_errors=True)
        memory_rows.append({"samples": size, "generate_s": seconds, "disk_gib": disk, "load": load,
                            "train_rss": train["peak_rss_gib"], "train_steps": train["steps"],
                            "train_blocks": train["blocks_read"], "train_s": train["seconds"],
                            "impute_rss": impute["peak_rss_gib"], "impute_rows": impute["rows"],
                            "impute_s": impute["seconds"]})
        if i == 0:
            throughput.append({**_measure(store, "store", 1, args.steps), "compression": "none"})
        shutil.rmtree(store)
    shutil.rmtree(args.dir, ignore_errors=True)

    import numpy as np

    base_train, base_impute = memory_rows[0]["train_rss"], memory_rows[0]["impute_rss"]
    for row in memory_rows:
        row["train_vs_first"] = row["train_rss"] / base_train
        row["impute_vs_first"] = row["impute_rss"] / base_impute
    def median_rate(mode: str, compression: str = "gzip") -> float:
        return float(np.median([r["samples_per_s"] for r in throughput
                                if r["mode"] == mode and r["compression"] == compression]))

    ratio = median_rate("store") / median_rate("memory")
    for row in throughput:
        row["vs_memory"] = row["samples_per_s"] / median_rate("memory")
    tables = [
        "### Peak RSS against cohort size (2,000 genes; PMI 1 x 512, batch 256, 1 thread; uncompressed stores)",
        markdown_table(memory_rows, [
            ("samples", "Samples", "{:,}"), ("disk_gib", "Store (GiB)", "{:.2f}"),
            ("generate_s", "Generate (s)", "{:.0f}"),
            ("train_steps", "Train steps", ""), ("train_blocks", "Blocks read", ""),
            ("train_rss", "Train peak RSS (GiB)", "{:.3f}"), ("train_vs_first", "vs smallest", "{:.3f}"),
            ("impute_rows", "Imputed (whole test split)", "{:,}"), ("impute_s", "Impute (s)", "{:.1f}"),
            ("impute_rss", "Impute peak RSS (GiB)", "{:.3f}"), ("impute_vs_first", "vs smallest", "{:.3f}"),
            ("load", "Load (1/5/15 min)", "")]),
        "",
        f"### Throughput, store vs in memory ({sizes[0]:,}-sample store, same rows, batch {BATCH})",
        markdown_table(throughput, [("mode", "Rows from", ""), ("compression", "Store compression", ""),
                                    ("steps", "Steps", ""), ("threads", "Threads", ""),
                                    ("samples_per_s", "Samples/s", "{:,.0f}"), ("vs_memory", "vs memory", "{:.2f}"),
                                    ("peak_rss_gib", "Peak RSS (GiB)", "{:.3f}"),
                                    ("load_before", "Load before", ""), ("load_after", "Load after", "")]),
        f"\nStore (gzip, the default) / in-memory throughput, medians of {args.repeats} interleaved runs: "
        f"**{ratio:.2f}**",
        "",
        "### 1 -> 2 processes (gzip store, gloo, DistributedDataParallel; global samples/s)",
        markdown_table(scaling, [("processes", "Processes", ""), ("threads", "Threads each", ""),
                                 ("samples_per_s", "Samples/s", "{:,.0f}"), ("seconds", "Seconds", "{:.1f}"),
                                 ("rows", "Rows", "{:,}"), ("load_before", "Load before", ""),
                                 ("load_after", "Load after", "")]),
    ]
    write_results("scale_store", {"memory": memory_rows, "throughput": throughput, "throughput_ratio": ratio,
                                  "scaling": scaling, "steps": args.steps, "batch": BATCH, "model": MODEL,
                                  "genes": N_GENES}, "\n".join(tables))
    print("\n".join(tables))


if __name__ == "__main__":
    main()
