"""The CLI's cross-tissue commands: ``benchmark --task cross-tissue``, ``impute --donors``, ``study add-donors``."""

from __future__ import annotations

import argparse
import json
import warnings

from gtex_models.analysis.cross_tissue import DEFAULT_METHODS as CROSS_TISSUE_METHODS
from gtex_models.data.cohort import Cohort
from gtex_models.interfaces.cli import options
from gtex_models.interfaces.cli.progress import progress_bar

TASKS = ("values", "cross-tissue")
VALUE_METHODS = "gauss,softimpute,pmi,gain,mean,knn,mice,missforest,blood"
__all__ = ["CROSS_TISSUE_METHODS", "TASKS", "VALUE_METHODS", "cross_tissue_benchmark_command",
           "impute_donors_command", "study_add_donors_command"]


def cross_tissue_benchmark_command(args: argparse.Namespace) -> str:
    """``benchmark --task cross-tissue``: every method's cross-tissue scores on the cohort's test donors."""
    from gtex_models.analysis.cross_tissue import run_cross_tissue, tissue_means, to_markdown
    from gtex_models.common.atomic import atomic_file

    ignored = [flag for flag, given in (("--scenario inplace", args.scenario != "inductive"),
                                        ("--pattern", args.pattern != "mcar"), ("--panel", args.panel is not None),
                                        ("--missing-rate", list(args.missing_rate) != [0.5])) if given]
    if ignored:
        raise ValueError(f"{', '.join(ignored)} do not apply to --task cross-tissue (every value of a target sample "
                         "is hidden, and methods are fitted on complete training donors); drop them.")
    options.check_outputs(args.json, args.markdown, args.overwrite)
    cohort = Cohort.load(args.cohort)
    if args.pathway:
        cohort = cohort.pathway(args.pathway)
    methods = args.methods or list(CROSS_TISSUE_METHODS)
    bar, progress = progress_bar("cross-tissue benchmark")
    with bar:
        result = run_cross_tissue(cohort, methods, seed=args.seed, interval=args.interval, progress=progress)
    table = to_markdown(result)
    means = tissue_means(result.per_tissue)
    documents = ((args.json, json.dumps({"task": "cross-tissue", "records": result.records,
                                         "by_sources": result.by_sources.to_dict("records"),
                                         "per_tissue": {t: row.dropna().to_dict() for t, row in means.iterrows()}},
                                        indent=2)),
                 (args.markdown, table))
    for path, text in documents:
        if path is not None:
            with atomic_file(path) as tmp:
                tmp.write_text(text + "\n")
    return table


def impute_donors_command(args: argparse.Namespace) -> str:
    """``impute --donors TABLE``: predict the table's targets from their donors' samples in ``--input``."""
    from gtex_models.common.atomic import atomic_file, check_output_file
    from gtex_models.interfaces.donor_upload import donor_result_frame, impute_donors, read_donor_table
    from gtex_models.models.calibration import check_level
    from gtex_models.models.checkpoints import load_checkpoint
    from gtex_models.models.model_space import ModelSpace

    check_output_file(args.out, args.overwrite)
    clashing = [flag for flag, given in (("--samples", args.samples), ("--tissue", args.tissue),
                                         ("--sex", args.sex), ("--age", args.age is not None),
                                         ("--draws", args.draws)) if given]
    if clashing:
        raise ValueError(f"--donors gives every sample's donor, group, sex and age; drop {', '.join(clashing)}.")
    if args.interval is not None:
        check_level(args.interval)
    table = read_donor_table(args.donors, args.tissue_column)
    imputer, metadata = load_checkpoint(args.checkpoint)
    result = impute_donors(args.input, imputer, ModelSpace.from_metadata(metadata), table,
                           orientation=args.orientation, scale=args.scale, duplicates=args.duplicates,
                           gene_map=args.gene_map, calibration=metadata.get("calibration"), interval=args.interval)
    for message in result.warnings:
        warnings.warn(message)
    with atomic_file(args.out) as tmp:
        donor_result_frame(result, uncertainty=result.lower is not None).to_csv(tmp)
    donors = result.values.index.str.split(" | ", regex=False).str[0].nunique()
    return (f"Predicted {len(result.values)} profile(s) of {donors} donor(s) from their "
            f"{int((result.grid == 'collected').to_numpy().sum())} sample(s) (scale {result.scale}) -> {args.out}")


def study_add_donors_command(args: argparse.Namespace) -> str:
    """``study add-donors``: fit and score the cross-tissue methods on a study's cohort; store them for the app."""
    from gtex_models.studies.demo import CACHE_DIR
    from gtex_models.studies.donors import DONORS_DIR, add_donors, best_method
    from gtex_models.studies.study import Study

    study = Study.open(args.study)
    bar, progress = progress_bar("cross-tissue models")
    with bar:
        result = add_donors(study, args.methods, interval=args.interval, seed=args.seed, progress=progress,
                            cache_dir=CACHE_DIR)
    best = next(r for r in result.records if r["method"] == best_method(result.records))
    return (f"Cross-tissue models of study {study.title!r}: {best['method']} is best (R² {best['r2_mean']:.3f} over "
            f"{best['n_tissues']} target groups) -> {args.study / DONORS_DIR}")
