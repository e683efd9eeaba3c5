"""New study: an expression matrix (with an optional sample table) or a cohort folder becomes a study.

The models train in a background thread (:mod:`gtex_models.studies.jobs`), at most
``$GTEX_MAX_BUILDS`` studies at a time for the whole server (default one), so the user can browse the
other pages meanwhile; the study is written to the studies folder only once complete (``build_study``
writes it in one step), so a cancel or a failure leaves nothing behind. Cohorts above :data:`MAX_CELLS`
values (``$GTEX_MAX_TRAIN_CELLS``) get the CLI commands instead. A shared server may confine the
cohort-folder source to one folder or turn it off, and cap the studies folder's size
(:mod:`gtex_models.interfaces.deployment`); a read-only server has no such page.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import streamlit as st

from gtex_models.analysis.benchmark import require_complete
from gtex_models.common.choices import ORIENTATIONS
from gtex_models.data.cohort import Cohort
from gtex_models.data.readers import scale as scale_detection
from gtex_models.data.readers.errors import InputError, max_input_mb
from gtex_models.data.readers.expression import ExpressionTable
from gtex_models.interfaces import upload as pipeline
from gtex_models.interfaces.deployment import COHORT_ROOT_ENV, Deployment
from gtex_models.studies.build import StudyCancelled, build_study
from gtex_models.studies.jobs import CANCELLED, DONE, FAILED, Job, start_job
from gtex_models.studies.study import METHOD_LABELS
from pages._shared import (
    DUPLICATE_LABELS,
    GROUP_COLUMNS,
    Upload,
    deployment,
    job_board,
    running_builds,
    select_study,
    studies_dir,
)

MAX_CELLS = 2_000_000  # samples x genes trained on this page (~1,000 samples x 2,000 genes); beyond: the CLI
MAX_CELLS_ENV = "GTEX_MAX_TRAIN_CELLS"  # a deployment with more cores may raise it
MODELS = ("gauss", "pmi", "gain", "softimpute")
DEFAULT_MODELS = ("gauss", "pmi", "gain")
BASELINES = ("mean", "knn", "mice", "missforest")
DEFAULT_BASELINES = ("mean", "knn", "mice")
UPLOAD, FOLDER = "Upload files", "A cohort folder on this machine"
ONE_GROUP = "(none: all samples form one group)"
ONE_GROUP_NAME = "All samples"
SCALE_LABELS = {"log": "log scale (log2 TPM, log intensities, ...)", "tpm": "TPM / linear (log2(x + 1) is taken)"}
POLL_SECONDS = 1.0
LANDING_PAGE = "pages/benchmark.py"


# ------------------------------------------------------------------------------------ reading
@st.cache_data(show_spinner="Reading the matrix…", max_entries=2)
def _read(data: bytes, filename: str, orientation: str, duplicates: str) -> ExpressionTable:
    return pipeline.read_upload(data, filename, orientation, duplicates)


@st.cache_data(show_spinner="Building the cohort…", max_entries=2)
def _import(expression: Upload, samples: Upload | None, gene_map: Upload | None,
            options: tuple[str | None, str, str, str, str]) -> Cohort:
    """The uploads as a cohort (``options``: group column, orientation, scale, duplicates, negatives); without
    a group column every sample is in the group ``All samples``."""
    group_column, orientation, scale, duplicates, negatives = options
    cohort = pipeline.import_uploads(expression, samples, gene_map, tissue_column=group_column or "tissue",
                                      orientation=orientation, scale=scale, duplicates=duplicates,
                                      negatives=negatives)
    if group_column is None:
        cohort.samples["tissue"] = ONE_GROUP_NAME
    return cohort


@st.cache_resource(show_spinner="Loading the cohort…", max_entries=2)
def _load_folder(path: str, stamp: int) -> Cohort:
    return Cohort.load(path)


def slug(title: str) -> str:
    """A folder name for a study title: ``"My cohort (2024)"`` -> ``"my-cohort-2024"``."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60] or "study"


def free_folder(parent: Path, name: str) -> Path:
    """``parent/name``, or ``name-2``, ``name-3``, ... when taken."""
    candidate, n = parent / name, 1
    while candidate.exists():
        n += 1
        candidate = parent / f"{name}-{n}"
    return candidate


# ------------------------------------------------------------------------------------ the form
@dataclass
class Source:
    """What the user chose: the cohort (None until usable, or when too large), its size, what the CLI needs."""

    cohort: Cohort | None = None
    n_samples: int = 0
    n_genes: int = 0
    cli: dict[str, str] = field(default_factory=dict)

    @property
    def too_large(self) -> bool:
        return self.n_samples * self.n_genes > max_train_cells()


