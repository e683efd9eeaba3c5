"""Build and extend studies: train models on a cohort, compute what the pages show, write the folder.

The public API (the CLI's ``study`` commands and the app's New study page call these):

- :func:`build_study` trains models and baselines on a cohort and writes a whole study folder atomically;
- :func:`add_model` trains one more model into an existing study, :func:`add_checkpoint` adds a
  checkpoint trained elsewhere (its tables computed on the study's cohort);
- what a study holds and recommends (:func:`study_info`, :func:`benchmark_table`) is in :mod:`gtex_models.studies.report`.

Long work reports through ``progress(fraction, message)`` and polls ``should_stop()`` between
epochs and models: when it answers True the work stops with :class:`StudyCancelled` and leaves
nothing behind.

Example
-------
>>> from gtex_models.studies.build import build_study
>>> from gtex_models.studies.report import study_info
>>> study = build_study("my_cohort", "studies/mine", models=["pmi"], baselines=["mean"],
...                     max_epochs=20)                                  # doctest: +SKIP
>>> study_info(study)                                                  # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from gtex_models.analysis.benchmark import (
    RECORD_KEYS,
    ScenarioData,
    evaluate_imputer,
    evaluation_tables,
    known_groups_only,
    require_complete,
    score_fitted,
)
from gtex_models.analysis.embeddings import embedding_coordinates
from gtex_models.common.atomic import atomic_file
from gtex_models.common.choices import SCENARIOS
from gtex_models.common.progress import ProgressCallback
from gtex_models.data.cohort import Cohort
from gtex_models.data.provenance import DonorSet, require_unseen
from gtex_models.models.base import Imputer
from gtex_models.models.calibration import check_unseen
from gtex_models.models.checkpoints import load_checkpoint
from gtex_models.models.model_space import ModelSpace, check_compatible, cohort_for_model
from gtex_models.models.registry import DEEP_METHODS, METHODS
from gtex_models.studies.experiment import Experiment, default_config, save_model, train_experiment
from gtex_models.studies.precompute import precompute_model
from gtex_models.studies.report import recommendation, validation_score
from gtex_models.studies.study import (
    BASELINES_DIR,
    BENCHMARK_FILE,
    COHORT_DIR,
    MANIFEST,
    MODELS_DIR,
    STUDY_FOLDER,
    TABLES_DIR,
    Study,
    StudyError,
    add_entry,
    model_entry,
    new_manifest,
    write_manifest,
    write_model,
)

CohortMode = Literal["copy", "reference"]
_SOURCE_TITLES = {"import": "Imported cohort", "gtex_v8": "GTEx v8 cohort", "simulated": "Simulated cohort"}
DEEP_WEIGHT = 10
"""A deep model's share of the progress bar against a baseline's (they take that much longer)."""


class StudyCancelled(Exception):
    """The build was stopped by ``should_stop()``; nothing was written."""


@dataclass(frozen=True)
class _Run:
    """One fit of a study build: a model kept in the study (``key``) or a benchmark-only run."""
    experiment: Experiment
    key: str | None = None
    label: str | None = None

    @property
    def weight(self) -> int:
        return DEEP_WEIGHT if self.experiment.method in DEEP_METHODS else 1


class _Reporter:
    """Progress over weighted runs, and the cancellation check (raises :class:`StudyCancelled`)."""
    def __init__(self, total: int, progress: ProgressCallback | None, should_stop: Callable[[], bool] | None) -> None:
        self.total, self.done = max(total, 1), 0
        self.progress, self.should_stop = progress, should_stop

    def check(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise StudyCancelled("Stopped on request; nothing was written.")

    def step(self, weight: int, label: str) -> ProgressCallback:
        """The progress callback of a run of ``weight`` (checks for cancellation at every call)."""
        start = self.done

        def report(fraction: float, message: str) -> None:
            self.check()
            if self.progress is not None:
                self.progress(min((start + weight * fraction) / self.total, 1.0), f"{label}: {message}")

        self.done += weight
        return report

    def finish(self, message: str) -> None:
        if self.progress is not None:
            self.progress(1.0, message)


# ------------------------------------------------------------------------------------------- building
def build_study(
    cohort: Cohort | str | Path,
    out: str | Path,
    models: Sequence[str | Experiment] = ("pmi", "gain"),
    baselines: Sequence[str | Experiment] = ("mean", "knn", "mice"),
    *,
    title: str | None = None,
    description: str = "",
    scenario: str = "inductive",
    max_epochs: int | None = None,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    cohort_mode: CohortMode = "copy",
    simulation: dict[str, Any] | None = None,
    baseline_scenarios: Sequence[str] | None = None,
) -> Study:
    """Train models and baselines on a cohort and write a study folder at ``out``, atomically.

    Parameters
    ----------
    cohort : a :class:`~gtex_models.data.cohort.Cohort` or a cohort folder (``simulate``, ``import``,
        ``prepare-gtex``).
    out : the study folder. It is built in a temporary folder beside it and renamed at the end; an
        existing study there is replaced only with ``overwrite``; a non-empty folder that is not a
        study, or a file, is never replaced (:data:`~gtex_models.studies.study.STUDY_FOLDER`).
    models : the models kept in the study: method names (settings chosen for the cohort's size by
        :func:`~gtex_models.studies.experiment.default_config`, under ``scenario``) or experiments (e.g. from
        a YAML config). Each is saved as ``models/KEY.safetensors`` with KEY ``{method}_{gene set}``,
        and gets its evaluation tables and, for deep models with at least
        :data:`~gtex_models.analysis.embeddings.UMAP_MIN_GROUPS` groups, the UMAP of its tissue embeddings.
    baselines : methods fitted and scored for the benchmark only (not kept). A name runs under each
        of ``baseline_scenarios``; an experiment under its own scenario.
    title, description : shown by the app; ``title`` defaults to the cohort folder's name.
    scenario : the scenario of the models given by name (``inductive`` or ``inplace``).
    max_epochs : caps the deep models' epochs (quick studies, tests).
    overwrite : replace an existing study at ``out``.
    progress : ``progress(fraction, message)`` over models and epochs.
    should_stop : polled between epochs and runs; True stops with :class:`StudyCancelled`.
    cohort_mode : ``copy`` the cohort into the study, or ``reference`` its folder (absolute path;
        only for a cohort given as a folder). A simulated cohort is always stored as its simulation's
        arguments (``simulation``, default ``cohort.meta["simulation"]``) and regenerated on opening.
    baseline_scenarios : the scenarios the named baselines run under (default: ``scenario``).

    Returns
    -------
    The study, opened read-only.

    Raises
    ------
    OutputPathError
        For a target that is a file, a folder that is not a study, or a study without ``overwrite``
        (before any training; :mod:`gtex_models.common.atomic`).
    StudyError
        For an unknown method or duplicated model keys (before any training).
    FileNotFoundError
        When ``cohort`` is a path that is not a cohort folder.
    ValueError
        For a cohort the protocol cannot use (missing values, no train or test donors).
    StudyCancelled
        When ``should_stop()`` answered True; nothing is left behind.
    """
    out = Path(out)
    STUDY_FOLDER.check(out, overwrite)
    _check_max_epochs(max_epochs)
    if scenario not in SCENARIOS:
        raise StudyError(f"Unknown scenario {scenario!r}; use one of {', '.join(SCENARIOS)}.")
    cohort_path = None if isinstance(cohort, Cohort) else Path(cohort)
    if cohort_mode not in ("copy", "reference"):
        raise StudyError(f"Unknown cohort_mode {cohort_mode!r}; use 'copy' or 'reference'.")
    if cohort_mode == "reference" and cohort_path is None:
        raise StudyError("A referenced cohort (CLI: --reference-cohort) needs the cohort as a folder path, not a Cohort "
                         "object.")
    data = cohort if isinstance(cohort, Cohort) else Cohort.load(cohort)
    require_complete(data)
    data.require_trainable()
    runs = _model_runs(models, data, scenario, max_epochs)
    runs += _baseline_runs(baselines, data, baseline_scenarios or (scenario,), max_epochs, runs)
    simulation = simulation or (data.meta.get("simulation") if data.meta.get("source") == "simulated" else None)
    reporter = _Reporter(sum(run.weight for run in runs), progress, should_stop)
    reporter.check()
    protocol = protocol_cohort(data)

    records = []
    with STUDY_FOLDER.write(out, overwrite) as tmp:
        if simulation:
            manifest_cohort = None
        elif cohort_mode == "reference":
            assert cohort_path is not None
            manifest_cohort = str(cohort_path.resolve())
        else:
            data.save(tmp / COHORT_DIR)
            manifest_cohort = COHORT_DIR
        default_title = cohort_path.name if cohort_path else _SOURCE_TITLES.get(data.meta.get("source"), "Study")
        manifest = new_manifest(title or default_title,
                                data, description=description, simulated=bool(simulation),
                                sources=_sources(data, cohort_path), cohort_path=manifest_cohort,
                                simulation=simulation)
        for run in runs:
            label = run.key or f"{run.experiment.method} ({run.experiment.scenario})"
            report = reporter.step(run.weight, label)
            if run.key is None:
                record = _benchmark_run(run.experiment, protocol, tmp, report)
            else:
                record, entry = _model_run(run, protocol, tmp, report)
                manifest = add_entry(manifest, entry)
            if not run.experiment.pathway:
                records.append(record)
            reporter.check()
        write_benchmark(tmp / BENCHMARK_FILE, records)
        manifest["benchmark"] = BENCHMARK_FILE
        manifest["recommended"] = recommendation(records)
        write_manifest(tmp, manifest)
    reporter.finish(f"study written to {out}")
    return Study.open(out)


def add_model(
    study: str | Path,
    model: str | Experiment,
    *,
    key: str | None = None,
    label: str | None = None,
    max_epochs: int | None = None,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    scenario: str = "inductive",
) -> Study:
    """Train one more model on a study's cohort and add it (checkpoint, tables, manifest entry).

    ``model`` is a method name (settings for the cohort's size, under ``scenario``) or an experiment.
    The manifest is rewritten last, so an interrupted run leaves the study as it was (at most with
    unlisted files). Its test record joins the benchmark when that has no record of the same method
    and scenario. A key the study already uses is refused.
    """
    path = Path(study)
    opened = Study.open(path)
    _check_max_epochs(max_epochs)
    data = opened.cohort()
    run = _model_runs([model], data, scenario, max_epochs)[0]  # sized on the whole cohort, as build_study does
    run = _Run(run.experiment, key or run.key, label)
    _check_new_key(opened, run.key)
    cohort = protocol_cohort(data)
    reporter = _Reporter(run.weight, progress, should_stop)
    reporter.check()
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as scratch:
        record, entry = _model_run(run, cohort, Path(scratch), reporter.step(run.weight, run.key or ""))
        reporter.check()
        _install_model(path, Path(scratch), entry.key)
    _add_to_manifest(path, entry, None if run.experiment.pathway else record)
    reporter.finish(f"{entry.key} added to {path}")
    return Study.open(path)


def add_checkpoint(study: str | Path, checkpoint_path: str | Path, key: str | None = None,
                   label: str | None = None) -> Study:
    """Add a checkpoint trained elsewhere (``train --out``) to a study; its tables are computed on the
    study's cohort (the model's genes of it, standardised as the model was trained).

    The checkpoint's metadata (method, scenario, gene set, genes, groups) makes the manifest entry;
    without a test record in it, the model is scored on the study's test donors.

    Raises
    ------
    IncompatibleCohortError
        When the study's cohort lacks genes of the model, or has groups the model does not know.
    """
    path = Path(study)
    opened = Study.open(path)
    imputer, metadata = load_checkpoint(checkpoint_path)
    space = ModelSpace.from_metadata(metadata)
    cohort = opened.cohort()
    modelled = cohort_for_model(cohort, space)
    train, test = modelled.split("train"), known_groups_only(modelled.split("test"), space.tissues)
    check_compatible(metadata, test)
    for note in check_held_out(f"The checkpoint {Path(checkpoint_path).name}", metadata, test,
                               "add a model trained on this study's cohort (`study add-model --method`)"):
        warnings.warn(note, stacklevel=2)
    if not metadata.get("evaluation"):
        metadata = {**metadata, "evaluation": evaluate_imputer(imputer, test, train=train)}
    entry = model_entry(key or default_key(metadata), metadata, label)
    _check_new_key(opened, entry.key)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as scratch:
        scratch = Path(scratch)
        (scratch / MODELS_DIR).mkdir()
        shutil.copyfile(checkpoint_path, scratch / MODELS_DIR / f"{entry.key}.safetensors")
        write_model(scratch, entry.key, tables=evaluation_tables(imputer, test, train=train),
                    umap=embedding_coordinates(imputer))
        precompute_model(scratch, entry.key, imputer, metadata, cohort)
        _install_model(path, scratch, entry.key)
    _add_to_manifest(path, entry, None)
    return Study.open(path)


def default_key(metadata: dict[str, Any]) -> str:
    """``{method}_{gene set}`` of a checkpoint's metadata, e.g. ``pmi_all``, ``gain_alzheimer``."""
    return f"{metadata.get('method')}_{metadata.get('pathway') or 'all'}"


