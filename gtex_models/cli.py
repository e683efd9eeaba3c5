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
