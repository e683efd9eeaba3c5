"""Command-line interface: ``python -m gtex_models <command> ...``.

Each command prints a one-line summary on success; malformed input ends with a clear message on
stderr and exit status 2, leaving no partial output behind. Outputs never replace what the project
did not write, and replace earlier outputs only with ``--overwrite`` (see :mod:`gtex_models.atomic`).
An unexpected internal error prints a short message and exit status 1; ``GTEX_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import Callable, NoReturn, Sequence

from gtex_models import cli_options as options
from gtex_models.atomic import check_output_file
from gtex_models.choices import (DUPLICATE_CHOICES, NEGATIVE_CHOICES, ORIENTATIONS, PATHWAYS, SCALE_CHOICES,
                                 SCENARIOS)
from gtex_models.cli_patterns import add_other_cohort_arguments, add_panel_command, add_pattern_arguments
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

    if args.archs4 is not None:
        return _import_archs4(args)
    if args.samples_query is not None or args.sample_list is not None:
        raise ValueError("--samples-query and --sample-list choose samples of an ARCHS4 file; use them with --archs4.")
    COHORT_FOLDER.check(args.out, args.overwrite)
    cohort = import_table(args.expression, args.samples, tissue_column=args.tissue_column or "tissue",
                          orientation=args.orientation, scale=args.scale, seed=args.seed,
                          duplicates=args.duplicates, negatives=args.negatives, gene_map=args.gene_map)
    _save_cohort(cohort, args)
    scale = cohort.meta["scale"]
    notes = [f"scale {scale['scale']}: {scale['reason']}", *cohort.meta["merges"]]
    if cohort.meta["negatives_clipped"]:
        notes.append(f"{cohort.meta['negatives_clipped']:,} negative value(s) set to 0")
    return f"Imported cohort: {cohort.summary()} ({'; '.join(notes)}) -> {args.out}"


def _save_cohort(cohort: Cohort, args: argparse.Namespace) -> None:
    """Save a new cohort at ``--out``, warning when it is too small to train on."""
    problems = cohort.size_problems()
    if problems:
        warnings.warn(f"This cohort is too small to train or evaluate a model on ({'; '.join(problems)}); "
                      "`train`, `evaluate`, `benchmark` and `study build` will refuse it.")
    cohort.save(args.out, overwrite=args.overwrite)


def _import_archs4(args: argparse.Namespace) -> str:
    """``import --archs4``: stream the chosen samples into an on-disk store (:mod:`gtex_models.io.archs4`)."""
    from gtex_models.io.archs4 import DEFAULT_TISSUE_FIELD, import_archs4
    from gtex_models.io.errors import require_file

    COHORT_FOLDER.check(args.out, args.overwrite)
    sample_list = None
    if args.sample_list is not None:
        sample_list = require_file(args.sample_list).read_text(encoding="utf-8-sig").split()
    bar, progress = _progress_bar("import ARCHS4")
    with bar:
        cohort = import_archs4(args.archs4, args.out, args.samples_query, sample_list,
                               args.tissue_column or DEFAULT_TISSUE_FIELD, args.seed, progress,
                               overwrite=args.overwrite)
    return f"Imported ARCHS4 samples into an on-disk store: {cohort.summary()} -> {args.out}"


class _ProgressBar:
    """A tqdm bar on stderr driven by ``progress(fraction, message)``, opened at the first report (so a
    command that fails while checking its input prints only its error)."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.bar = None

    def __call__(self, fraction: float, message: str) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=100, desc=self.description, unit="%", leave=False, file=sys.stderr)
        self.bar.n = round(100 * fraction)
        self.bar.set_postfix_str(message[:60], refresh=True)

    def __enter__(self) -> "_ProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress_bar(description: str) -> tuple[_ProgressBar, _ProgressBar]:
    """A progress bar (a context manager) and its ``progress(fraction, message)`` callback."""
    bar = _ProgressBar(description)
    return bar, bar


