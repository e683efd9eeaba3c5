"""What every page shares: the study and model pickers of the sidebar, and cached loaders of what they picked.

The studies offered are the demo (``data/demo``, always), every study in the studies folder
(``$GTEX_STUDIES_DIR``, default ``data/studies``), and each folder given as
``streamlit run app.py -- --study DIR`` (repeatable) or listed in ``$GTEX_STUDY`` (separated by
``os.pathsep``); such a folder may be a study or hold studies. The study named in the page's address
(``?study=NAME``, :mod:`pages._address`) is selected, else the first folder given that way, else the demo.

Everything a page shows is read for the session's study: callbacks that run outside the page's run
(a download's deferred data, a background job) get the study's path and version (:func:`study_ref`),
never the session. :func:`words` names the study's groups and values (:mod:`gtex_models.interfaces.naming`).

Everything read from a study is cached under its path and its manifest's modification time (a
rebuilt study is read afresh): models and cohorts with ``st.cache_resource`` (one shared object,
never mutated), tables with ``st.cache_data``. Pages stay thin: widgets and plots, calling
``gtex_models``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import streamlit as st

from gtex_models.common.choices import DUPLICATE_CHOICES
from gtex_models.data.cohort import Cohort
from gtex_models.data.readers.genes import looks_like_probes
from gtex_models.interfaces.deployment import Deployment, DeploymentError
from gtex_models.interfaces.naming import Words, words_for
from gtex_models.models.base import Imputer
from gtex_models.models.calibration import Calibration
from gtex_models.models.checkpoints import load_checkpoint, read_checkpoint_info
from gtex_models.models.model_space import ModelSpace
from gtex_models.studies.demo import CACHE_DIR, DEMO_DIR
from gtex_models.studies.jobs import Job, Work, start_job
from gtex_models.studies.precompute import model_calibration
from gtex_models.studies.study import MANIFEST, METHOD_LABELS, Study, StudyError, find_studies
from pages import _address as address

SIMULATED = "SIMULATED"
STUDY_KEY = "study_path"  # the pickers' widget keys
MODEL_KEY = "model_key"
SELECTED_STUDY = "selected_study"  # the choices, kept also on runs that do not draw the pickers
SELECTED_MODEL = "selected_model"
_PENDING_STUDY = "_select_study_next"  # set by select_study(), applied before the picker is drawn
_CURRENT = "_current_study"  # (path, stamp) of the selected study, as last resolved
_READY = "_study_ready"  # a message for the sidebar once, after a new study was built
STUDIES_DIR_ENV = "GTEX_STUDIES_DIR"
STUDY_ENV = "GTEX_STUDY"
DEFAULT_STUDIES_DIR = Path(__file__).resolve().parent.parent / "data" / "studies"
MODEL_HELP = ("The paper recommends PMI for imputing new samples (it is trained to fill any pattern of "
              "missing values in unseen donors) and GAIN-GTEx for filling gaps in a cohort. Pathway models "
              "work on one pathway's genes only.")
DUPLICATE_LABELS = dict(zip(DUPLICATE_CHOICES, ("Refuse (say which)", "Keep the first", "Average them")))
Upload = tuple[bytes, str]  # an uploaded file's bytes and name
GROUP_COLUMNS = ("tissue", "smtsd", "group", "condition", "cell_type")  # a sample table's default group column
DEMO_HINT = ("Rebuild the demo with `python -m gtex_models build-demo --overwrite` (about 30 minutes on a 2-core CPU; "
             "`--overwrite` replaces the demo study in data/demo).")
STUDY_HINT = ("Add a model with `python -m gtex_models study add-model --study STUDY ...`, or rebuild the "
              "study with `python -m gtex_models study build ... --overwrite` (or the New study page).")


# ------------------------------------------------------------------------------------ where studies are
def studies_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The studies folder: ``$GTEX_STUDIES_DIR``, else ``data/studies`` (where the New study page writes)."""
    value = environ.get(STUDIES_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else DEFAULT_STUDIES_DIR


def given_locations(argv: Sequence[str] = (), environ: Mapping[str, str] = os.environ) -> list[Path]:
    """The folders named by ``--study DIR`` options in ``argv`` and by ``$GTEX_STUDY``, in that order."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--study", action="append", default=[])
    options, _ = parser.parse_known_args(list(argv))
    listed = environ.get(STUDY_ENV, "").split(os.pathsep)
    return [Path(p).expanduser() for p in [*options.study, *listed] if p.strip()]


@dataclass(frozen=True)
class StudyChoice:
    """A study the picker offers (``study``), or a folder that could not be opened (``problem``)."""

    path: Path
    stamp: int
    study: Study | None
    problem: str | None = None


@st.cache_resource(show_spinner=False, max_entries=64)
def _open(path: str, stamp: int) -> Study:
    """A study opened read-only (cached until its manifest changes)."""
    return Study.open(path)


def _manifest_stamp(path: Path) -> int:
    try:
        return (path / MANIFEST).stat().st_mtime_ns
    except OSError:
        return 0


def study_choices() -> tuple[list[StudyChoice], list[str], Path | None]:
    """The studies to offer (the demo, the studies folder, then the folders given), a note for each given
    folder that holds no study, and the study to select at start (the first one given, if any)."""
    given = [(location, find_studies(location)) for location in given_locations(sys.argv[1:])]
    notes = [f"`{location}` holds no study (no {MANIFEST} in it or in its sub-folders)."
             for location, found in given if not found]
    from_given = [path for _, found in given for path in found]
    ordered = dict.fromkeys([*find_studies(DEMO_DIR), *find_studies(studies_dir()), *from_given])
    choices = []
    for path in ordered:
        stamp = _manifest_stamp(path)
        try:
            choices.append(StudyChoice(path, stamp, _open(str(path), stamp)))
        except (StudyError, OSError) as error:
            choices.append(StudyChoice(path, stamp, None, str(error)))
    return choices, notes, next(iter(from_given), None)


def select_study(path: str | Path, message: str | None = None) -> None:
    """Make the picker select the study at ``path`` on the next run (call ``st.rerun`` or
    ``st.switch_page`` after), with a ``message`` shown once in the sidebar."""
    st.session_state[_PENDING_STUDY] = str(Path(path).resolve())
    st.session_state.pop(_CURRENT, None)  # resolved afresh by the next run, with or without the sidebar
    if message:
        st.session_state[_READY] = message


@st.cache_resource
def job_board() -> dict[str, Job]:
    """The server's study builds, by id, while there is something to show of them (at most
    :attr:`~gtex_models.interfaces.deployment.Deployment.max_builds` running at once)."""
    return {}


@st.cache_resource
def _background_board() -> tuple[threading.Lock, dict[tuple, Job]]:
    return threading.Lock(), {}


def background(key: tuple, title: str, work: Work) -> Job:
    """The server's background job for ``key`` (e.g. a study version and a model), started with ``work`` when
    there is none: every session asking for the same ``key`` shares one. ``work`` runs outside any page's run,
    so it must not read the session (give it what it needs)."""
    lock, board = _background_board()
    with lock:
        if key not in board:
            board[key] = start_job(title, work)
        return board[key]


def running_builds() -> list[Job]:
    return [job for job in list(job_board().values()) if job.running]


def deployment() -> Deployment:
    """This server's settings (:mod:`gtex_models.interfaces.deployment`); a setting it cannot use stops the app
    with a message naming the variable."""
    try:
        return Deployment.from_environ()
    except DeploymentError as error:
        st.error(f"The app cannot start with this environment: {error}", icon=":material/error:")
        st.stop()


# ------------------------------------------------------------------------------------ the selected study
def resolve_study() -> tuple[list[StudyChoice], list[str], dict[str, StudyChoice]]:
    """Find the studies and settle which one is selected (a pending :func:`select_study`, else the study the
    address requests, else the picker's value, else the last selection, else the first folder given, else the
    demo) and write it to the address; returns the choices, the notes and the usable studies by path."""
    choices, notes, preferred = study_choices()
    usable = {str(c.path): c for c in choices if c.study is not None}
    ids = address.study_ids(usable)
    wanted = [st.session_state.pop(_PENDING_STUDY, None), _requested_study(ids),
              st.session_state.get(STUDY_KEY), st.session_state.get(SELECTED_STUDY), str(preferred),
              next(iter(usable), None)]
    path = next((p for p in wanted if p in usable), None)
    st.session_state[SELECTED_STUDY] = path
    st.session_state[_CURRENT] = None if path is None else (path, usable[path].stamp)
    address.write(address.STUDY, ids.get(path))
    return choices, notes, usable


def _requested_study(ids: dict[str, str]) -> str | None:
    """The path of the study a link or reload asks for; an unknown name is reported and gives the demo."""
    wanted = address.requested(address.STUDY)
    if wanted is None:
        return None
    by_name = {name: path for path, name in ids.items()}
    if wanted in by_name:
        return by_name[wanted]
    demo = str(DEMO_DIR.resolve())
    address.note(f"This server has no study {wanted!r} (the address names it): showing "
                 f"{'the demo' if demo in ids else 'the first study'} instead. Pick a study in the sidebar.")
    return demo


def _current() -> tuple[str, int] | None:
    """(path, stamp) of the selected study; resolved here when the sidebar has not run (a page run alone)."""
    if _CURRENT not in st.session_state:
        resolve_study()
    return st.session_state[_CURRENT]


def study_ref() -> tuple[str, int]:
    """(path, version) of the selected study, to hand to work that runs outside the page's run (a download's
    deferred data, a background job): such work must not read the session."""
    current = _current()
    if current is None:
        raise StudyError("No study is selected.")
    return current


def study_at(ref: tuple[str, int]) -> Study:
    """The study ``ref`` (:func:`study_ref`), opened read-only (cached)."""
    return _open(*ref)


def current_study() -> Study | None:
    """The study picked in the sidebar (None when there is none to pick)."""
    current = _current()
    return None if current is None else _open(*current)


def study_token() -> str:
    """A string naming the selected study's current version: the first argument of a page's own caches."""
    path, stamp = _current()
    return f"{path}@{stamp}"


def is_demo(study: Study) -> bool:
    return study.path.resolve() == DEMO_DIR.resolve()


def rebuild_hint(study: Study) -> str:
    return DEMO_HINT if is_demo(study) else STUDY_HINT


def words() -> Words:
    """How the selected study's groups and values are called (``tissue`` / ``group``, ``log2(TPM + 1)``, ...)."""
    current = _current()
    return Words() if current is None else _words(*current)


