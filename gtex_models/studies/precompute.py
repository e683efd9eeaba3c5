"""What a study stores so that the app's pages open at once: results too slow to compute while a page loads.

Per model: the empirical coverage of its calibrated intervals on the study's test donors (the Benchmark &
model card page: minutes on a 2-core CPU for the demo's models, with the simulator's oracle as reference), or
why it has none (its calibration on the held-out donors was refused: too few of them),
its tissue embedding matrix (deep models: the Tissue embeddings page then needs no torch) and the default
gene panel, designed and scored (the Gene panels page's first screen: seconds of design and imputation).
:func:`~gtex_models.studies.build.build_study`, ``add_model`` and ``add_checkpoint`` store them with every
model; :func:`precompute_study` adds what is missing to a study built before
(``python -m gtex_models study precompute --study DIR``).

Example
-------
>>> from gtex_models.studies.precompute import precompute_study
>>> precompute_study("data/demo")                     # doctest: +SKIP
['pmi_all: interval_coverage', 'pmi_all: tissue_embeddings', 'pmi_all: default_panel', ...]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from gtex_models.analysis.embeddings import tissue_embeddings
from gtex_models.analysis.panels import default_panel
from gtex_models.common.atomic import atomic_file
from gtex_models.common.progress import ProgressCallback
from gtex_models.data.cohort import Cohort
from gtex_models.models.base import Imputer
from gtex_models.models.calibration import Calibration, coverage_table
from gtex_models.models.model_space import ModelSpace, cohort_for_model
from gtex_models.models.registry import DEEP_METHODS, make_imputer
from gtex_models.studies.experiment import calibrate_checkpoint
from gtex_models.studies.study import TABLES_DIR, Study, StudyError

COVERAGE_TABLE = "interval_coverage"
EMBEDDINGS_TABLE = "tissue_embeddings"
PANEL_FILE = "default_panel"
COVERAGE_RATES = (0.1, 0.3, 0.5, 0.7, 0.9)
COVERAGE_LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
STORED_NOTE = "calibrated on held-out donors when the model was saved"


def coverage_test_donors(cohort: Cohort, space: ModelSpace) -> Cohort:
    """The cohort's test donors in the model's space, in the groups the model knows."""
    test = cohort_for_model(cohort, space).split("test")
    return test.subset_samples(test.samples["tissue"].isin(space.tissues).to_numpy())


def interval_coverage(imputer: Imputer, calibration: Calibration | None, space: ModelSpace,
                      cohort: Cohort, progress: ProgressCallback | None = None) -> pd.DataFrame | None:
    """Empirical coverage of the model's calibrated intervals on ``cohort``'s test donors at
    :data:`COVERAGE_RATES` and :data:`COVERAGE_LEVELS` (:func:`~gtex_models.models.calibration.coverage_table`;
    with the simulator's oracle as reference on a simulated cohort). None without a calibration or a test donor
    in a group the model knows. ``progress`` hears of each missing rate."""
    test = coverage_test_donors(cohort, space)
    if calibration is None or test.n_samples == 0:
        return None
    oracle = make_imputer("oracle").fit(test) if test.meta.get("source") == "simulated" else None
    return coverage_table(imputer, calibration, test, COVERAGE_RATES, COVERAGE_LEVELS, oracle=oracle,
                          progress=progress)


def model_calibration(imputer: Imputer, metadata: dict[str, Any], cohort: Cohort | None) -> tuple[Calibration | None, str]:
    """The model's interval calibration: the checkpoint's, else one made now on the held-out donors of its study's
    ``cohort`` (None: no cohort); and where it comes from, or why there is none."""
    if metadata.get("calibration") is not None:
        return metadata["calibration"], STORED_NOTE
    if cohort is None:
        return None, ("This model has no interval calibration and its study no cohort to make one from: "
                      "no intervals. Add one with `python -m gtex_models calibrate --checkpoint CKPT --cohort DIR`.")
    try:
        made = calibrate_checkpoint(imputer, metadata, cohort_for_model(cohort, ModelSpace.from_metadata(metadata)))
    except ValueError as error:  # CalibrationError included: too few held-out donors
        return None, f"No intervals for this model: {error}"
    return made, ("calibrated just now on the study's held-out donors (the checkpoint stores none; "
                  "`python -m gtex_models calibrate` stores one)")


def calibrated_coverage(imputer: Imputer, metadata: dict[str, Any], cohort: Cohort,
                        progress: ProgressCallback | None = None) -> tuple[Calibration | None, str, pd.DataFrame | None]:
    """:func:`model_calibration` and the coverage of its intervals on ``cohort``'s test donors
    (:func:`interval_coverage`; None without a calibration or a test donor the model can score)."""
    if progress is not None and metadata.get("calibration") is None:
        progress(0.0, "calibrating the intervals on held-out donors")
    calibration, note = model_calibration(imputer, metadata, cohort)
    table = interval_coverage(imputer, calibration, ModelSpace.from_metadata(metadata), cohort, progress)
    return calibration, note, table


def coverage_path(study_dir: str | Path, key: str) -> Path:
    return Path(study_dir) / TABLES_DIR / f"{key}_{COVERAGE_TABLE}.csv.gz"


def no_coverage_path(study_dir: str | Path, key: str) -> Path:
    return Path(study_dir) / TABLES_DIR / f"{key}_{COVERAGE_TABLE}_none.txt"


def write_coverage(study_dir: str | Path, key: str, table: pd.DataFrame) -> Path:
    """Store model ``key``'s coverage table in the study (atomically), replacing a stored reason for its absence."""
    path = coverage_path(study_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        table.to_csv(tmp, index=False, compression="gzip")
    no_coverage_path(study_dir, key).unlink(missing_ok=True)
    return path


def stored_no_coverage(study_dir: str | Path, key: str) -> str | None:
    """Why model ``key`` has no interval coverage, as stored when the study was built (None: nothing stored)."""
    path = no_coverage_path(study_dir, key)
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def embeddings_path(study_dir: str | Path, key: str) -> Path:
    return Path(study_dir) / TABLES_DIR / f"{key}_{EMBEDDINGS_TABLE}.csv"


def panel_path(study_dir: str | Path, key: str) -> Path:
    return Path(study_dir) / TABLES_DIR / f"{key}_{PANEL_FILE}.json"


def stored_embeddings(study_dir: str | Path, key: str) -> pd.DataFrame | None:
    """Model ``key``'s stored tissue embedding matrix (tissues x dimensions), or None."""
    path = embeddings_path(study_dir, key)
    return pd.read_csv(path, index_col="tissue") if path.is_file() else None


def stored_default_panel(study_dir: str | Path, key: str) -> dict[str, Any] | None:
    """Model ``key``'s stored default panel (:func:`~gtex_models.analysis.panels.default_panel`), or None."""
    path = panel_path(study_dir, key)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def precompute_model(study_dir: str | Path, key: str, imputer: Imputer, metadata: dict[str, Any],
                     cohort: Cohort, overwrite: bool = True) -> list[str]:
    """Store what model ``key`` (fitted ``imputer`` with its checkpoint ``metadata``) needs on the study's
    ``cohort`` (what is missing, or all of it with ``overwrite``); returns what was written
    (``"KEY: interval_coverage"``, ...), nothing for what does not apply."""
    space = ModelSpace.from_metadata(metadata)

    def coverage() -> bool:
        if metadata.get("calibration") is None:  # none stored: calibrating on the held-out donors was refused?
            made, note = model_calibration(imputer, metadata, cohort)
            if made is None:  # then the page says why at once instead of trying again
                with atomic_file(no_coverage_path(study_dir, key)) as tmp:
                    tmp.write_text(note + "\n", encoding="utf-8")
            return made is None
        table = interval_coverage(imputer, metadata["calibration"], space, cohort)
        if table is not None:
            write_coverage(study_dir, key, table)
        return table is not None

    def embeddings() -> bool:
        if getattr(imputer, "networks", None) is None:
            return False
        with atomic_file(embeddings_path(study_dir, key)) as tmp:
            tissue_embeddings(imputer).to_csv(tmp)
        return True

    def panel() -> bool:
        stored = default_panel(imputer, cohort_for_model(cohort, space))
        if stored is not None:
            with atomic_file(panel_path(study_dir, key)) as tmp:
                tmp.write_text(json.dumps(stored) + "\n", encoding="utf-8")
        return stored is not None

    steps: dict[str, Callable[[], bool]] = {COVERAGE_TABLE: coverage, EMBEDDINGS_TABLE: embeddings, PANEL_FILE: panel}
    stored = _stored(Path(study_dir), key, imputer.method)
    return [f"{key}: {name}" for name, make in steps.items() if (overwrite or not stored[name]) and make()]


def _stored(study_dir: Path, key: str, method: str) -> dict[str, bool]:
    """Which of model ``key``'s precomputed results the study holds or need not (the coverage, or why there is none;
    an embedding matrix only a deep ``method`` learns)."""
    return {COVERAGE_TABLE: coverage_path(study_dir, key).is_file() or no_coverage_path(study_dir, key).is_file(),
            EMBEDDINGS_TABLE: method not in DEEP_METHODS or embeddings_path(study_dir, key).is_file(),
            PANEL_FILE: panel_path(study_dir, key).is_file()}


def precompute_study(study_dir: str | Path, overwrite: bool = False, progress: ProgressCallback | None = None,
                     cache_dir: Path | None = None, keys: list[str] | None = None) -> list[str]:
    """Compute and store what the study's models lack (all of it with ``overwrite``); returns what was written.

    ``keys`` limits it to these models; ``cache_dir`` caches a simulated study's regenerated cohort. A study
    without its cohort gets nothing (the coverage is measured on its test donors).
    """
    study = Study.open(study_dir)
    unknown = sorted(set(keys or ()) - set(study.models))
    if unknown:
        raise StudyError(f"Study {study.title!r} has no model {', '.join(unknown)}; it has {', '.join(study.models)}.")
    wanted = [k for k in (keys or study.models)  # a study's models whose checkpoints need loading
              if overwrite or not all(_stored(study.path, k, study.models[k].method).values())]
    if not wanted or not study.has_cohort:
        return []
    cohort = study.cohort(cache_dir)
    written: list[str] = []
    for i, key in enumerate(wanted):
        if progress is not None:
            progress(i / len(wanted), f"{key}: interval coverage, embeddings and default panel")
        imputer, metadata = study.load_model(key)
        written += precompute_model(study.path, key, imputer, metadata, cohort, overwrite)
    if progress is not None:
        progress(1.0, f"{len(written)} table(s) written")
    return written