def _experiment(args: argparse.Namespace, cohort: Cohort):
    """The config's experiment, or the default one for the cohort's size; flags override either."""
    from gtex_models.experiment import Experiment, default_config

    if args.config:
        experiment = Experiment.from_yaml(args.config)
    elif args.method:
        experiment = default_config(args.method, cohort.n_samples, cohort.n_genes, args.scenario or "inductive")
    else:
        raise ValueError("Say what to train: --method NAME (settings for the cohort's size) or --config FILE.")
    for key in ("method", "scenario", "pathway"):
        if getattr(args, key, None) is not None:
            setattr(experiment, key, getattr(args, key))
    return Experiment(**vars(experiment)).with_max_epochs(args.max_epochs)  # re-validate after the overrides


def _train(args: argparse.Namespace) -> str:
    from gtex_models.distributed import launched
    from gtex_models.experiment import run_experiment
    from gtex_models.store import is_store

    if not args.resume:  # a resumed run replaces its own earlier output
        check_output_file(args.out, args.overwrite)
    if launched() or args.resume or is_store(args.cohort):
        return _train_at_scale(args)
    cohort = Cohort.load(args.cohort)
    experiment = _experiment(args, cohort)
    bar, progress = _progress_bar(f"train {experiment.method}")
    with bar:
        _, record = run_experiment(experiment, cohort, out=args.out, seed=args.seed, progress=progress)
    return (f"Trained {experiment.method} ({experiment.scenario}): test R² {record['r2_mean']:.3f} "
            f"at {record['missing_rate']:.0%} missing, {record['fit_seconds']:.1f} s -> {args.out}")


def _train_at_scale(args: argparse.Namespace) -> str:
    """``train`` on an on-disk store and/or under torchrun (:func:`gtex_models.distributed.train_at_scale`)."""
    from contextlib import nullcontext

    import torch.distributed as dist

    from gtex_models.distributed import init_process_group, is_main_process, train_at_scale

    init_process_group()
    try:
        cohort = Cohort.load(args.cohort)
        experiment = _experiment(args, cohort)
        bar, progress = _progress_bar(f"train {experiment.method}") if is_main_process() else (nullcontext(), None)
        with bar:
            _, record = train_at_scale(experiment, cohort, args.out, args.seed, args.resume, progress)
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
    from gtex_models.cli_patterns import evaluate_command

    options.check_outputs(args.json, None, args.overwrite)
    return evaluate_command(args)


def _calibrate(args: argparse.Namespace) -> str:
    from gtex_models.checkpoints import attach_calibration, check_compatible, load_checkpoint
    from gtex_models.experiment import calibrate_checkpoint
    from gtex_models.inference import ModelSpace, cohort_for_model

    imputer, metadata = load_checkpoint(args.checkpoint)
    cohort = cohort_for_model(Cohort.load(args.cohort), ModelSpace.from_metadata(metadata))
    check_compatible(metadata, cohort)
    calibration = calibrate_checkpoint(imputer, metadata, cohort, args.seed)
    attach_calibration(args.checkpoint, calibration)
    info = calibration.info
    donors = "validation donors" if info["scenario"] == "inductive" else "training donors of the in-place pool"
    return (f"Calibrated {metadata['method']} intervals on {info['n_samples']:,} samples of {info['n_donors']} "
            f"{donors} ({info['n_scores']:,} hidden values; {info['n_own_cells']}/{info['n_cells']} "
            f"cells with their own quantiles) -> {args.checkpoint}")


def _benchmark(args: argparse.Namespace) -> str:
    from gtex_models.benchmark import run_benchmark, to_markdown
    from gtex_models.cli_patterns import patterns_from_args

    options.check_outputs(args.json, args.markdown, args.overwrite)
    cohort = Cohort.load(args.cohort)
    patterns, _ = patterns_from_args(args, cohort.pathway(args.pathway).genes if args.pathway else cohort.genes)
    bar, progress = _progress_bar("benchmark")
    with bar:
        records = run_benchmark(cohort, args.methods, args.scenario, args.missing_rate,
                                args.pathway, args.seed, progress=progress, patterns=patterns, interval=args.interval)
    options.write_records(records, args.json, args.markdown)
    return to_markdown(records)


