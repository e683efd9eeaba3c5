"""The CLI's study commands: ``build-demo`` and ``study build | add-model | info | precompute``."""

from __future__ import annotations

import argparse

from gtex_models.interfaces.cli.progress import progress_bar


def build_demo_command(args: argparse.Namespace) -> str:
    from gtex_models.studies.demo import build_demo

    bar, progress = progress_bar("build demo")
    with bar:
        study = build_demo(args.out, progress=progress, overwrite=args.overwrite)
    return f"Demo study: {study_summary(study)} -> {args.out}"


def model_specs(args: argparse.Namespace) -> list:
    """``--models a,b`` names and ``--config F`` experiments, in that order."""
    from gtex_models.studies.experiment import Experiment

    return [*(args.models or []), *(Experiment.from_yaml(path) for path in args.config or [])]


def study_summary(study) -> str:
    summary = study.cohort_summary
    def r2(entry) -> str:
        value = entry.evaluation.get("r2_mean")
        return "n/a" if value is None or value != value else f"{value:.3f}"  # NaN: too few test values

    models = ", ".join(f"{key} (test R² {r2(entry)})" for key, entry in study.models.items()) or "no model"
    records = len(study.benchmark() or [])
    return (f"{study.title!r}: {summary.get('n_samples', '?')} samples x {summary.get('n_genes', '?')} genes, "
            f"{study.count_groups()}, values {study.value_scale}; models {models}; "
            f"{records} benchmark record{'' if records == 1 else 's'}")


def study_build_command(args: argparse.Namespace) -> str:
    from gtex_models.studies.build import build_study
    from gtex_models.studies.study import STUDY_FOLDER

    STUDY_FOLDER.check(args.out, args.overwrite)  # before the configs are read
    models = model_specs(args)
    if not models:
        raise ValueError("Give at least one model: --models pmi,gain and/or --config FILE.")
    baselines = args.baselines
    bar, progress = progress_bar("study build")
    with bar:
        study = build_study(args.cohort, args.out, models, baselines, title=args.title,
                            description=args.description, scenario=args.scenario, max_epochs=args.max_epochs,
                            overwrite=args.overwrite, progress=progress,
                            cohort_mode="reference" if args.reference_cohort else "copy")
    return f"Study {study_summary(study)} -> {args.out}"


def study_add_model_command(args: argparse.Namespace) -> str:
    from gtex_models.studies.build import add_checkpoint, add_model
    from gtex_models.studies.experiment import Experiment

    given = [name for name in ("method", "config", "checkpoint") if getattr(args, name) is not None]
    if len(given) != 1:
        raise ValueError("Give exactly one of --method, --config and --checkpoint.")
    if args.checkpoint is not None:
        study = add_checkpoint(args.study, args.checkpoint, key=args.key, label=args.label)
    else:
        model = Experiment.from_yaml(args.config) if args.config else args.method
        bar, progress = progress_bar("study add-model")
        with bar:
            study = add_model(args.study, model, key=args.key, label=args.label, max_epochs=args.max_epochs,
                              progress=progress, scenario=args.scenario)
    return f"Study {study_summary(study)} -> {args.study}"


def study_info_command(args: argparse.Namespace) -> str:
    from gtex_models.studies.report import benchmark_table, study_info
    from gtex_models.studies.study import Study

    study = Study.open(args.study)
    table, records = study_info(study), benchmark_table(study)
    lines = [f"Study {study_summary(study)}", "" if table.empty else table.to_string(index=False)]
    if not records.empty:
        lines += ["", "Benchmark on the test donors (models and baselines; * the best mean R² of its scenario):",
                  records.to_string(index=False, na_rep="-")]
    recommended = study.manifest.get("recommended")
    if recommended:
        lines += ["", f"Recommended for new samples: {recommended['method']} (the best validation R², "
                      f"{recommended['valid_r2_mean']:.3f}, averaged over {', '.join(f'{r:.0%}' for r in recommended['rates'])} "
                      f"missing; test R² {recommended['test_r2_mean']:.3f})."]
    lines += [f"missing: {problem}" for problem in study.problems]
    return "\n".join(lines).strip("\n")


def study_precompute_command(args: argparse.Namespace) -> str:
    from gtex_models.studies.demo import CACHE_DIR
    from gtex_models.studies.precompute import precompute_study

    bar, progress = progress_bar("study precompute")
    with bar:
        written = precompute_study(args.study, overwrite=args.overwrite, progress=progress, cache_dir=CACHE_DIR,
                                   keys=args.models)
    if not written:
        return f"Nothing to add to {args.study}: it stores everything its pages need (--overwrite recomputes it)."
    return f"Stored in {args.study}: " + "; ".join(written)
