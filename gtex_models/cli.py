"""Command-line interface: ``python -m gtex_models <command> ...``.

Each command prints a one-line summary on success; malformed input ends with a clear message on
stderr and exit status 2, leaving no partial output behind. Outputs never replace what the project
did not write, and replace earlier outputs only with ``--overwrite`` (see :mod:`gtex_models.atomic`).
An unexpected internal error prints a short message and exit status 1; ``GTEX_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import Callable, NoReturn, Sequence

from gtex_models.atomic import check_output_file
from gtex_models.cohort import COHORT_FOLDER, Cohort
from gtex_models.imputers import METHODS

Handler = Callable[[argparse.Namespace], str]
DEBUG_ENV = "GTEX_DEBUG"


def _simulate(args: argparse.Namespace) -> str:
    from gtex_models.simulate import simulate_cohort

    COHORT_FOLDER.check(args.out, args.overwrite)
    cohort = simulate_cohort(n_donors=args.donors, n_genes=args.genes, seed=args.seed)
    _save_cohort(cohort, args)
    return f"Simulated cohort (not real GTEx data): {cohort.summary()} -> {args.out}"


def _prepare_gtex(args: argparse.Namespace) -> str:
    from gtex_models.io import prepare_gtex

    COHORT_FOLDER.check(args.out, args.overwrite)
    cohort = prepare_gtex(args.gct, args.samples, args.subjects,
                          min_samples_per_tissue=args.min_samples_per_tissue, genes=args.genes, seed=args.seed)
    _save_cohort(cohort, args)
    return f"GTEx v8 cohort: {cohort.summary()} -> {args.out}"


def _import(args: argparse.Namespace) -> str:
    from gtex_models.io import import_table

    COHORT_FOLDER.check(args.out, args.overwrite)
    cohort = import_table(args.expression, args.samples, tissue_column=args.tissue_column,
                          orientation=args.orientation, scale=args.scale, seed=args.seed)
    _save_cohort(cohort, args)
    return f"Imported cohort: {cohort.summary()} -> {args.out}"


def _save_cohort(cohort: Cohort, args: argparse.Namespace) -> None:
    """Save a new cohort at ``--out``, warning when it is too small to train on."""
    problems = cohort.size_problems()
    if problems:
        warnings.warn(f"This cohort is too small to train or evaluate a model on ({'; '.join(problems)}); "
                      "`train`, `evaluate` and `benchmark` will refuse it.")
    cohort.save(args.out, overwrite=args.overwrite)


def _progress_bar(description: str):
    """A tqdm bar driven by the imputers' ``progress(fraction, message)`` callback."""
    from tqdm import tqdm

    bar = tqdm(total=100, desc=description, unit="%", leave=False, file=sys.stderr, delay=1.0)  # quick errors: no bar

    def progress(fraction: float, message: str) -> None:
        bar.n = round(100 * fraction)
        bar.set_postfix_str(message[:60], refresh=True)

    return bar, progress


def _experiment(args: argparse.Namespace):
    from gtex_models.experiment import Experiment

    if args.config is None and args.method is None:
        raise ValueError("Say what to train: --method NAME (default settings) or --config FILE (e.g. "
                         "configs/pmi_inductive_all.yaml).")
    experiment = Experiment.from_yaml(args.config) if args.config else Experiment(method=args.method)
    for key in ("method", "scenario", "pathway"):
        if getattr(args, key, None) is not None:
            setattr(experiment, key, getattr(args, key))
    return Experiment(**vars(experiment))  # re-validate after the overrides


def _train(args: argparse.Namespace) -> str:
    from gtex_models.experiment import run_experiment

    check_output_file(args.out, args.overwrite)
    experiment = _experiment(args)
    bar, progress = _progress_bar(f"train {experiment.method}")
    with bar:
        _, record = run_experiment(experiment, Cohort.load(args.cohort), out=args.out, seed=args.seed,
                                   progress=progress)
    return (f"Trained {experiment.method} ({experiment.scenario}): test R² {record['r2_mean']:.3f} "
            f"at {record['missing_rate']:.0%} missing, {record['fit_seconds']:.1f} s -> {args.out}")