@st.cache_data(show_spinner=False, max_entries=64)
def _words(path: str, stamp: int) -> Words:
    """The words of a study, from its cohort's groups, scale and source (read from the cohort folder's small
    files, without loading the matrix)."""
    study = _open(path, stamp)
    scale, folder = study.cohort_summary.get("scale", "tpm"), study.cohort_path
    if study.simulated or folder is None:  # a simulation: the simulator's groups are GTEx tissues
        return words_for(["Whole Blood"], scale, "simulated")
    try:
        info = json.loads((folder / "cohort.json").read_text(encoding="utf-8"))
        groups = pd.read_csv(folder / "samples.csv", usecols=["tissue"], dtype=str)["tissue"].unique()
        genes = pd.read_csv(folder / "genes.csv", usecols=["symbol"], dtype=str)["symbol"].dropna().tolist()
    except (OSError, ValueError, KeyError):  # no cohort folder, or an unusual one: words from what is known
        return words_for([], scale)
    meta = info.get("meta") if isinstance(info, dict) and isinstance(info.get("meta"), dict) else {}
    mapped = bool((meta.get("files") or {}).get("gene_map"))
    return words_for(groups, scale, meta.get("source"), probes=mapped or looks_like_probes(genes))


# ------------------------------------------------------------------------------------ loaders
@st.cache_resource(show_spinner="Loading the model…", max_entries=16)
def _model(path: str, stamp: int, key: str) -> tuple[Imputer, dict[str, Any], ModelSpace]:
    imputer, metadata = load_checkpoint(_open(path, stamp).checkpoint_path(key))
    return imputer, metadata, ModelSpace.from_metadata(metadata)


