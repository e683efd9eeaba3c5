"""What a study stores so that the app's pages open at once: results too slow to compute while a page loads.

Today that is the empirical coverage of each model's calibrated intervals on the study's test donors
(the Benchmark & model card page: minutes on a 2-core CPU for the demo's models, with the simulator's
oracle as reference). :func:`~gtex_models.studies.build.build_study`, ``add_model`` and ``add_checkpoint``
store it with every model; :func:`precompute_study` adds it to a study built before
(``python -m gtex_models study precompute --study DIR``).

Example
-------
>>> from gtex_models.studies.precompute import precompute_study
>>> precompute_study("data/demo")                     # doctest: +SKIP
['pmi_all: interval_coverage', ...]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from gtex_models.common.atomic import atomic_file
from gtex_models.common.progress import ProgressCallback
from gtex_models.data.cohort import Cohort
from gtex_models.models.base import Imputer
from gtex_models.models.calibration import Calibration, coverage_table
from gtex_models.models.model_space import ModelSpace, cohort_for_model
from gtex_models.models.registry import make_imputer
from gtex_models.studies.experiment import calibrate_checkpoint
from gtex_models.studies.study import TABLES_DIR, Study, StudyError

COVERAGE_TABLE = "interval_coverage"
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


def write_coverage(study_dir: str | Path, key: str, table: pd.DataFrame) -> Path:
    """Store model ``key``'s coverage table in the study (atomically)."""
    path = coverage_path(study_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        table.to_csv(tmp, index=False, compression="gzip")
    return path


def precompute_model(study_dir: str | Path, key: str, imputer: Imputer, metadata: dict[str, Any],
                     cohort: Cohort) -> list[str]:
    """Store what model ``key`` (fitted ``imputer`` with its checkpoint ``metadata``) needs on the study's
    ``cohort``; returns what was written (``"KEY: interval_coverage"``), nothing when it does not apply."""
    table = interval_coverage(imputer, metadata.get("calibration"), ModelSpace.from_metadata(metadata), cohort)
    if table is None:
        return []
    write_coverage(study_dir, key, table)
    return [f"{key}: {COVERAGE_TABLE}"]


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
    wanted = [k for k in (keys or study.models) if overwrite or not coverage_path(study.path, k).is_file()]
    if not wanted or not study.has_cohort:
        return []
    cohort = study.cohort(cache_dir)
    written: list[str] = []
    for i, key in enumerate(wanted):
        if progress is not None:
            progress(i / len(wanted), f"{key}: interval coverage on the test donors")
        imputer, metadata = study.load_model(key)
        written += precompute_model(study.path, key, imputer, metadata, cohort)
    if progress is not None:
        progress(1.0, f"{len(written)} table(s) written")
    return written
