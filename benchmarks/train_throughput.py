"""Training throughput of PMI and GAIN-GTEx at GTEx scale: samples/s, s/epoch, peak memory.

Each (method, hidden size, precision) runs in its own subprocess, so its peak RSS is that of a fresh
Python process that loads the cached scale cohort (memory-mapped), copies the training split, builds
the model's tensors and trains. It runs ``--warmup`` batches, then times batches for ``--seconds``
(at least ``--min-batches``) with :func:`gtex_models.models.training.train_step`, the loop's own step (random
masks, autocast, backward, fused Adam step, for every objective). Seconds per epoch are
**extrapolated**: ``ceil(n_train / batch) * seconds_per_batch + one validation pass`` (timed), in wall
seconds and in CPU seconds of the process (with ``--threads 1`` on a busy machine, the CPU seconds are
the better estimate of the wall time on an idle core). Use
``--full-epochs K`` to instead time K real epochs through ``imputer.fit`` (with early-stopping
validation), which checks the extrapolation.

Settings come from the demo's inductive configs (``--methods``, ``--pmi-hidden``), or from the
given config files (``--configs``, e.g. the paper's).

Examples::

    python benchmarks/train_throughput.py                          # CPU, fp32 and bf16, PMI 1024/3072, GAIN
    python benchmarks/train_throughput.py --device cuda
    python benchmarks/train_throughput.py --methods pmi --pmi-hidden 1024 --precisions bf16 --full-epochs 1
    python benchmarks/train_throughput.py --configs configs/paper/pmi_inductive_all.yaml --precisions fp32
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

try:
    from benchmarks._common import ROOT, load_average, markdown_table, peak_rss_gib, sync, write_results
except ImportError:
    from _common import ROOT, load_average, markdown_table, peak_rss_gib, sync, write_results


def method_settings(
    method: str, hidden: int | None = None, config: str | Path | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model, training) settings of ``config`` if given, else of ``method``'s inductive config (the
    demo benchmark's); ``hidden`` overrides the width of a single hidden layer."""
    from gtex_models.common.paths import CONFIG_DIR
    from gtex_models.studies.demo import BENCHMARK_CONFIGS
    from gtex_models.studies.experiment import Experiment

    experiment = Experiment.from_yaml(config or CONFIG_DIR / BENCHMARK_CONFIGS[(method, "inductive")])
    model, training = dict(experiment.model), dict(experiment.training)
    if hidden:
        model["hidden_sizes"] = [hidden]
    return model, training