def model(key: str) -> tuple[Imputer, dict[str, Any], ModelSpace]:
    """A model of the selected study: the imputer, its checkpoint metadata and its gene/group/transform space. A
    checkpoint whose model cannot be rebuilt stops the page with the reason (:func:`selected_model` checked only
    its header)."""
    try:
        return _model(*_current(), key)
    except ValueError as error:  # CheckpointError: the arrays do not fit the stored settings
        _unusable(key, error)
        st.stop()


@st.cache_resource(show_spinner=False, max_entries=16)
def _model_info(path: str, stamp: int, key: str) -> tuple[dict[str, Any], ModelSpace]:
    metadata = read_checkpoint_info(_open(path, stamp).checkpoint_path(key))
    return metadata, ModelSpace.from_metadata(metadata)


def model_info(key: str) -> tuple[dict[str, Any], ModelSpace]:
    """A model's checkpoint metadata and space without rebuilding the model (nor importing torch): for pages
    that show what a model is, not what it imputes."""
    return _model_info(*_current(), key)


@st.cache_resource(show_spinner="Calibrating the model's intervals on held-out donors…", max_entries=16)
def _calibration(path: str, stamp: int, key: str) -> tuple[Calibration | None, str]:
    imputer, metadata, _ = _model(path, stamp, key)
    has_cohort = metadata.get("calibration") is None and _open(path, stamp).has_cohort
    return model_calibration(imputer, metadata, _cohort(path, stamp) if has_cohort else None)