def _impute(args: argparse.Namespace) -> str:
    from gtex_models.atomic import atomic_file
    from gtex_models.checkpoints import load_checkpoint
    from gtex_models.inference import ModelSpace, impute_file, result_frame, supports_uncertainty
    from gtex_models.io import read_samples_table
    from gtex_models.store import is_store

    if is_store(args.input):
        _check_store_output(args.out, args.overwrite)
    else:
        check_output_file(args.out, args.overwrite)
    imputer, metadata = load_checkpoint(args.checkpoint)
    space = ModelSpace.from_metadata(metadata)
    if is_store(args.input):
        return _impute_store(args, imputer, space)
    if args.interval is not None and args.draws:
        raise ValueError("Give --interval (calibrated intervals) or --draws (GAIN-GTEx noise spread), not both.")
    if args.interval is not None:
        from gtex_models.calibration import check_level

        check_level(args.interval)
    annotation = read_samples_table(args.samples, args.tissue_column) if args.samples else None
    result = impute_file(args.input, imputer, space, orientation=args.orientation, scale=args.scale,
                         duplicates=args.duplicates, gene_map=args.gene_map, tissue=args.tissue, sex=args.sex,
                         age=args.age, annotation=annotation, n_draws=args.draws,
                         calibration=metadata.get("calibration"), interval=args.interval)
    for message in result.coverage.warnings:  # the reader's warnings included
        warnings.warn(message)
    if args.draws > 1 and not supports_uncertainty(imputer):
        warnings.warn(f"--draws {args.draws} is ignored: only GAIN-GTEx models give per-value intervals "
                      f"(this is a {metadata['method']} model).")
    with atomic_file(args.out) as tmp:
        result_frame(result, uncertainty=result.lower is not None).to_csv(tmp)
    coverage = result.coverage
    return (f"Imputed {result.n_imputed:,} values in {len(result.values)} sample(s) "
            f"({coverage.n_matched}/{space.n_genes} model genes in the input; scale {result.scale}: "
            f"{result.scale_reason}) -> {args.out}")


def _check_store_output(out: Path, overwrite: bool) -> None:
    """``impute --input STORE --out``: a CSV file, or a folder for a new store (see :mod:`gtex_models.streaming`)."""
    from gtex_models.streaming import writes_store

    if writes_store(out):
        COHORT_FOLDER.check(out, overwrite)
    else:
        check_output_file(out, overwrite)


def _impute_store(args: argparse.Namespace, imputer, space) -> str:
    """``impute`` of an on-disk store: streamed block by block (:func:`gtex_models.streaming.impute_store`)."""
    from gtex_models.streaming import impute_store

    if args.draws or args.interval is not None or args.tissue or args.samples or args.sex or args.age is not None:
        raise ValueError(f"{args.input} is an on-disk store: its samples' tissue, sex and age come from its own "
                         "sample table, and intervals (--interval, --draws) are not streamed; drop --interval, "
                         "--draws, --tissue, --samples, --sex and --age.")
    bar, progress = _progress_bar("impute")
    with bar:
        summary = impute_store(imputer, space, Cohort.load(args.input), args.out, progress, overwrite=args.overwrite)
    return (f"Imputed {summary.n_imputed:,} values in {summary.n_samples:,} samples, streamed "
            f"({summary.n_model_genes - summary.n_genes_absent}/{summary.n_model_genes} model genes in the store) "
            f"-> {args.out}")


def _build_demo(args: argparse.Namespace) -> str:
    from gtex_models.demo import build_demo

    bar, progress = _progress_bar("build demo")
    with bar:
        study = build_demo(args.out, progress=progress, overwrite=args.overwrite)
    return f"Demo study: {_study_summary(study)} -> {args.out}"


def _model_specs(args: argparse.Namespace) -> list:
    """``--models a,b`` names and ``--config F`` experiments, in that order."""
    from gtex_models.experiment import Experiment

    return [*(args.models or []), *(Experiment.from_yaml(path) for path in args.config or [])]


def _study_summary(study) -> str:
    summary = study.cohort_summary
    def r2(entry) -> str:
        value = entry.evaluation.get("r2_mean")
        return "n/a" if value is None or value != value else f"{value:.3f}"  # NaN: too few test values

    models = ", ".join(f"{key} (test R² {r2(entry)})" for key, entry in study.models.items()) or "no model"
    return (f"{study.title!r}: {summary.get('n_samples', '?')} samples x {summary.get('n_genes', '?')} genes, "
            f"{summary.get('n_groups', '?')} group(s); models {models}; "
            f"{len(study.benchmark() or [])} benchmark record(s)")


