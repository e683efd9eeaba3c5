"""The CLI's model commands: ``train``, ``calibrate``, ``benchmark``, ``impute``."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from gtex_models.common.atomic import check_output_file
from gtex_models.data.cohort import Cohort
from gtex_models.data.cohort_format import COHORT_FOLDER
from gtex_models.interfaces.cli import options
from gtex_models.interfaces.cli.progress import progress_bar


def experiment_from_args(args: argparse.Namespace, cohort: Cohort):
    """The config's experiment, or the default one for the cohort's size; flags override either."""
    from gtex_models.studies.experiment import Experiment, default_config

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


def train_command(args: argparse.Namespace) -> str:
    from gtex_models.data.store import is_store
    from gtex_models.models.distributed import launched
    from gtex_models.studies.experiment import run_experiment

    if not args.resume:  # a resumed run replaces its own earlier output
        check_output_file(args.out, args.overwrite)
    if launched() or args.resume or is_store(args.cohort):
        return train_at_scale_command(args)
    cohort = Cohort.load(args.cohort)
    experiment = experiment_from_args(args, cohort)
    bar, progress = progress_bar(f"train {experiment.method}")
    with bar:
        _, record = run_experiment(experiment, cohort, out=args.out, seed=args.seed, progress=progress)
    return (f"Trained {experiment.method} ({experiment.scenario}): test R² {record['r2_mean']:.3f} "
            f"at {record['missing_rate']:.0%} missing, {record['fit_seconds']:.1f} s -> {args.out}")


def train_at_scale_command(args: argparse.Namespace) -> str:
    """``train`` on an on-disk store and/or under torchrun (:func:`gtex_models.models.distributed.train_at_scale`)."""
    from contextlib import nullcontext

    import torch.distributed as dist

    from gtex_models.models.distributed import init_process_group, is_main_process
    from gtex_models.studies.at_scale import train_at_scale

    init_process_group()
    try:
        cohort = Cohort.load(args.cohort)
        experiment = experiment_from_args(args, cohort)
        bar, progress = progress_bar(f"train {experiment.method}") if is_main_process() else (nullcontext(), None)
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


def calibrate_command(args: argparse.Namespace) -> str:
    from gtex_models.models.checkpoints import attach_calibration, check_compatible, load_checkpoint
    from gtex_models.models.model_space import ModelSpace, cohort_for_model
    from gtex_models.studies.experiment import calibrate_checkpoint

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


def benchmark_command(args: argparse.Namespace) -> str:
    from gtex_models.analysis.benchmark import run_benchmark, to_markdown
    from gtex_models.interfaces.cli.donor_commands import VALUE_METHODS, cross_tissue_benchmark_command
    from gtex_models.interfaces.cli.patterns import patterns_from_args

    if args.task == "cross-tissue":
        return cross_tissue_benchmark_command(args)
    args.methods = args.methods or VALUE_METHODS.split(",")
    options.check_outputs(args.json, args.markdown, args.overwrite)
    cohort = Cohort.load(args.cohort)
    patterns, _ = patterns_from_args(args, cohort.pathway(args.pathway).genes if args.pathway else cohort.genes)
    bar, progress = progress_bar("benchmark")
    with bar, options.for_level(args.interval):
        records = run_benchmark(cohort, args.methods, args.scenario, args.missing_rate[0],
                                args.pathway, args.seed, progress=progress, patterns=patterns, interval=args.interval)
    options.write_records(records, args.json, args.markdown)
    return to_markdown(records)


def impute_command(args: argparse.Namespace) -> str:
    from gtex_models.common.atomic import atomic_file
    from gtex_models.data.readers import read_samples_table
    from gtex_models.data.readers.samples import choose_group_column
    from gtex_models.data.store import is_store
    from gtex_models.interfaces.upload import impute_file, result_frame, supports_uncertainty
    from gtex_models.models.checkpoints import load_checkpoint
    from gtex_models.models.model_space import ModelSpace

    if args.donors is not None:
        from gtex_models.interfaces.cli.donor_commands import impute_donors_command

        return impute_donors_command(args)
    if is_store(args.input):
        check_store_output(args.out, args.overwrite)
    else:
        check_output_file(args.out, args.overwrite)
    imputer, metadata = load_checkpoint(args.checkpoint)
    space = ModelSpace.from_metadata(metadata)
    if is_store(args.input):
        return impute_into_store(args, imputer, space)
    if args.interval is not None and args.draws:
        raise ValueError("Give --interval (calibrated intervals) or --draws (GAIN-GTEx noise spread), not both.")
    if args.interval is not None:
        from gtex_models.models.calibration import check_level

        check_level(args.interval)
    annotation = None
    if args.samples:
        column = choose_group_column(args.samples, args.tissue_column).require(args.samples).column
        annotation = read_samples_table(args.samples, column)
    with options.for_level(args.interval):
        result = impute_file(args.input, imputer, space, orientation=args.orientation, scale=args.scale,
                             duplicates=args.duplicates, gene_map=args.gene_map, tissue=args.tissue, sex=args.sex,
                             age=args.age, annotation=annotation, n_draws=args.draws,
                             calibration=metadata.get("calibration"), interval=args.interval,
                             unknown_groups=args.unknown_groups)
    for message in result.coverage.warnings:  # the reader's warnings included
        warnings.warn(message)
    if args.draws > 1 and not supports_uncertainty(imputer):
        warnings.warn(f"--draws {args.draws} is ignored: only GAIN-GTEx models give per-value intervals "
                      f"(this is a {metadata['method']} model).")
    with atomic_file(args.out) as tmp:
        result_frame(result, uncertainty=result.lower is not None).to_csv(tmp)
    coverage = result.coverage
    pooled = ""
    if result.pooled_groups:
        groups = ", ".join(f"{name!r} ({n})" for name, n in result.pooled_groups.items())
        pooled = (f"; {sum(result.pooled_groups.values())} sample(s) of group(s) the model does not know ({groups}) "
                  f"imputed as the mean over its {len(space.tissues)} groups")
    return (f"Imputed {result.n_imputed:,} values in {len(result.values)} sample(s) "
            f"({coverage.n_matched}/{space.n_genes} model genes in the input; scale {result.scale}: "
            f"{result.scale_reason}{pooled}) -> {args.out}")


def check_store_output(out: Path, overwrite: bool) -> None:
    """``impute --input STORE --out``: a CSV file, or a folder for a new store (see :mod:`gtex_models.interfaces.streaming`)."""
    from gtex_models.interfaces.streaming import writes_store

    if writes_store(out):
        COHORT_FOLDER.check(out, overwrite)
    else:
        check_output_file(out, overwrite)


def impute_into_store(args: argparse.Namespace, imputer, space) -> str:
    """``impute`` of an on-disk store: streamed block by block (:func:`gtex_models.interfaces.streaming.impute_store`)."""
    from gtex_models.interfaces.streaming import impute_store

    if args.draws or args.interval is not None or args.tissue or args.samples or args.sex or args.age is not None:
        raise ValueError(f"{args.input} is an on-disk store: its samples' tissue, sex and age come from its own "
                         "sample table, and intervals (--interval, --draws) are not streamed; drop --interval, "
                         "--draws, --tissue, --samples, --sex and --age.")
    bar, progress = progress_bar("impute")
    with bar:
        summary = impute_store(imputer, space, Cohort.load(args.input), args.out, progress, overwrite=args.overwrite)
    return (f"Imputed {summary.n_imputed:,} values in {summary.n_samples:,} samples, streamed "
            f"({summary.n_model_genes - summary.n_genes_absent}/{summary.n_model_genes} model genes in the store) "
            f"-> {args.out}")