def calibration(key: str) -> tuple[Calibration | None, str]:
    """A model's interval calibration (stored, or made on the study's validation donors) and where it comes
    from; None and the reason when there is none."""
    return _calibration(*_current(), key)


@st.cache_resource(show_spinner="Loading the cohort…", max_entries=4)
def _cohort(path: str, stamp: int) -> Cohort:
    return _open(path, stamp).cohort(CACHE_DIR)


def cohort() -> Cohort:
    """The selected study's cohort (shared, never mutated); check ``current_study().has_cohort`` first."""
    return _cohort(*_current())


def study_cohort(ref: tuple[str, int]) -> Cohort:
    """The cohort of the study ``ref`` (:func:`study_ref`), for work outside the page's run."""
    return _cohort(*ref)


@st.cache_data(show_spinner=False, max_entries=32)
def _tables(path: str, stamp: int, key: str) -> dict[str, pd.DataFrame]:
    return _open(path, stamp).tables(key)


def tables(key: str) -> dict[str, pd.DataFrame]:
    """The evaluation tables of a model that exist: ``per_gene``, ``per_tissue``, ``across_rates``."""
    return _tables(*_current(), key)


@st.cache_data(show_spinner=False, max_entries=16)
def _benchmark(path: str, stamp: int) -> pd.DataFrame | None:
    records = _open(path, stamp).benchmark()
    return None if records is None else pd.DataFrame.from_records(records)


def benchmark() -> pd.DataFrame | None:
    """The study's benchmark records, one row per method and scenario (None when it has none)."""
    return _benchmark(*_current())


@st.cache_data(show_spinner=False, max_entries=16)
def _split_counts(path: str, stamp: int, split: str) -> dict[str, int]:
    samples = _cohort(path, stamp).samples
    return samples.loc[samples["split"] == split, "tissue"].value_counts().to_dict()