def _evaluate(args: argparse.Namespace) -> str:
    from gtex_models.benchmark import evaluate_imputer, known_tissue_samples
    from gtex_models.checkpoints import check_compatible, load_checkpoint
    from gtex_models.inference import ModelSpace, cohort_for_model

    _check_outputs(args.json, None, args.overwrite)
    imputer, metadata = load_checkpoint(args.checkpoint)
    space = ModelSpace.from_metadata(metadata)
    cohort = known_tissue_samples(cohort_for_model(Cohort.load(args.cohort), space).split("test"), space.tissues)
    check_compatible(metadata, cohort)
    record = evaluate_imputer(imputer, cohort, args.missing_rate, args.seed)
    _write_records([record], args.json, None)
    return (f"{record['method']}: R² mean {record['r2_mean']:.3f} (median {record['r2_median']:.3f}, "
            f"SD {record['r2_std']:.3f}) over {record['n_genes']} genes, {record['n_test_samples']} test samples")


def _benchmark(args: argparse.Namespace) -> str:
    from gtex_models.benchmark import run_benchmark, to_markdown

    _check_outputs(args.json, args.markdown, args.overwrite)
    cohort = Cohort.load(args.cohort)
    bar, progress = _progress_bar("benchmark")
    with bar:
        records = run_benchmark(cohort, args.methods, args.scenario, args.missing_rate,
                                args.pathway, args.seed, progress=progress)
    _write_records(records, args.json, args.markdown)
    return to_markdown(records)


def _check_outputs(json_path: Path | None, markdown_path: Path | None, overwrite: bool) -> None:
    """Refuse the --json / --markdown paths before any work (see :func:`~gtex_models.atomic.check_output_file`)."""
    if json_path is not None and json_path == markdown_path:
        raise ValueError(f"--json and --markdown are the same file ({json_path}); give two file names.")
    for path in (json_path, markdown_path):
        if path is not None:
            check_output_file(path, overwrite)


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
                                       result_frame, sample_table, supports_uncertainty)
    from gtex_models.io import read_expression, read_samples_table

    check_output_file(args.out, args.overwrite)
    imputer, metadata = load_checkpoint(args.checkpoint)
    space = ModelSpace.from_metadata(metadata)
    table = read_expression(args.input, args.orientation)
    alignment = align_to_model(table, space.genes)
    scale, reason = resolve_scale(alignment.values, args.scale, table.sample_ids, space.genes["symbol"].tolist())
    annotation = read_samples_table(args.samples, args.tissue_column) if args.samples else None
    samples = sample_table(table.sample_ids, space.tissues, tissue=args.tissue, sex=args.sex, age=args.age,
                           annotation=annotation)
    for message in alignment.coverage.warnings:  # the reader's warnings included
        warnings.warn(message)
    if args.draws > 1 and not supports_uncertainty(imputer):
        warnings.warn(f"--draws {args.draws} is ignored: only GAIN-GTEx models give per-value intervals "
                      f"(this is a {metadata['method']} model).")
    result = impute_upload(imputer, space, alignment, samples, scale, n_draws=args.draws)
    with atomic_file(args.out) as tmp:
        result_frame(result, uncertainty=args.draws > 1).to_csv(tmp)
    coverage = alignment.coverage
    return (f"Imputed {result.n_imputed:,} values in {len(table.sample_ids)} sample(s) "
            f"({coverage.n_matched}/{space.n_genes} model genes in the input; scale {scale}: {reason}) -> {args.out}")


