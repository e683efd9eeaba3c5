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

    cohort = import_table(args.expression, args.samples, tissue_column=args.tissue_column,
                          orientation=args.orientation, scale=args.scale, seed=args.seed)
    cohort.save(args.out)
    return f"Imported cohort: {cohort.summary()} -> {args.out}"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per verb."""
    parser = argparse.ArgumentParser(prog="python -m gtex_models", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    simulate = commands.add_parser("simulate", help="write a simulated GTEx-shaped cohort")
    simulate.add_argument("--out", required=True, type=Path, help="cohort directory to write")
    simulate.add_argument("--donors", type=int, default=200, help="number of donors (default 200, ~4,000 samples)")
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
    table.add_argument("--expression", required=True, type=Path)
    table.add_argument("--samples", type=Path, default=None,
                       help="sample table (sample id, optional tissue/sex/age/donor columns)")
    table.add_argument("--tissue-column", default="tissue")
    table.add_argument("--orientation", choices=["auto", "samples-by-genes", "genes-by-samples"], default="auto")
    table.add_argument("--scale", choices=["tpm", "log"], default="tpm")
    table.add_argument("--out", required=True, type=Path, help="cohort directory to write")
    table.add_argument("--seed", type=int, default=0, help="seed of the donor split")
    table.set_defaults(handler=_import)
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
    print(summary)
    return 0