def split_counts(split: str) -> dict[str, int]:
    """Samples per group of ``split`` (train, valid, test) in the selected study's cohort (empty without one)."""
    study = current_study()
    return _split_counts(*_current(), split) if study is not None and study.has_cohort else {}


def train_counts() -> dict[str, int]:
    """Training samples per group in the selected study's cohort (empty without a cohort)."""
    return split_counts("train")


# ------------------------------------------------------------------------------------ sidebar
def sidebar() -> None:
    """Study and model pickers, shown on every page (and, above the page, what was wrong with its address)."""
    choices, notes, usable = resolve_study()
    study = usable[st.session_state[SELECTED_STUDY]].study if usable else None
    if study is not None and study.models:
        _model_key(study)  # the address's model request is answered before the page runs
    address.show_note()
    with st.sidebar:
        st.markdown("### Study")
        if _READY in st.session_state:
            st.success(st.session_state.pop(_READY), icon=":material/check_circle:")
        for job in running_builds():
            st.caption(f"Building study **{job.title}**: {job.fraction:.0%} ({job.message}); see the New study page.")
        for note in notes:
            st.warning(note, icon=":material/folder_off:")
        for choice in choices:
            if choice.study is None:
                st.error(f"`{choice.path}` cannot be opened: {choice.problem}", icon=":material/error:")
        if not usable:
            st.info(f"No study to open. {DEMO_HINT} Or create one on the New study page.")
            return
        titles = [c.study.title for c in usable.values()]

        def label(path: str) -> str:
            choice = usable[path]
            duplicated = titles.count(choice.study.title) > 1
            return f"{choice.study.title} · {choice.path.name}" if duplicated else choice.study.title

        st.session_state[STUDY_KEY] = st.session_state[SELECTED_STUDY]
        st.selectbox("Study", list(usable), key=STUDY_KEY, format_func=label,
                     help=f"The demo, the studies in `{studies_dir()}` (${STUDIES_DIR_ENV}) and the folders given "
                          f"with `streamlit run app.py -- --study DIR` or ${STUDY_ENV}.")
        _describe(study)
        st.markdown("### Model")
        if not study.models:
            st.info(f"This study has no trained model. {rebuild_hint(study)}")
            return
        st.session_state[MODEL_KEY] = _model_key(study)
        recommended = study.recommended_key
        st.selectbox("Imputation model", list(study.models), key=MODEL_KEY, help=MODEL_HELP, on_change=_keep_model,
                     format_func=lambda k: study.models[k].label + (" · recommended" if k == recommended else ""))
        st.caption(recommendation_note(study))


def recommendation_note(study: Study) -> str:
    """One line on the model the study recommends for new samples (the best on its validation donors)."""
    recommended = study.recommendation
    if recommended is None:
        return ("This study recommends no model (it was built before recommendations, or without validation "
                "donors): compare them on the Benchmark page.")
    method = METHOD_LABELS.get(recommended["method"], recommended["method"])
    scores = (f"validation R² {recommended['valid_r2_mean']:.3f} at "
              f"{', '.join(f'{r:.0%}' for r in recommended['rates'])} missing")
    if study.recommended_key is not None:
        return f"Recommended for new samples: **{method}** ({scores}), the best of this study's methods there."
    return (f"Recommended for new samples: **{method}** ({scores}), a baseline of the benchmark, not a model of "
            f"this study: impute with it from the CLI (`--checkpoint {study.path}/{recommended['checkpoint']}`), "
            f"or add it with `study add-model --method {recommended['method']}`.")


def _keep_model() -> None:
    st.session_state[SELECTED_MODEL] = st.session_state[MODEL_KEY]


