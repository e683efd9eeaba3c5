"""The command line's missingness patterns, gene panels and other cohorts (issue #14).

``evaluate --pattern mcar|panel|mnar|block [--panel FILE]`` (and ``--cohort OTHER --group-map F
--harmonise own|training|quantile`` for a cohort the model was not trained on), ``benchmark --pattern
mcar,mnar,block`` and ``panel design``. :mod:`gtex_models.interfaces.cli.main` registers them.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from gtex_models.common.choices import HARMONISATIONS, PANEL_STRATEGIES, PATTERNS
from gtex_models.data.cohort import Cohort
from gtex_models.data.patterns import DEFAULT_BLOCK_SIZE, DEFAULT_MNAR_SLOPE, Pattern
from gtex_models.interfaces.cli import options

if TYPE_CHECKING:
    import pandas as pd


def add_pattern_arguments(parser: argparse.ArgumentParser, several: bool = False) -> None:
    """``--pattern`` (one, or with ``several`` a comma-separated list), ``--panel``, ``--mnar-slope``, ``--block-size``."""
    parser.add_argument("--pattern", default="mcar",
                        help=f"missingness of the hidden values: {', '.join(PATTERNS)}"
                             + (" (comma-separated: one row each)" if several else "") + "; default mcar")
    parser.add_argument("--panel", type=Path, default=None,
                        help="--pattern panel: gene list file (one Ensembl ID or symbol per line)")
    parser.add_argument("--mnar-slope", type=options.positive, default=DEFAULT_MNAR_SLOPE,
                        help=f"--pattern mnar: logistic slope per SD of log expression (default {DEFAULT_MNAR_SLOPE:g})")
    parser.add_argument("--block-size", type=options.at_least(1), default=DEFAULT_BLOCK_SIZE,
                        help=f"--pattern block: genes per block (default {DEFAULT_BLOCK_SIZE})")


def patterns_from_args(args: argparse.Namespace, genes: "pd.DataFrame") -> tuple[list[Pattern], str]:
    """The patterns named by ``--pattern`` at each ``--missing-rate`` (one rate, or several for ``benchmark``) on a
    cohort's genes, and a note on the panel's match ('' without one; a panel hides its own share, once)."""
    from gtex_models.analysis.panels import match_panel, read_panel

    names = [name.strip() for name in args.pattern.split(",") if name.strip()]
    unknown = [name for name in names if name not in PATTERNS]
    if not names or unknown:
        raise ValueError(f"--pattern {args.pattern!r}: use {', '.join(PATTERNS)}"
                         + (" (comma-separated)" if len(names) > 1 else "") + ".")
    if ("panel" in names) != (args.panel is not None):
        raise ValueError("--pattern panel needs --panel FILE, and --panel needs --pattern panel.")
    rates = args.missing_rate if isinstance(args.missing_rate, list) else [args.missing_rate]
    outside = [rate for rate in rates if not 0.0 < rate < 1.0]
    if outside:
        raise ValueError(f"--missing-rate must be between 0 and 1 (exclusive), got {outside[0]}.")
    note, patterns = "", []
    for name in names:
        if name == "panel":
            match = match_panel(genes, read_panel(args.panel))
            note = f"{args.panel}: {match.describe(len(genes))}"
            patterns.append(match.pattern())
        else:
            patterns += [Pattern(name, rate, slope=args.mnar_slope, block_size=args.block_size) for rate in rates]
    return patterns, note


# ----------------------------------------------------------------------------------------- evaluate
def add_other_cohort_arguments(parser: argparse.ArgumentParser) -> None:
    """``--group-map``, ``--harmonise``, ``--rates`` of ``evaluate`` (a cohort the model was not trained on)."""
    parser.add_argument("--group-map", type=Path, default=None,
                        help="two-column file: the cohort's group -> the model's tissue (e.g. a cancer -> its tissue)")
    parser.add_argument("--harmonise", default=None,
                        help=f"scale harmonisation of another cohort: {', '.join(HARMONISATIONS)}, or 'all' to "
                             "compare them (default own: its own per-gene statistics, as the paper)")
    parser.add_argument("--own-cohort", type=Path, default=None,
                        help="the model's own cohort: its test donors of the same tissues are scored beside")
    parser.add_argument("--rates", default=None,
                        help="comma-separated missing rates for an R²-against-missing-rate table (e.g. 0.1,0.5,0.9)")


def evaluate_command(args: argparse.Namespace) -> str:
    """``evaluate``: a checkpoint on a cohort's test donors (its own cohort) or on all samples of another."""
    from gtex_models.analysis.other_cohort import is_training_cohort
    from gtex_models.models.checkpoints import load_checkpoint
    from gtex_models.models.model_space import ModelSpace

    options.check_outputs(args.json, None, args.overwrite)
    imputer, metadata = load_checkpoint(args.checkpoint)
    space = ModelSpace.from_metadata(metadata)
    cohort = Cohort.load(args.cohort)
    if is_training_cohort(cohort, metadata) and args.group_map is None and args.harmonise is None \
            and args.own_cohort is None:
        return _evaluate_own(args, imputer, metadata, space, cohort)
    return _evaluate_other(args, imputer, space, cohort, metadata)