def max_train_cells() -> int:
    """The most values (samples x genes) the page trains on: ``$GTEX_MAX_TRAIN_CELLS``, else :data:`MAX_CELLS`."""
    value = os.environ.get(MAX_CELLS_ENV, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else MAX_CELLS


def _upload_source() -> Source:
    """Widgets for uploaded files."""
    st.markdown(f"An expression matrix: **CSV, TSV, GCT or h5ad**, samples x genes or genes x samples, any gene "
                f"identifiers (symbols, Ensembl IDs, probe IDs); empty or `NA` cells are missing. An optional sample "
                f"table (CSV/TSV): a `sample_id` column, a group column (tissue, condition, ...), optional donor, sex "
                f"and age. An optional probe-to-gene map turns probe IDs into genes (then the pathway views and "
                f"GTEx-gene models apply). Limit: {max_input_mb():g} MB per file.")
    left, middle, right = st.columns(3)
    matrix = left.file_uploader("Expression matrix", type=list(pipeline.UPLOAD_TYPES), key="new_expression")
    sheet = middle.file_uploader("Sample table (optional)", type=["csv", "tsv", "txt", "gz"], key="new_samples")
    mapping = right.file_uploader("Probe-to-gene map (optional)", type=["csv", "tsv", "txt", "gz"],
                                  key="new_gene_map", help="Two columns: probe ID, gene symbol or Ensembl ID. "
                                                           "Several probes of a gene are averaged.")
    if matrix is None:
        st.info("Upload an expression matrix to start.")
        return Source()
    left, middle, right = st.columns(3)
    orientation = left.selectbox("Layout", ORIENTATIONS, key="new_orientation",
                                 help="`auto` looks at which axis holds gene identifiers.")
    duplicates = middle.selectbox("Duplicated genes", list(DUPLICATE_LABELS), format_func=DUPLICATE_LABELS.__getitem__,
                                  key="new_duplicates", help="Rows (columns) with the same identifier or naming the "
                                                             "same gene: refuse, keep the first, or average them.")
    data = matrix.getvalue()
    table = _read(data, matrix.name, orientation, duplicates)
    detected, reason = scale_detection.detect_scale(table.values, table.sample_ids, table.feature_ids)
    digest = hashlib.sha1(data).hexdigest()[:12]
    scale = right.selectbox("Scale", list(SCALE_LABELS), index=list(SCALE_LABELS).index(detected),
                            format_func=SCALE_LABELS.__getitem__, key=f"new_scale_{digest}",
                            help="Detected from the values; change it if the detection is wrong.")
    right.caption(f"Detected: **{detected}** ({reason}).")
    negatives = "error"
    if scale == "tpm" and np.nanmin(table.values, initial=0.0) < 0:
        clip = right.toggle("Set negative values to 0", key=f"new_clip_{digest}",
                            help="A linear signal cannot be negative; MAS5-like arrays have small negative noise.")
        negatives = "clip" if clip else "error"
    group_column, samples = None, None
    if sheet is not None:
        samples = (sheet.getvalue(), sheet.name)
        columns = pipeline.upload_columns(*samples)
        default = next((c for c in columns if c.lower() in GROUP_COLUMNS), ONE_GROUP)
        choice = left.selectbox("Group column", [ONE_GROUP, *columns], index=[ONE_GROUP, *columns].index(default),
                                key=f"new_group_{hashlib.sha1(samples[0]).hexdigest()[:12]}",
                                help="The sample table's column that sorts samples into groups (GTEx: the tissue). "
                                     "The models learn one embedding per group.")
        group_column = None if choice == ONE_GROUP else choice
    else:
        left.caption("No sample table: every sample is its own donor, all in one group.")
    gene_map = None if mapping is None else (mapping.getvalue(), mapping.name)
    cli = {"expression": matrix.name, "scale": scale, "duplicates": duplicates, "negatives": negatives}
    cli.update({"samples": sheet.name} if sheet is not None else {})
    cli.update({"tissue_column": group_column} if group_column else {})
    cli.update({"gene_map": mapping.name} if mapping is not None else {})
    cli.update({"orientation": orientation} if orientation != "auto" else {})
    for message in table.warnings:
        st.warning(message)
    source = Source(None, len(table.sample_ids), len(table.feature_ids), cli)
    if not source.too_large:
        options = (group_column, orientation, scale, duplicates, negatives)
        source.cohort = _import((data, matrix.name), samples, gene_map, options)
    return source


def _folder_source(settings: Deployment) -> Source:
    """Widgets for a cohort folder (inside the server's cohort root, when it has one)."""
    root = settings.cohort_root
    where = f" inside `{root}` (${COHORT_ROOT_ENV}; a path relative to it)" if root else ""
    path = st.text_input("Cohort folder", key="new_folder", placeholder="my_cohort" if root else "data/my_cohort",
                         help="A folder written by `python -m gtex_models import`, `prepare-gtex` or `simulate` "
                              f"(it holds cohort.json){where}.")
    if not path.strip():
        st.info(f"Give the path of a cohort folder on the machine that runs the app{where}.")
        return Source()
    folder = settings.cohort_folder(path)
    if not (folder / "cohort.json").is_file():
        raise InputError(f"{folder} is not a cohort folder (no cohort.json in it). Create one with "
                         "`python -m gtex_models import --expression FILE --out DIR` (or prepare-gtex, simulate).")
    cohort = _load_folder(str(folder), (folder / "cohort.json").stat().st_mtime_ns)
    return Source(cohort, cohort.n_samples, cohort.n_genes, {"cohort": str(folder)})


def cli_commands(cli: dict[str, str], title: str, models: list[str], baselines: list[str]) -> str:
    """The shell commands that build the same study from a terminal."""
    name = slug(title)
    lines = []
    cohort = cli.get("cohort")
    if cohort is None:
        cohort = f"data/cohorts/{name}"
        command = ["python", "-m", "gtex_models", "import", "--expression", cli.get("expression", "MATRIX.csv")]
        if "samples" in cli:
            command += ["--samples", cli["samples"]]
        if "tissue_column" in cli:
            command += ["--tissue-column", cli["tissue_column"]]
        if "gene_map" in cli:
            command += ["--gene-map", cli["gene_map"]]
        if "orientation" in cli:
            command += ["--orientation", cli["orientation"]]
        command += ["--scale", cli.get("scale", "auto"), "--duplicates", cli.get("duplicates", "error")]
        if cli.get("negatives") == "clip":
            command += ["--negatives", "clip"]
        command += ["--out", cohort]
        lines.append(shlex.join(command))
    command = ["python", "-m", "gtex_models", "study", "build", "--cohort", cohort,
               "--out", str(studies_dir() / name), "--title", title]
    command += ["--models", ",".join(models), "--baselines", ",".join(baselines)]
    lines.append(shlex.join(command))
    return "\n".join(lines)


def _summary(cohort: Cohort) -> None:
    groups = cohort.tissues
    splits = cohort.samples["split"].value_counts()
    cols = st.columns(4)
    cols[0].metric("Samples", f"{cohort.n_samples:,}")
    cols[1].metric("Genes", f"{cohort.n_genes:,}")
    cols[2].metric("Groups", f"{len(groups):,}", help=", ".join(groups[:20]) + (" …" if len(groups) > 20 else ""))
    cols[3].metric("Donors", f"{cohort.n_donors:,}")
    st.caption(f"Donors split into training / validation / test: {splits.get('train', 0)} / "
               f"{splits.get('valid', 0)} / {splits.get('test', 0)} samples; the test donors score the models.")
    for message in cohort.meta.get("warnings", []):
        st.warning(message)


# ------------------------------------------------------------------------------------ the job
def _start(cohort: Cohort, title: str, description: str, models: list[str], baselines: list[str],
           max_epochs: int | None, cohort_mode: str) -> Job:
    out = free_folder(studies_dir(), slug(title))

    def work(progress, should_stop):
        return build_study(cohort, out, models=tuple(models), baselines=tuple(baselines), title=title,
                           description=description, max_epochs=max_epochs, progress=progress,
                           should_stop=should_stop, cohort_mode=cohort_mode)

    return start_job(title, work, cancelled_by=(StudyCancelled,))


@st.fragment(run_every=POLL_SECONDS)
def _job_panel() -> None:
    """Progress of each running build with a Cancel button; a full rerun once one ends."""
    board = job_board()
    if any(not job.running for job in list(board.values())):
        st.rerun(scope="app")
    for job_id, job in list(board.items()):
        st.progress(job.fraction, text=f"Building **{job.title}**: {job.message} ({job.seconds:.0f} s)")
        st.button("Cancel", key=f"cancel_{job_id}", on_click=job.cancel, icon=":material/cancel:",
                  disabled=job.should_stop(), help="Stops after the current step; nothing is written.")
    st.caption("You can browse the other pages meanwhile; the study appears in the picker once built.")


def _job_outcome(job_id: str, job: Job) -> None:
    """What became of a finished build: land on the new study, or say why there is none."""
    board = job_board()
    if job.state == DONE:
        board.pop(job_id, None)
        select_study(job.result.path, f"Study {job.title!r} is ready (built in {job.seconds:.0f} s).")
        st.switch_page(LANDING_PAGE)
    if job.state == CANCELLED:
        st.info(f"Building {job.title!r} was cancelled after {job.seconds:.0f} s; nothing was written to the "
                "studies folder.")
    elif job.state == FAILED:
        st.error(f"Building {job.title!r} failed: {job.error} Nothing was written to the studies folder.",
                 icon=":material/error:")
    if st.button("Dismiss", key=f"dismiss_{job_id}"):
        board.pop(job_id, None)
        st.rerun()


# ------------------------------------------------------------------------------------ the page
st.title("New study")
settings = deployment()  # a read-only server leaves this page out of its navigation (app.py)
st.markdown("Turn your own cohort into a study: the models are trained on its training donors, scored on its "
            "test donors, and the study opens in every page of the app. Studies are written to "
            f"`{studies_dir()}`.")
if running_builds():
    _job_panel()
for finished_id, finished in list(job_board().items()):
    if not finished.running:
        _job_outcome(finished_id, finished)

choice = st.radio("Cohort", (UPLOAD, FOLDER) if settings.cohort_folders else (UPLOAD,), horizontal=True,
                  key="new_source")
try:
    source = _upload_source() if choice == UPLOAD else _folder_source(settings)
    if source.cohort is not None:
        require_complete(source.cohort)  # R² is scored on values hidden on purpose
except ValueError as error:  # InputError included
    st.error(str(error), icon=":material/error:")
    source = Source()
if source.too_large:
    st.warning(f"{source.n_samples:,} samples x {source.n_genes:,} genes = {source.n_samples * source.n_genes:,} "
               f"values: more than this page trains ({max_train_cells():,} values; ${MAX_CELLS_ENV}): training would "
               "take long and slow the app for everyone. Build the study from a terminal instead with the commands "
               "below; it then appears in the study picker.")
if source.cohort is not None or source.too_large:
    if source.cohort is not None:
        _summary(source.cohort)
    st.subheader("Models")
    left, right = st.columns(2)
    models = left.pills("Imputation models", MODELS, selection_mode="multi", default=list(DEFAULT_MODELS),
                        format_func=METHOD_LABELS.__getitem__, key="new_models",
                        help="The Gaussian conditional is fast and hard to beat on real cohorts; PMI suits new "
                             "samples, GAIN-GTEx filling gaps in a cohort (Viñas et al. 2021). The study recommends "
                             "the best on its validation donors.")
    baselines = right.pills("Baselines to compare with", BASELINES, selection_mode="multi",
                            default=list(DEFAULT_BASELINES), format_func=METHOD_LABELS.__getitem__,
                            key="new_baselines", help="Fitted and scored for the benchmark table.")
    default_title = Path(source.cli.get("expression") or source.cli.get("cohort") or "my study").name.split(".")[0]
    title = st.text_input("Title", value=default_title, key="new_title", max_chars=80).strip() or default_title
    description = st.text_area("Description (optional)", key="new_description", height=80)
    if source.too_large:
        st.code(cli_commands(source.cli, title, list(models), list(baselines)), language="bash")
    else:
        left, right = st.columns(2)
        max_epochs = left.number_input("Maximum epochs (deep models)", min_value=1, max_value=1000, value=None,
                                       step=1, placeholder="until early stopping", key="new_max_epochs")
        cohort_mode = "copy"
        if choice == FOLDER and not right.toggle("Copy the cohort into the study", value=True, key="new_copy",
                                                 help="Off: the study refers to the folder, which must then stay."):
            cohort_mode = "reference"
        busy = len(running_builds()) >= settings.max_builds
        full = None
        try:
            settings.check_room(studies_dir(), adding=source.cohort.x.nbytes if cohort_mode == "copy" else 0)
        except ValueError as error:  # DeploymentError: the studies folder is full
            full = str(error)
            st.warning(full, icon=":material/storage:")
        if not (models or baselines):
            st.info("Choose at least one model or baseline.")
        waiting = (f"{settings.max_builds} stud{'y is' if settings.max_builds == 1 else 'ies are'} being built on "
                   "this server, the most it builds at once; wait for one to finish.")
        if st.button("Build the study", type="primary", icon=":material/model_training:", key="build_study",
                     disabled=busy or full is not None or not (models or baselines),
                     help=waiting if busy else full):
            job_board()[uuid.uuid4().hex[:12]] = _start(source.cohort, title, description, list(models),
                                                        list(baselines), None if max_epochs is None else int(max_epochs),
                                                        cohort_mode)
            st.rerun()