def run_one(args: argparse.Namespace) -> dict[str, Any]:
    """One configuration, in this process: returns its measurements."""
    import torch

    from benchmarks.scale_cohort import scale_cohort
    from gtex_models.data.batches import batches
    from gtex_models.models.registry import make_imputer
    from gtex_models.models.training import evaluate, make_optimizers, seeded, train_step
    from gtex_models.models.training_settings import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = load_average()
    cohort = scale_cohort()
    train, valid = cohort.split("train"), cohort.split("valid")
    model, training = method_settings(args.method, args.hidden, args.config)
    training.update(precision=args.precision, device=args.device, max_seconds=None)
    if args.batch_size:
        training["batch_size"] = args.batch_size
    row: dict[str, Any] = {"method": args.method, "config": args.config, "hidden": model.get("hidden_sizes"),
                           "precision": args.precision, "n_train": train.n_samples, "n_genes": train.n_genes}

    if args.full_epochs:
        training.update(max_epochs=args.full_epochs, patience=10**6)
        imputer = make_imputer(args.method, **model, **training)
        row["batch_size"] = imputer.training.batch_size
        start = time.perf_counter()
        imputer.fit(train, valid)
        seconds = time.perf_counter() - start
        history = imputer.history
        row.update(mode=f"{args.full_epochs} full epoch(s) via fit()", device=history["device"],
                   fit_seconds=seconds, epoch_seconds=history["seconds"] / history["epochs"],
                   samples_per_s=train.n_samples * history["epochs"] / history["seconds"],
                   train_loss=history["train_loss"], valid_loss=history["valid_loss"])
    else:
        imputer = make_imputer(args.method, **model, **training)
        config = imputer.training
        device = resolve_device(config.device)
        row["batch_size"] = config.batch_size
        task = imputer.setup(train, valid)
        task.module.to(device)
        data = {k: v.to(device) for k, v in imputer.tensors(train).items()}
        valid_data = {k: v.to(device) for k, v in imputer.tensors(valid).items()}
        optimizers = make_optimizers(task, config)
        generator = torch.Generator(device=device).manual_seed(config.seed)
        order = torch.randperm(train.n_samples, generator=generator, device=device)
        task.module.train()
        times: list[float] = []
        cpu_times: list[float] = []  # process CPU time: with one thread, ~ the wall time on an idle core
        with seeded(config.seed, device):
            t_all = time.perf_counter()
            for i, batch in enumerate(batches(data, config.batch_size, order.repeat(50))):
                sync(device)
                t0, c0 = time.perf_counter(), time.process_time()
                losses = train_step(task, optimizers, batch, config, generator)
                float(losses[-1])  # like the loop's per-epoch .tolist(): forces the work to finish
                sync(device)
                if i >= args.warmup:
                    times.append(time.perf_counter() - t0)
                    cpu_times.append(time.process_time() - c0)
                if (len(times) >= args.min_batches and time.perf_counter() - t_all > args.seconds
                        or len(times) >= args.max_batches):
                    break
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            evaluate(task, valid_data, config)
            sync(device)
            valid_seconds, valid_cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
        per_batch = sum(times) / len(times)
        cpu_per_batch = sum(cpu_times) / len(cpu_times)
        n_batches = math.ceil(train.n_samples / config.batch_size)
        row.update(mode=f"{len(times)} timed batches, extrapolated", device=str(device),
                   timed_batches=len(times), seconds_per_batch=per_batch, cpu_seconds_per_batch=cpu_per_batch,
                   samples_per_s=config.batch_size / per_batch, valid_seconds=valid_seconds,
                   epoch_seconds=n_batches * per_batch + valid_seconds,
                   epoch_cpu_seconds=n_batches * cpu_per_batch + valid_cpu_seconds)
        if device.type == "cuda":
            row["cuda_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    row["peak_rss_gib"] = peak_rss_gib()
    row["load"] = [load_before, load_average()]
    row["threads"] = torch.get_num_threads()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="pmi,gain")
    parser.add_argument("--pmi-hidden", default="1024,3072", help="PMI hidden widths (config 1024, paper 3072)")
    parser.add_argument("--configs", default=None,
                        help="comma-separated config files whose settings to measure (instead of --methods)")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--batch-size", type=int, default=None, help="override the configs' batch size")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--min-batches", type=int, default=5)
    parser.add_argument("--max-batches", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=20.0, help="time budget of the timed batches")
    parser.add_argument("--full-epochs", type=int, default=0, help="time K real epochs via fit() instead")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--name", default="train_throughput", help="results file name")
    parser.add_argument("--one", nargs=3, metavar=("METHOD", "HIDDEN", "PRECISION"), help=argparse.SUPPRESS)
    parser.add_argument("--config", default=None, help=argparse.SUPPRESS)  # with --one
    args = parser.parse_args()

    if args.one:
        args.method, hidden, args.precision = args.one
        args.hidden = int(hidden) or None
        print("RESULT " + json.dumps(run_one(args)), flush=True)
        return

    passthrough = ["--device", args.device, "--warmup", str(args.warmup), "--min-batches", str(args.min_batches),
                   "--max-batches", str(args.max_batches), "--seconds", str(args.seconds),
                   "--full-epochs", str(args.full_epochs), "--threads", str(args.threads)]
    if args.batch_size:
        passthrough += ["--batch-size", str(args.batch_size)]
    runs = []  # (method, hidden, precision, config)
    if args.configs:
        from gtex_models.studies.experiment import Experiment

        for config in args.configs.split(","):
            method = Experiment.from_yaml(config).method
            runs += [(method, 0, precision, config) for precision in args.precisions.split(",")]
    else:
        for method in args.methods.split(","):
            hiddens = [int(h) for h in args.pmi_hidden.split(",")] if method == "pmi" else [0]
            for hidden in hiddens:
                for precision in args.precisions.split(","):
                    runs.append((method, hidden, precision, None))
    rows = []
    for method, hidden, precision, config in runs:
        command = [sys.executable, str(Path(__file__).resolve()), "--one", method, str(hidden), precision,
                   *passthrough, *(["--config", config] if config else [])]
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        lines = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")]
        if result.returncode or not lines:
            print(f"{method} {hidden} {precision} failed:\n{result.stderr[-3000:]}", file=sys.stderr)
            continue
        row = json.loads(lines[-1][len("RESULT "):])
        rows.append(row)
        print(f"{method:5s} hidden={row['hidden']} {precision}: {row['samples_per_s']:.0f} samples/s, "
              f"{row['epoch_seconds']:.1f} s/epoch ({row['mode']}), peak RSS {row['peak_rss_gib']:.2f} GiB, "
              f"load {row['load'][1][0]}", flush=True)
    for row in rows:
        row["load_1min"] = row["load"][1][0]
        row["hidden_str"] = "x".join(str(h) for h in row["hidden"]) if row["hidden"] else "default"
    table = markdown_table(rows, [
        ("method", "Method", ""), *([("config", "Config", "")] if args.configs else []),
        ("hidden_str", "Hidden", ""), ("batch_size", "Batch", ""),
        ("precision", "Precision", ""), ("device", "Device", ""), ("threads", "Threads", ""),
        ("samples_per_s", "Samples/s", "{:.0f}"),
        ("epoch_seconds", "s / epoch", "{:.1f}"), ("epoch_cpu_seconds", "CPU s / epoch", "{:.1f}"),
        ("mode", "How", ""),
        ("peak_rss_gib", "Peak RSS (GiB)", "{:.2f}"), ("load_1min", "Load (1 min)", "{:.2f}")])
    print(table)
    write_results(args.name, {"rows": rows, "n_train": rows[0]["n_train"] if rows else None}, table)


if __name__ == "__main__":
    main()