# ------------------------------------------------------------------------------------------- checks
def check_held_out(name: str, metadata: dict[str, Any], test: Cohort, fix: str, calibration: bool = True) -> list[str]:
    """Refuse (:class:`~gtex_models.data.provenance.DonorLeakError`) a model (checkpoint ``metadata``) whose
    training, validation or (with ``calibration``) calibration donors include a donor of ``test``, the donors
    its test scores come from; in place, fitting on the test rows' observed values is the protocol, so its
    training donors are not checked. Returns the notes of what could not be checked (records saved before
    donors were recorded)."""
    donors = metadata.get("donors")
    if not donors:
        notes = [require_unseen(None, test, name, "the test donors", fix)]
    else:
        roles = {"training": donors.get("fit") if metadata.get("scenario") != "inplace" else None,
                 "validation": donors.get("valid")}
        notes = [require_unseen(DonorSet.from_dict(record), test, f"{name} (its {role} donors)", "the test donors", fix)
                 for role, record in roles.items() if record is not None]
    stored = metadata.get("calibration") if calibration else None
    notes.append(None if stored is None else check_unseen(stored, test, "the test donors"))
    return [note for note in notes if note]


def _check_max_epochs(max_epochs: int | None) -> None:
    if max_epochs is not None and int(max_epochs) < 1:
        raise StudyError(f"max_epochs must be at least 1, got {max_epochs}.")


