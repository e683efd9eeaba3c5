"""The CLI's cohort commands: ``simulate``, ``prepare-gtex``, ``import`` (tables and ARCHS4)."""

from __future__ import annotations

import argparse
import warnings

from gtex_models.data.cohort import Cohort
from gtex_models.data.cohort_format import COHORT_FOLDER
from gtex_models.interfaces.cli.progress import progress_bar


def simulate_command(args: argparse.Namespace) -> str:
    from gtex_models.data.simulate import simulate_cohort

    COHORT_FOLDER.check(args.out, args.overwrite)
    cohort = simulate_cohort(n_donors=args.donors, n_genes=args.genes, seed=args.seed)
    save_cohort(cohort, args)
    return f"Simulated cohort (not real GTEx data): {cohort.summary()} -> {args.out}"


def prepare_gtex_command(args: argparse.Namespace) -> str:
    from gtex_models.data.readers import prepare_gtex

    COHORT_FOLDER.check(args.out, args.overwrite)
    cohort = prepare_gtex(args.gct, args.samples, args.subjects,
                          min_samples_per_tissue=args.min_samples_per_tissue, genes=args.genes, seed=args.seed)
    save_cohort(cohort, args)
    return f"GTEx v8 cohort: {cohort.summary()} -> {args.out}"


def import_command(args: argparse.Namespace) -> str:
    from gtex_models.data.readers import import_table

    if args.archs4 is not None:
        return import_archs4(args)
    if args.samples_query is not None or args.sample_list is not None:
        raise ValueError("--samples-query and --sample-list choose samples of an ARCHS4 file; use them with --archs4.")
    COHORT_FOLDER.check(args.out, args.overwrite)
    cohort = import_table(args.expression, args.samples, tissue_column=args.tissue_column,
                          orientation=args.orientation, scale=args.scale, seed=args.seed,
                          duplicates=args.duplicates, negatives=args.negatives, gene_map=args.gene_map,
                          split=args.split, value_scale=args.value_label)
    save_cohort(cohort, args)
    scale = cohort.meta["scale"]
    notes = [cohort.meta["groups"], f"scale {scale['scale']}: {scale['reason']}; values {cohort.value_scale}",
             *cohort.meta["merges"]]
    if cohort.meta["negatives_clipped"]:
        notes.append(f"{cohort.meta['negatives_clipped']:,} negative value(s) set to 0")
    return f"Imported cohort: {cohort.summary()} ({'; '.join(notes)}) -> {args.out}"


def save_cohort(cohort: Cohort, args: argparse.Namespace) -> None:
    """Save a new cohort at ``--out``, warning when it is too small to train on."""
    problems = cohort.size_problems()
    if problems:
        warnings.warn(f"This cohort is too small to train or evaluate a model on ({'; '.join(problems)}); "
                      "`train`, `evaluate`, `benchmark` and `study build` will refuse it.")
    cohort.save(args.out, overwrite=args.overwrite)


def import_archs4(args: argparse.Namespace) -> str:
    """``import --archs4``: stream the chosen samples into an on-disk store (:mod:`gtex_models.data.readers.archs4`)."""
    from gtex_models.data.readers.archs4 import DEFAULT_TISSUE_FIELD, import_archs4
    from gtex_models.data.readers.errors import require_file

    COHORT_FOLDER.check(args.out, args.overwrite)
    sample_list = None
    if args.sample_list is not None:
        sample_list = require_file(args.sample_list).read_text(encoding="utf-8-sig").split()
    bar, progress = progress_bar("import ARCHS4")
    with bar:
        cohort = import_archs4(args.archs4, args.out, args.samples_query, sample_list,
                               args.tissue_column or DEFAULT_TISSUE_FIELD, args.seed, progress,
                               overwrite=args.overwrite)
    return f"Imported ARCHS4 samples into an on-disk store: {cohort.summary()} -> {args.out}"