def _model_key(study: Study) -> str | None:
    """The model the address requests if the study has it, else the selected model if the study has it, else the
    study's first; written to the address."""
    wanted = address.requested(address.MODEL)
    if wanted is not None and wanted in study.models:
        st.session_state[SELECTED_MODEL] = wanted
    elif wanted is not None:
        address.note(f"Study {study.title!r} has no model {wanted!r} (the address names it): showing another; "
                     "pick one in the sidebar.")
    key = st.session_state.get(SELECTED_MODEL)
    key = key if key in study.models else study.recommended_key or next(iter(study.models), None)
    st.session_state[SELECTED_MODEL] = key
    address.write(address.MODEL, key)
    return key


def _describe(study: Study) -> None:
    """Badge, description, size and what is missing of the selected study."""
    if study.simulated:
        st.markdown(f":orange-badge[{SIMULATED}] simulated data, not real measurements")
    summary = study.cohort_summary
    if summary:
        groups = summary.get("n_groups", 0)
        st.caption(f"{summary.get('n_samples', 0):,} samples × {summary.get('n_genes', 0):,} genes, "
                   f"{groups} group{'s' if groups != 1 else ''}; {len(study.models)} model(s)")
    if study.description:
        with st.expander("About this study"):
            st.markdown(study.description)
            st.caption(f"Folder: `{study.path}`")
    if study.problems:
        st.warning("This study is incomplete; pages show what it has.\n\n"
                   + "\n".join(f"- {problem}" for problem in study.problems), icon=":material/construction:")


def selected_model() -> str | None:
    """The key of the model picked in the sidebar; None (with an info box, or an error for a checkpoint
    that cannot be loaded) when there is none to use."""
    study = current_study()
    if study is None:
        st.info("No study is open: pick one in the sidebar, or create one on the New study page.")
        return None
    key = _model_key(study)
    if key is None:
        st.info(f"Study {study.title!r} has no trained model yet, so this page has nothing to show. "
                f"{rebuild_hint(study)}")
        return None
    try:
        model_info(key)  # cached: a broken checkpoint file is reported here instead of crashing the page
    except ValueError as error:  # CheckpointError, or metadata the app cannot use
        _unusable(key, error)
        return None
    return key


def _unusable(key: str, error: ValueError) -> None:
    study = current_study()
    assert study is not None
    st.error(f"The model {study.models[key].label!r} of study {study.title!r} cannot be loaded: {error} "
             f"{rebuild_hint(study)}", icon=":material/error:")


def same_gene_set(key: str) -> dict[str, str]:
    """The study's models on the same genes as ``key`` that have an across-rates table, label -> key
    (``key`` first): the models that can be drawn side by side."""
    study = current_study()
    assert study is not None
    gene_set = study.models[key].gene_set
    keys = [key, *(k for k, e in study.models.items() if k != key and e.gene_set == gene_set)]
    return {study.models[k].label: k for k in keys if "across_rates" in tables(k)}


# ------------------------------------------------------------------------------------ widgets
def download_csv(frame: pd.DataFrame, filename: str, label: str = "Download CSV", index: bool = False,
                 key: str | None = None) -> None:
    """A download button for ``frame`` as CSV (written only when clicked)."""
    st.download_button(label, lambda: frame.to_csv(index=index).encode(), file_name=filename, mime="text/csv",
                       key=key, icon=":material/download:")


def scenario_note(key: str) -> None:
    """For a model trained in place, say that the test donors were part of its training matrix."""
    study = current_study()
    if study is not None and model_info(key)[0].get("scenario") == "inplace":
        st.caption(f"{study.models[key].label} was trained in place (the paper's in-place scenario): the test "
                   "donors' profiles, with values hidden, were part of its training matrix.")


def simulated_note(what: str = "These results") -> None:
    """For a simulated study, a one-line reminder that its data are simulated."""
    study = current_study()
    if study is not None and study.simulated:
        st.caption(f":orange-badge[{SIMULATED}] {what} come from a simulated cohort ({study.title}), "
                   "not real measurements.")