def _study_build(args: argparse.Namespace) -> str:
    from gtex_models.study import STUDY_FOLDER
    from gtex_models.study_build import build_study

    STUDY_FOLDER.check(args.out, args.overwrite)  # before the configs are read
    models = _model_specs(args)
    if not models:
        raise ValueError("Give at least one model: --models pmi,gain and/or --config FILE.")
    baselines = args.baselines
    bar, progress = _progress_bar("study build")
    with bar:
        study = build_study(args.cohort, args.out, models, baselines, title=args.title,
                            description=args.description, scenario=args.scenario, max_epochs=args.max_epochs,
                            overwrite=args.overwrite, progress=progress,
                            cohort_mode="reference" if args.reference_cohort else "copy")
    return f"Study {_study_summary(study)} -> {args.out}"


def _study_add_model(args: argparse.Namespace) -> str:
    from gtex_models.experiment import Experiment
    from gtex_models.study_build import add_checkpoint, add_model

    given = [name for name in ("method", "config", "checkpoint") if getattr(args, name) is not None]
    if len(given) != 1:
        raise ValueError("Give exactly one of --method, --config and --checkpoint.")
    if args.checkpoint is not None:
        study = add_checkpoint(args.study, args.checkpoint, key=args.key, label=args.label)
    else:
        model = Experiment.from_yaml(args.config) if args.config else args.method
        bar, progress = _progress_bar("study add-model")
        with bar:
            study = add_model(args.study, model, key=args.key, label=args.label, max_epochs=args.max_epochs,
                              progress=progress, scenario=args.scenario)
    return f"Study {_study_summary(study)} -> {args.study}"


