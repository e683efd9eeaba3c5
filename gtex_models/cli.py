"""Command-line interface: ``python -m gtex_models <command> ...``.

Each command prints a one-line summary on success; malformed input ends with a clear message on
stderr and exit status 2, leaving no partial output behind.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Callable, Sequence

from gtex_models.cohort import Cohort

Handler = Callable[[argparse.Namespace], str]


def _simulate(args: argparse.Namespace) -> str:
    from gtex_models.simulate import simulate_cohort

    cohort = simulate_cohort(n_donors=args.donors, n_genes=args.genes, seed=args.seed)
    cohort.save(args.out)
    return f"Simulated cohort (not real GTEx data): {cohort.summary()} -> {args.out}"


def _prepare_gtex(args: argparse.Namespace) -> str:
    from gtex_models.io import prepare_gtex

    cohort = prepare_gtex(args.gct, args.samples, args.subjects,
                          min_samples_per_tissue=args.min_samples_per_tissue, genes=args.genes, seed=args.seed)
    cohort.save(args.out)
    return f"GTEx v8 cohort: {cohort.summary()} -> {args.out}"


def _import(args: argparse.Namespace) -> str:
    from gtex_models.io import import_table

    if args.archs4 is not None:
        return _import_archs4(args)
    if args.samples_query is not None or args.sample_list is not None:
        raise ValueError("--samples-query and --sample-list choose samples of an ARCHS4 file; use them with --archs4.")
    cohort = import_table(args.expression, args.samples, tissue_column=args.tissue_column or "tissue",
                          orientation=args.orientation, scale=args.scale, seed=args.seed)
    cohort.save(args.out)
    return f"Imported cohort: {cohort.summary()} -> {args.out}"


def _import_archs4(args: argparse.Namespace) -> str:
    """``import --archs4``: stream the chosen samples into an on-disk store (:mod:`gtex_models.io.archs4`)."""
    from gtex_models.io.archs4 import DEFAULT_TISSUE_FIELD, import_archs4
    from gtex_models.io.errors import require_file

    sample_list = None
    if args.sample_list is not None:
        sample_list = require_file(args.sample_list).read_text(encoding="utf-8-sig").split()
    bar, progress = _progress_bar("import ARCHS4")
    with bar:
        cohort = import_archs4(args.archs4, args.out, args.samples_query, sample_list,
                               args.tissue_column or DEFAULT_TISSUE_FIELD, args.seed, progress)
    return f"Imported ARCHS4 samples into an on-disk store: {cohort.summary()} -> {args.out}"


def _progress_bar(description: str):
    """A tqdm bar driven by the imputers' ``progress(fraction, message)`` callback."""
    from tqdm import tqdm

    bar = tqdm(total=100, desc=description, unit="%", leave=False, file=sys.stderr)

    def progress(fraction: float, message: str) -> None:
        bar.n = round(100 * fraction)
        bar.set_postfix_str(message[:60], refresh=True)

    return bar, progress


def _experiment(args: argparse.Namespace):
    from gtex_models.experiment import Experiment

    experiment = Experiment.from_yaml(args.config) if args.config else Experiment(method=args.method)
    for key in ("method", "scenario", "pathway"):
        if getattr(args, key, None) is not None:
            setattr(experiment, key, getattr(args, key))
    return Experiment(**vars(experiment))  # re-validate after the overrides


def _train(args: argparse.Namespace) -> str:
    from gtex_models.distributed import launched
    from gtex_models.experiment import run_experiment
    from gtex_models.store import is_store

    if launched() or args.resume or is_store(args.cohort):
        return _train_at_scale(args)
    experiment = _experiment(args)
    bar, progress = _progress_bar(f"train {experiment.method}")
    with bar:
        _, record = run_experiment(experiment, Cohort.load(args.cohort), out=args.out, seed=args.seed,
                                   progress=progress)
    return (f"Trained {experiment.method} ({experiment.scenario}): test R² {record['r2_mean']:.3f} "
            f"at {record['missing_rate']:.0%} missing, {record['fit_seconds']:.1f} s -> {args.out}")