def _evaluate_own(args: argparse.Namespace, imputer, metadata, space, cohort: Cohort) -> str:
    """R² (and with ``--interval`` the intervals) on the cohort's test donors; refused when the checkpoint records
    that it was fitted or calibrated on any of them (:func:`~gtex_models.studies.build.check_held_out`)."""
    from gtex_models.analysis.benchmark import evaluate_imputer, known_groups_only
    from gtex_models.models.model_space import check_compatible, cohort_for_model
    from gtex_models.studies.build import check_held_out

    modelled = cohort_for_model(cohort, space)
    train, test = modelled.split("train"), known_groups_only(modelled.split("test"), space.tissues)
    check_compatible(metadata, test)
    for unchecked in check_held_out(f"The checkpoint {args.checkpoint.name}", metadata, test,
                                    "train it again on this cohort (`python -m gtex_models train`)", calibration=False):
        warnings.warn(unchecked, stacklevel=2)  # its intervals are checked where they are scored
    patterns, note = patterns_from_args(args, test.genes)
    calibration = None
    if args.interval is not None:
        calibration = options.calibration(args, imputer, metadata, modelled)
    record = evaluate_imputer(imputer, test, args.missing_rate, args.seed, patterns[0], calibration, args.interval,
                              train=train)
    options.write_records([record], args.json, None)
    lines = [f"{record['method']} ({record['pattern']}): R² mean {record['r2_mean']:.3f} (median "
             f"{record['r2_median']:.3f}, SD {record['r2_std']:.3f}) over {record['n_genes']} genes, "
             f"{record['n_test_samples']} test samples" + options.coverage_note(record)]
    if note:
        lines.insert(0, note)
    if patterns[0].name == "panel":
        from gtex_models.analysis.panels import panel_r2

        score = panel_r2(imputer, test, patterns[0].panel, train)
        lines.append(f"per group (pooled-residual R² of the genes outside the panel; mean per-gene R² "
                     f"{score.r2_mean:.3f}):")
        lines.append(score.per_group.round(3).to_string(index=False))
    if args.rates:
        from gtex_models.analysis.evaluation import r2_across_missing_rates, reference_values

        table = r2_across_missing_rates(imputer.impute, test, _rates(args.rates), args.seed, pattern=patterns[0],
                                        reference=reference_values(test, train))
        lines.append(_pivot(table).to_string())
    return "\n".join(lines)


