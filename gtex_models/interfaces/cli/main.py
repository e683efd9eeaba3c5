"""Command-line interface of GTEx Imputation Studio: python -m gtex_models COMMAND (or gtex-models COMMAND).

Each command prints a one-line summary on success; malformed input ends with a clear message on
stderr and exit status 2, leaving no partial output behind. Outputs never replace what the project
did not write, and replace earlier outputs only with ``--overwrite`` (see :mod:`gtex_models.common.atomic`).
An unexpected internal error prints a short message and exit status 1; ``GTEX_DEBUG=1`` adds the traceback.

This module holds the parser and the error handling; the commands are in ``cohort_commands``,
``model_commands``, ``study_commands`` and ``patterns`` (evaluate's patterns, ``panel design``).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import Callable, NoReturn, Sequence

from gtex_models.common.choices import (
    DUPLICATE_CHOICES,
    NEGATIVE_CHOICES,
    ORIENTATIONS,
    SCALE_CHOICES,
    SCENARIOS,
    UNKNOWN_GROUP_CHOICES,
)
from gtex_models.common.paths import DATA_DIR
from gtex_models.data.cohort import DEFAULT_SPLIT_FRACTIONS
from gtex_models.data.readers.samples import ONE_GROUP
from gtex_models.data.reference import PATHWAYS
from gtex_models.interfaces.cli import options
from gtex_models.interfaces.cli.cohort_commands import import_command, prepare_gtex_command, simulate_command
from gtex_models.interfaces.cli.donor_commands import (
    CROSS_TISSUE_METHODS,
    TASKS,
    VALUE_METHODS,
    study_add_donors_command,
)
from gtex_models.interfaces.cli.model_commands import (
    benchmark_command,
    calibrate_command,
    impute_command,
    train_command,
)
from gtex_models.interfaces.cli.patterns import (
    add_other_cohort_arguments,
    add_panel_command,
    add_pattern_arguments,
    evaluate_command,
)
from gtex_models.interfaces.cli.study_commands import (
    build_demo_command,
    study_add_model_command,
    study_build_command,
    study_info_command,
    study_precompute_command,
)
from gtex_models.models.registry import METHODS

Handler = Callable[[argparse.Namespace], str]
DEBUG_ENV = "GTEX_DEBUG"
CONSOLE_COMMAND = "gtex-models"  # pyproject.toml's [project.scripts]
PACKAGE_DIR = Path(__file__).resolve().parents[2]  # gtex_models/: the warnings worth showing come from here


def build_parser(prog: str = "python -m gtex_models") -> argparse.ArgumentParser:
    """The argument parser with one sub-command per verb (``prog``: how the user called it)."""
    parser = _Parser(prog=prog, description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    simulate = commands.add_parser("simulate", help="write a simulated GTEx-shaped cohort")
    simulate.add_argument("--out", required=True, type=Path, help="cohort directory to write")
    simulate.add_argument("--donors", type=options.at_least(1), default=300,
                          help="number of donors (default 300, ~6,000 samples; training needs at least 4)")
    simulate.add_argument("--genes", type=options.at_least(1), default=2000, help="number of genes (default 2000)")
    simulate.add_argument("--seed", type=options.at_least(0), default=0,
                          help="seed of the simulation and of its donor split (default 0)")
    _add_overwrite(simulate, "an existing cohort folder")
    simulate.set_defaults(handler=simulate_command)

    gtex = commands.add_parser("prepare-gtex", help="build a cohort from the public GTEx v8 files")
    gtex.add_argument("--gct", required=True, type=Path,
                      help="GTEx_Analysis_2017-06-05_v8_RNASeQCv1.1.9_gene_tpm.gct(.gz)")
    gtex.add_argument("--samples", required=True, type=Path,
                      help="GTEx_Analysis_v8_Annotations_SampleAttributesDS.txt")
    gtex.add_argument("--subjects", required=True, type=Path,
                      help="GTEx_Analysis_v8_Annotations_SubjectPhenotypesDS.txt")
    gtex.add_argument("--out", required=True, type=Path, help="cohort directory to write")
    gtex.add_argument("--min-samples-per-tissue", type=options.at_least(0), default=70,
                      help="leave out tissues with fewer samples (default 70)")
    gtex.add_argument("--genes", default="protein_coding",
                      help="protein_coding (default), all, or a file of gene symbols / Ensembl IDs")
    gtex.add_argument("--seed", type=options.at_least(0), default=0, help="seed of the donor split")
    _add_overwrite(gtex, "an existing cohort folder")
    gtex.set_defaults(handler=prepare_gtex_command)

    table = commands.add_parser("import", help="build a cohort from a CSV/TSV/GCT/h5ad expression table")
    source = table.add_mutually_exclusive_group(required=True)
    source.add_argument("--expression", type=Path,
                        help="expression table: CSV, TSV, GCT or h5ad, genes by samples or samples by genes")
    source.add_argument("--archs4", type=Path, default=None,
                        help="ARCHS4 gene-count HDF5 file: the chosen samples are streamed into an on-disk store")
    table.add_argument("--samples-query", default=None,
                       help="--archs4: regular expression over title, source, characteristics and series")
    table.add_argument("--sample-list", type=Path, default=None, help="--archs4: file of GSM accessions to import")
    table.add_argument("--samples", type=Path, default=None,
                       help="sample table (sample id, optional tissue/sex/age/donor columns)")
    table.add_argument("--tissue-column", default=None, metavar="COLUMN",
                       help="the sample table's group column (default: tissue, else group; another table is "
                            f"refused, naming its plausible columns; '{ONE_GROUP}': one group); --archs4: the "
                            "sample field naming the tissue (default source_name_ch1)")
    table.add_argument("--orientation", choices=ORIENTATIONS, default="auto",
                       help="which axis holds the genes (default auto: the axis whose names look like genes)")
    table.add_argument("--scale", choices=SCALE_CHOICES, default="auto",
                       help="auto (detected, printed in the summary), tpm (any non-negative linear scale) or log")
    table.add_argument("--duplicates", choices=DUPLICATE_CHOICES, default="error",
                       help="gene identifiers that occur twice (or name one gene): error, keep the first, or average")
    table.add_argument("--negatives", choices=NEGATIVE_CHOICES, default="error",
                       help="negative values on a linear scale: error, or clip them to 0 (MAS5 microarray signal)")
    table.add_argument("--gene-map", type=Path, default=None,
                       help="probe -> gene file (two columns; several probes of a gene are averaged)")
    table.add_argument("--value-label", default=None, metavar="TEXT",
                       help="what the values are, shown on axes (default: detected, e.g. log2(TPM + 1) or "
                            "log2 intensity)")
    table.add_argument("--out", required=True, type=Path, help="cohort directory to write")
    table.add_argument("--split", type=options.split_fractions, default=DEFAULT_SPLIT_FRACTIONS, metavar="T,V,S",
                       help="train, valid and test shares of the donors, stratified by group (default 0.6,0.15,0.25)")
    table.add_argument("--seed", type=options.at_least(0), default=0, help="seed of the donor split")
    _add_overwrite(table, "an existing cohort folder or store")
    table.set_defaults(handler=import_command)

    train = commands.add_parser("train", help="train an imputer on a cohort and save a checkpoint")
    train.add_argument("--cohort", required=True, type=Path, help="cohort directory")
    train.add_argument("--method", default=None, choices=METHODS, metavar="METHOD", help=", ".join(METHODS))
    train.add_argument("--config", type=Path, default=None, help="YAML experiment config (see configs/)")
    train.add_argument("--scenario", choices=SCENARIOS, default=None,
                       help="inductive (new samples) or inplace (gaps of the training samples); default: the "
                            "config's, else inductive")
    train.add_argument("--pathway", choices=sorted(PATHWAYS), default=None,
                       help="train on the genes of this pathway only (default: all genes)")
    train.add_argument("--max-epochs", type=options.at_least(1), default=None, help="cap the deep models' training epochs")
    train.add_argument("--out", required=True, type=Path, help="checkpoint file (.safetensors)")
    train.add_argument("--seed", type=options.at_least(0), default=0, help="seed of the evaluation masks")
    train.add_argument("--resume", action="store_true",
                       help="continue an interrupted run from its training state (<out>.resume)")
    _add_overwrite(train, "an existing checkpoint file")
    train.set_defaults(handler=train_command)

    evaluate = commands.add_parser("evaluate", help="score a checkpoint on a cohort's test donors")
    evaluate.add_argument("--checkpoint", required=True, type=Path,
                          help="a model: train --out, or a study's models/ or baselines/ checkpoint")
    evaluate.add_argument("--cohort", required=True, type=Path,
                          help="cohort directory whose test donors are scored")
    evaluate.add_argument("--missing-rate", type=options.share, default=0.5, help="share of values hidden (0 < rate < 1)")
    evaluate.add_argument("--seed", type=options.at_least(0), default=0, help="seed of the hidden values (default 0)")
    evaluate.add_argument("--json", type=Path, default=None, help="write the record as JSON")
    evaluate.add_argument("--interval", type=options.level, default=None, metavar="LEVEL",
                          help="also score calibrated intervals at LEVEL (0.5-0.99): coverage, median width")
    _add_overwrite(evaluate, "an existing --json file")
    add_pattern_arguments(evaluate)
    add_other_cohort_arguments(evaluate)
    evaluate.set_defaults(handler=evaluate_command)

    calibrate = commands.add_parser("calibrate", help="calibrate a checkpoint's intervals on a cohort's validation donors")
    calibrate.add_argument("--checkpoint", required=True, type=Path, help="checkpoint to add the calibration to")
    calibrate.add_argument("--cohort", required=True, type=Path, help="the cohort it was trained on (its valid split)")
    calibrate.add_argument("--seed", type=options.at_least(0), default=0,
                           help="seed of the calibration masks (default 0)")
    calibrate.set_defaults(handler=calibrate_command)

    bench = commands.add_parser("benchmark", help="fit and score several methods side by side")
    bench.add_argument("--cohort", required=True, type=Path, help="cohort directory (train, valid and test donors)")
    bench.add_argument("--task", choices=TASKS, default="values",
                       help="values: hidden values of test samples (default); cross-tissue: each test donor's samples "
                            "predicted from the donor's other samples, scored per target group")
    bench.add_argument("--methods", type=options.methods, default=None,
                       help=f"comma-separated method names, among {', '.join(METHODS)} (default: "
                            f"{VALUE_METHODS} for values, {','.join(CROSS_TISSUE_METHODS)} for cross-tissue)")
    bench.add_argument("--scenario", choices=SCENARIOS, default="inductive",
                       help="inductive (new samples, the default) or inplace (gaps of the training samples)")
    bench.add_argument("--missing-rate", type=options.shares, default=[0.5], metavar="RATE[,RATE...]",
                       help="share(s) of values hidden, e.g. 0.2,0.5,0.8: inductive, each method is fitted once and "
                            "scored at every rate (default 0.5)")
    bench.add_argument("--pathway", choices=sorted(PATHWAYS), default=None,
                       help="benchmark on the genes of this pathway only (default: all genes)")
    bench.add_argument("--seed", type=options.at_least(0), default=0, help="seed of the hidden values (default 0)")
    bench.add_argument("--json", type=Path, default=None, help="also write the records as JSON")
    bench.add_argument("--markdown", type=Path, default=None, help="also write the table as Markdown")
    bench.add_argument("--interval", type=options.level, default=None, metavar="LEVEL",
                       help="also calibrate each method on the validation donors and score its LEVEL intervals")
    _add_overwrite(bench, "existing --json / --markdown files")
    add_pattern_arguments(bench, several=True)
    bench.set_defaults(handler=benchmark_command)
    add_panel_command(commands)

    impute = commands.add_parser("impute", help="fill the missing values of an expression file")
    impute.add_argument("--checkpoint", required=True, type=Path,
                        help="a model: train --out, or a study's models/KEY.safetensors or baselines/KEY.safetensors")
    impute.add_argument("--input", required=True, type=Path,
                        help="CSV, TSV, GCT or h5ad (empty cells are missing), or an on-disk store (streamed)")
    impute.add_argument("--out", required=True, type=Path,
                        help="CSV, same orientation and scale as the input (a store: CSV, or a directory for a new store)")
    impute.add_argument("--donors", type=Path, default=None,
                        help="donors table (donor, group, sample_id): predict each row without a sample in --input "
                             "from its donor's samples (a donor model: study add-donors)")
    impute.add_argument("--tissue", default=None, help="group (tissue) of every sample (e.g. 'Whole Blood')")
    impute.add_argument("--samples", type=Path, default=None, help="per-sample table with a group (tissue) column")
    impute.add_argument("--tissue-column", default=None, metavar="COLUMN",
                        help="the --samples table's group column (default: tissue, else group)")
    impute.add_argument("--unknown-groups", choices=UNKNOWN_GROUP_CHOICES, default="error",
                        help="a sample whose group the model does not know: error (the default), or pooled: the "
                             "mean of its imputations under every group of the model (reported)")
    impute.add_argument("--sex", type=options.sex, default=None, help="female, male, unknown (or GTEx code 2/1)")
    impute.add_argument("--age", type=options.age, default=None, help="age in years")
    impute.add_argument("--orientation", choices=ORIENTATIONS, default="auto",
                        help="which axis of --input holds the genes (default auto)")
    impute.add_argument("--scale", choices=SCALE_CHOICES, default="auto",
                        help="auto (detected), tpm (a non-negative linear scale) or log (the model's log scale)")
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
    impute.set_defaults(handler=impute_command)

    demo = commands.add_parser("build-demo", help="rebuild the demo study (study build with the demo's configs)")
    demo.add_argument("--out", type=Path, default=DATA_DIR / "demo",
                      help="study folder to write (default: the project's data/demo)")
    _add_overwrite(demo, "an existing study there (data/demo itself included)")
    demo.set_defaults(handler=build_demo_command)

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
    build.add_argument("--description", default="", help="a few sentences on the cohort, shown in the app")
    build.add_argument("--scenario", choices=SCENARIOS, default="inductive", help="scenario of --models and baselines")
    build.add_argument("--max-epochs", type=options.at_least(1), default=None, help="cap the deep models' training epochs")
    build.add_argument("--reference-cohort", action="store_true",
                       help="reference the cohort folder (absolute path) instead of copying it into the study")
    _add_overwrite(build, "an existing study at --out")
    build.set_defaults(handler=study_build_command)

    add = verbs.add_parser("add-model", help="train one more model into a study, or add a checkpoint")
    add.add_argument("--study", required=True, type=Path, help="study folder (study build --out)")
    add.add_argument("--method", default=None, choices=METHODS, metavar="METHOD",
                     help=f"a method, with settings for the cohort's size: {', '.join(METHODS)}")
    add.add_argument("--config", type=Path, default=None, help="YAML experiment config")
    add.add_argument("--checkpoint", type=Path, default=None, help="a checkpoint trained elsewhere (train --out)")
    add.add_argument("--scenario", choices=SCENARIOS, default="inductive", help="scenario of --method")
    add.add_argument("--key", default=None, help="the model's name in the study (default METHOD_GENESET)")
    add.add_argument("--label", default=None, help="what the app shows")
    add.add_argument("--max-epochs", type=options.at_least(1), default=None, help="cap the deep model's training epochs")
    add.set_defaults(handler=study_add_model_command)

    donors = verbs.add_parser("add-donors", help="fit and score cross-tissue models on a study's donors (Donors page)")
    donors.add_argument("--study", required=True, type=Path, help="study folder (study build --out)")
    donors.add_argument("--methods", type=options.methods, default=None,
                        help=f"default {','.join(CROSS_TISSUE_METHODS)} (and donor-oracle on a simulated cohort)")
    donors.add_argument("--interval", type=options.level, default=0.9, metavar="LEVEL",
                        help="level of the intervals scored (all levels 0.5-0.99 are calibrated)")
    donors.add_argument("--seed", type=options.at_least(0), default=0, help="seed of the models' training")
    donors.set_defaults(handler=study_add_donors_command)

    info = verbs.add_parser("info", help="print the table of what a study holds")
    info.add_argument("--study", required=True, type=Path, help="study folder (study build --out)")
    info.set_defaults(handler=study_info_command)

    precompute = verbs.add_parser("precompute", help="store what the app's pages need and the study lacks "
                                                     "(each model's interval coverage on the test donors, "
                                                     "tissue embeddings and default gene panel)")
    precompute.add_argument("--study", required=True, type=Path, help="the study folder")
    precompute.add_argument("--models", type=lambda text: [k.strip() for k in text.split(",") if k.strip()],
                            help="only these models (comma-separated keys; default: every model)")
    _add_overwrite(precompute, "what the study already stores (recompute it)")
    precompute.set_defaults(handler=study_precompute_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit status (0 done, 2 bad input, 1 internal error, 130 interrupted)."""
    try:
        args = build_parser(_program_name()).parse_args(argv)
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


def _program_name() -> str:
    """``gtex-models`` when run as the installed console command, else ``python -m gtex_models``."""
    return CONSOLE_COMMAND if Path(sys.argv[0]).name == CONSOLE_COMMAND else "python -m gtex_models"


def _show_warnings(caught: Sequence[warnings.WarningMessage]) -> None:
    """Print the project's own warnings, each once (with how often it came); third-party warnings (umap's
    "Tensorflow not installed", numerical RuntimeWarnings, ...) are noise to a user and left out."""
    counts: dict[str, int] = {}
    for warning in caught:
        if Path(warning.filename).resolve().is_relative_to(PACKAGE_DIR):
            counts[str(warning.message)] = counts.get(str(warning.message), 0) + 1
    for message, count in counts.items():
        print(f"warning: {message}" + (f" ({count} times)" if count > 1 else ""), file=sys.stderr)


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