def _train_at_scale(args: argparse.Namespace) -> str:
    """``train`` on an on-disk store and/or under torchrun (:func:`gtex_models.distributed.train_at_scale`)."""
    from contextlib import nullcontext

    import torch.distributed as dist

    from gtex_models.distributed import init_process_group, is_main_process, train_at_scale

    init_process_group()
    try:
        experiment = _experiment(args)
        bar, progress = _progress_bar(f"train {experiment.method}") if is_main_process() else (nullcontext(), None)
        with bar:
            _, record = train_at_scale(experiment, Cohort.load(args.cohort), args.out, args.seed, args.resume,
                                       progress)
        processes = dist.get_world_size() if dist.is_initialized() else 1
        main = is_main_process()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if not main:
        return ""
    score = (f"test R² {record['r2_mean']:.3f} on {record['n_test_samples']:,} test samples at "
             f"{record['missing_rate']:.0%} missing, {record['fit_seconds']:.1f} s" if record
             else "not scored (the test samples have missing values of their own)")
    return f"Trained {experiment.method} with {processes} process(es): {score} -> {args.out}"


def _evaluate(args: argparse.Namespace) -> str:
    from gtex_models.benchmark import evaluate_imputer
    from gtex_models.checkpoints import check_compatible, load_checkpoint
    from gtex_models.inference import ModelSpace, cohort_for_model

    imputer, metadata = load_checkpoint(args.checkpoint)
    cohort = cohort_for_model(Cohort.load(args.cohort), ModelSpace.from_metadata(metadata)).split("test")
    check_compatible(metadata, cohort)
    record = evaluate_imputer(imputer, cohort, args.missing_rate, args.seed)
    _write_records([record], args.json, None)
    return (f"{record['method']}: R² mean {record['r2_mean']:.3f} (median {record['r2_median']:.3f}, "
            f"SD {record['r2_std']:.3f}) over {record['n_genes']} genes, {record['n_test_samples']} test samples")


def _benchmark(args: argparse.Namespace) -> str:
    from gtex_models.benchmark import run_benchmark, to_markdown

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bar, progress = _progress_bar("benchmark")
    with bar:
        records = run_benchmark(Cohort.load(args.cohort), methods, args.scenario, args.missing_rate,
                                args.pathway, args.seed, progress=progress)
    _write_records(records, args.json, args.markdown)
    return to_markdown(records)


def _write_records(records: list[dict], json_path: Path | None, markdown_path: Path | None) -> None:
    import json

    from gtex_models.atomic import atomic_file
    from gtex_models.benchmark import to_markdown

    for path, text in ((json_path, json.dumps(records, indent=2)), (markdown_path, to_markdown(records))):
        if path is not None:
            with atomic_file(path) as tmp:
                tmp.write_text(text + "\n")


def _impute(args: argparse.Namespace) -> str:
    from gtex_models.atomic import atomic_file
    from gtex_models.checkpoints import load_checkpoint
    from gtex_models.inference import (ModelSpace, align_to_model, impute_upload, resolve_scale,
                                       result_frame, sample_table)
    from gtex_models.io import read_expression, read_samples_table
    from gtex_models.store import is_store

    imputer, metadata = load_checkpoint(args.checkpoint)
    space = ModelSpace.from_metadata(metadata)
    if is_store(args.input):
        return _impute_store(args, imputer, space)
    table = read_expression(args.input, args.orientation)
    alignment = align_to_model(table, space.genes)
    scale, reason = resolve_scale(alignment.values, args.scale, table.sample_ids, space.genes["symbol"].tolist())
    annotation = read_samples_table(args.samples, args.tissue_column) if args.samples else None
    samples = sample_table(table.sample_ids, space.tissues, tissue=args.tissue, sex=args.sex, age=args.age,
                           annotation=annotation)
    for message in alignment.coverage.warnings:  # the reader's warnings included
        warnings.warn(message)
    result = impute_upload(imputer, space, alignment, samples, scale, n_draws=args.draws)
    with atomic_file(args.out) as tmp:
        result_frame(result, uncertainty=args.draws > 1).to_csv(tmp)
    coverage = alignment.coverage
    return (f"Imputed {result.n_imputed:,} values in {len(table.sample_ids)} sample(s) "
            f"({coverage.n_matched}/{space.n_genes} model genes in the input; scale {scale}: {reason}) -> {args.out}")