def _check_new_key(study: Study, key: str | None) -> None:
    known = {str(m.get("key")) for m in study.manifest.get("models", [])}
    if key in known:
        raise StudyError(f"Study {study.title!r} already has a model {key!r}; choose another key (--key).")


# ------------------------------------------------------------------------------------------- runs
def _experiment(spec: str | Experiment, cohort: Cohort, scenario: str, max_epochs: int | None) -> Experiment:
    if isinstance(spec, Experiment):
        experiment = spec
    else:
        if spec not in METHODS:
            raise StudyError(f"Unknown method {spec!r}; choose from {', '.join(METHODS)}.")
        experiment = default_config(spec, cohort.n_samples, cohort.n_genes, scenario)
    return experiment.with_max_epochs(max_epochs)


def _model_runs(models: Sequence[str | Experiment], cohort: Cohort, scenario: str,
                max_epochs: int | None) -> list[_Run]:
    runs = [_Run(e, f"{e.method}_{e.gene_set}") for e in (_experiment(m, cohort, scenario, max_epochs) for m in models)]
    keys = [run.key for run in runs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise StudyError(f"Several models would be saved as {repeated}: one model per method and gene set.")
    return runs


def _baseline_runs(baselines: Sequence[str | Experiment], cohort: Cohort, scenarios: Sequence[str],
                   max_epochs: int | None, models: list[_Run]) -> list[_Run]:
    """Benchmark-only runs: each name under each scenario, each experiment under its own; runs that
    repeat a model's method and scenario on all genes are left out (the model's record serves)."""
    done = {(r.experiment.method, r.experiment.scenario) for r in models if not r.experiment.pathway}
    runs = []
    for spec in baselines:
        for scenario in ([spec.scenario] if isinstance(spec, Experiment) else scenarios):
            experiment = _experiment(spec, cohort, scenario, max_epochs)
            if (experiment.method, experiment.scenario) not in done and not experiment.pathway:
                done.add((experiment.method, experiment.scenario))
                runs.append(_Run(experiment))
    return runs


def _benchmark_run(experiment: Experiment, cohort: Cohort, folder: Path, progress: ProgressCallback) -> dict[str, Any]:
    """Fit and score a benchmark-only run and save its checkpoint (with its interval calibration) in ``folder``'s
    :data:`~gtex_models.studies.study.BASELINES_DIR`, so it imputes and evaluates like a model; its record."""
    name = f"{BASELINES_DIR}/{experiment.method}_{experiment.scenario}.safetensors"
    record, _, _ = _fit_score_save(experiment, cohort, folder / name, progress)
    return record | {"checkpoint": name}


def _fit_score_save(experiment: Experiment, cohort: Cohort, out: Path, progress: ProgressCallback
                    ) -> tuple[dict[str, Any], Imputer, ScenarioData]:
    """Train, score on the test donors and save ``experiment``'s checkpoint at ``out``: its record, the fitted
    imputer and the scenario's data."""
    imputer, data, fit_seconds = train_experiment(experiment, cohort, progress=progress)
    record = scored_record(imputer, data, fit_seconds)
    save_model(imputer, experiment, cohort, out, record, data=data)
    return record, imputer, data


def scored_record(imputer: Imputer, data: ScenarioData, fit_seconds: float | None) -> dict[str, Any]:
    """A fitted imputer's benchmark record on its scenario's data: the test scores (:data:`RECORD_KEYS`) and,
    inductive, the validation score a study's recommendation compares."""
    scores = {**score_fitted(imputer, data), "fit_seconds": fit_seconds}
    record = {key: scores[key] for key in RECORD_KEYS if key in scores}
    if data.scenario == "inductive" and data.valid is not None:
        record["valid_r2_mean"] = validation_score(imputer, data.valid, data.train_donors, data.seed)
    return record


def _model_run(run: _Run, cohort: Cohort, folder: Path, progress: ProgressCallback) -> tuple[dict[str, Any], Any]:
    """Train, score, save the checkpoint and tables of ``run`` into ``folder``; its record and manifest entry."""
    assert run.key is not None
    name = f"{MODELS_DIR}/{run.key}.safetensors"
    record, imputer, data = _fit_score_save(run.experiment, cohort, folder / name, progress)
    _, metadata = load_checkpoint(folder / name)  # the manifest says what the checkpoint says
    check_held_out(f"Model {run.key!r}", metadata, data.test_donors,
                   "report this as a bug: a study fits each model on its cohort's training donors only")
    progress(1.0, "evaluation tables")
    write_model(folder, run.key, tables=evaluation_tables(imputer, data.test_donors, train=data.train_donors),
                umap=embedding_coordinates(imputer))
    progress(1.0, "interval coverage")
    precompute_model(folder, run.key, imputer, metadata, cohort)
    return {**record, "checkpoint": name}, model_entry(run.key, metadata, run.label)


def _install_model(study: Path, scratch: Path, key: str) -> None:
    """Move a model's files (checkpoint, tables, what the pages read: all that ``scratch`` holds of it) into the
    study, each file replaced in one step."""
    for folder in (MODELS_DIR, TABLES_DIR):
        for file in sorted((scratch / folder).glob(f"{key}[._]*")):
            (study / folder).mkdir(parents=True, exist_ok=True)
            file.replace(study / folder / file.name)


def _add_to_manifest(study: Path, entry: Any, record: dict[str, Any] | None) -> None:
    manifest = json.loads((study / MANIFEST).read_text(encoding="utf-8"))
    if record is not None:
        name = manifest.get("benchmark") or BENCHMARK_FILE
        records = json.loads((study / name).read_text(encoding="utf-8")) if (study / name).is_file() else []
        if not any(r.get("method") == record["method"] and r.get("scenario") == record["scenario"] for r in records):
            write_benchmark(study / name, [*records, record])
            manifest["benchmark"] = name
    write_manifest(study, add_entry(manifest, entry))


# ------------------------------------------------------------------------------------------- helpers
def protocol_cohort(cohort: Cohort) -> Cohort:
    """The cohort every run of a study is fitted and scored on: without the validation and test samples
    of groups that have no training donors (warned about once here, not at every run)."""
    return known_groups_only(cohort, cohort.split("train").tissues, "have no training donors")


def _sources(cohort: Cohort, cohort_path: Path | None) -> list[str]:
    files = [str(f) for f in (cohort.meta.get("files") or {}).values() if f]
    if cohort.meta.get("source") == "simulated":
        files = ["gtex_models.data.simulate.simulate_cohort"]
    return files or ([str(cohort_path)] if cohort_path else [])


def write_benchmark(path: Path, records: list[dict[str, Any]]) -> None:
    """Write a study's benchmark records (atomically) in its order: inductive first, then the methods in the
    registry's order."""
    order = {method: i for i, method in enumerate(METHODS)}
    ordered = sorted(records, key=lambda r: (SCENARIOS.index(r["scenario"]), order.get(r["method"], len(order))))
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(ordered, indent=2) + "\n", encoding="utf-8")