def _study_info(args: argparse.Namespace) -> str:
    from gtex_models.study import Study
    from gtex_models.study_build import study_info

    study = Study.open(args.study)
    table = study_info(study)
    lines = [f"Study {_study_summary(study)}", "" if table.empty else table.to_string(index=False)]
    lines += [f"missing: {problem}" for problem in study.problems]
    return "\n".join(line for line in lines if line)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per verb."""
    parser = _Parser(prog="python -m gtex_models", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    simulate = commands.add_parser("simulate", help="write a simulated GTEx-shaped cohort")
    simulate.add_argument("--out", required=True, type=Path, help="cohort directory to write")
    simulate.add_argument("--donors", type=options.at_least(1), default=300,
                          help="number of donors (default 300, ~6,000 samples; training needs at least 4)")
    simulate.add_argument("--genes", type=options.at_least(1), default=2000, help="number of genes (default 2000)")
    simulate.add_argument("--seed", type=options.at_least(0), default=0)
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
    gtex.add_argument("--min-samples-per-tissue", type=options.at_least(0), default=70)
    gtex.add_argument("--genes", default="protein_coding",
                      help="protein_coding (default), all, or a file of gene symbols / Ensembl IDs")
    gtex.add_argument("--seed", type=options.at_least(0), default=0, help="seed of the donor split")
    _add_overwrite(gtex, "an existing cohort folder")
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
    table.add_argument("--orientation", choices=ORIENTATIONS, default="auto")
    table.add_argument("--scale", choices=SCALE_CHOICES, default="auto",
                       help="auto (detected, printed in the summary), tpm (any non-negative linear scale) or log")
    table.add_argument("--duplicates", choices=DUPLICATE_CHOICES, default="error",
                       help="gene identifiers that occur twice (or name one gene): error, keep the first, or average")
    table.add_argument("--negatives", choices=NEGATIVE_CHOICES, default="error",
                       help="negative values on a linear scale: error, or clip them to 0 (MAS5 microarray signal)")
    table.add_argument("--gene-map", type=Path, default=None,
                       help="probe -> gene file (two columns; several probes of a gene are averaged)")
    table.add_argument("--out", required=True, type=Path, help="cohort directory to write")
    table.add_argument("--seed", type=options.at_least(0), default=0, help="seed of the donor split")
    _add_overwrite(table, "an existing cohort folder or store")
    table.set_defaults(handler=_import)

    train = commands.add_parser("train", help="train an imputer on a cohort and save a checkpoint")
    train.add_argument("--cohort", required=True, type=Path, help="cohort directory")
    train.add_argument("--method", default=None, choices=METHODS, metavar="METHOD", help=", ".join(METHODS))
    train.add_argument("--config", type=Path, default=None, help="YAML experiment config (see configs/)")
    train.add_argument("--scenario", choices=SCENARIOS, default=None)
    train.add_argument("--pathway", choices=PATHWAYS, default=None)
    train.add_argument("--max-epochs", type=options.at_least(1), default=None, help="cap the deep models' training epochs")
    train.add_argument("--out", required=True, type=Path, help="checkpoint file (.safetensors)")
    train.add_argument("--seed", type=options.at_least(0), default=0, help="seed of the evaluation masks")
    train.add_argument("--resume", action="store_true",
                       help="continue an interrupted run from its training state (<out>.resume)")
    _add_overwrite(train, "an existing checkpoint file")
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("evaluate", help="score a checkpoint on a cohort's test donors")
    evaluate.add_argument("--checkpoint", required=True, type=Path)
    evaluate.add_argument("--cohort", required=True, type=Path)
    evaluate.add_argument("--missing-rate", type=options.share, default=0.5, help="share of values hidden (0 < rate < 1)")
    evaluate.add_argument("--seed", type=options.at_least(0), default=0)
    evaluate.add_argument("--json", type=Path, default=None, help="write the record as JSON")
    evaluate.add_argument("--interval", type=options.level, default=None, metavar="LEVEL",
                          help="also score calibrated intervals at LEVEL (0.5-0.99): coverage, median width")
    _add_overwrite(evaluate, "an existing --json file")
    add_pattern_arguments(evaluate)
    add_other_cohort_arguments(evaluate)
    evaluate.set_defaults(handler=_evaluate)

    calibrate = commands.add_parser("calibrate", help="calibrate a checkpoint's intervals on a cohort's validation donors")
    calibrate.add_argument("--checkpoint", required=True, type=Path, help="checkpoint to add the calibration to")
    calibrate.add_argument("--cohort", required=True, type=Path, help="the cohort it was trained on (its valid split)")
    calibrate.add_argument("--seed", type=options.at_least(0), default=0)
    calibrate.set_defaults(handler=_calibrate)

    bench = commands.add_parser("benchmark", help="fit and score several methods side by side")
    bench.add_argument("--cohort", required=True, type=Path)
    bench.add_argument("--methods", type=options.methods, default="pmi,gain,mean,knn,mice,missforest,blood",
                       help=f"comma-separated method names, among {', '.join(METHODS)}")
    bench.add_argument("--scenario", choices=SCENARIOS, default="inductive")
    bench.add_argument("--missing-rate", type=options.share, default=0.5, help="share of values hidden (0 < rate < 1)")
    bench.add_argument("--pathway", choices=PATHWAYS, default=None)
    bench.add_argument("--seed", type=options.at_least(0), default=0)
    bench.add_argument("--json", type=Path, default=None)
    bench.add_argument("--markdown", type=Path, default=None)
    bench.add_argument("--interval", type=options.level, default=None, metavar="LEVEL",
                       help="also calibrate each method on the validation donors and score its LEVEL intervals")
    _add_overwrite(bench, "existing --json / --markdown files")
    add_pattern_arguments(bench, several=True)
    bench.set_defaults(handler=_benchmark)
    add_panel_command(commands)

    impute = commands.add_parser("impute", help="fill the missing values of an expression file")
    impute.add_argument("--checkpoint", required=True, type=Path)
    impute.add_argument("--input", required=True, type=Path,
                        help="CSV, TSV, GCT or h5ad (empty cells are missing), or an on-disk store (streamed)")
    impute.add_argument("--out", required=True, type=Path,
                        help="CSV, same orientation and scale as the input (a store: CSV, or a directory for a new store)")
    impute.add_argument("--tissue", default=None, help="tissue of every sample (e.g. 'Whole Blood')")
    impute.add_argument("--samples", type=Path, default=None, help="per-sample table with a tissue column")
    impute.add_argument("--tissue-column", default="tissue")
    impute.add_argument("--sex", type=options.sex, default=None, help="female, male, unknown (or GTEx code 2/1)")
    impute.add_argument("--age", type=options.age, default=None, help="age in years")
    impute.add_argument("--orientation", choices=ORIENTATIONS, default="auto")
    impute.add_argument("--scale", choices=SCALE_CHOICES, default="auto")
    impute.add_argument("--duplicates", choices=DUPLICATE_CHOICES, default="error",
                        help="gene identifiers that occur twice (or name one gene): error, keep the first, or average")
    impute.add_argument("--gene-map", type=Path, default=None,
                        help="probe -> gene file, for a microarray input and a model of genes")
    impute.add_argument("--interval", type=options.level, default=None, metavar="LEVEL",
                        help="calibrated per-value intervals at LEVEL (0.5-0.99, e.g. 0.9): adds _lower/_upper columns")
    impute.add_argument("--draws", type=options.at_least(0), default=0,
                        help="GAIN-GTEx: the 5-95 %% spread of this many noise draws as _lower/_upper (uncalibrated; "
                             "prefer --interval)")
    _add_overwrite(impute, "an existing output file (or store)")
    impute.set_defaults(handler=_impute)

    demo = commands.add_parser("build-demo", help="rebuild the demo study (study build with the demo's configs)")
    demo.add_argument("--out", type=Path, default=Path("data/demo"))
    _add_overwrite(demo, "an existing study there (data/demo itself included)")
    demo.set_defaults(handler=_build_demo)

    study = commands.add_parser("study", help="build, extend and describe studies (what the app opens)")
    verbs = study.add_subparsers(dest="study_command", required=True)
    build = verbs.add_parser("build", help="train models and baselines on a cohort, write a study folder")
    build.add_argument("--cohort", required=True, type=Path, help="cohort directory (simulate, import, prepare-gtex)")
    build.add_argument("--out", required=True, type=Path, help="study folder to write")
    build.add_argument("--models", type=options.methods, default=None, help="comma-separated methods kept as models, e.g. "
                       "pmi,gain (settings chosen for the cohort's size)")
    build.add_argument("--config", type=Path, action="append", default=None,
                       help="YAML experiment config of a model (repeatable; see configs/)")
    build.add_argument("--baselines", type=options.methods_or_none, default="mean,knn,mice",
                       help="comma-separated benchmark-only methods ('' for none)")
    build.add_argument("--title", default=None, help="shown in the app (default: the cohort folder's name)")
    build.add_argument("--description", default="")
    build.add_argument("--scenario", choices=SCENARIOS, default="inductive", help="scenario of --models and baselines")
    build.add_argument("--max-epochs", type=options.at_least(1), default=None, help="cap the deep models' training epochs")
    build.add_argument("--reference-cohort", action="store_true",
                       help="reference the cohort folder (absolute path) instead of copying it into the study")
    _add_overwrite(build, "an existing study at --out")
    build.set_defaults(handler=_study_build)

    add = verbs.add_parser("add-model", help="train one more model into a study, or add a checkpoint")
    add.add_argument("--study", required=True, type=Path)
    add.add_argument("--method", default=None, choices=METHODS, metavar="METHOD",
                     help=f"a method, with settings for the cohort's size: {', '.join(METHODS)}")
    add.add_argument("--config", type=Path, default=None, help="YAML experiment config")
    add.add_argument("--checkpoint", type=Path, default=None, help="a checkpoint trained elsewhere (train --out)")
    add.add_argument("--scenario", choices=SCENARIOS, default="inductive", help="scenario of --method")
    add.add_argument("--key", default=None, help="the model's name in the study (default METHOD_GENESET)")
    add.add_argument("--label", default=None, help="what the app shows")
    add.add_argument("--max-epochs", type=options.at_least(1), default=None, help="cap the deep model's training epochs")
    add.set_defaults(handler=_study_add_model)

    info = verbs.add_parser("info", help="print the table of what a study holds")
    info.add_argument("--study", required=True, type=Path)
    info.set_defaults(handler=_study_info)
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
    if summary:  # under torchrun only rank 0 reports
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