def _impute_store(args: argparse.Namespace, imputer, space) -> str:
    """``impute`` of an on-disk store: streamed block by block (:func:`gtex_models.streaming.impute_store`)."""
    from gtex_models.streaming import impute_store

    if args.draws or args.tissue or args.samples or args.sex or args.age is not None:
        raise ValueError(f"{args.input} is an on-disk store: its samples' tissue, sex and age come from its own "
                         "sample table, and intervals (--draws) are not streamed; drop --draws, --tissue, "
                         "--samples, --sex and --age.")
    bar, progress = _progress_bar("impute")
    with bar:
        summary = impute_store(imputer, space, Cohort.load(args.input), args.out, progress)
    return (f"Imputed {summary.n_imputed:,} values in {summary.n_samples:,} samples, streamed "
            f"({summary.n_model_genes - summary.n_genes_absent}/{summary.n_model_genes} model genes in the store) "
            f"-> {args.out}")


def _build_demo(args: argparse.Namespace) -> str:
    from gtex_models.demo import build_demo

    bar, progress = _progress_bar("build demo")
    with bar:
        records = build_demo(args.out, progress=progress)
    return f"Demo artefacts: {len(records)} benchmark records -> {args.out}"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per verb."""
    parser = argparse.ArgumentParser(prog="python -m gtex_models", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    simulate = commands.add_parser("simulate", help="write a simulated GTEx-shaped cohort")
    simulate.add_argument("--out", required=True, type=Path, help="cohort directory to write")
    simulate.add_argument("--donors", type=int, default=300, help="number of donors (default 300, ~6,000 samples)")
    simulate.add_argument("--genes", type=int, default=2000, help="number of genes (default 2000)")
    simulate.add_argument("--seed", type=int, default=0)
    simulate.set_defaults(handler=_simulate)

    gtex = commands.add_parser("prepare-gtex", help="build a cohort from the public GTEx v8 files")
    gtex.add_argument("--gct", required=True, type=Path,
                      help="GTEx_Analysis_2017-06-05_v8_RNASeQCv1.1.9_gene_tpm.gct(.gz)")
    gtex.add_argument("--samples", required=True, type=Path,
                      help="GTEx_Analysis_v8_Annotations_SampleAttributesDS.txt")
    gtex.add_argument("--subjects", required=True, type=Path,
                      help="GTEx_Analysis_v8_Annotations_SubjectPhenotypesDS.txt")
    gtex.add_argument("--out", required=True, type=Path, help="cohort directory to write")
    gtex.add_argument("--min-samples-per-tissue", type=int, default=70)
    gtex.add_argument("--genes", default="protein_coding",
                      help="protein_coding (default), all, or a file of gene symbols / Ensembl IDs")
    gtex.add_argument("--seed", type=int, default=0, help="seed of the donor split")
    gtex.set_defaults(handler=_prepare_gtex)

    table = commands.add_parser("import", help="build a cohort from a CSV/TSV/GCT/h5ad expression table")
    source = table.add_mutually_exclusive_group(required=True)
    source.add_argument("--expression", type=Path)
    source.add_argument("--archs4", type=Path, default=None,
                        help="ARCHS4 gene-count HDF5 file: the chosen samples are streamed into an on-disk store")
    table.add_argument("--samples-query", default=None,
                       help="--archs4: regular expression over title, source, characteristics and series")
    table.add_argument("--sample-list", type=Path, default=None, help="--archs4: file of GSM accessions to import")
    table.add_argument("--samples", type=Path, default=None,
                       help="sample table (sample id, optional tissue/sex/age/donor columns)")
    table.add_argument("--tissue-column", default=None,
                       help="tissue column of the sample table (default tissue); --archs4: the sample field "
                            "naming the tissue (default source_name_ch1)")
    table.add_argument("--orientation", choices=["auto", "samples-by-genes", "genes-by-samples"], default="auto")
    table.add_argument("--scale", choices=["tpm", "log"], default="tpm")
    table.add_argument("--out", required=True, type=Path, help="cohort directory to write")
    table.add_argument("--seed", type=int, default=0, help="seed of the donor split")
    table.set_defaults(handler=_import)

    train = commands.add_parser("train", help="train an imputer on a cohort and save a checkpoint")
    train.add_argument("--cohort", required=True, type=Path, help="cohort directory")
    train.add_argument("--method", default=None, help="pmi, gain, gain-mse, mean, knn, mice, missforest, blood, oracle")
    train.add_argument("--config", type=Path, default=None, help="YAML experiment config (see configs/)")
    train.add_argument("--scenario", choices=["inductive", "inplace"], default=None)
    train.add_argument("--pathway", choices=["alzheimer", "p53"], default=None)
    train.add_argument("--out", required=True, type=Path, help="checkpoint file (.safetensors)")
    train.add_argument("--seed", type=int, default=0, help="seed of the evaluation masks")
    train.add_argument("--resume", action="store_true",
                       help="continue an interrupted run from its training state (<out>.resume)")
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("evaluate", help="score a checkpoint on a cohort's test donors")
    evaluate.add_argument("--checkpoint", required=True, type=Path)
    evaluate.add_argument("--cohort", required=True, type=Path)
    evaluate.add_argument("--missing-rate", type=float, default=0.5)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--json", type=Path, default=None, help="write the record as JSON")
    evaluate.set_defaults(handler=_evaluate)

    bench = commands.add_parser("benchmark", help="fit and score several methods side by side")
    bench.add_argument("--cohort", required=True, type=Path)
    bench.add_argument("--methods", default="pmi,gain,mean,knn,mice,missforest,blood",
                       help="comma-separated method names")
    bench.add_argument("--scenario", choices=["inductive", "inplace"], default="inductive")
    bench.add_argument("--missing-rate", type=float, default=0.5)
    bench.add_argument("--pathway", choices=["alzheimer", "p53"], default=None)
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--json", type=Path, default=None)
    bench.add_argument("--markdown", type=Path, default=None)
    bench.set_defaults(handler=_benchmark)

    impute = commands.add_parser("impute", help="fill the missing values of an expression file")
    impute.add_argument("--checkpoint", required=True, type=Path)
    impute.add_argument("--input", required=True, type=Path,
                        help="CSV, TSV, GCT or h5ad (empty cells are missing), or an on-disk store (streamed)")
    impute.add_argument("--out", required=True, type=Path,
                        help="CSV, same orientation and scale as the input (a store: CSV, or a directory for a new store)")
    impute.add_argument("--tissue", default=None, help="tissue of every sample (e.g. 'Whole Blood')")
    impute.add_argument("--samples", type=Path, default=None, help="per-sample table with a tissue column")
    impute.add_argument("--tissue-column", default="tissue")
    impute.add_argument("--sex", default=None, help="female, male (or GTEx code 2/1)")
    impute.add_argument("--age", type=float, default=None, help="age in years")
    impute.add_argument("--orientation", choices=["auto", "samples-by-genes", "genes-by-samples"], default="auto")
    impute.add_argument("--scale", choices=["auto", "tpm", "log"], default="auto")
    impute.add_argument("--draws", type=int, default=0,
                        help="GAIN-GTEx: noise draws for per-value intervals (adds _lower/_upper columns)")
    impute.set_defaults(handler=_impute)

    demo = commands.add_parser("build-demo", help="retrain the demo checkpoints and precompute the app's tables")
    demo.add_argument("--out", type=Path, default=Path("data/demo"))
    demo.set_defaults(handler=_build_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            summary = args.handler(args)
        for warning in caught:
            print(f"warning: {warning.message}", file=sys.stderr)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if summary:  # under torchrun only rank 0 reports
        print(summary)
    return 0