def _evaluate_other(args: argparse.Namespace, imputer, space, cohort: Cohort, metadata) -> str:
    from gtex_models.analysis.other_cohort import compare_cohorts, read_group_map

    if args.interval is not None:
        raise ValueError("--interval scores a model's calibrated intervals on its own cohort's test donors; "
                         "drop it for another cohort (its errors are not those the calibration saw).")
    group_map = read_group_map(args.group_map) if args.group_map else None
    choices = list(HARMONISATIONS) if args.harmonise == "all" else [args.harmonise or "own"]
    patterns, note = patterns_from_args(args, space.genes)
    if patterns[0].name == "panel":
        raise ValueError("--pattern panel is evaluated on the model's own cohort; on another cohort use mcar, "
                         "mnar or block.")
    rates = _rates(args.rates) if args.rates else [args.missing_rate]
    own = Cohort.load(args.own_cohort) if args.own_cohort else None
    result = compare_cohorts(imputer, space, cohort, metadata, choices, rates, group_map, args.seed, patterns[0], own)
    return "\n".join(line for line in (note, result.report, result.table.round(3).to_string(index=False)) if line)


def _rates(text: str) -> list[float]:
    try:
        rates = [float(r) for r in text.split(",") if r.strip()]
    except ValueError:
        raise ValueError(f"--rates {text!r}: give comma-separated numbers between 0 and 1, e.g. 0.1,0.5,0.9.") from None
    if not rates or not all(0 < r < 1 for r in rates):
        raise ValueError(f"--rates {text!r}: every rate must be between 0 and 1 (exclusive).")
    return rates


def _pivot(table: "pd.DataFrame") -> "pd.DataFrame":
    return table.pivot(index="tissue", columns="missing_rate", values="r2_mean").round(3)


# ----------------------------------------------------------------------------------------- panel
def add_panel_command(commands) -> None:
    """``panel design``: choose the k genes that best recover the rest, compare with random / most variable."""

    panel = commands.add_parser("panel", help="gene panels: design one for a model and its cohort")
    verbs = panel.add_subparsers(dest="panel_command", required=True)
    design = verbs.add_parser("design", help="choose the k genes that best recover the others")
    design.add_argument("--checkpoint", type=Path, default=None, help="a model (with --cohort)")
    design.add_argument("--cohort", type=Path, default=None, help="the model's cohort (its training donors design "
                        "the panel, its test donors score it)")
    design.add_argument("--study", type=Path, default=None, help="a study instead of --checkpoint and --cohort")
    design.add_argument("--model", default=None, help="--study: the model's key (default: the study's first)")
    design.add_argument("--size", type=options.at_least(1), required=True, help="genes in the panel (k)")
    design.add_argument("--strategy", choices=PANEL_STRATEGIES, default="designed",
                        help="designed (greedy, linear-Gaussian; default), model-scored (candidates scored with "
                             "the model on the validation donors: slower, often better for GAIN-GTEx), most-variable "
                             "or random")
    design.add_argument("--seed", type=options.at_least(0), default=0,
                        help="seed of the random panel and of the model-scored search")
    design.add_argument("--out", type=Path, required=True, help="panel file to write (one gene per line)")
    design.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    design.set_defaults(handler=panel_design_command)


