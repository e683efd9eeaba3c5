"""Recompute a study's evaluation tables and test records with the current estimators (no retraining).

The tables the app shows — per-gene R², per-group R² on the extended test set, R² against the missing rate
(:func:`gtex_models.analysis.benchmark.evaluation_tables`, with the settings ``study build`` uses) — are recomputed
from each model's checkpoint and the study's cohort, and written in place. Run it after a change to how R²
is estimated (e.g. the repeated masks of the across-rates tables, leaving out genes whose hidden values
do not vary, or R²'s reference: each value's group mean over the training donors)::

    python scripts/refresh_tables.py --study data/demo [--models pmi_all,gain_all]

``--records`` also rescores each model's test record (and, inductive, its validation score) on the same
donors and masks as ``study build`` (its scenario, missing rate and seed 0), and stores it in the checkpoint,
the manifest and the benchmark (the record of the model's method and scenario on all genes; its fit seconds
are kept). ``--benchmark FILE.json`` (repeatable; ``benchmark --json`` output on the study's cohort, for the
methods that have no model in the study: their fitted baselines are not kept, so they are run again) makes
the benchmark exactly these files' records and the models' (the old records, measured with another
estimator, are dropped)::

    python scripts/refresh_tables.py --study data/demo --records --benchmark inductive.json --benchmark inplace.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rescored_record(imputer: Any, metadata: dict[str, Any], cohort: Any) -> dict[str, Any]:
    """A study model's test record scored again as ``study build`` scored it (same donors, masks and rate)."""
    from gtex_models.analysis.benchmark import scenario_data
    from gtex_models.models.model_space import ModelSpace, cohort_for_model
    from gtex_models.studies.build import protocol_cohort, scored_record

    old = metadata.get("evaluation") or {}
    modelled = cohort_for_model(protocol_cohort(cohort), ModelSpace.from_metadata(metadata))
    data = scenario_data(modelled, metadata.get("scenario") or "inductive", float(old.get("missing_rate", 0.5)))
    return scored_record(imputer, data, old.get("fit_seconds"))


def main() -> None:
    from gtex_models.analysis.benchmark import evaluation_tables, known_groups_only
    from gtex_models.models.checkpoints import attach_evaluation
    from gtex_models.models.model_space import ModelSpace, cohort_for_model
    from gtex_models.studies.build import write_benchmark
    from gtex_models.studies.report import recommendation
    from gtex_models.studies.study import BENCHMARK_FILE, MODELS_DIR, Study, write_manifest, write_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, required=True)
    parser.add_argument("--models", default=None, help="comma-separated model keys (default: all)")
    parser.add_argument("--records", action="store_true", help="also rescore the models' test records")
    parser.add_argument("--benchmark", type=Path, action="append", default=[],
                        help="benchmark --json records that replace the study's of the same method and scenario")
    args = parser.parse_args()
    study = Study.open(args.study)
    cohort = study.cohort()
    manifest = json.loads(json.dumps(study.manifest))
    kept = [] if args.benchmark else study.benchmark() or []  # files given: the old records go (other estimator)
    records = {(r["method"], r.get("scenario", "inductive")): r for r in kept}
    for path in args.benchmark:
        records |= {(r["method"], r.get("scenario", "inductive")): r for r in json.loads(path.read_text())}
    for key in args.models.split(",") if args.models else study.models:
        start = time.perf_counter()
        imputer, metadata = study.load_model(key)
        space = ModelSpace.from_metadata(metadata)
        modelled = cohort_for_model(cohort, space)
        test = known_groups_only(modelled.split("test"), space.tissues)
        write_model(args.study, key, tables=evaluation_tables(imputer, test, train=modelled.split("train")))
        if args.records:
            record = rescored_record(imputer, metadata, cohort)
            attach_evaluation(study.checkpoint_path(key), record)
            entry = next(m for m in manifest["models"] if m["key"] == key)
            entry["evaluation"] = record
            if not entry.get("pathway"):
                records[(record["method"], record["scenario"])] = {**record,
                                                                   "checkpoint": f"{MODELS_DIR}/{key}.safetensors"}
        print(f"{key}: tables{' and record' if args.records else ''} refreshed in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    if args.records or args.benchmark:
        manifest["benchmark"] = manifest.get("benchmark") or BENCHMARK_FILE
        write_benchmark(args.study / manifest["benchmark"], list(records.values()))
        manifest["recommended"] = recommendation(list(records.values()))
        write_manifest(args.study, manifest)


if __name__ == "__main__":
    main()
