"""Recompute a study's evaluation tables with the current estimators (no retraining).

The tables the app shows — per-gene R², per-group R² on the extended test set, R² against the missing rate
(:func:`gtex_models.analysis.benchmark.evaluation_tables`, with the settings ``study build`` uses) — are recomputed
from each model's checkpoint and the study's cohort, and written in place. Run it after a change to how R²
is estimated (e.g. the repeated masks of the across-rates tables, leaving out genes whose hidden values
do not vary, or R²'s reference: each value's group mean over the training donors)::

    python scripts/refresh_tables.py --study data/demo [--models pmi_all,gain_all]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from gtex_models.analysis.benchmark import evaluation_tables, known_groups_only
    from gtex_models.models.model_space import ModelSpace, cohort_for_model
    from gtex_models.studies.study import Study, write_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, required=True)
    parser.add_argument("--models", default=None, help="comma-separated model keys (default: all)")
    args = parser.parse_args()
    study = Study.open(args.study)
    cohort = study.cohort()
    for key in args.models.split(",") if args.models else study.models:
        start = time.perf_counter()
        imputer, metadata = study.load_model(key)
        space = ModelSpace.from_metadata(metadata)
        modelled = cohort_for_model(cohort, space)
        test = known_groups_only(modelled.split("test"), space.tissues)
        write_model(args.study, key, tables=evaluation_tables(imputer, test, train=modelled.split("train")))
        print(f"{key}: tables refreshed in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