def _build_demo(args: argparse.Namespace) -> str:
    from gtex_models.demo import build_demo

    bar, progress = _progress_bar("build demo")
    with bar:
        records = build_demo(args.out, progress=progress, overwrite=args.overwrite)
    return f"Demo artefacts: {len(records)} benchmark records -> {args.out}"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per verb."""
    parser = _Parser(prog="python -m gtex_models", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    simulate = commands.add_parser("simulate", help="write a simulated GTEx-shaped cohort")
    simulate.add_argument("--out", required=True, type=Path, help="cohort directory to write")
    simulate.add_argument("--donors", type=_at_least(1), default=300,
                          help="number of donors (default 300, ~6,000 samples; training needs at least 4)")
    simulate.add_argument("--genes", type=_at_least(1), default=2000, help="number of genes (default 2000)")
    simulate.add_argument("--seed", type=_at_least(0), default=0)
    _add_overwrite(simulate, "an existing cohort folder")
    simulate.set_defaults(handler=_simulate)

    gtex = commands.add_parser("prepare-gtex", help="build a cohort from the public GTEx v8 files")
    gtex.add_argument("--gct", required=True, type=Path,
                      help="GTEx_Analysis_2017-06-05_v8_RNASeQCv1.1.9_gene_tpm.gct(.gz)")
    gtex.add_argument("--samples", required=True, type=Path,
                      help="GTEx_Analysis_v8_Annotations_SampleAttributesDS.txt")
    gtex.add_argument("--subjects", required=True, type=Path,
                      help="GTEx_Analysis_v8_Annotations_SubjectPhenotypesDS.txt")
    gtex.add_argument("--out", required=True, type=Path, help="cohort directory to write")
    gtex.add_argument("--min-samples-per-tissue", type=_at_least(0), default=70)
    gtex.add_argument("--genes", default="protein_coding",
                      help="protein_coding (default), all, or a file of gene symbols / Ensembl IDs")
    gtex.add_argument("--seed", type=_at_least(0), default=0, help="seed of the donor split")
    _add_overwrite(gtex, "an existing cohort folder")
    gtex.set_defaults(handler=_prepare_gtex)

    table = commands.add_parser("import", help="build a cohort from a CSV/TSV/GCT/h5ad expression table")
    table.add_argument("--expression", required=True, type=Path)
    table.add_argument("--samples", type=Path, default=None,
                       help="sample table (sample id, optional tissue/sex/age/donor columns)")
    table.add_argument("--tissue-column", default="tissue")
    table.add_argument("--orientation", choices=["auto", "samples-by-genes", "genes-by-samples"], default="auto")
    table.add_argument("--scale", choices=["tpm", "log"], default="tpm")
    table.add_argument("--out", required=True, type=Path, help="cohort directory to write")
    table.add_argument("--seed", type=_at_least(0), default=0, help="seed of the donor split")
    _add_overwrite(table, "an existing cohort folder")
    table.set_defaults(handler=_import)

    train = commands.add_parser("train", help="train an imputer on a cohort and save a checkpoint")
    train.add_argument("--cohort", required=True, type=Path, help="cohort directory")
    train.add_argument("--method", default=None, choices=METHODS, metavar="METHOD", help=", ".join(METHODS))
    train.add_argument("--config", type=Path, default=None, help="YAML experiment config (see configs/)")
    train.add_argument("--scenario", choices=["inductive", "inplace"], default=None)
    train.add_argument("--pathway", choices=["alzheimer", "p53"], default=None)
    train.add_argument("--out", required=True, type=Path, help="checkpoint file (.safetensors)")
    train.add_argument("--seed", type=_at_least(0), default=0, help="seed of the evaluation masks")
    _add_overwrite(train, "an existing checkpoint file")
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("evaluate", help="score a checkpoint on a cohort's test donors")
    evaluate.add_argument("--checkpoint", required=True, type=Path)
    evaluate.add_argument("--cohort", required=True, type=Path)
    evaluate.add_argument("--missing-rate", type=_share, default=0.5, help="share of values hidden (0 < rate < 1)")
    evaluate.add_argument("--seed", type=_at_least(0), default=0)
    evaluate.add_argument("--json", type=Path, default=None, help="write the record as JSON")
    _add_overwrite(evaluate, "an existing --json file")
    evaluate.set_defaults(handler=_evaluate)

    bench = commands.add_parser("benchmark", help="fit and score several methods side by side")
    bench.add_argument("--cohort", required=True, type=Path)
    bench.add_argument("--methods", type=_methods, default="pmi,gain,mean,knn,mice,missforest,blood",
                       help=f"comma-separated method names, among {', '.join(METHODS)}")
    bench.add_argument("--scenario", choices=["inductive", "inplace"], default="inductive")
    bench.add_argument("--missing-rate", type=_share, default=0.5, help="share of values hidden (0 < rate < 1)")
    bench.add_argument("--pathway", choices=["alzheimer", "p53"], default=None)
    bench.add_argument("--seed", type=_at_least(0), default=0)
    bench.add_argument("--json", type=Path, default=None)
    bench.add_argument("--markdown", type=Path, default=None)
    _add_overwrite(bench, "existing --json / --markdown files")
    bench.set_defaults(handler=_benchmark)

    impute = commands.add_parser("impute", help="fill the missing values of an expression file")
    impute.add_argument("--checkpoint", required=True, type=Path)
    impute.add_argument("--input", required=True, type=Path, help="CSV, TSV, GCT or h5ad; empty cells are missing")
    impute.add_argument("--out", required=True, type=Path, help="CSV, same orientation and scale as the input")
    impute.add_argument("--tissue", default=None, help="tissue of every sample (e.g. 'Whole Blood')")
    impute.add_argument("--samples", type=Path, default=None, help="per-sample table with a tissue column")
    impute.add_argument("--tissue-column", default="tissue")
    impute.add_argument("--sex", type=_sex, default=None, help="female, male, unknown (or GTEx code 2/1)")
    impute.add_argument("--age", type=_age, default=None, help="age in years")
    impute.add_argument("--orientation", choices=["auto", "samples-by-genes", "genes-by-samples"], default="auto")
    impute.add_argument("--scale", choices=["auto", "tpm", "log"], default="auto")
    impute.add_argument("--draws", type=_at_least(0), default=0,
                        help="GAIN-GTEx: noise draws for per-value intervals (adds _lower/_upper columns)")
    _add_overwrite(impute, "an existing output file")
    impute.set_defaults(handler=_impute)

    demo = commands.add_parser("build-demo", help="retrain the demo checkpoints and precompute the app's tables")
    demo.add_argument("--out", type=Path, default=Path("data/demo"))
    _add_overwrite(demo, "an existing demo folder (data/demo itself included)")
    demo.set_defaults(handler=_build_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit status (0 done, 2 bad input, 1 internal error, 130 interrupted)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, or an option error already reported by _Parser.error
        return int(done.code or 0)
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            summary = args.handler(args)
    except (ValueError, OSError) as error:  # bad input (readers, schemas, options, output paths)
        _show_warnings(caught)
        _debug_traceback()
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; no partial output was left (outputs are renamed into place only when "
              "complete).", file=sys.stderr)
        return 130
    except MemoryError:
        _debug_traceback()
        print(f"error: `{args.command}` ran out of memory. Use fewer samples or genes, or a machine with more "
              "memory; no partial output was left.", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - a bug: a short message instead of a traceback
        _debug_traceback()
        print(f"error: internal error in `{args.command}` ({type(error).__name__}: {error}). This is a bug in "
              "GTEx Imputation Studio, not a problem with your input; no partial output was left. Please report "
              f"it with the command you ran and its traceback ({DEBUG_ENV}=1 shows it).", file=sys.stderr)
        return 1
    _show_warnings(caught)
    print(summary)
    return 0


def _show_warnings(caught: Sequence[warnings.WarningMessage]) -> None:
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)


def _debug_traceback() -> None:
    if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
        traceback.print_exc()


# ------------------------------------------------------------------------------------- options
class _Parser(argparse.ArgumentParser):
    """argparse with this CLI's error format: ``error: <what>; see --help``, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message}. See `{self.prog} --help`.\n")


def _add_overwrite(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help=f"replace {what} (never a folder or file this project did not write)")


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _share(text: str) -> float:
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1 (the share of values hidden), got {value:g}")
    return value


def _age(text: str) -> float:
    value = _number(text)
    if not 0 <= value < 150:
        raise argparse.ArgumentTypeError(f"must be an age in years between 0 and 150, got {value:g}")
    return value


def _sex(text: str) -> str:
    from gtex_models.covariates import parse_sex

    if text.strip().lower() != "unknown" and parse_sex([text]) == ["unknown"]:
        raise argparse.ArgumentTypeError(f"{text!r} is not a sex; use female, male or unknown (GTEx codes: 2, 1)")
    return text


def _methods(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise argparse.ArgumentTypeError(f"{', '.join(map(repr, unknown)) or 'no method'} given; choose among "
                                         f"{', '.join(METHODS)}")
    if len(set(methods)) < len(methods):
        raise argparse.ArgumentTypeError(f"a method is listed twice in {text!r}")
    return methods