def panel_design_command(args: argparse.Namespace) -> str:
    """Write the panel; print the model's R² on the test donors for it and for the other strategies, and which
    model to impute from it (the model against the simple methods, on the validation donors)."""
    from gtex_models.analysis.benchmark import known_groups_only
    from gtex_models.analysis.panels import (
        PANEL_BASELINES,
        check_size,
        choose_panel,
        compare_for_panel,
        model_scored_panel,
        panel_baselines,
        panel_r2,
        panel_scores,
        panel_text,
    )
    from gtex_models.common.atomic import atomic_file, check_output_file
    from gtex_models.models.model_space import cohort_for_model

    check_output_file(args.out, args.overwrite)
    imputer, space, cohort = _model_and_cohort(args)
    cohort = cohort_for_model(cohort, space)
    check_size(args.size, cohort.n_genes)
    train = cohort.split("train")
    if train.n_samples < 2:
        raise ValueError("The cohort has fewer than 2 training donors' samples: a panel cannot be designed on it.")
    panels = {strategy: choose_panel(strategy, train, args.size, args.seed)
              for strategy in ("designed", "most-variable", "random")}
    if args.strategy == "model-scored":  # searched from the linear design just made
        panels["model-scored"] = model_scored_panel(imputer, train, cohort.split("valid"), args.size, seed=args.seed,
                                                    linear=panels["designed"])
    chosen = panels[args.strategy]
    with atomic_file(args.out) as tmp:
        tmp.write_text(panel_text(cohort.genes, chosen, header=f"{args.strategy} panel of {args.size} genes "
                                                               f"for {imputer.method} ({len(cohort.genes)} genes)"))
    test = known_groups_only(cohort.split("test"), train.tissues)
    if test.n_samples == 0:
        return f"Panel of {args.size} genes ({args.strategy}) -> {args.out}; no test donors to score it on."
    scores = panel_scores(imputer, test, panels, train)
    table = scores.round(3).to_string(index=False)
    lines = [f"Panel of {args.size} genes ({args.strategy}) -> {args.out}",
             f"{imputer.method} on {test.n_samples} test samples, R² of the genes outside the panel:", table]
    name = args.model or imputer.method
    baselines = panel_baselines(train, cohort.split("valid"), [m for m in PANEL_BASELINES if m != imputer.method])
    try:
        comparison = compare_for_panel({name: imputer, **baselines}, cohort.split("valid"), chosen, train)
    except ValueError as error:
        return "\n".join([*lines, f"Models not compared for this panel: {error}"])
    best = str(comparison["model"].iloc[0])
    chosen_model = imputer if best == name else baselines[best]
    lines.append("Which model for this panel (validation donors, R² of the genes outside it): "
                 + ", ".join(f"{m} {r if abs(r) >= 5e-4 else 0.0:.3f}" for m, r in zip(comparison["model"], comparison["valid_r2"]))
                 + f". Recommended: {best} (test R² {panel_r2(chosen_model, test, chosen, train).r2_mean:.3f}).")
    if best != name:
        lines.append(f"To impute with it: {_add_method_hint(args, best)}")
    return "\n".join(lines)


def _add_method_hint(args: argparse.Namespace, method: str) -> str:
    """The command that makes a model of ``method`` for the cohort of ``panel design``."""
    if args.study is not None:
        return f"python -m gtex_models study add-model --study {args.study} --method {method}"
    return f"python -m gtex_models train --method {method} --cohort {args.cohort} --out {method}.safetensors"


def _model_and_cohort(args: argparse.Namespace):
    from gtex_models.models.checkpoints import load_checkpoint
    from gtex_models.models.model_space import ModelSpace

    if args.study is not None:
        if args.checkpoint is not None or args.cohort is not None:
            raise ValueError("Give --study, or --checkpoint with --cohort, not both.")
        from gtex_models.studies.study import Study

        study = Study.open(args.study)
        if not study.models:
            raise ValueError(f"The study {args.study} has no model.")
        key = args.model or next(iter(study.models))
        if key not in study.models:
            raise ValueError(f"The study {args.study} has no model {key!r}; it has {', '.join(study.models)}.")
        if not study.has_cohort:
            raise ValueError(f"The study {args.study} has no cohort: a panel is designed on its training donors.")
        imputer, metadata = study.load_model(key)
        return imputer, ModelSpace.from_metadata(metadata), study.cohort()
    if args.checkpoint is None or args.cohort is None:
        raise ValueError("Give --checkpoint and --cohort, or --study.")
    imputer, metadata = load_checkpoint(args.checkpoint)
    return imputer, ModelSpace.from_metadata(metadata), Cohort.load(args.cohort)
